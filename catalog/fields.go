package catalog

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

// Kind is the type of an entity field: it decides how a value is
// validated (the same way for the API and the catalog file), how it is
// bound to SQL and how it is read back.
type Kind int

// The field kinds.
const (
	KText        Kind = iota // free text, trimmed, at most MaxText bytes
	KNotes                   // free text, trimmed, at most MaxNotes bytes
	KName                    // text that may not be empty
	KCurrency                // active ISO 4217 code
	KTimezone                // IANA zone (time.LoadLocation)
	KMoney                   // decimal ≥ 0, at most 6 decimals and MaxAmount
	KMoneyNull               // KMoney or null
	KCount                   // integer 0…1e9 or null (capacities)
	KInt                     // integer in [Min, Max]
	KIntNull                 // KInt or null
	KBool                    // true / false
	KDate                    // "YYYY-MM-DD" or null
	KTags                    // list of non-empty strings, duplicates dropped
	KEnum                    // one of Enum
	KEmail                   // one address or ""
	KRef                     // id of a row of Ref, or null
	KRefRequired             // id of a row of Ref
	KLocale                  // language tag such as en or pt-BR
)

// Limits on what a field holds (DESIGN.md keeps money exact; these keep it
// bounded, so that no balance can overflow and no request can make the
// audit log copy megabytes).
const (
	MaxText  = 1000 // bytes of a KText or KName value
	MaxNotes = 4096 // bytes of a KNotes value
	MaxTag   = 100  // bytes of one tag
)

// MaxAmount is the largest amount of money a field or a transaction may
// carry, in either sign: 10^12, with at most 6 decimals.
var MaxAmount = decimal.New(1, 12)

// Field is one typed, editable column of an entity; its name is the
// column's, and the API's JSON field.
type Field struct {
	Name     string
	Kind     Kind
	Enum     []string // KEnum: the allowed values, the first being the default
	Ref      string   // KRef, KRefRequired: the table referenced
	Min, Max int64    // KInt and KIntNull bounds
	Required bool     // must be given on create
	Fixed    bool     // may not change after creation
	Doc      string
	// Default is the value the column takes when a create leaves the field
	// out; a catalog file entry that leaves it out is written with it (the
	// file is the truth for the fields it carries).
	Default any
}

// nullable reports whether null is a value of f (it then clears it).
func (f *Field) nullable() bool {
	switch f.Kind {
	case KMoneyNull, KCount, KIntNull, KDate, KRef:
		return true
	}
	return false
}

// FromJSON reads one JSON value of f into the Go value Check takes:
// string, int64, bool, []string or nil. A value of the wrong JSON type is
// Malformed.
func (f *Field) FromJSON(raw json.RawMessage) (any, *FieldError) {
	raw = bytes.TrimSpace(raw)
	if bytes.Equal(raw, []byte("null")) {
		if f.Kind == KTags {
			return []string{}, nil
		}
		return nil, nil // Check says whether null is allowed
	}
	switch f.Kind {
	case KText, KNotes, KName, KCurrency, KTimezone, KEnum, KEmail, KLocale, KDate:
		var s string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			if f.Kind == KDate {
				return nil, malformed(f.Name, "must be a date string YYYY-MM-DD")
			}
			return nil, malformed(f.Name, "must be a string")
		}
		return s, nil
	case KMoney, KMoneyNull:
		var s string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			// A bare JSON number is refused so that no amount ever passes
			// through float64 on either side.
			return nil, malformed(f.Name, `must be a decimal string such as "12.50"`)
		}
		return s, nil
	case KCount, KInt, KIntNull, KRef, KRefRequired:
		n, ok := jsonInt(raw)
		if !ok {
			return nil, malformed(f.Name, "must be an integer")
		}
		return n, nil
	case KBool:
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			return nil, malformed(f.Name, "must be true or false")
		}
		return b, nil
	case KTags:
		var tags []string
		if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &tags) != nil {
			return nil, malformed(f.Name, "must be a list of strings")
		}
		return tags, nil
	}
	panic("BUG: field kind without a JSON reader")
}

