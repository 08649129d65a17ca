package codedeck

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Limits on deck values. They keep every charge inside exact int64
// arithmetic bounds and a single malicious cell from expanding into millions
// of codes.
const (
	MaxCodeLen      = 32         // digits in one code
	MaxVolume       = 10_000_000 // seconds, for min_volume, interval and grace_volume
	maxCodesPerCell = 100_000    // codes one list / range cell may expand into
	maxAmountLen    = 40         // characters of a rate or setup fee
)

// MaxRate bounds a rate per minute on either side of zero, and a setup fee:
// what carrier systems accept (±999,999,999). A negative rate is a table
// that pays the client, as for inbound revenue share; a negative setup fee
// is refused.
var MaxRate = decimal.NewFromInt(999_999_999)

// CheckAmounts says what is wrong with a row's rate and setup fee, or "":
// the one statement of their bounds, for the CSV parser, Build and the
// catalog's write path alike.
func CheckAmounts(r *Row) string {
	switch {
	case r.Rate.Abs().GreaterThan(MaxRate):
		return fmt.Sprintf("rate: must be between %s and %s, got %s", MaxRate.Neg(), MaxRate, r.Rate)
	case r.SetupFee.IsNegative():
		return fmt.Sprintf("setup_fee: may not be negative, got %s", r.SetupFee)
	case r.SetupFee.GreaterThan(MaxRate):
		return fmt.Sprintf("setup_fee: at most %s, got %s", MaxRate, r.SetupFee)
	}
	return ""
}

// Row is one parsed deck row for one code: lists and ranges in the CSV are
// expanded into one Row per code. Line is the CSV line the row came from
// (0 when the row comes from elsewhere, such as the catalog database).
// A zero EndDate means no end.
type Row struct {
	Line          int
	Code          string
	CodeName      string
	Rate          decimal.Decimal // per minute
	EffectiveFrom time.Time
	EndDate       time.Time
	MinVolume     int
	Interval      int
	GraceVolume   int
	SetupFee      decimal.Decimal
	Profile       string
}

// RowError is one rejected deck row.
type RowError struct {
	Line   int
	Reason string
}

func (e RowError) String() string {
	if e.Line == 0 {
		return e.Reason
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
}

// ParseError lists every rejected row of a deck, in line order.
type ParseError struct {
	Rows []RowError
}

func (e *ParseError) Error() string {
	var b strings.Builder
	if len(e.Rows) == 1 {
		b.WriteString("deck: 1 row rejected: ")
	} else {
		fmt.Fprintf(&b, "deck: %d rows rejected: ", len(e.Rows))
	}
	for i, r := range e.Rows {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(r.String())
	}
	return b.String()
}

var columns = []string{"code", "code_name", "rate", "effective_from", "end_date",
	"min_volume", "interval", "grace_volume", "setup_fee", "time_profile"}

const (
	colCode = iota
	colCodeName
	colRate
	colEffectiveFrom
	colEndDate
	colMinVolume
	colInterval
	colGraceVolume
	colSetupFee
	colProfile
)

// ParseCSV reads a deck CSV (DESIGN.md "Rate deck CSV"). It returns every
// good row and, when any row is bad, a *ParseError listing each rejected row
// with its line number and reason; a problem with the file itself (no
// header, a required column missing, broken CSV quoting) is reported against
// the line where it was found and ends parsing. Columns not in the contract
// are ignored. Amounts are exact decimals: a plain number such as "0.0125",
// no exponent; a rate may be negative, a setup fee may not. A row with more
// fields than the header is rejected (a decimal comma in an unquoted rate
// would otherwise shift every later column silently).
func ParseCSV(r io.Reader) ([]Row, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ParseError{Rows: []RowError{{Line: 1, Reason: "empty deck: header row required"}}}
		}
		return nil, &ParseError{Rows: []RowError{{Line: 1, Reason: csvReason(err)}}}
	}
	idx := make([]int, len(columns))
	for i := range idx {
		idx[i] = -1
	}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF")))
		for c, name := range columns {
			if h == name {
				if idx[c] >= 0 {
					return nil, &ParseError{Rows: []RowError{{Line: 1, Reason: fmt.Sprintf("column %q twice in header", name)}}}
				}
				idx[c] = i
			}
		}
	}
	for _, c := range []int{colCode, colRate} {
		if idx[c] < 0 {
			return nil, &ParseError{Rows: []RowError{{Line: 1, Reason: fmt.Sprintf("header lacks required column %q", columns[c])}}}
		}
	}

	var rows []Row
	var bad []RowError
	var codes []string
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line := 0
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.Line
			}
			bad = append(bad, RowError{Line: line, Reason: csvReason(err)})
			break // quoting errors leave the reader out of step; stop here
		}
		line, _ := cr.FieldPos(0)
		if len(rec) > len(header) {
			bad = append(bad, RowError{Line: line, Reason: fmt.Sprintf(
				"%d fields, the header has %d (a decimal comma? write 0.05, or quote the field)", len(rec), len(header))})
			continue
		}
		field := func(c int) string {
			if idx[c] < 0 || idx[c] >= len(rec) {
				return ""
			}
			return strings.TrimSpace(rec[idx[c]])
		}
		if isBlankRecord(rec) {
			continue
		}
		row, reason := parseFields(field)
		if reason == "" {
			codes, reason = expandCodes(field(colCode), codes[:0])
		}
		if reason != "" {
			bad = append(bad, RowError{Line: line, Reason: reason})
			continue
		}
		row.Line = line
		for _, c := range codes {
			row.Code = c
			rows = append(rows, row)
		}
	}
	rows, dups := dropDuplicates(rows)
	bad = mergeRowErrors(bad, dups)
	if len(bad) > 0 {
		return rows, &ParseError{Rows: bad}
	}
	return rows, nil
}

