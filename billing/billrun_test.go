package billing_test

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tarifa/tarifa/billing"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// autoinvoice gives clients monthly terms (day 1, due in 15 days), turns
// autoinvoicing on and sets their last invoiced date.
func (f *fixture) autoinvoice(last string, clients ...int64) {
	f.t.Helper()
	f.exec(`INSERT INTO payment_terms (name, period, day, due_days) VALUES ('monthly-15', 'monthly', 1, 15) ON CONFLICT DO NOTHING`)
	for _, c := range clients {
		f.exec(`UPDATE clients SET autoinvoice = true, last_invoiced_at = $2,
			payment_terms_id = (SELECT id FROM payment_terms WHERE name = 'monthly-15') WHERE id = $1`, c, last)
	}
}

// invoices lists client:period_from:state of every invoice, sorted.
func (f *fixture) invoices() []string {
	f.t.Helper()
	rows, err := f.db.PG.Query(f.ctx, `SELECT client_id, period_from::text, period_to::text, state FROM invoices ORDER BY 1, 2`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c int64
		var from, to, state string
		if err := rows.Scan(&c, &from, &to, &state); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d:%s/%s:%s", c, from, to, state))
	}
	return out
}

// TestBillRunIdempotent: a bill run makes each closed period's invoice
// once, whether it runs twice or several run at once; a client east of UTC
// gets its March invoice when its March has ended, and never a second one
// when UTC's March ends (Lago's double invoices).
func TestBillRunIdempotent(t *testing.T) {
	f := newFixture(t)
	f.rate(dstMarch...)
	f.rate(
		call{id: "t-mar", client: tokyo, dst: "81312345678", end: "2024-03-31T14:59:59Z", seconds: 90}, // 23:59:59 in Tokyo
		call{id: "t-apr", client: tokyo, dst: "81312345678", end: "2024-03-31T15:00:00Z", seconds: 90}, // April 1 in Tokyo
		call{id: "p-mar", client: plain, dst: "12125550001", end: "2024-03-31T23:59:59Z", seconds: 45},
	)
	f.autoinvoice("2024-02-29", london, newYork, tokyo, plain)

	// 16:00 UTC on March 31: only Tokyo's March is over.
	run, err := f.svc.BillRun(f.ctx, billing.Caller{}, at(t, "2024-03-31T16:00:00Z"), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.invoices(), " "); got != "3:2024-03-01/2024-04-01:to_verify" {
		t.Fatalf("after the run at 16:00Z: %s", got)
	}
	if len(run.Invoices) != 1 || run.Invoices[0].Lines[0].Calls != 1 {
		t.Fatalf("run: %+v", run.Invoices)
	}
	// At 05:00 UTC on April 1 every March has ended: three more, none twice,
	// and the runs racing each other change nothing.
	var wg sync.WaitGroup
	runs := make([]*billing.BillRun, 6)
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := f.svc.BillRun(f.ctx, billing.Caller{}, at(t, "2024-04-01T05:00:00Z"), false)
			if err != nil {
				t.Error(err)
				return
			}
			runs[i] = r
		}()
	}
	wg.Wait()
	want := "1:2024-03-01/2024-04-01:to_verify 2:2024-03-01/2024-04-01:to_verify 3:2024-03-01/2024-04-01:to_verify 4:2024-03-01/2024-04-01:to_verify"
	if got := strings.Join(f.invoices(), " "); got != want {
		t.Fatalf("after 6 concurrent runs: %s", got)
	}
	made := 0
	for _, r := range runs {
		if r != nil {
			made += len(r.Invoices)
		}
	}
	if made != 3 {
		t.Fatalf("the concurrent runs made %d invoices, want 3", made)
	}
	// Run again, later: nothing new, and the last invoiced dates moved.
	again, err := f.svc.BillRun(f.ctx, billing.Caller{}, at(t, "2024-04-20T00:00:00Z"), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Invoices) != 0 || strings.Join(f.invoices(), " ") != want {
		t.Fatalf("a later run: %+v; %v", again.Invoices, f.invoices())
	}
	var last []string
	rows, err := f.db.PG.Query(f.ctx, `SELECT last_invoiced_at::text FROM clients WHERE id <= 4 ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		last = append(last, s)
	}
	rows.Close()
	if strings.Join(last, " ") != "2024-03-31 2024-03-31 2024-03-31 2024-03-31" {
		t.Fatalf("last invoiced %v", last)
	}
	// A voided draft is made again by the next run, under a new id.
	tok, _, err := f.svc.List(f.ctx, billing.Caller{}, billing.ListQuery{Client: "Tokyo"})
	if err != nil || len(tok) != 1 {
		t.Fatal(tok, err)
	}
	if _, err := f.svc.Void(f.ctx, billing.Caller{}, tok[0].ID); err != nil {
		t.Fatal(err)
	}
	redo, err := f.svc.BillRun(f.ctx, billing.Caller{}, at(t, "2024-04-20T00:00:00Z"), false)
	if err != nil || len(redo.Invoices) != 1 || redo.Invoices[0].Client != "Tokyo" || redo.Invoices[0].ID == tok[0].ID {
		t.Fatalf("the run after a void: %+v %v", redo, err)
	}
	// The due date is 15 days after the period's end, in the client's days.
	inv, _, err := f.svc.List(f.ctx, billing.Caller{}, billing.ListQuery{Client: "Tokyo", State: billing.StateToVerify})
	if err != nil || len(inv) != 1 || inv[0].DueAt.String() != "2024-04-16" || inv[0].Source != "billrun" {
		t.Fatalf("Tokyo: %+v %v", inv, err)
	}
}

// TestBillRunDryRunIsTheRun: the dry run lists exactly the invoices the
// run then makes (same lines and totals, the period's charges once even
// across two periods), changes nothing, and lists first the mismatched
// calls of the periods that will not be on them.
func TestBillRunDryRunIsTheRun(t *testing.T) {
	f := newFixture(t)
	f.rate(dstMarch...)
	f.rate(call{id: "l-feb-2", client: london, dst: "447700900001", end: "2024-02-10T10:00:00Z", seconds: 100},
		call{id: "stranger", client: 99, dst: "447700900001", end: "2024-03-10T10:00:00Z", seconds: 100})
	f.exec(`INSERT INTO transactions (client_id, kind, amount, currency, ref, at) VALUES
		(1, 'charge', 25, 'USD', 'port-fee-02', '2024-02-05T00:00:00Z'),
		(1, 'charge', 25, 'USD', 'port-fee-03', '2024-03-05T00:00:00Z')`)
	f.autoinvoice("2024-01-31", london)
	when := at(t, "2024-04-02T00:00:00Z")
	dry, err := f.svc.BillRun(f.ctx, billing.Caller{}, when, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.invoices(); len(got) != 0 {
		t.Fatalf("the dry run made invoices: %v", got)
	}
	var last *time.Time
	if err := f.db.PG.QueryRow(f.ctx, `SELECT last_invoiced_at FROM clients WHERE id = 1`).Scan(&last); err != nil || last == nil || last.Format(time.DateOnly) != "2024-01-31" {
		t.Fatalf("the dry run moved the last invoiced date: %v %v", last, err)
	}
	run, err := f.svc.BillRun(f.ctx, billing.Caller{}, when, false)
	if err != nil {
		t.Fatal(err)
	}
	describe := func(r *billing.BillRun) string {
		var out []string
		for _, inv := range r.Invoices {
			var charges []string
			for _, c := range inv.Charges {
				charges = append(charges, c.Ref)
			}
			out = append(out, fmt.Sprintf("%s/%s lines=%d sum=%s charges=%v net=%s total=%s", inv.PeriodFrom, inv.PeriodTo,
				len(inv.Lines), sum(inv), charges, inv.Net, inv.Total))
		}
		return strings.Join(out, "\n")
	}
	if describe(dry) != describe(run) || len(run.Invoices) != 2 {
		t.Fatalf("dry run:\n%s\nrun:\n%s", describe(dry), describe(run))
	}
	if !strings.Contains(describe(run), "2024-02-01/2024-03-01 lines=1") || !strings.Contains(describe(run), "charges=[port-fee-02]") ||
		!strings.Contains(describe(run), "charges=[port-fee-03]") {
		t.Fatalf("run:\n%s", describe(run))
	}
	for _, inv := range dry.Invoices {
		if inv.ID != 0 {
			t.Errorf("a dry-run invoice with id %d", inv.ID)
		}
	}
	// The mismatches: London's no_rate call of March, then the stranger's
	// call that matched no client.
	var mm []string
	for _, m := range dry.Mismatches {
		for _, r := range m.Reasons {
			mm = append(mm, fmt.Sprintf("%d %s/%s %s %d %v", m.ClientID, m.PeriodFrom, m.PeriodTo, r.Reason, r.Calls, r.Examples))
		}
	}
	sort.Strings(mm)
	want := "0 2024-02-01/2024-04-01 unknown_account 1 [stranger]|1 2024-03-01/2024-04-01 unknown_destination 1 [l-mismatch]"
	if strings.Join(mm, "|") != want {
		t.Fatalf("dry-run mismatches:\n%s\nwant\n%s", strings.Join(mm, "|"), want)
	}
	if len(run.Mismatches) != len(dry.Mismatches) {
		t.Fatalf("run mismatches %v", run.Mismatches)
	}
}

// TestBillRunRefusesTheFuture: a bill run "at" next year (a typo, a
// script's wrong clock) would invoice the running month half-way and mark
// the months up to then invoiced; it is refused, naming the field, and
// nothing moves.
func TestBillRunRefusesTheFuture(t *testing.T) {
	f := newFixture(t)
	f.rate(dstMarch...)
	f.autoinvoice("2024-01-31", london)
	for _, dry := range []bool{true, false} {
		_, err := f.svc.BillRun(f.ctx, billing.Caller{}, time.Now().AddDate(1, 0, 0), dry)
		var fe *billing.FieldError
		if !errors.As(err, &fe) || fe.Field != "at" || !strings.Contains(fe.Msg, "in the future") {
			t.Fatalf("bill run at next year (dry run %v): %v", dry, err)
		}
	}
	if got := f.invoices(); len(got) != 0 {
		t.Fatalf("invoices made: %v", got)
	}
	var last *time.Time
	if err := f.db.PG.QueryRow(f.ctx, `SELECT last_invoiced_at FROM clients WHERE id = 1`).Scan(&last); err != nil || last == nil || last.Format(time.DateOnly) != "2024-01-31" {
		t.Fatalf("last invoiced date: %v %v", last, err)
	}
	// Now is a fine time to run.
	if _, err := f.svc.BillRun(f.ctx, billing.Caller{}, time.Now(), true); err != nil {
		t.Fatal(err)
	}
}

// TestBillRunFillsTheGapBeforeAHandMadeInvoice: an invoice made by hand for
// a later period (April, while March is not invoiced yet) does not move
// the last invoiced date past the gap: the bill run still makes March's
// invoice, then goes on after April.
func TestBillRunFillsTheGapBeforeAHandMadeInvoice(t *testing.T) {
	f := newFixture(t)
	f.rate(dstMarch...)
	f.rate(call{id: "l-apr", client: london, dst: "447700900001", end: "2024-04-10T10:00:00Z", seconds: 100},
		call{id: "l-may", client: london, dst: "447700900001", end: "2024-05-10T10:00:00Z", seconds: 100})
	f.autoinvoice("2024-02-29", london)
	f.create(london, "2024-04-01", "2024-05-01")
	run, err := f.svc.BillRun(f.ctx, billing.Caller{}, at(t, "2024-06-02T00:00:00Z"), false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1:2024-03-01/2024-04-01:to_verify", "1:2024-04-01/2024-05-01:to_verify", "1:2024-05-01/2024-06-01:to_verify"}
	if got := f.invoices(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("invoices %v (run errors %v); want %v", got, run.Errors, want)
	}
}
