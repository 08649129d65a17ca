package billing_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/billing"
	"github.com/tarifa/tarifa/rater"
)

// dstMarch is traffic of a London and a New York client around the edges
// of March 2024 in their timezones: London's clocks go forward on March
// 31 (April starts at 23:00 UTC), New York's on March 10 (April starts at
// 04:00 UTC, March at 05:00 UTC). A period read in UTC bills the wrong
// calls on both ends.
var dstMarch = []call{
	{id: "l-feb", client: london, dst: "447700900001", end: "2024-02-29T23:59:59Z", seconds: 61},
	{id: "l-first", client: london, dst: "447700900002", end: "2024-03-01T00:00:00Z", seconds: 62},
	{id: "l-pre-dst", client: london, dst: "442071230003", end: "2024-03-31T00:59:59Z", seconds: 63},
	{id: "l-post-dst", client: london, dst: "442071230004", end: "2024-03-31T01:00:00Z", seconds: 64},
	{id: "l-last", client: london, dst: "447700900005", end: "2024-03-31T22:59:59Z", seconds: 65},
	{id: "l-april", client: london, dst: "447700900006", end: "2024-03-31T23:00:00Z", seconds: 66},
	{id: "l-unanswered", client: london, dst: "447700900007", end: "2024-03-15T12:00:00Z", seconds: 0},
	{id: "l-mismatch", client: london, dst: "999123", end: "2024-03-15T12:00:00Z", seconds: 30},
	{id: "l-vendor", client: london, dst: "447700900008", end: "2024-03-20T12:00:00Z", seconds: 301, vendor: true},
	{id: "n-feb", client: newYork, dst: "12125550001", end: "2024-03-01T04:59:59Z", seconds: 71},
	{id: "n-first", client: newYork, dst: "12125550002", end: "2024-03-01T05:00:00Z", seconds: 72},
	{id: "n-pre-dst", client: newYork, dst: "12125550003", end: "2024-03-10T06:59:59Z", seconds: 73},
	{id: "n-post-dst", client: newYork, dst: "447700900009", end: "2024-03-10T07:00:00Z", seconds: 74},
	{id: "n-last", client: newYork, dst: "12125550005", end: "2024-04-01T03:59:59Z", seconds: 75},
	{id: "n-april", client: newYork, dst: "12125550006", end: "2024-04-01T04:00:00Z", seconds: 76},
}

// TestDSTMonthLinesEqualFinal: a March invoice of a London and of a New
// York client bills exactly the calls of March in their own days, and its
// lines sum the rated orig costs of xdrs FINAL for that client and period
// to the last decimal (invariant 7).
func TestDSTMonthLinesEqualFinal(t *testing.T) {
	f := newFixture(t)
	f.rate(dstMarch...)
	for _, tc := range []struct {
		client int64
		tz     string
		in     []string // the calls of March
	}{
		{london, "Europe/London", []string{"l-first", "l-pre-dst", "l-post-dst", "l-last", "l-unanswered", "l-vendor"}},
		{newYork, "America/New_York", []string{"n-first", "n-pre-dst", "n-post-dst", "n-last"}},
	} {
		inv := f.create(tc.client, "2024-03-01", "2024-04-01")
		var want decimal.Decimal
		for _, id := range tc.in {
			want = want.Add(sinksDecimal(f.rated[id].Rating.Orig.CostMicro))
		}
		got := sum(inv)
		if !got.Equal(want) {
			t.Errorf("client %d: lines sum %s, the March calls cost %s", tc.client, got, want)
		}
		if final := f.finalSum(tc.client, "2024-03-01", "2024-04-01", tc.tz); !got.Equal(final) {
			t.Errorf("client %d: lines sum %s, xdrs FINAL %s", tc.client, got, final)
		}
		var calls int64
		for _, l := range inv.Lines {
			calls += l.Calls
		}
		if calls != int64(len(tc.in)) {
			t.Errorf("client %d: %d calls on the invoice, want %d (%v)", tc.client, calls, len(tc.in), inv.Lines)
		}
		if inv.Timezone != tc.tz || inv.PeriodFrom.String() != "2024-03-01" || inv.PeriodTo.String() != "2024-04-01" || inv.State != billing.StateToVerify || inv.Number != "" {
			t.Errorf("client %d: invoice %+v", tc.client, inv)
		}
		var rounded decimal.Decimal // round_then_sum, the default
		for _, l := range inv.Lines {
			rounded = rounded.Add(billing.Round(l.Amount, 2))
		}
		if !inv.Net.Equal(rounded) || !inv.Total.Equal(rounded) {
			t.Errorf("client %d: net %s total %s of lines %v", tc.client, inv.Net, inv.Total, inv.Lines)
		}
	}
	// The London invoice names its destinations by code name.
	inv, _, err := f.svc.List(f.ctx, billing.Caller{}, billing.ListQuery{Client: "London"})
	if err != nil || len(inv) != 1 {
		t.Fatalf("list: %v %v", inv, err)
	}
	var names []string
	for _, l := range inv[0].Lines {
		names = append(names, l.CodeName)
	}
	if strings.Join(names, ",") != "UK Fixed,UK Mobile" {
		t.Errorf("London lines %v", names)
	}
}