func csvReason(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return "bad csv: " + pe.Err.Error()
	}
	return "read deck: " + err.Error()
}

func isBlankRecord(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// parseFields parses every column but the code; reason is "" when they are
// all good.
func parseFields(field func(int) string) (row Row, reason string) {
	row = Row{MinVolume: 1, Interval: 1, Profile: AllProfile, EffectiveFrom: time.Unix(0, 0).UTC()}
	row.CodeName = field(colCodeName)
	var err error
	if row.Rate, err = parseAmount(field(colRate), true); err != nil {
		return row, "rate: " + err.Error()
	}
	if v := field(colSetupFee); v != "" {
		if row.SetupFee, err = parseAmount(v, true); err != nil {
			return row, "setup_fee: " + err.Error()
		}
	}
	if v := field(colEffectiveFrom); v != "" {
		if row.EffectiveFrom, err = parseDate(v); err != nil {
			return row, "effective_from: " + err.Error()
		}
	}
	if v := field(colEndDate); v != "" {
		if row.EndDate, err = parseDate(v); err != nil {
			return row, "end_date: " + err.Error()
		}
		if !row.EndDate.After(row.EffectiveFrom) {
			return row, "end_date must be after effective_from"
		}
	}
	for _, f := range []struct {
		col int
		dst *int
		min int
	}{{colMinVolume, &row.MinVolume, 1}, {colInterval, &row.Interval, 1}, {colGraceVolume, &row.GraceVolume, 0}} {
		v := field(f.col)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return row, fmt.Sprintf("%s: %q is not a whole number", columns[f.col], v)
		}
		if n < f.min {
			return row, fmt.Sprintf("%s must be at least %d, got %d", columns[f.col], f.min, n)
		}
		if n > MaxVolume {
			return row, fmt.Sprintf("%s must be at most %d, got %d", columns[f.col], MaxVolume, n)
		}
		*f.dst = n
	}
	if v := field(colProfile); v != "" {
		row.Profile = v
	}
	return row, CheckAmounts(&row)
}

// parseAmount parses a plain decimal ("0.1", "12", ".5", "-0.02"); its
// bounds are CheckAmounts'.
func parseAmount(v string, required bool) (decimal.Decimal, error) {
	if v == "" {
		if required {
			return decimal.Decimal{}, errors.New("missing")
		}
		return decimal.Zero, nil
	}
	if len(v) > maxAmountLen {
		return decimal.Decimal{}, fmt.Errorf("%.20q… is too long for an amount", v)
	}
	digits, dot := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		case c == '-' && i == 0:
		default:
			return decimal.Decimal{}, fmt.Errorf("%q is not a decimal number", v)
		}
	}
	if digits == 0 {
		return decimal.Decimal{}, fmt.Errorf("%q is not a decimal number", v)
	}
	d, err := decimal.NewFromString(v)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("%q is not a decimal number", v)
	}
	return d, nil
}

// parseDate parses RFC 3339 or YYYY-MM-DD (midnight UTC); the result is UTC.
func parseDate(v string) (time.Time, error) {
	if len(v) == len("2006-01-02") {
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a date (YYYY-MM-DD or RFC 3339)", v)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date (YYYY-MM-DD or RFC 3339)", v)
	}
	return t.UTC(), nil
}