// jsonInt reads a JSON integer (not a string, not a fraction).
func jsonInt(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 || raw[0] == '"' {
		return 0, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var n json.Number
	if dec.Decode(&n) != nil {
		return 0, false
	}
	v, err := n.Int64()
	return v, err == nil
}

// Check validates a value of f (as FromJSON returns it, or as a catalog
// file gives it) and returns what is bound to SQL: string, int64, bool,
// []string, decimal text, time.Time or nil (SQL NULL).
func (f *Field) Check(v any) (any, *FieldError) {
	if v == nil {
		if f.nullable() {
			return nil, nil
		}
		if f.Kind == KTags {
			return []string{}, nil
		}
		return nil, invalid(f.Name, "may not be null")
	}
	switch f.Kind {
	case KText, KNotes, KName, KCurrency, KTimezone, KEnum, KEmail, KLocale:
		s, ok := v.(string)
		if !ok {
			return nil, malformed(f.Name, "must be a string")
		}
		s = strings.TrimSpace(s)
		limit := MaxText
		if f.Kind == KNotes {
			limit = MaxNotes
		}
		if err := checkText(f.Name, s, limit); err != nil {
			return nil, err
		}
		return f.checkString(s)
	case KMoney, KMoneyNull:
		s, ok := v.(string)
		if !ok {
			return nil, malformed(f.Name, `must be a decimal string such as "12.50"`)
		}
		d, err := parseAmount(f.Name, s)
		if err != nil {
			return nil, err
		}
		if d.IsNegative() {
			return nil, invalid(f.Name, "may not be negative, got %s", s)
		}
		return d.String(), nil
	case KCount, KInt, KIntNull, KRef, KRefRequired:
		n, ok := v.(int64)
		if !ok {
			return nil, malformed(f.Name, "must be an integer")
		}
		switch f.Kind {
		case KCount:
			if n < 0 || n > 1_000_000_000 {
				return nil, invalid(f.Name, "must be between 0 and 1000000000, got %d", n)
			}
		case KInt, KIntNull:
			if n < f.Min || n > f.Max {
				return nil, invalid(f.Name, "must be between %d and %d, got %d", f.Min, f.Max, n)
			}
		default:
			if n <= 0 {
				return nil, invalid(f.Name, "%s %d not found", refNoun(f.Ref), n)
			}
		}
		return n, nil
	case KBool:
		b, ok := v.(bool)
		if !ok {
			return nil, malformed(f.Name, "must be true or false")
		}
		return b, nil
	case KDate:
		s, ok := v.(string)
		if !ok {
			return nil, malformed(f.Name, "must be a date string YYYY-MM-DD")
		}
		t, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
		if err != nil {
			return nil, invalid(f.Name, "must be a date YYYY-MM-DD, got %q", s)
		}
		return t, nil
	case KTags:
		tags, ok := v.([]string)
		if !ok {
			return nil, malformed(f.Name, "must be a list of strings")
		}
		out := make([]string, 0, len(tags))
		for _, t := range tags {
			t = strings.TrimSpace(t)
			if t == "" {
				return nil, invalid(f.Name, "a tag may not be empty")
			}
			if err := checkText(f.Name, t, MaxTag); err != nil {
				return nil, invalid(f.Name, "a tag must be valid text of at most %d bytes", MaxTag)
			}
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
		return out, nil
	}
	panic("BUG: field kind without a checker")
}

// checkText refuses what PostgreSQL text cannot hold (NUL, invalid UTF-8)
// and what is longer than limit bytes.
func checkText(field, s string, limit int) *FieldError {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return invalid(field, "must be valid UTF-8 text without NUL bytes")
	}
	if len(s) > limit {
		return invalid(field, "longer than %d bytes", limit)
	}
	return nil
}

// CheckText is checkText for text that is no entity field (a deck's code
// names, an authorize request's identifiers): "" when s is fine.
func CheckText(s string, limit int) string {
	if err := checkText("", s, limit); err != nil {
		return err.Msg
	}
	return ""
}

func (f *Field) checkString(s string) (any, *FieldError) {
	switch f.Kind {
	case KName:
		if s == "" {
			return nil, invalid(f.Name, "may not be empty")
		}
	case KCurrency:
		if !ValidCurrency(s) {
			return nil, invalid(f.Name, "unknown currency %q: want an ISO 4217 code such as USD", s)
		}
	case KTimezone:
		if !ValidTimezone(s) {
			return nil, invalid(f.Name, "unknown timezone %q: want an IANA name such as Europe/London", s)
		}
	case KEnum:
		if !slices.Contains(f.Enum, s) {
			return nil, invalid(f.Name, "must be one of %s, got %q", strings.Join(f.Enum, ", "), s)
		}
	case KEmail:
		if s != "" && !validEmail(s) {
			return nil, invalid(f.Name, "not an email address: %q", s)
		}
	case KLocale:
		if !localeRE.MatchString(s) {
			return nil, invalid(f.Name, "not a locale such as en or pt-BR: %q", s)
		}
	}
	return s, nil
}

var localeRE = regexp.MustCompile(`^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$`)

// ValidTimezone reports whether s is an IANA zone this host knows ("Local"
// is not one: it means whatever the server's zone is).
func ValidTimezone(s string) bool {
	if s == "" || s == "Local" {
		return false
	}
	_, err := time.LoadLocation(s)
	return err == nil
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}

var decimalRE = regexp.MustCompile(`^-?[0-9]{1,20}(\.[0-9]{1,20})?$`)

// parseAmount reads a plain decimal ("-12.5", "0.000001": no exponent, no
// thousands separators) of at most 6 decimals and at most MaxAmount in
// either sign; errors name field.
func parseAmount(field, s string) (decimal.Decimal, *FieldError) {
	s = strings.TrimSpace(s)
	if !decimalRE.MatchString(s) {
		return decimal.Decimal{}, malformed(field, `%q is not a plain decimal such as "12.50"`, clip(s))
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, malformed(field, `%q is not a plain decimal such as "12.50"`, clip(s))
	}
	if !d.Equal(d.Truncate(6)) {
		return decimal.Decimal{}, invalid(field, "at most 6 decimal places, got %s", s)
	}
	if d.Abs().GreaterThan(MaxAmount) {
		return decimal.Decimal{}, invalid(field, "at most %s in either sign, got %s", MaxAmount, s)
	}
	return d, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// FormatMoney is how an amount is written for people and in the API's
// answers: exactly 6 decimals, the precision balances are kept in.
func FormatMoney(d decimal.Decimal) string { return d.StringFixed(6) }

// MoneyText is the SQL of an amount read as text with exactly 6 decimals,
// whatever the column's declared scale: the one way amounts are read for
// answers.
func MoneyText(expr string) string { return "round(" + expr + ", 6)::text" }

// ValidCurrency reports whether s is an active ISO 4217 code.
func ValidCurrency(s string) bool {
	return len(s) == 3 && strings.Contains(currencies, " "+s+" ")
}

// currencies lists the active ISO 4217 codes (2024), space separated.
const currencies = " AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD" +
	" CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF" +
	" GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP" +
	" LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB" +
	" PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL" +
	" THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG "

// refNoun is how a referenced table is named in messages.
func refNoun(table string) string {
	switch table {
	case "rate_tables":
		return "rate table"
	case "payment_terms":
		return "payment terms"
	case "tax_profiles":
		return "tax profile"
	}
	return strings.TrimSuffix(table, "s")
}
