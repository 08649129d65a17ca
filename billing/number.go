package billing

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// NumberTemplate is a reseller's invoice numbering ("No Tpl"): text with
// the placeholders {n} (the reseller's next number), {n:W} (zero-padded to
// W digits), {yyyy} and {mm} (the year and month the invoice is issued,
// in the client's timezone). The number {n} is the reseller's own
// sequence ("Last No" + 1): it never restarts, with the year or otherwise,
// so "ACME-{yyyy}-{n:5}" gives ACME-2024-00041 then ACME-2025-00042.
type NumberTemplate string

// DefaultNumberTemplate is the numbering of a reseller that sets none.
const DefaultNumberTemplate NumberTemplate = "{n}"

type numberPart struct {
	text  string // literal text, or
	field string // n | yyyy | mm
	width int    // of n
}

func (t NumberTemplate) parse() ([]numberPart, error) {
	s := string(t)
	if strings.TrimSpace(s) == "" {
		return nil, fieldErr("invoice_number_template", "required: for example \"INV-{yyyy}-{n:5}\"")
	}
	if len(s) > 100 {
		return nil, fieldErr("invoice_number_template", "at most 100 characters")
	}
	var parts []numberPart
	ns := 0
	for s != "" {
		open := strings.IndexAny(s, "{}")
		if open < 0 {
			parts = append(parts, numberPart{text: s})
			break
		}
		if s[open] == '}' {
			return nil, fieldErr("invoice_number_template", "a } without its {")
		}
		if open > 0 {
			parts = append(parts, numberPart{text: s[:open]})
		}
		end := strings.IndexByte(s[open:], '}')
		if end < 0 {
			return nil, fieldErr("invoice_number_template", "a { without its }")
		}
		ph := s[open+1 : open+end]
		s = s[open+end+1:]
		switch {
		case ph == "n":
			parts = append(parts, numberPart{field: "n"})
			ns++
		case strings.HasPrefix(ph, "n:"):
			w, err := strconv.Atoi(ph[2:])
			if err != nil || w < 1 || w > 20 {
				return nil, fieldErr("invoice_number_template", "{%s}: the width of {n:W} is 1 to 20", ph)
			}
			parts = append(parts, numberPart{field: "n", width: w})
			ns++
		case ph == "yyyy", ph == "mm":
			parts = append(parts, numberPart{field: ph})
		default:
			return nil, fieldErr("invoice_number_template", "unknown placeholder {%s}: want {n}, {n:W}, {yyyy} or {mm}", ph)
		}
	}
	if ns != 1 {
		return nil, fieldErr("invoice_number_template", "must hold {n} (or {n:W}) exactly once, holds it %d times", ns)
	}
	return parts, nil
}

// Validate checks the template as the API and the catalog file take it.
func (t NumberTemplate) Validate() error {
	_, err := t.parse()
	return err
}

// Format is the number of the n-th invoice of the reseller, issued at
// issued (already in the client's timezone). t must be valid.
func (t NumberTemplate) Format(n int64, issued time.Time) string {
	parts, err := t.parse()
	if err != nil {
		panic("BUG: formatting with an invalid number template: " + err.Error())
	}
	var b strings.Builder
	for _, p := range parts {
		switch p.field {
		case "":
			b.WriteString(p.text)
		case "n":
			fmt.Fprintf(&b, "%0*d", p.width, n)
		case "yyyy":
			fmt.Fprintf(&b, "%04d", issued.Year())
		case "mm":
			fmt.Fprintf(&b, "%02d", int(issued.Month()))
		}
	}
	return b.String()
}
