package api

import (
	"bytes"
	"encoding/json"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// kind is the type of an entity field, which decides how its input is
// validated, how it is bound to SQL and how it is read back.
type kind int

const (
	kText        kind = iota // free text, trimmed
	kName                    // text that may not be empty
	kCurrency                // ISO 4217 code
	kTimezone                // IANA zone (time.LoadLocation)
	kMoney                   // decimal string ≥ 0, at most 6 decimals
	kMoneyNull               // kMoney or null
	kCount                   // integer ≥ 0 or null (capacities)
	kInt                     // integer in [min, max]
	kBool                    // true / false
	kDate                    // "YYYY-MM-DD" or null
	kTags                    // list of non-empty strings
	kEnum                    // one of enum
	kEmail                   // one address or ""
	kRef                     // id of a row of ref, or null
	kRefRequired             // id of a row of ref
	kLocale                  // language tag such as en or pt-BR
)

// field is one typed, user-editable column of an entity; its JSON name is
// the column name.
type field struct {
	name     string
	kind     kind
	enum     []string
	ref      string // table a kRef points to
	min, max int64  // kInt bounds
	required bool   // must be given on create
	fixed    bool   // may be given on create only
	doc      string
}

const maxTextLen = 1000

var (
	localeRE = regexp.MustCompile(`^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$`)
)

// parse validates one raw JSON value of f and returns what is bound to SQL:
// string, int64, bool, []string, decimal text, time.Time or nil (SQL NULL).
// A wrong JSON type answers 400; a well-typed but invalid value 422.
func (f *field) parse(raw json.RawMessage) (any, *apiError) {
	isNull := bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
	if isNull {
		switch f.kind {
		case kMoneyNull, kCount, kDate, kRef:
			return nil, nil
		case kTags:
			return []string{}, nil
		}
		return nil, invalid(f.name, "may not be null")
	}
	switch f.kind {
	case kText, kName, kCurrency, kTimezone, kEnum, kEmail, kLocale:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest(f.name, "must be a string")
		}
		s = strings.TrimSpace(s)
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			return nil, invalid(f.name, "must be valid UTF-8 text")
		}
		if len(s) > maxTextLen {
			return nil, invalid(f.name, "longer than %d bytes", maxTextLen)
		}
		return f.parseString(s)
	case kMoney, kMoneyNull:
		d, err := parseAmount(raw)
		if err != nil {
			return nil, badRequest(f.name, "must be a decimal string such as \"12.50\"")
		}
		if d.IsNegative() {
			return nil, invalid(f.name, "may not be negative")
		}
		if err := checkAmount(d); err != "" {
			return nil, invalid(f.name, "%s", err)
		}
		return d.String(), nil
	case kCount, kInt, kRef, kRefRequired:
		var n json.Number
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] == '"' || dec.Decode(&n) != nil {
			return nil, badRequest(f.name, "must be an integer")
		}
		v, err := n.Int64()
		if err != nil {
			return nil, badRequest(f.name, "must be an integer")
		}
		switch f.kind {
		case kCount:
			if v < 0 || v > 1_000_000_000 {
				return nil, invalid(f.name, "must be between 0 and 1000000000")
			}
		case kInt:
			if v < f.min || v > f.max {
				return nil, invalid(f.name, "must be between %d and %d", f.min, f.max)
			}
		default:
			if v <= 0 {
				return nil, invalid(f.name, "not found")
			}
		}
		return v, nil
	case kBool:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, badRequest(f.name, "must be true or false")
		}
		return b, nil
	case kDate:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest(f.name, "must be a date string YYYY-MM-DD")
		}
		t, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
		if err != nil {
			return nil, invalid(f.name, "must be a date YYYY-MM-DD")
		}
		return t, nil
	case kTags:
		var tags []string
		if err := json.Unmarshal(raw, &tags); err != nil {
			return nil, badRequest(f.name, "must be a list of strings")
		}
		out := make([]string, 0, len(tags))
		for _, t := range tags {
			t = strings.TrimSpace(t)
			if t == "" {
				return nil, invalid(f.name, "a tag may not be empty")
			}
			if len(t) > 100 || !utf8.ValidString(t) {
				return nil, invalid(f.name, "a tag must be valid text of at most 100 bytes")
			}
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
		return out, nil
	}
	panic("BUG: field kind without a parser")
}

func (f *field) parseString(s string) (any, *apiError) {
	switch f.kind {
	case kName:
		if s == "" {
			return nil, invalid(f.name, "may not be empty")
		}
	case kCurrency:
		if !validCurrency(s) {
			return nil, invalid(f.name, "unknown currency %q: want an ISO 4217 code such as USD", s)
		}
	case kTimezone:
		if err := checkTimezone(s); err != nil {
			return nil, err
		}
	case kEnum:
		if !slices.Contains(f.enum, s) {
			return nil, invalid(f.name, "must be one of %s", strings.Join(f.enum, ", "))
		}
	case kEmail:
		if s != "" && !validEmail(s) {
			return nil, invalid(f.name, "not an email address: %q", s)
		}
	case kLocale:
		if !localeRE.MatchString(s) {
			return nil, invalid(f.name, "not a locale such as en or pt-BR: %q", s)
		}
	}
	return s, nil
}

func checkTimezone(s string) *apiError {
	if s == "" || s == "Local" {
		return invalid("timezone", "unknown timezone %q: want an IANA name such as Europe/London", s)
	}
	if _, err := time.LoadLocation(s); err != nil {
		return invalid("timezone", "unknown timezone %q: want an IANA name such as Europe/London", s)
	}
	return nil
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}

// parseAmount reads a decimal amount given as a JSON string ("12.50"); a
// bare JSON number is refused so that no amount ever passes through float64
// on either side.
func parseAmount(raw json.RawMessage) (decimal.Decimal, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return decimal.Decimal{}, err
	}
	return parseDecimal(s)
}

var decimalRE = regexp.MustCompile(`^-?[0-9]{1,20}(\.[0-9]{1,20})?$`)

// parseDecimal accepts a plain decimal ("-12.5", "0.000001"), no exponent,
// no thousands separators.
func parseDecimal(s string) (decimal.Decimal, error) {
	s = strings.TrimSpace(s)
	if !decimalRE.MatchString(s) {
		return decimal.Decimal{}, errBadDecimal
	}
	return decimal.NewFromString(s)
}

var errBadDecimal = &apiError{Msg: "bad decimal"}

// checkAmount returns why d does not fit numeric(20, 6), or "".
func checkAmount(d decimal.Decimal) string {
	if !d.Equal(d.Truncate(6)) {
		return "at most 6 decimal places"
	}
	if d.Abs().GreaterThanOrEqual(decimal.New(1, 14)) {
		return "too large"
	}
	return ""
}

// validCurrency reports whether s is an active ISO 4217 code.
func validCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	return strings.Contains(currencies, " "+s+" ")
}

// currencies lists the active ISO 4217 codes (2024), space separated.
const currencies = " AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD" +
	" CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF" +
	" GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP" +
	" LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB" +
	" PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL" +
	" THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG "
