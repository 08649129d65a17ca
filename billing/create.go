package billing

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/report"
)

// maxPeriodDays bounds one invoice's period.
const maxPeriodDays = 3660

// Create makes the invoice of a client (name or id) for [from, to), dates
// of the client's timezone, as a draft (to_verify), and returns it. A draft
// of exactly that period is regenerated from the current xDRs instead (the
// same id); an approved invoice of that period, or any other invoice whose
// period overlaps it, is a *ConflictError: nothing is invoiced twice. The
// client's last invoiced date moves to the period's last day when that is
// later.
func (s *Service) Create(ctx context.Context, c Caller, clientRef string, from, to Date) (*Invoice, error) {
	if from.IsZero() || to.IsZero() {
		return nil, fieldErr("from", "from and to are required (YYYY-MM-DD)")
	}
	if !to.After(from) {
		return nil, fieldErr("to", "must be after from")
	}
	if to.Days(from) > maxPeriodDays {
		return nil, fieldErr("to", "a period of at most %d days", maxPeriodDays)
	}
	cl, err := s.findClient(ctx, s.pg, c, clientRef)
	if err != nil {
		return nil, err
	}
	release, err := s.slot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	var out *Invoice
	err = pgx.BeginFunc(ctx, s.pg, func(tx pgx.Tx) error {
		res, err := s.createIn(ctx, tx, c, cl.ID, from, to, "manual")
		if err != nil {
			return err
		}
		if res.existing != nil {
			return conflictErr("client %s already has invoice %d (%s, %s) for %s to %s", cl.Name, res.existing.ID,
				describeNumber(res.existing), res.existing.State, res.existing.PeriodFrom, res.existing.PeriodTo)
		}
		out = res.invoice
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, Caller{}, out.ID)
}

func describeNumber(inv *Invoice) string {
	if inv.Number == "" {
		return "a draft"
	}
	return "number " + inv.Number
}

// createResult is what createIn did for one client and period.
type createResult struct {
	invoice     *Invoice // created or regenerated
	regenerated bool
	existing    *Invoice // an invoice of the period that stays as it is
	empty       bool     // nothing to bill: no invoice made (bill runs only)
}

// createIn creates or regenerates the invoice of client and period in tx,
// under the client's lock. A bill run (source billrun) leaves an existing
// invoice of the period alone, drafts included, and makes no invoice that
// bills nothing; both move the last invoiced date.
func (s *Service) createIn(ctx context.Context, tx pgx.Tx, c Caller, clientID int64, from, to Date, source string) (createResult, error) {
	var res createResult
	cl, err := lockClient(ctx, tx, clientID)
	if err != nil {
		return res, err
	}
	overlapping, err := readInvoices(ctx, tx, `i.client_id = $1 AND i.state <> 'void' AND i.period_from < $3::date AND i.period_to > $2::date`,
		"i.period_from", cl.ID, from.String(), to.String())
	if err != nil {
		return res, err
	}
	var draft *Invoice
	for _, o := range overlapping {
		if !o.PeriodFrom.Equal(from) || !o.PeriodTo.Equal(to) {
			return res, conflictErr("client %s: %s to %s overlaps invoice %d (%s, %s) for %s to %s", cl.Name, from, to,
				o.ID, describeNumber(o), o.State, o.PeriodFrom, o.PeriodTo)
		}
		if o.State != StateToVerify || source == "billrun" {
			res.existing = o
			return res, s.markInvoiced(ctx, tx, cl, from, to)
		}
		draft = o
	}
	var self int64
	if draft != nil {
		self = draft.ID
	}
	inv, err := s.generate(ctx, tx, cl, from, to, self)
	if err != nil {
		return res, err
	}
	inv.Source = source
	if source == "billrun" && inv.Empty() && inv.Total.IsZero() {
		res.empty = true
		return res, s.markInvoiced(ctx, tx, cl, from, to)
	}
	if draft != nil {
		inv.ID = draft.ID
		inv.Source = draft.Source
		res.regenerated = true
	}
	if err := storeInvoice(ctx, tx, inv); err != nil {
		return res, err
	}
	if err := s.markInvoiced(ctx, tx, cl, from, to); err != nil {
		return res, err
	}
	after, err := s.get(ctx, tx, Caller{}, inv.ID)
	if err != nil {
		return res, err
	}
	action := "create"
	var before *Invoice
	if draft != nil {
		action, before = "regenerate", draft
	}
	if err := s.audit(ctx, tx, c, action, "invoice", inv.ID, &cl.ResellerID, before, after); err != nil {
		return res, err
	}
	res.invoice = after
	return res, nil
}

// markInvoiced moves the client's last invoiced date (the last day an
// invoice covers) to the day before to, when that is later and the period
// [from, to) leaves no day before it uninvoiced: the next bill run starts
// after it. An invoice made by hand for a later period leaves the last
// invoiced date where it is, so that the bill run still makes the periods
// before it (it then meets that invoice and goes on after it).
func (s *Service) markInvoiced(ctx context.Context, tx pgx.Tx, cl *client, from, to Date) error {
	last := to.AddDays(-1)
	if !cl.LastInvoiced.IsZero() && !last.After(cl.LastInvoiced) {
		return nil
	}
	start := cl.LastInvoiced.AddDays(1)
	if cl.LastInvoiced.IsZero() {
		start = DateOf(cl.Created, cl.Loc)
	}
	if from.After(start) {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE clients SET last_invoiced_at = $2::date, updated_at = now() WHERE id = $1`, cl.ID, last.String()); err != nil {
		return fmt.Errorf("client %d: last invoiced date: %w", cl.ID, err)
	}
	cl.LastInvoiced = last
	return nil
}

// period is [from, to) of the client's days as instants.
func period(from, to Date, loc *time.Location) (report.Period, error) {
	p := report.Period{From: from.Start(loc), To: to.Start(loc), Loc: loc}
	if err := p.Validate(); err != nil {
		var pe *report.ParamError
		if errors.As(err, &pe) {
			field := pe.Param
			return p, fieldErr(field, "%s", pe.Msg)
		}
		return p, err
	}
	return p, nil
}

// generate computes the invoice of cl for [from, to) from what the
// databases hold now (self is the draft being regenerated, 0 for none):
//
//   - the lines: the client's rated calls of the period by code name
//     (report.Statement: xdrs FINAL, exactly);
//   - the charges: its charge transactions before the period's end that no
//     other invoice (void ones aside) bills;
//   - the corrections: for each earlier approved invoice, per code name,
//     what xdrs FINAL says of its period now minus what was billed for it;
//   - the totals, by the client's rounding, precision and tax profile.
func (s *Service) generate(ctx context.Context, q Querier, cl *client, from, to Date, self int64) (*Invoice, error) {
	p, err := period(from, to, cl.Loc)
	if err != nil {
		return nil, err
	}
	inv := &Invoice{ResellerID: cl.ResellerID, ClientID: cl.ID, Client: cl.Name, Currency: cl.Currency, PeriodFrom: from,
		PeriodTo: to, Timezone: cl.Timezone, State: StateToVerify, Rounding: cl.Rounding, Precision: cl.Precision, DueAt: to}
	if cl.Terms != nil {
		inv.DueAt = cl.Terms.Due(to)
	}
	if cl.Tax != nil {
		inv.TaxProfile, inv.TaxMode = cl.Tax.Name, cl.Tax.Mode
	}
	lines, err := s.reports.Statement(ctx, report.StatementQuery{Client: cl.ID, Period: p})
	if err != nil {
		return nil, fmt.Errorf("invoice lines of client %d: %w", cl.ID, err)
	}
	for _, l := range lines {
		inv.Lines = append(inv.Lines, Line{CodeName: l.CodeName, Calls: int64(l.Calls), BilledSeconds: int64(l.BilledSeconds), Amount: l.Amount})
	}
	if inv.Charges, err = unbilledCharges(ctx, q, cl.ID, p.To, self); err != nil {
		return nil, err
	}
	if inv.Corrections, err = s.corrections(ctx, q, cl.ID, from, self); err != nil {
		return nil, err
	}
	t := ComputeTotals(inv.amounts(), cl.Rounding, cl.Precision, cl.Tax)
	inv.Net, inv.Taxes, inv.Total = t.Net, t.Taxes, t.Total
	return inv, nil
}

// unbilledCharges are the client's charge transactions before end that no
// invoice but self (and void ones) bills: the period's, and earlier ones
// that reached no invoice (posted after their period was invoiced).
func unbilledCharges(ctx context.Context, q Querier, clientID int64, end time.Time, self int64) ([]Charge, error) {
	rows, err := q.Query(ctx, `SELECT t.id, coalesce(t.ref, ''), t.at, t.amount::text FROM transactions t
		WHERE t.client_id = $1 AND t.kind = 'charge' AND t.at < $2
		  AND NOT EXISTS (SELECT 1 FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
		                  WHERE l.transaction_id = t.id AND i.state <> 'void' AND i.id <> $3)
		ORDER BY t.at, t.id`, clientID, end, self)
	if err != nil {
		return nil, fmt.Errorf("charges of client %d: %w", clientID, err)
	}
	defer rows.Close()
	var out []Charge
	for rows.Next() {
		var c Charge
		var amount string
		if err := rows.Scan(&c.TransactionID, &c.Ref, &c.At, &amount); err != nil {
			return nil, fmt.Errorf("charges of client %d: %w", clientID, err)
		}
		if c.Amount, err = decimal.NewFromString(amount); err != nil {
			return nil, fmt.Errorf("charge %d amount %q: %w", c.TransactionID, amount, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// billedCode is what was billed for one code name of an invoice's period.
type billedCode struct {
	calls, secs int64
	amount      decimal.Decimal
}

// corrections compares every approved invoice of the client whose period
// ends by from with what xdrs FINAL says of its period now, per code name:
// a difference from what was billed for it (its frozen lines and the
// corrections on other invoices that are not void, self aside) is a
// correction line. An invoiced period is never changed; the difference of
// a rerating reaches the next invoice.
func (s *Service) corrections(ctx context.Context, q Querier, clientID int64, from Date, self int64) ([]Correction, error) {
	earlier, err := readInvoices(ctx, q, `i.client_id = $1 AND i.state IN ('to_send', 'sent', 'paid') AND i.period_to <= $2::date`,
		"i.period_from, i.id", clientID, from.String())
	if err != nil || len(earlier) == 0 {
		return nil, err
	}
	rows, err := q.Query(ctx, `SELECT x.id, l.code_name, sum(l.calls), sum(l.billed_seconds), sum(l.amount)::text
		FROM invoices x
		JOIN invoice_lines l ON (l.invoice_id = x.id AND l.kind = 'traffic') OR l.corrects_invoice_id = x.id
		JOIN invoices h ON h.id = l.invoice_id
		WHERE x.client_id = $1 AND x.state IN ('to_send', 'sent', 'paid') AND x.period_to <= $2::date
		  AND h.state <> 'void' AND h.id <> $3
		GROUP BY 1, 2`, clientID, from.String(), self)
	if err != nil {
		return nil, fmt.Errorf("billed amounts of client %d: %w", clientID, err)
	}
	billed := map[int64]map[string]*billedCode{}
	for rows.Next() {
		var id int64
		var name, amount string
		b := &billedCode{}
		if err := rows.Scan(&id, &name, &b.calls, &b.secs, &amount); err != nil {
			rows.Close()
			return nil, fmt.Errorf("billed amounts of client %d: %w", clientID, err)
		}
		if b.amount, err = decimal.NewFromString(amount); err != nil {
			rows.Close()
			return nil, fmt.Errorf("billed amount %q: %w", amount, err)
		}
		if billed[id] == nil {
			billed[id] = map[string]*billedCode{}
		}
		billed[id][name] = b
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("billed amounts of client %d: %w", clientID, err)
	}
	var out []Correction
	for _, x := range earlier {
		loc, err := time.LoadLocation(x.Timezone)
		if err != nil {
			return nil, fmt.Errorf("invoice %d timezone %q: %w", x.ID, x.Timezone, err)
		}
		p, err := period(x.PeriodFrom, x.PeriodTo, loc)
		if err != nil {
			return nil, err
		}
		now, err := s.reports.Statement(ctx, report.StatementQuery{Client: clientID, Period: p})
		if err != nil {
			return nil, fmt.Errorf("xDRs of invoice %d's period: %w", x.ID, err)
		}
		current := map[string]*billedCode{}
		for _, l := range now {
			current[l.CodeName] = &billedCode{calls: int64(l.Calls), secs: int64(l.BilledSeconds), amount: l.Amount}
		}
		names := map[string]bool{}
		for n := range current {
			names[n] = true
		}
		for n := range billed[x.ID] {
			names[n] = true
		}
		sorted := make([]string, 0, len(names))
		for n := range names {
			sorted = append(sorted, n)
		}
		sort.Strings(sorted)
		for _, n := range sorted {
			cur, was := current[n], billed[x.ID][n]
			if cur == nil {
				cur = &billedCode{}
			}
			if was == nil {
				was = &billedCode{}
			}
			if d := cur.amount.Sub(was.amount); !d.IsZero() {
				out = append(out, Correction{InvoiceID: x.ID, Number: x.Number, PeriodFrom: x.PeriodFrom, PeriodTo: x.PeriodTo,
					CodeName: n, Calls: cur.calls - was.calls, BilledSeconds: cur.secs - was.secs, Amount: d})
			}
		}
	}
	return out, nil
}