func sinksDecimal(micro int64) decimal.Decimal { return decimal.New(micro, -6) }

// TestApproveAndVoidMoveFixedOnce: approving lowers the fixed balance by
// the total once, however many approvals race; voiding gives it back once
// and keeps the number; the live balance moved with the calls only.
func TestApproveAndVoidMoveFixedOnce(t *testing.T) {
	f := newFixture(t)
	f.rate(dstMarch...)
	f.exec(`INSERT INTO transactions (client_id, kind, amount, currency, ref, at) VALUES (1, 'payment', 100, 'USD', 'wire-1', '2024-03-02')`)
	inv := f.create(london, "2024-03-01", "2024-04-01")
	if got := f.fixed(london); !got.Equal(dec("100")) {
		t.Fatalf("fixed %s before approval", got)
	}
	race := func(fn func(int64) (*billing.Invoice, error)) (ok int, conflicts int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := fn(inv.ID)
				mu.Lock()
				defer mu.Unlock()
				var ce *billing.ConflictError
				switch {
				case err == nil:
					ok++
				case errors.As(err, &ce):
					conflicts++
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		return ok, conflicts
	}
	ok, conflicts := race(func(id int64) (*billing.Invoice, error) { return f.svc.Approve(f.ctx, billing.Caller{}, id) })
	if ok != 1 || conflicts != 7 {
		t.Fatalf("8 concurrent approvals: %d succeeded, %d conflicts", ok, conflicts)
	}
	approved, err := f.svc.Get(f.ctx, billing.Caller{}, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if approved.State != billing.StateToSend || approved.Number != "1" || approved.IssuedAt == nil {
		t.Fatalf("approved %+v", approved)
	}
	if got, want := f.fixed(london), dec("100").Sub(approved.Total); !got.Equal(want) {
		t.Fatalf("fixed %s after approval, want %s", got, want)
	}
	ok, conflicts = race(func(id int64) (*billing.Invoice, error) { return f.svc.Void(f.ctx, billing.Caller{}, id) })
	if ok != 1 || conflicts != 7 {
		t.Fatalf("8 concurrent voids: %d succeeded, %d conflicts", ok, conflicts)
	}
	if got := f.fixed(london); !got.Equal(dec("100")) {
		t.Fatalf("fixed %s after void, want 100", got)
	}
	void, err := f.svc.Get(f.ctx, billing.Caller{}, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if void.State != billing.StateVoid || void.Number != "1" {
		t.Fatalf("void %+v", void)
	}
	if _, err := f.svc.Approve(f.ctx, billing.Caller{}, inv.ID); err == nil {
		t.Fatal("a void invoice approved again")
	}
	// A void period can be invoiced again, under the next number.
	again := f.create(london, "2024-03-01", "2024-04-01")
	if again.ID == inv.ID || !sum(again).Equal(sum(inv)) {
		t.Fatalf("re-issued %+v", again)
	}
	if n := f.approve(again.ID).Number; n != "2" {
		t.Fatalf("re-issued number %s", n)
	}
	var live string
	if err := f.db.PG.QueryRow(f.ctx, `SELECT live::text FROM client_balances WHERE client_id = 1`).Scan(&live); err != nil {
		t.Fatal(err)
	}
	var costs decimal.Decimal
	for _, x := range f.rated {
		if x.Rating.Status == "rated" && x.Rating.Orig.ClientID == london {
			costs = costs.Add(sinksDecimal(x.Rating.Orig.CostMicro))
		}
	}
	if !dec(live).Equal(dec("100").Sub(costs)) {
		t.Errorf("live %s, want 100 - %s", live, costs)
	}
}

// TestNumberingGaplessUnderConcurrentApprovals: approvals racing over one
// reseller's drafts, and failing ones among them, take the numbers 1..n
// each once; a year in the template never restarts them; "Last No" may be
// raised, never lowered below an issued number.
func TestNumberingGaplessUnderConcurrentApprovals(t *testing.T) {
	f := newFixture(t)
	f.exec(`UPDATE resellers SET invoice_number_template = 'ACME-{yyyy}-{n:5}'`)
	var calls []call
	var drafts []int64
	for c := int64(1); c <= 4; c++ {
		for m := 1; m <= 6; m++ {
			calls = append(calls, call{id: fmt.Sprintf("c%d-m%d", c, m), client: c, dst: "447700900123",
				end: fmt.Sprintf("2023-%02d-15T12:00:00Z", m), seconds: 60 + m})
		}
	}
	f.rate(calls...)
	for c := int64(1); c <= 4; c++ {
		for m := 1; m <= 6; m++ {
			drafts = append(drafts, f.create(c, fmt.Sprintf("2023-%02d-01", m), fmt.Sprintf("2023-%02d-01", m+1)).ID)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	numbers := map[string]int64{}
	for _, id := range drafts {
		for _, attempt := range []int{0, 1} { // each draft approved twice at once: one wins
			wg.Add(1)
			go func() {
				defer wg.Done()
				inv, err := f.svc.Approve(f.ctx, billing.Caller{}, id)
				var ce *billing.ConflictError
				if errors.As(err, &ce) {
					return
				}
				if err != nil {
					t.Error(attempt, err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if other, dup := numbers[inv.Number]; dup {
					t.Errorf("number %s given to invoices %d and %d", inv.Number, other, id)
				}
				numbers[inv.Number] = id
			}()
		}
	}
	wg.Wait()
	if len(numbers) != len(drafts) {
		t.Fatalf("%d numbers for %d invoices", len(numbers), len(drafts))
	}
	rows, err := f.db.PG.Query(f.ctx, `SELECT number_seq, number, to_char(issued_at, 'YYYY') FROM invoices ORDER BY number_seq`)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(0)
	for rows.Next() {
		var seq int64
		var number, year string
		if err := rows.Scan(&seq, &number, &year); err != nil {
			t.Fatal(err)
		}
		n++
		if seq != n || number != fmt.Sprintf("ACME-%s-%05d", year, n) {
			t.Errorf("invoice %d: number_seq %d, number %s", n, seq, number)
		}
	}
	rows.Close()
	if n != int64(len(drafts)) {
		t.Fatalf("%d numbered invoices", n)
	}
	// "Last No" cannot go back over issued numbers; it can go forward.
	if _, err := f.db.PG.Exec(f.ctx, `UPDATE resellers SET invoice_last_number = 3`); err == nil || !strings.Contains(err.Error(), "never reused") {
		t.Fatalf("lowering Last No: %v", err)
	}
	f.exec(`UPDATE resellers SET invoice_last_number = 1000, invoice_number_template = '{yyyy}/{n}'`)
	f.rate(call{id: "late", client: plain, dst: "447700900123", end: "2023-08-15T12:00:00Z", seconds: 60})
	inv := f.approve(f.create(plain, "2023-08-01", "2023-09-01").ID)
	if !strings.HasSuffix(inv.Number, "/1001") {
		t.Fatalf("after Last No 1000: %s", inv.Number)
	}
}

// TestRerateAfterApproval: a rerating of an invoiced period changes the
// live balance and never the approved invoice; the difference is a
// correction line of the client's next invoice, once.
func TestRerateAfterApproval(t *testing.T) {
	f := newFixture(t)
	f.rate(dstMarch...)
	f.rate(call{id: "l-apr-1", client: london, dst: "442071239999", end: "2024-04-10T10:00:00Z", seconds: 120})
	march := f.approve(f.create(london, "2024-03-01", "2024-04-01").ID)
	// Rerate: UK Mobile calls of March cost 0.5 more each, one UK Fixed
	// call 0.000001 less.
	plus := func(micro int64) func(x *rater.XDR) {
		return func(x *rater.XDR) { x.Rating.Orig.CostMicro += micro }
	}
	f.rerate(plus(500000), "l-first", "l-last")
	f.rerate(plus(-1), "l-post-dst")

	again, err := f.svc.Get(f.ctx, billing.Caller{}, march.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !sum(again).Equal(sum(march)) || !again.Total.Equal(march.Total) || len(again.Lines) != len(march.Lines) || again.State != billing.StateToSend {
		t.Fatalf("the approved invoice changed: %+v, was %+v", again, march)
	}
	if final := f.finalSum(london, "2024-03-01", "2024-04-01", "Europe/London"); !final.Equal(sum(march).Add(dec("0.999999"))) {
		t.Fatalf("xdrs FINAL of March %s, invoiced %s", final, sum(march))
	}
	april := f.create(london, "2024-04-01", "2024-05-01")
	got := map[string]string{}
	for _, c := range april.Corrections {
		if c.InvoiceID != march.ID || c.Number != march.Number || c.PeriodFrom.String() != "2024-03-01" {
			t.Errorf("correction %+v", c)
		}
		got[c.CodeName] = c.Amount.String()
	}
	if len(got) != 2 || got["UK Mobile"] != "1" || got["UK Fixed"] != "-0.000001" {
		t.Fatalf("April corrections %v", got)
	}
	var amounts []decimal.Decimal
	for _, l := range april.Lines {
		amounts = append(amounts, l.Amount)
	}
	for _, c := range april.Corrections {
		amounts = append(amounts, c.Amount)
	}
	if want := billing.ComputeTotals(amounts, billing.RoundThenSum, 2, nil); !april.Net.Equal(want.Net) || !april.Total.Equal(want.Total) {
		t.Errorf("April net %s total %s, want %s %s", april.Net, april.Total, want.Net, want.Total)
	}
	// Regenerating the April draft keeps the corrections once.
	april = f.create(london, "2024-04-01", "2024-05-01")
	if len(april.Corrections) != 2 {
		t.Fatalf("regenerated April corrections %v", april.Corrections)
	}
	f.approve(april.ID)
	// Billed now: the May invoice has no correction of March...
	may := f.create(london, "2024-05-01", "2024-06-01")
	if len(may.Corrections) != 0 {
		t.Fatalf("May corrections %v", may.Corrections)
	}
	// ...until another rerating, which reaches it alone.
	f.rerate(plus(250000), "l-last")
	may = f.create(london, "2024-05-01", "2024-06-01")
	if len(may.Corrections) != 1 || may.Corrections[0].Amount.String() != "0.25" || may.Corrections[0].CodeName != "UK Mobile" {
		t.Fatalf("May corrections %+v", may.Corrections)
	}
	// The March invoice cannot be voided while April corrects it.
	if _, err := f.svc.Void(f.ctx, billing.Caller{}, march.ID); err == nil || !strings.Contains(err.Error(), "void invoice") {
		t.Fatalf("void of a corrected invoice: %v", err)
	}
}

// TestWorkedExampleOnAnInvoice: DOMAIN.md's worked example through a real
// invoice (its four lines are charges of the period) under both settings
// of the client.
func TestWorkedExampleOnAnInvoice(t *testing.T) {
	f := newFixture(t)
	f.exec(`INSERT INTO tax_profiles (name, mode, taxes) VALUES
		('vat-total', 'percent_of_total', '[{"name": "VAT", "percent": "21"}]'),
		('vat-items', 'sum_of_items', '[{"name": "VAT", "percent": "21"}]')`)
	f.exec(`INSERT INTO transactions (client_id, kind, amount, currency, ref, at) VALUES
		(4, 'charge', 0.0050, 'USD', 'a', '2024-03-02'), (4, 'charge', 7.1144, 'USD', 'b', '2024-03-03'),
		(4, 'charge', 5.1144, 'USD', 'c', '2024-03-04'), (4, 'charge', 3.1144, 'USD', 'd', '2024-03-05')`)
	check := func(rounding, profile, net, tax, total string) {
		t.Helper()
		f.exec(`UPDATE clients SET invoice_rounding = $1, tax_profile_id = (SELECT id FROM tax_profiles WHERE name = $2) WHERE id = 4`, rounding, profile)
		inv := f.create(plain, "2024-03-01", "2024-04-01") // regenerates the draft with the new settings
		if len(inv.Charges) != 4 || len(inv.Taxes) != 1 {
			t.Fatalf("%+v", inv)
		}
		got := fmt.Sprintf("%s %s %s", inv.Net.StringFixed(2), inv.Taxes[0].Amount.StringFixed(2), inv.Total.StringFixed(2))
		if want := net + " " + tax + " " + total; got != want || inv.Rounding != rounding || inv.TaxProfile != profile {
			t.Errorf("%s + %s: %s, want %s", rounding, profile, got, want)
		}
	}
	check(billing.RoundThenSum, "vat-total", "15.34", "3.22", "18.56")
	check(billing.SumThenRound, "vat-items", "15.35", "3.22", "18.57")
	// Approved, the figures are frozen: a change of settings is not applied.
	inv, _, err := f.svc.List(f.ctx, billing.Caller{}, billing.ListQuery{Client: "Plain"})
	if err != nil || len(inv) != 1 {
		t.Fatal(inv, err)
	}
	approved := f.approve(inv[0].ID)
	f.exec(`UPDATE clients SET invoice_rounding = 'round_then_sum' WHERE id = 4`)
	if _, err := f.svc.Create(f.ctx, billing.Caller{}, "Plain", day(t, "2024-03-01"), day(t, "2024-04-01")); err == nil {
		t.Fatal("an approved period created again")
	}
	if again, _ := f.svc.Get(f.ctx, billing.Caller{}, approved.ID); again.Total.StringFixed(2) != "18.57" {
		t.Fatalf("approved total %s", again.Total)
	}
	// The database refuses to change an approved invoice's figures or lines.
	if _, err := f.db.PG.Exec(f.ctx, `UPDATE invoices SET total = 1 WHERE id = $1`, approved.ID); err == nil || !strings.Contains(err.Error(), "frozen") {
		t.Fatalf("changing a frozen total: %v", err)
	}
	if _, err := f.db.PG.Exec(f.ctx, `DELETE FROM invoice_lines WHERE invoice_id = $1`, approved.ID); err == nil || !strings.Contains(err.Error(), "frozen") {
		t.Fatalf("deleting frozen lines: %v", err)
	}
	if got := f.fixed(plain); got.String() != "-18.57" {
		t.Fatalf("fixed %s: the charges reach it through the invoice only", got)
	}
}

// TestChargesAndOverlaps: a charge is billed once, a late one by the next
// invoice; a period overlapping another invoice is refused.
func TestChargesAndOverlaps(t *testing.T) {
	f := newFixture(t)
	f.rate(dstMarch...)
	f.exec(`INSERT INTO transactions (client_id, kind, amount, currency, ref, at) VALUES (1, 'charge', 25, 'USD', 'port-fee-03', '2024-03-05')`)
	march := f.approve(f.create(london, "2024-03-01", "2024-04-01").ID)
	want := billing.ComputeTotals([]decimal.Decimal{march.Lines[0].Amount, march.Lines[1].Amount, dec("25")}, billing.RoundThenSum, 2, nil)
	if len(march.Charges) != 1 || march.Charges[0].Ref != "port-fee-03" || !march.Total.Equal(want.Total) || len(march.Lines) != 2 {
		t.Fatalf("March %+v", march)
	}
	// posted in April, dated in March: March is issued, so April bills it
	f.exec(`INSERT INTO transactions (client_id, kind, amount, currency, ref, at) VALUES (1, 'charge', 10, 'USD', 'late-fee-03', '2024-03-20')`)
	april := f.create(london, "2024-04-01", "2024-05-01")
	if len(april.Charges) != 1 || april.Charges[0].Ref != "late-fee-03" {
		t.Fatalf("April charges %+v", april.Charges)
	}
	for _, p := range [][2]string{{"2024-03-15", "2024-04-15"}, {"2024-02-01", "2024-03-02"}, {"2024-04-10", "2024-04-20"}} {
		_, err := f.svc.Create(f.ctx, billing.Caller{}, "London", day(t, p[0]), day(t, p[1]))
		var ce *billing.ConflictError
		if !errors.As(err, &ce) {
			t.Errorf("%v overlapping: %v", p, err)
		}
	}
	// Voiding the April draft frees its charge for the next invoice.
	if _, err := f.svc.Void(f.ctx, billing.Caller{}, april.ID); err != nil {
		t.Fatal(err)
	}
	if again := f.create(london, "2024-04-01", "2024-05-01"); len(again.Charges) != 1 || again.ID == april.ID {
		t.Fatalf("April again %+v", again)
	}
	_, err := f.svc.Create(f.ctx, billing.Caller{}, "London", day(t, "2024-04-01"), day(t, "2024-04-01"))
	var fe *billing.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("an empty period: %v", err)
	}
	if _, err := f.svc.Create(f.ctx, billing.Caller{}, "Nobody", day(t, "2024-04-01"), day(t, "2024-05-01")); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("an unknown client: %v", err)
	}
}
