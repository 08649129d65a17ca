package report

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// BalanceQuery selects the balance report.
type BalanceQuery struct {
	Period Period
	Mode   string // live (default) | fixed
	By     string // day (default) | month, in the period's timezone
	Filter Filter // Clients, Resellers and Tags apply
	Exact  bool   // read xdrs FINAL, not the rollups
}

// BalanceRow is one client's balance over one step of the period. Live
// mode: Charges are the orig costs of its calls plus charge transactions,
// Credits the term costs of the calls it carried as a vendor. Fixed mode:
// Invoices are the totals of the invoices approved in the step, less those
// voided in it (charge transactions reach the fixed balance as lines of
// the invoices that bill them, so Charges stay 0). Payments include
// adjustments. Closing = Opening + Payments − Charges + Credits −
// Invoices, and is the next step's Opening.
type BalanceRow struct {
	ClientID   int64
	Currency   string
	Step       string // YYYY-MM-DD or YYYY-MM
	Opening    decimal.Decimal
	Payments   decimal.Decimal
	Charges    decimal.Decimal
	Credits    decimal.Decimal
	Invoices   decimal.Decimal
	Closing    decimal.Decimal
	stepStarts time.Time
}

// Balance is the balance report (DOMAIN.md "Reports"), per client and step.
type Balance struct {
	Query BalanceQuery
	Rows  []BalanceRow // by client name, then step
	cat   *Catalog
}