// expandCodes expands a code cell — a code, a list "44301,44303", a range
// "44301-44303" or an inner range "443(0-2)1", or a list of those — appending
// the codes to dst.
func expandCodes(cell string, dst []string) ([]string, string) {
	if cell == "" {
		return dst, "code: missing"
	}
	depth := 0
	start := 0
	for i := 0; i <= len(cell); i++ {
		if i < len(cell) {
			switch cell[i] {
			case '(':
				depth++
				continue
			case ')':
				depth--
				continue
			case ',':
				if depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		item := strings.TrimSpace(cell[start:i])
		start = i + 1
		var reason string
		if dst, reason = expandItem(item, dst); reason != "" {
			return dst, reason
		}
		if len(dst) > maxCodesPerCell {
			return dst, fmt.Sprintf("code: %q expands into more than %d codes", clip(cell), maxCodesPerCell)
		}
	}
	if depth != 0 {
		return dst, fmt.Sprintf("code: unbalanced parentheses in %q", clip(cell))
	}
	return dst, ""
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func expandItem(item string, dst []string) ([]string, string) {
	if item == "" {
		return dst, "code: empty item in list"
	}
	if strings.IndexByte(item, '(') >= 0 {
		return expandInner(item, dst)
	}
	if lo, hi, ok := strings.Cut(item, "-"); ok {
		return expandRange(strings.TrimSpace(lo), strings.TrimSpace(hi), dst, item)
	}
	if !isDigits(item) {
		return dst, fmt.Sprintf("code: %q is not digits", clip(item))
	}
	if len(item) > MaxCodeLen {
		return dst, fmt.Sprintf("code: %q is longer than %d digits", clip(item), MaxCodeLen)
	}
	return append(dst, item), ""
}

// expandRange appends lo…hi; both ends are digit strings of one length, so
// leading zeros are kept ("0100-0102").
func expandRange(lo, hi string, dst []string, item string) ([]string, string) {
	if !isDigits(lo) || !isDigits(hi) {
		return dst, fmt.Sprintf("code: %q is not digits or a range of digits", clip(item))
	}
	if len(lo) != len(hi) {
		return dst, fmt.Sprintf("code: range %q: both ends must have the same number of digits", clip(item))
	}
	if len(lo) > MaxCodeLen {
		return dst, fmt.Sprintf("code: %q is longer than %d digits", clip(item), MaxCodeLen)
	}
	if lo > hi {
		return dst, fmt.Sprintf("code: range %q runs backwards", clip(item))
	}
	cur := []byte(lo)
	for n := 0; ; n++ {
		if n >= maxCodesPerCell {
			return dst, fmt.Sprintf("code: %q expands into more than %d codes", clip(item), maxCodesPerCell)
		}
		dst = append(dst, string(cur))
		if string(cur) == hi {
			return dst, ""
		}
		// increment the decimal string in place
		for i := len(cur) - 1; i >= 0; i-- {
			if cur[i] < '9' {
				cur[i]++
				break
			}
			cur[i] = '0'
		}
	}
}

// expandInner expands every "(…)" group of an item such as "443(0-2)1" or
// "44(1,3)(5-6)"; a group holds digits and ranges of equal-length digit
// strings, comma separated.
func expandInner(item string, dst []string) ([]string, string) {
	open := strings.IndexByte(item, '(')
	closing := strings.IndexByte(item, ')')
	if closing < open {
		return dst, fmt.Sprintf("code: unbalanced parentheses in %q", clip(item))
	}
	prefix, group, rest := item[:open], item[open+1:closing], item[closing+1:]
	if prefix != "" && !isDigits(prefix) {
		return dst, fmt.Sprintf("code: %q is not digits", clip(item))
	}
	if strings.IndexByte(group, '(') >= 0 {
		return dst, fmt.Sprintf("code: nested parentheses in %q", clip(item))
	}
	var alts []string
	for _, part := range strings.Split(group, ",") {
		part = strings.TrimSpace(part)
		var reason string
		if lo, hi, ok := strings.Cut(part, "-"); ok {
			alts, reason = expandRange(strings.TrimSpace(lo), strings.TrimSpace(hi), alts, item)
		} else if isDigits(part) {
			alts = append(alts, part)
		} else {
			reason = fmt.Sprintf("code: %q is not digits or a range of digits", clip(item))
		}
		if reason != "" {
			return dst, reason
		}
	}
	for _, a := range alts {
		var reason string
		if dst, reason = expandItem(prefix+a+rest, dst); reason != "" {
			return dst, reason
		}
		if len(dst) > maxCodesPerCell {
			return dst, fmt.Sprintf("code: %q expands into more than %d codes", clip(item), maxCodesPerCell)
		}
	}
	return dst, ""
}

func mergeRowErrors(a, b []RowError) []RowError {
	if len(b) == 0 {
		return a
	}
	out := make([]RowError, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		if j >= len(b) || (i < len(a) && a[i].Line <= b[j].Line) {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return out
}
