package report_test

import (
	"context"
	"testing"

	"github.com/tarifa/tarifa/report"
)

// TestClientSummaryOneRowPerGroup: a client's summary shows no vendor side,
// so calls that went to vendors of two currencies (Beta's: Vendor EU and
// calls without a vendor) are one row per group and currency, and one
// total, not two rows the client cannot tell apart.
func TestClientSummaryOneRowPerGroup(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cat, err := report.LoadCatalog(ctx, f.db.PG)
	if err != nil {
		t.Fatal(err)
	}
	beta, err := cat.Client("Beta")
	if err != nil {
		t.Fatal(err)
	}
	march := period(t, "2024-03-01", "2024-04-01", "UTC")
	all, err := f.reports.Summary(ctx, report.Scope{}, report.SummaryQuery{Period: march, By: []string{"orig_client"},
		Filter: report.Filter{Clients: []string{"Beta"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Groups) != 2 {
		t.Fatalf("the operator's summary of Beta has %d rows, want 2 (one per vendor currency)", len(all.Groups))
	}
	own, err := f.reports.Summary(ctx, report.Scope{Client: beta.ID}, report.SummaryQuery{Period: march, By: []string{"orig_client"}})
	if err != nil {
		t.Fatal(err)
	}
	tab := own.Table()
	if len(tab.Rows) != 1 || len(tab.CurrencyTotals) != 1 {
		t.Fatalf("Beta's own summary: rows %q, totals %q; want one row and one total", tab.Rows, tab.CurrencyTotals)
	}
	want := all.Groups[0].Figures
	want.Add(all.Groups[1].Figures)
	got := own.Groups[0].Figures
	if got.Calls != want.Calls || got.OrigBilled != want.OrigBilled || !got.Revenue.Equal(want.Revenue) {
		t.Errorf("Beta's own row: calls %d, billed %d s, revenue %s; want %d, %d s, %s",
			got.Calls, got.OrigBilled, got.Revenue, want.Calls, want.OrigBilled, want.Revenue)
	}
	if !got.Cost.IsZero() || got.TermCalls != 0 || own.Groups[0].TermCurrency != "" {
		t.Errorf("Beta's own row carries the vendor side: cost %s, term calls %d, term currency %q", got.Cost, got.TermCalls, own.Groups[0].TermCurrency)
	}
}
