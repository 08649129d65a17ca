package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Kind is how a column's values are written in JSON and aligned in a table.
type Kind uint8

// The kinds of report columns.
const (
	Text    Kind = iota // a JSON string, left-aligned
	Int                 // a JSON number (counts), right-aligned
	Decimal             // a JSON string holding an exact decimal (money, ratios), right-aligned; empty is null
)

// Column is one column of a report.
type Column struct {
	Name string // the JSON field and the table/CSV header
	Kind Kind
	// Money marks an amount in a currency: report totals add it up per
	// currency only, never across currencies.
	Money bool
}

// Table is a report ready to render: its title, columns and rows (each
// cell already formatted as text: decimals fixed, names resolved, numbers
// masked) and its totals. Total holds the figures that can be added across
// currencies (the money cells are empty); CurrencyTotals holds one total
// row per currency (pair) with every figure. A Table is a value: building
// it does I/O, rendering does none.
type Table struct {
	Title          string
	Note           string // a line under the title (table format only)
	Columns        []Column
	Rows           [][]string
	Total          []string   // nil: no total
	CurrencyTotals [][]string // the currency key columns are filled, group keys empty
	// CurrencyKeys names the columns that say which currency a row's money
	// is in (for example orig_currency and term_currency).
	CurrencyKeys []string
}

// Formats are the output formats every report takes.
var Formats = []string{"table", "csv", "json"}

// Render writes t as format: "table" (aligned text for people, with the
// title and totals), "csv" (a header row and the rows, for spreadsheets and
// programs) or "json" ({"rows": [...], "total": {...}}: one object per row
// with the columns by name, counts as numbers, money and ratios as decimal
// strings, undefined ratios as null; total holds the figures over all rows
// that can be added across currencies and "by_currency", one object per
// currency with every figure).
func (t *Table) Render(w io.Writer, format string) error {
	switch format {
	case "csv":
		cw := csv.NewWriter(w)
		header := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			header[i] = c.Name
		}
		_ = cw.Write(header)
		row := make([]string, len(t.Columns))
		for _, r := range t.Rows {
			for i, cell := range r {
				row[i] = CSVCell(cell)
			}
			_ = cw.Write(row[:len(r)])
		}
		cw.Flush()
		return cw.Error()
	case "json":
		return t.renderJSON(w)
	case "table", "":
		return t.renderText(w)
	}
	return &ParamError{Param: "format", Msg: fmt.Sprintf("%q: want table, csv or json", format)}
}

// CSVCell defuses a cell that a spreadsheet would run as a formula (OWASP's
// CSV injection): one that begins with =, +, -, @, a tab or a carriage
// return is written behind a single quote, unless it is a plain number
// (-0.33, +12) or a lone "-". Names, code names and ANIs come from
// operators, resellers and anyone placing a call.
func CSVCell(s string) string {
	if len(s) < 2 || !strings.ContainsRune("=+-@\t\r", rune(s[0])) || plainNumber(s) {
		return s
	}
	return "'" + s
}

// plainNumber reports whether s is a sign, digits and at most one decimal
// point.
func plainNumber(s string) bool {
	digits, point := 0, false
	for i, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !point:
			point = true
		case (c == '-' || c == '+') && i == 0:
		default:
			return false
		}
	}
	return digits > 0
}

func (t *Table) renderJSON(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString(`{"rows":[`)
	for i, r := range t.Rows {
		if i > 0 {
			b.WriteByte(',')
		}
		t.object(&b, r, nil, "")
	}
	b.WriteString(`],"total":`)
	switch {
	case t.Total == nil:
		b.WriteString("{}")
	default:
		var extra string
		if t.CurrencyKeys != nil {
			var by bytes.Buffer
			by.WriteString(`"by_currency":[`)
			for i, r := range t.CurrencyTotals {
				if i > 0 {
					by.WriteByte(',')
				}
				t.object(&by, r, func(c Column) bool { return c.Kind != Text || t.isCurrencyKey(c.Name) }, "")
			}
			by.WriteByte(']')
			extra = by.String()
		}
		t.object(&b, t.Total, func(c Column) bool { return c.Kind != Text && !c.Money }, extra)
	}
	b.WriteString("}")
	// Indent for people reading it; the content is the same.
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return fmt.Errorf("BUG: report json: %w", err)
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

func (t *Table) isCurrencyKey(name string) bool {
	for _, k := range t.CurrencyKeys {
		if k == name {
			return true
		}
	}
	return false
}

// object writes the cells of r whose column keep accepts (all when nil),
// in column order, and then extra (a JSON member), as one JSON object.
func (t *Table) object(b *bytes.Buffer, r []string, keep func(Column) bool, extra string) {
	b.WriteByte('{')
	n := 0
	for i, c := range t.Columns {
		if keep != nil && !keep(c) {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		writeString(b, c.Name)
		b.WriteByte(':')
		v := ""
		if i < len(r) {
			v = r[i]
		}
		switch {
		case c.Kind == Int && v != "":
			b.WriteString(v)
		case c.Kind != Text && v == "":
			b.WriteString("null")
		default:
			writeString(b, v)
		}
	}
	if extra != "" {
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(extra)
	}
	b.WriteByte('}')
}

func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode's newline
}

func (t *Table) renderText(w io.Writer) error {
	all := append([][]string{t.header()}, t.Rows...)
	totals := t.totalLines()
	all = append(all, totals...)
	widths := make([]int, len(t.Columns))
	for _, r := range all {
		for i, c := range r {
			if i < len(widths) {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
	}
	var b strings.Builder
	b.WriteString(t.Title + "\n")
	if t.Note != "" {
		b.WriteString(t.Note + "\n")
	}
	b.WriteString("\n")
	line := func(r []string) {
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			switch {
			case t.Columns[i].Kind != Text:
				b.WriteString(pad + c)
			case i < len(r)-1:
				b.WriteString(c + pad)
			default:
				b.WriteString(c)
			}
		}
		b.WriteString("\n")
	}
	line(t.header())
	for _, r := range t.Rows {
		line(r)
	}
	if len(t.Rows) == 0 {
		b.WriteString("(no rows)\n")
	}
	for _, r := range totals {
		line(r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (t *Table) header() []string {
	h := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		h[i] = c.Name
	}
	return h
}

// totalLines are the total rows of the table format: one per currency when
// there are money columns, else the one total; labelled in the first
// column that is not a currency key.
func (t *Table) totalLines() [][]string {
	if t.Total == nil || len(t.Rows) < 2 {
		return nil
	}
	lines := [][]string{t.Total}
	if t.CurrencyKeys != nil {
		lines = t.CurrencyTotals
	}
	out := make([][]string, 0, len(lines))
	for _, l := range lines {
		l = append([]string(nil), l...)
		for len(l) < len(t.Columns) {
			l = append(l, "")
		}
		for i, c := range t.Columns {
			if c.Kind == Text && !t.isCurrencyKey(c.Name) {
				l[i] = "total"
				break
			}
		}
		out = append(out, l)
	}
	return out
}

// fixed formats d with n decimals.
func fixed(d decimal.Decimal, n int32) string { return d.StringFixed(n) }
