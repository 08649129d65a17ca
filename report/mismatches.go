package report

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// MismatchDimensions are the groupings the mismatch report takes besides
// the side and reason it always groups by.
var MismatchDimensions = []string{"day", "hour", "month", "reseller", "orig_client", "term_client", "switch"}

// NoTermLeg is the reason the mismatch report gives the rated calls whose
// CDR named no vendor at all: billed to the customer, with no cost.
const NoTermLeg = "no_term_leg"

// MismatchQuery selects the mismatch report.
type MismatchQuery struct {
	Period Period
	By     []string // any of MismatchDimensions
	Filter Filter   // Clients, Resellers and Tags apply (to the orig client)
}

// MismatchRow is one reason (within one group of By): orig reasons (status
// mismatch: the call is not billed until rerated, and never reaches an
// invoice), term reasons (billed without a vendor cost) and no_term_leg.
type MismatchRow struct {
	Keys       []string
	Side       string // orig | term
	Reason     string
	Calls      uint64
	DurationMs uint64
	Examples   []string // up to 3 cdr_ids, the smallest
	Numbers    []string // their dialed numbers, masked by the client's hidden digits
	Detail     string   // an example detail (malformed, duplicate_conflict)
}

// Mismatches is the mismatch report.
type Mismatches struct {
	Query MismatchQuery
	Rows  []MismatchRow
	cat   *Catalog
}

var mismatchKey = map[string]string{
	"day":         "toString(toDate(event_time, {tz}))",
	"hour":        "substring(toString(toStartOfHour(event_time, {tz}), {tz}), 1, 16)",
	"month":       "substring(toString(toStartOfMonth(event_time, {tz})), 1, 7)",
	"reseller":    "toString(reseller_id)",
	"orig_client": "toString(orig_client_id)",
	"term_client": "toString(term_client_id)",
	"switch":      "switch",
}

// examples are a group's three smallest cdr_ids with their numbers and
// clients.
const examples = "arraySlice(arraySort(x -> x.1, groupArray((cdr_id, dst, orig_client_id))), 1, 3)"

// Mismatches runs the mismatch report in scope: per group and reason, the
// calls, their duration, example ids and numbers. Orig reasons come first,
// then term reasons, each by descending count.
func (r *Reports) Mismatches(ctx context.Context, s Scope, q MismatchQuery) (*Mismatches, error) {
	if err := q.Period.Validate(); err != nil {
		return nil, err
	}
	if len(q.Filter.Vendors) > 0 || len(q.Filter.CodeNames) > 0 {
		return nil, &ParamError{Param: "vendor", Msg: "the mismatch report filters by client, reseller and tag only"}
	}
	if s.Client != 0 && contains(q.By, "term_client") {
		return nil, &ParamError{Param: "by", Msg: "a client's report does not show vendors"}
	}
	tz := tzLiteral(q.Period)
	var keys, names []string
	for i, b := range q.By {
		e, ok := mismatchKey[b]
		if !ok {
			return nil, &ParamError{Param: "by", Msg: fmt.Sprintf("unknown grouping %q (want %s)", b, strings.Join(MismatchDimensions, ", "))}
		}
		if contains(q.By[:i], b) {
			return nil, &ParamError{Param: "by", Msg: fmt.Sprintf("grouping %q given twice", b)}
		}
		keys = append(keys, strings.ReplaceAll(e, "{tz}", tz)+fmt.Sprintf(" AS k%d", i))
		names = append(names, fmt.Sprintf("k%d", i))
	}
	cat, err := LoadCatalog(ctx, r.pg)
	if err != nil {
		return nil, err
	}
	conds, err := where(cat, s, q.Filter)
	if err != nil {
		return nil, err
	}
	sel := "emptyArrayString()"
	if len(keys) > 0 {
		sel = "[" + strings.Join(keys, ", ") + "]"
	}
	conds = append([]string{timeRange("event_time", q.Period.From, q.Period.To),
		"(status = 'mismatch' OR term_reason != '' OR term_client_id = 0)"}, conds...)
	query := `SELECT ` + sel + ` AS keys,
		if(status = 'mismatch', 'orig', 'term') AS side,
		multiIf(status = 'mismatch', reason, term_reason != '', term_reason, '` + NoTermLeg + `') AS why,
		count() AS n, sum(duration_ms),
		arrayMap(x -> x.1, ` + examples + `), arrayMap(x -> x.2, ` + examples + `), arrayMap(x -> x.3, ` + examples + `),
		minIf(detail, detail != '')
	FROM xdrs FINAL
	WHERE ` + strings.Join(conds, " AND ") + `
	GROUP BY ` + strings.Join(append(names, "side", "why"), ", ") + `
	ORDER BY ` + strings.Join(append(names, "side", "n DESC", "why"), ", ")
	if len(keys) == 0 {
		query = strings.Replace(query, "GROUP BY , ", "GROUP BY ", 1)
	}
	rows, err := r.ch.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("mismatches query: %w", err)
	}
	defer rows.Close()
	out := &Mismatches{Query: q, cat: cat}
	for rows.Next() {
		var m MismatchRow
		var clients []uint64
		if err := rows.Scan(&m.Keys, &m.Side, &m.Reason, &m.Calls, &m.DurationMs, &m.Examples, &m.Numbers, &clients, &m.Detail); err != nil {
			return nil, fmt.Errorf("mismatches scan: %w", err)
		}
		for i := range m.Numbers {
			m.Numbers[i] = Mask(m.Numbers[i], cat.HiddenDigits(int64(clients[i])))
		}
		if len(q.By) == 0 {
			m.Keys = nil
		}
		out.Rows = append(out.Rows, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mismatches query: %w", err)
	}
	return out, nil
}

// Table renders the mismatch report.
func (m *Mismatches) Table() *Table {
	t := &Table{
		Title: "Mismatches, " + m.Query.Period.String() + ", event time in [from, to)",
		Note: "Orig reasons are not billed until rerated and never reach an invoice; term reasons and " + NoTermLeg +
			" are billed to the customer without a vendor cost.",
	}
	for _, b := range m.Query.By {
		t.Columns = append(t.Columns, Column{Name: b})
	}
	t.Columns = append(t.Columns, Column{Name: "side"}, Column{Name: "reason"}, Column{Name: "calls", Kind: Int},
		Column{Name: "duration_s", Kind: Decimal}, Column{Name: "examples"}, Column{Name: "numbers"}, Column{Name: "detail"})
	var calls, ms uint64
	for _, r := range m.Rows {
		var row []string
		for i, b := range m.Query.By {
			row = append(row, keyName(m.cat, b, r.Keys[i]))
		}
		row = append(row, r.Side, r.Reason, strconv.FormatUint(r.Calls, 10), decimal.New(int64(r.DurationMs), -3).StringFixed(3),
			strings.Join(r.Examples, " "), strings.Join(r.Numbers, " "), r.Detail)
		t.Rows = append(t.Rows, row)
		calls += r.Calls
		ms += r.DurationMs
	}
	t.Total = make([]string, len(t.Columns))
	t.Total[len(m.Query.By)+2] = strconv.FormatUint(calls, 10)
	t.Total[len(m.Query.By)+3] = decimal.New(int64(ms), -3).StringFixed(3)
	return t
}