// Balance runs the balance report in scope. Calls count by their event
// time and transactions by theirs, so the closing of the last step is the
// balance at the period's end, and equal to the live balance when the
// period ends after the last call (DESIGN.md invariant 1). Fixed mode
// counts an invoice at its approval (issued_at) and takes it back at its
// void (voided_at), as the fixed balance moves.
func (r *Reports) Balance(ctx context.Context, s Scope, q BalanceQuery) (*Balance, error) {
	if err := q.Period.Validate(); err != nil {
		return nil, err
	}
	if q.Mode == "" {
		q.Mode = "live"
	}
	if q.Mode != "live" && q.Mode != "fixed" {
		return nil, &ParamError{Param: "mode", Msg: fmt.Sprintf("%q: want live or fixed", q.Mode)}
	}
	if q.By == "" {
		q.By = "day"
	}
	if q.By != "day" && q.By != "month" {
		return nil, &ParamError{Param: "by", Msg: fmt.Sprintf("%q: want day or month", q.By)}
	}
	if len(q.Filter.Vendors) > 0 || len(q.Filter.CodeNames) > 0 {
		return nil, &ParamError{Param: "vendor", Msg: "the balance report filters by client, reseller and tag only"}
	}
	cat, err := LoadCatalog(ctx, r.pg)
	if err != nil {
		return nil, err
	}
	clients, err := balanceClients(cat, s, q.Filter)
	if err != nil {
		return nil, err
	}
	steps := balanceSteps(q.Period, q.By)
	b := &Balance{Query: q, cat: cat}
	if len(clients) == 0 {
		return b, nil
	}
	// Opening figures: everything before the period.
	opening := map[int64]decimal.Decimal{}
	if q.Mode == "live" {
		before := Period{From: minTime, To: q.Period.From, Loc: q.Period.Loc}
		if before.To.After(before.From) {
			if err := r.callMoney(ctx, before, nil, clients, q.Exact, func(_ string, id int64, orig bool, amount decimal.Decimal) {
				if orig {
					amount = amount.Neg()
				}
				opening[id] = opening[id].Add(amount)
			}); err != nil {
				return nil, err
			}
		}
	}
	type cell struct{ payments, charges, credits decimal.Decimal }
	moves := map[int64]map[string]*cell{}
	at := func(id int64, step string) *cell {
		if moves[id] == nil {
			moves[id] = map[string]*cell{}
		}
		if moves[id][step] == nil {
			moves[id][step] = &cell{}
		}
		return moves[id][step]
	}
	if q.Mode == "live" {
		if err := r.callMoney(ctx, q.Period, []string{q.By}, clients, q.Exact, func(step string, id int64, orig bool, amount decimal.Decimal) {
			c := at(id, step)
			if orig {
				c.charges = c.charges.Add(amount)
			} else {
				c.credits = c.credits.Add(amount)
			}
		}); err != nil {
			return nil, err
		}
	}
	ids := make([]int64, 0, len(clients))
	for id := range clients {
		ids = append(ids, id)
	}
	rows, err := r.pg.Query(ctx, `SELECT client_id, kind, amount::text, at FROM transactions WHERE client_id = ANY($1) AND at < $2`, ids, q.Period.To)
	if err != nil {
		return nil, fmt.Errorf("balance: read transactions: %w", err)
	}
	var id int64
	var kind, amount string
	var when time.Time
	if _, err := pgx.ForEachRow(rows, []any{&id, &kind, &amount, &when}, func() error {
		a, err := decimal.NewFromString(amount)
		if err != nil {
			return err
		}
		if kind == "charge" && q.Mode == "fixed" {
			return nil // on the fixed balance through its invoice
		}
		if when.Before(q.Period.From) {
			if kind == "charge" {
				a = a.Neg()
			}
			opening[id] = opening[id].Add(a)
			return nil
		}
		c := at(id, stepOf(when, q.Period.Loc, q.By))
		if kind == "charge" {
			c.charges = c.charges.Add(a)
		} else {
			c.payments = c.payments.Add(a)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("balance: read transactions: %w", err)
	}
	invoices := map[int64]map[string]decimal.Decimal{}
	if q.Mode == "fixed" {
		if err := r.invoiceMoves(ctx, ids, q.Period, q.By, opening, invoices); err != nil {
			return nil, err
		}
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := cat.ClientName(ids[i]), cat.ClientName(ids[j])
		return a < b || a == b && ids[i] < ids[j]
	})
	for _, id := range ids {
		bal := opening[id]
		for _, st := range steps {
			row := BalanceRow{ClientID: id, Currency: cat.Clients[id].Currency, Step: st.name, Opening: bal, stepStarts: st.start}
			if c := moves[id][st.name]; c != nil {
				row.Payments, row.Charges, row.Credits = c.payments, c.charges, c.credits
			}
			row.Invoices = invoices[id][st.name]
			row.Closing = row.Opening.Add(row.Payments).Sub(row.Charges).Add(row.Credits).Sub(row.Invoices)
			bal = row.Closing
			b.Rows = append(b.Rows, row)
		}
	}
	return b, nil
}

// invoiceMoves adds to invoices (per client and step) the totals of the
// invoices approved in the period less those voided in it, and to opening
// the same movements before it, negated: an approval lowers the fixed
// balance by the total, a void gives it back.
func (r *Reports) invoiceMoves(ctx context.Context, ids []int64, p Period, by string,
	opening map[int64]decimal.Decimal, invoices map[int64]map[string]decimal.Decimal) error {
	rows, err := r.pg.Query(ctx, `SELECT client_id, total::text, issued_at, voided_at FROM invoices
		WHERE client_id = ANY($1) AND issued_at IS NOT NULL AND issued_at < $2`, ids, p.To)
	if err != nil {
		return fmt.Errorf("balance: read invoices: %w", err)
	}
	var id int64
	var total string
	var issued time.Time
	var voided *time.Time
	move := func(id int64, at time.Time, amount decimal.Decimal) {
		if at.Before(p.From) {
			opening[id] = opening[id].Sub(amount)
			return
		}
		if invoices[id] == nil {
			invoices[id] = map[string]decimal.Decimal{}
		}
		st := stepOf(at, p.Loc, by)
		invoices[id][st] = invoices[id][st].Add(amount)
	}
	if _, err := pgx.ForEachRow(rows, []any{&id, &total, &issued, &voided}, func() error {
		t, err := decimal.NewFromString(total)
		if err != nil {
			return err
		}
		move(id, issued, t)
		if voided != nil && voided.Before(p.To) {
			move(id, *voided, t.Neg())
		}
		return nil
	}); err != nil {
		return fmt.Errorf("balance: read invoices: %w", err)
	}
	return nil
}

// callMoney calls fn with the orig costs (orig true) and term costs of the
// rated calls of p, per step key (when by is set) and client of clients.
func (r *Reports) callMoney(ctx context.Context, p Period, by []string, clients map[int64]bool, exact bool,
	fn func(step string, id int64, orig bool, amount decimal.Decimal)) error {
	ids := make([]int64, 0, len(clients))
	for id := range clients {
		ids = append(ids, id)
	}
	for _, side := range []struct {
		dim, col string
		orig     bool
	}{{"orig_client", "orig_client_id", true}, {"term_client", "term_client_id", false}} {
		groups, _, err := r.aggregate(ctx, aggQuery{Period: p, By: append(append([]string(nil), by...), side.dim),
			Conds: []string{side.col + " IN " + idList(ids)}, Exact: exact})
		if err != nil {
			return err
		}
		for _, g := range groups {
			step := ""
			if len(by) > 0 {
				step = g.Keys[0]
			}
			amount := g.Cost
			if side.orig {
				amount = g.Revenue
			}
			if !amount.IsZero() {
				fn(step, atoi(g.Keys[len(by)]), side.orig, amount)
			}
		}
	}
	return nil
}

// balanceClients are the clients the report covers.
func balanceClients(cat *Catalog, s Scope, f Filter) (map[int64]bool, error) {
	out := map[int64]bool{}
	var only map[int64]bool
	if len(f.Clients) > 0 {
		only = map[int64]bool{}
		for _, ref := range f.Clients {
			cl, err := s.client(cat, ref)
			if err != nil {
				return nil, err
			}
			if cl != nil {
				only[cl.ID] = true
			}
		}
	}
	var resellers []int64
	if len(f.Resellers) > 0 {
		resellers = []int64{}
	}
	for _, ref := range f.Resellers {
		r, err := s.reseller(cat, ref)
		if err != nil {
			return nil, err
		}
		if r != nil {
			resellers = append(resellers, cat.Subtree(r.ID)...)
		}
	}
	for id, c := range cat.Clients {
		switch {
		case s.Client != 0 && id != s.Client,
			s.Resellers != nil && !containsID(s.Resellers, c.ResellerID),
			only != nil && !only[id],
			resellers != nil && !containsID(resellers, c.ResellerID),
			len(f.Tags) > 0 && !anyTag(c.Tags, f.Tags):
			continue
		}
		out[id] = true
	}
	return out, nil
}

func containsID(ids []int64, id int64) bool {
	for _, v := range ids {
		if v == id {
			return true
		}
	}
	return false
}

func anyTag(have, want []string) bool {
	for _, t := range have {
		if contains(want, t) {
			return true
		}
	}
	return false
}

type step struct {
	name  string
	start time.Time
}

// balanceSteps are the days or months of the period, in its timezone; the
// first and last may be partial.
func balanceSteps(p Period, by string) []step {
	var out []step
	t := p.From.In(p.Loc)
	for t.Before(p.To) {
		out = append(out, step{name: stepOf(t, p.Loc, by), start: t})
		y, m, d := t.Date()
		if by == "month" {
			t = time.Date(y, m+1, 1, 0, 0, 0, 0, p.Loc)
		} else {
			t = time.Date(y, m, d+1, 0, 0, 0, 0, p.Loc)
		}
	}
	return out
}

func stepOf(t time.Time, loc *time.Location, by string) string {
	if by == "month" {
		return t.In(loc).Format("2006-01")
	}
	return t.In(loc).Format(time.DateOnly)
}

// Table renders the balance report.
func (b *Balance) Table() *Table {
	t := &Table{
		Title: "Balance (" + b.Query.Mode + ") per client and " + b.Query.By + ", " + b.Query.Period.String(),
		Columns: []Column{{Name: "client"}, {Name: "currency"}, {Name: b.Query.By},
			{Name: "opening", Kind: Decimal, Money: true}, {Name: "payments", Kind: Decimal, Money: true},
			{Name: "charges", Kind: Decimal, Money: true}},
	}
	if b.Query.Mode == "live" {
		t.Note = "Live: payments and adjustments, minus charges (orig costs of the calls and charge transactions), plus credits " +
			"(term costs of the calls carried as a vendor). Each closing is the next opening; the last is the balance at the end."
		t.Columns = append(t.Columns, Column{Name: "credits", Kind: Decimal, Money: true})
	} else {
		t.Note = "Fixed: payments and adjustments, minus the invoices approved (less those voided); charge transactions reach it " +
			"as lines of their invoices. Each closing is the next opening; the last is the fixed balance at the end."
		t.Columns = append(t.Columns[:len(t.Columns)-1], Column{Name: "invoices", Kind: Decimal, Money: true})
	}
	t.Columns = append(t.Columns, Column{Name: "closing", Kind: Decimal, Money: true})
	for _, r := range b.Rows {
		if b.Query.Mode != "live" {
			t.Rows = append(t.Rows, []string{b.cat.ClientName(r.ClientID), r.Currency, r.Step,
				fixed(r.Opening, 6), fixed(r.Payments, 6), fixed(r.Invoices, 6), fixed(r.Closing, 6)})
			continue
		}
		t.Rows = append(t.Rows, []string{b.cat.ClientName(r.ClientID), r.Currency, r.Step,
			fixed(r.Opening, 6), fixed(r.Payments, 6), fixed(r.Charges, 6), fixed(r.Credits, 6), fixed(r.Closing, 6)})
	}
	return t
}
