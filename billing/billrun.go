package billing

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/report"
)

// BillRun is what a bill run did (or, dry, would do): the mismatched calls
// of the periods it invoices first (they are on no invoice until rerated),
// then the invoices, then the periods it left alone and why.
type BillRun struct {
	At         time.Time
	DryRun     bool
	Mismatches []PeriodMismatches
	Invoices   []*Invoice // made; in a dry run, as they would be (no id)
	Skipped    []Skip
	Errors     []ClientError
}

// PeriodMismatches are the mismatched calls of one client and period
// (client 0: calls matched to no client at all, over the run's window):
// per reason, the calls, their duration and examples.
type PeriodMismatches struct {
	ClientID   int64
	Client     string
	PeriodFrom Date
	PeriodTo   Date
	Timezone   string
	Reasons    []report.MismatchRow
}

// Skip is a closed period a bill run made no invoice for.
type Skip struct {
	ClientID   int64
	Client     string
	PeriodFrom Date
	PeriodTo   Date
	Reason     string // already_invoiced | nothing_to_bill
	InvoiceID  int64  // the invoice that covers it (already_invoiced)
}

// ClientError is a client a bill run could not invoice; the run went on
// with the others.
type ClientError struct {
	ClientID int64
	Client   string
	Err      string
}

// BillRun creates, for every client with autoinvoicing on and payment
// terms in c's scope, the invoice of each period of its terms that has
// closed by at in its timezone and starts after its last invoiced date
// (the first one after the day it was created when it has none), as
// drafts (to_verify). It never makes two invoices for one client and
// period, whatever retries or concurrent runs happen: each client's
// periods are invoiced in one transaction under the client's lock, and a
// period some invoice already covers is skipped. A period with nothing to
// bill gets no invoice. It moves each client's last invoiced date.
//
// A dry run runs the very same code in transactions it rolls back, so it
// lists exactly what the run would make at that moment. Both list first
// the mismatched calls of the periods invoiced, per client and reason
// (DOMAIN.md: unmatched statistics never show on an invoice), and the
// calls matched to no client over the whole window.
func (s *Service) BillRun(ctx context.Context, c Caller, at time.Time, dryRun bool) (*BillRun, error) {
	// A period closes when its last day has passed: a bill run "at" a time
	// still to come (a typo, a script's wrong clock) would invoice the
	// running period half-way and mark every empty one up to then
	// invoiced, so the calls that later fall in them reach no invoice.
	if now := time.Now(); at.After(now.Add(time.Minute)) {
		return nil, fieldErr("at", "%s is in the future (now is %s): a bill run closes only periods that have ended",
			at.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	run := &BillRun{At: at.UTC(), DryRun: dryRun}
	args := []any{}
	rows, err := s.pg.Query(ctx, `SELECT c.id FROM clients c
		WHERE c.autoinvoice AND c.payment_terms_id IS NOT NULL AND `+c.scopeCond("c.id", &args)+` ORDER BY c.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("bill run: clients: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("bill run: clients: %w", err)
	}
	var windowFrom, windowTo time.Time
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		periods, err := s.runClient(ctx, c, id, at, dryRun, run)
		if err != nil {
			var name string
			_ = s.pg.QueryRow(ctx, `SELECT name FROM clients WHERE id = $1`, id).Scan(&name)
			run.Errors = append(run.Errors, ClientError{ClientID: id, Client: name, Err: err.Error()})
			s.log.Error("bill run: client not invoiced", "client_id", id, "err", err)
			continue
		}
		for _, p := range periods {
			pm := p
			mm, err := s.reports.Mismatches(ctx, report.Scope{}, report.MismatchQuery{Period: pm.period,
				Filter: report.Filter{Clients: []string{strconv.FormatInt(id, 10)}}})
			if err != nil {
				return nil, fmt.Errorf("bill run: mismatches of client %d: %w", id, err)
			}
			if rows := origRows(mm.Rows); len(rows) > 0 {
				run.Mismatches = append(run.Mismatches, PeriodMismatches{ClientID: id, Client: pm.client, PeriodFrom: pm.from,
					PeriodTo: pm.to, Timezone: pm.period.Loc.String(), Reasons: rows})
			}
			if windowFrom.IsZero() || pm.period.From.Before(windowFrom) {
				windowFrom = pm.period.From
			}
			if pm.period.To.After(windowTo) {
				windowTo = pm.period.To
			}
		}
	}
	if !windowFrom.IsZero() {
		mm, err := s.reports.Mismatches(ctx, report.Scope{}, report.MismatchQuery{
			Period: report.Period{From: windowFrom, To: windowTo, Loc: time.UTC}, By: []string{"orig_client"}})
		if err != nil {
			return nil, fmt.Errorf("bill run: unmatched calls: %w", err)
		}
		var none []report.MismatchRow
		for _, r := range origRows(mm.Rows) {
			if r.Keys[0] == "0" {
				r.Keys = nil
				none = append(none, r)
			}
		}
		if len(none) > 0 && c.Scope.Client == 0 && c.Scope.Resellers == nil {
			run.Mismatches = append(run.Mismatches, PeriodMismatches{PeriodFrom: DateOf(windowFrom, time.UTC),
				PeriodTo: DateOf(windowTo.Add(-time.Nanosecond), time.UTC).AddDays(1), Timezone: "UTC", Reasons: none})
		}
	}
	return run, nil
}

// origRows keeps the orig reasons of a mismatch report: the calls that are
// on no invoice (term reasons are billed to the customer).
func origRows(rows []report.MismatchRow) []report.MismatchRow {
	var out []report.MismatchRow
	for _, r := range rows {
		if r.Side == "orig" {
			out = append(out, r)
		}
	}
	return out
}

// examined is a period a bill run looked at and did not find invoiced
// before: its mismatches are listed.
type examined struct {
	client   string
	from, to Date
	period   report.Period
}

// runClient invoices the closed periods of one client in one transaction,
// rolled back for a dry run.
func (s *Service) runClient(ctx context.Context, c Caller, id int64, at time.Time, dryRun bool, run *BillRun) ([]examined, error) {
	var out []examined
	var made []*Invoice
	var skipped []Skip
	release, err := s.slot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	err = pgx.BeginFunc(ctx, s.pg, func(tx pgx.Tx) error {
		cl, err := lockClient(ctx, tx, id)
		if err != nil {
			return err
		}
		if cl.Terms == nil || !cl.Autoinvoice {
			return nil // changed since the list was read
		}
		start := cl.LastInvoiced.AddDays(1)
		if cl.LastInvoiced.IsZero() {
			start = DateOf(cl.Created, cl.Loc)
		}
		for _, p := range cl.Terms.ClosedPeriods(start, at, cl.Loc, s.cfg.MaxPeriods) {
			res, err := s.createIn(ctx, tx, c, id, p[0], p[1], "billrun")
			var ce *ConflictError
			if errors.As(err, &ce) {
				// An invoice of other dates covers part of the period (made
				// by hand): nothing after it is invoiced either, so that the
				// last invoiced date never jumps a gap. An operator decides.
				run.Errors = append(run.Errors, ClientError{ClientID: id, Client: cl.Name, Err: ce.Msg})
				break
			}
			if err != nil {
				return err
			}
			switch {
			case res.existing != nil:
				skipped = append(skipped, Skip{ClientID: id, Client: cl.Name, PeriodFrom: p[0], PeriodTo: p[1],
					Reason: "already_invoiced", InvoiceID: res.existing.ID})
				continue
			case res.empty:
				skipped = append(skipped, Skip{ClientID: id, Client: cl.Name, PeriodFrom: p[0], PeriodTo: p[1], Reason: "nothing_to_bill"})
			default:
				made = append(made, res.invoice)
			}
			rp, err := period(p[0], p[1], cl.Loc)
			if err != nil {
				return err
			}
			out = append(out, examined{client: cl.Name, from: p[0], to: p[1], period: rp})
		}
		if dryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return nil, err
	}
	if dryRun {
		for _, inv := range made {
			inv.ID = 0 // made in a transaction that was rolled back
		}
	}
	run.Invoices = append(run.Invoices, made...)
	run.Skipped = append(run.Skipped, skipped...)
	return out, nil
}

// errDryRun rolls a dry run's transaction back.
var errDryRun = errors.New("dry run")

// Totals adds up the run's invoices per currency: count, net and total.
func (r *BillRun) Totals() []CurrencyTotal {
	m := map[string]*CurrencyTotal{}
	for _, inv := range r.Invoices {
		t := m[inv.Currency]
		if t == nil {
			t = &CurrencyTotal{Currency: inv.Currency}
			m[inv.Currency] = t
		}
		t.Invoices++
		t.Net = t.Net.Add(inv.Net)
		t.Total = t.Total.Add(inv.Total)
	}
	out := make([]CurrencyTotal, 0, len(m))
	for _, t := range m {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Currency < out[j].Currency })
	return out
}

// CurrencyTotal is the invoices of a run in one currency.
type CurrencyTotal struct {
	Currency   string
	Invoices   int
	Net, Total decimal.Decimal
}

// Summary is a one-line account of the run for people.
func (r *BillRun) Summary() string {
	verb := "created"
	if r.DryRun {
		verb = "would create"
	}
	var parts []string
	for _, t := range r.Totals() {
		parts = append(parts, fmt.Sprintf("%d %s (total %s)", t.Invoices, t.Currency, money(t.Total, Precision(t.Currency))))
	}
	s := fmt.Sprintf("bill run at %s %s %d invoice(s)", r.At.Format(time.RFC3339), verb, len(r.Invoices))
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	return s + fmt.Sprintf("; %d period(s) skipped, %d client(s) failed", len(r.Skipped), len(r.Errors))
}
