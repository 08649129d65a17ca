package report

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/shopspring/decimal"
)

// StatementQuery selects one client's rated calls of a period for a
// document: its invoice (Side orig: what it pays us) or its vendor
// statement (Side term: what we owe it).
type StatementQuery struct {
	Client int64
	Side   string // orig (default) | term
	Period Period
	Exact  bool // read xdrs FINAL, not the rollups (the same figures, slower)
}

func (q *StatementQuery) check() error {
	if q.Side == "" {
		q.Side = "orig"
	}
	if q.Side != "orig" && q.Side != "term" {
		return &ParamError{Param: "side", Msg: fmt.Sprintf("%q: want orig or term", q.Side)}
	}
	if q.Client <= 0 {
		return &ParamError{Param: "client", Msg: "required"}
	}
	return q.Period.Validate()
}

// StatementLine is one code name of a statement: the rated calls, their
// billed seconds and the exact sum of their per-call costs on the side
// asked (the orig code name groups both sides: the destination as the
// customer's deck names it).
type StatementLine struct {
	CodeName      string
	Calls         uint64
	BilledSeconds uint64
	Amount        decimal.Decimal
}

// Statement sums a client's rated calls of the period by code name, on
// the side asked, in the client's currency: the lines of its invoice
// (DOMAIN.md "Bill run": the rated orig xDRs of xdrs FINAL, grouped by code
// name; mismatched calls never reach it) or of its vendor statement. The
// sums are the summary's (rollups where clean, xdrs FINAL elsewhere), so
// they equal xdrs FINAL to the last decimal (invariant 7). Lines are sorted
// by code name. A term side counts only calls whose vendor side was rated,
// at the customer's event time.
func (r *Reports) Statement(ctx context.Context, q StatementQuery) ([]StatementLine, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	col := "orig_client_id"
	if q.Side == "term" {
		col = "term_client_id"
	}
	groups, _, err := r.aggregate(ctx, aggQuery{Period: q.Period, By: []string{"code_name"},
		Conds: []string{col + " = " + strconv.FormatInt(q.Client, 10)}, Exact: q.Exact})
	if err != nil {
		return nil, err
	}
	// A code name comes once per currency pair: one client bills in one
	// currency, so they add up.
	byName := map[string]*StatementLine{}
	for _, g := range groups {
		l := byName[g.Keys[0]]
		if l == nil {
			l = &StatementLine{CodeName: g.Keys[0]}
			byName[g.Keys[0]] = l
		}
		if q.Side == "orig" {
			l.Calls += g.Calls
			l.BilledSeconds += g.OrigBilled
			l.Amount = l.Amount.Add(g.Revenue)
		} else {
			l.Calls += g.TermCalls
			l.BilledSeconds += g.TermBilled
			l.Amount = l.Amount.Add(g.Cost)
		}
	}
	out := make([]StatementLine, 0, len(byName))
	for _, l := range byName {
		if l.Calls > 0 {
			out = append(out, *l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CodeName < out[j].CodeName })
	return out, nil
}

// CallColumns are the columns WriteCalls writes.
var CallColumns = []string{"cdr_id", "switch", "event_time", "setup_time", "duration_s", "dst", "ani", "code", "code_name",
	"rate", "billed_seconds", "cost", "currency"}

// WriteCalls writes, as CSV with a header of CallColumns, every rated call
// of the statement's client and period on its side, from xdrs FINAL by
// event time: the attachment of an invoice or a vendor statement. Numbers
// (dst, ani) are masked by the client's hidden digits; times are RFC 3339
// in the period's timezone. It streams: a month of a large client is not
// held in memory.
func (r *Reports) WriteCalls(ctx context.Context, w io.Writer, q StatementQuery) error {
	if err := q.check(); err != nil {
		return err
	}
	cat, err := LoadCatalog(ctx, r.pg)
	if err != nil {
		return err
	}
	hidden := cat.HiddenDigits(q.Client)
	side := "orig_code, orig_code_name, orig_rate, orig_billed_seconds, orig_cost, orig_currency"
	cond := "orig_client_id = " + strconv.FormatInt(q.Client, 10)
	if q.Side == "term" {
		side = "term_code, term_code_name, term_rate, term_billed_seconds, term_cost, term_currency"
		cond = "term_client_id = " + strconv.FormatInt(q.Client, 10) + " AND " + termRated
	}
	rows, err := r.ch.Query(ctx, `SELECT cdr_id, switch, event_time, setup_time, duration_ms, dst, ani, `+side+`
		FROM xdrs FINAL
		WHERE status = 'rated' AND `+cond+` AND `+timeRange("event_time", q.Period.From, q.Period.To)+`
		ORDER BY event_time, setup_time, cdr_id`)
	if err != nil {
		return fmt.Errorf("calls query: %w", err)
	}
	defer rows.Close()
	cw := csv.NewWriter(w)
	_ = cw.Write(CallColumns)
	var (
		id, sw, dst, ani, code, name, cur string
		event, setup                      time.Time
		durMs                             uint64
		rate, cost                        decimal.Decimal
		billed                            uint32
	)
	for rows.Next() {
		if err := rows.Scan(&id, &sw, &event, &setup, &durMs, &dst, &ani, &code, &name, &rate, &billed, &cost, &cur); err != nil {
			return fmt.Errorf("calls scan: %w", err)
		}
		if err := cw.Write([]string{CSVCell(id), CSVCell(sw), event.In(q.Period.Loc).Format(time.RFC3339), setup.In(q.Period.Loc).Format(time.RFC3339),
			decimal.New(int64(durMs), -3).StringFixed(3), CSVCell(Mask(dst, hidden)), CSVCell(Mask(ani, hidden)), code, CSVCell(name),
			rate.String(), strconv.FormatUint(uint64(billed), 10), cost.StringFixed(6), cur}); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("calls query: %w", err)
	}
	cw.Flush()
	return cw.Error()
}
