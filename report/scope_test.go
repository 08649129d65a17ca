package report_test

import (
	"context"
	"errors"
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

// TestScopeHidesNamesBeyondIt: a reseller token naming a client or a
// reseller outside its subtree gets what an unknown name gets (nothing, as
// the API's scope matrix wants), in every report, so that it cannot learn
// which customers another reseller has; inside its subtree the names work;
// the operator is told a name is unknown.
func TestScopeHidesNamesBeyondIt(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cat, err := report.LoadCatalog(ctx, f.db.PG)
	if err != nil {
		t.Fatal(err)
	}
	euro, err := cat.Reseller("Euro Reseller")
	if err != nil {
		t.Fatal(err)
	}
	march := period(t, "2024-03-01", "2024-04-01", "UTC")
	run := func(scope report.Scope, fl report.Filter) (rows map[string]int, errs map[string]error) {
		rows, errs = map[string]int{}, map[string]error{}
		if s, err := f.reports.Summary(ctx, scope, report.SummaryQuery{Period: march, Filter: fl}); err != nil {
			errs["summary"] = err
		} else {
			rows["summary"] = len(s.Table().Rows)
		}
		if o, err := f.reports.OrigTerm(ctx, scope, report.OrigTermQuery{Period: march, Filter: fl}); err != nil {
			errs["origterm"] = err
		} else {
			rows["origterm"] = len(o.Table().Rows)
		}
		if m, err := f.reports.Mismatches(ctx, scope, report.MismatchQuery{Period: march, Filter: fl}); err != nil {
			errs["mismatches"] = err
		} else {
			rows["mismatches"] = len(m.Table().Rows)
		}
		if b, err := f.reports.Balance(ctx, scope, report.BalanceQuery{Period: march, Filter: fl}); err != nil {
			errs["balance"] = err
		} else {
			rows["balance"] = len(b.Table().Rows)
		}
		return rows, errs
	}
	euroScope := report.Scope{Resellers: cat.Subtree(euro.ID)}
	for _, fl := range []report.Filter{{Clients: []string{"Alpha"}}, {Clients: []string{"Nobody"}},
		{Resellers: []string{"Acme"}}, {Resellers: []string{"Nobody"}}} {
		rows, errs := run(euroScope, fl)
		for name, err := range errs {
			t.Errorf("%s of %+v for Euro Reseller: %v; want no rows, as for an unknown name", name, fl, err)
		}
		for name, n := range rows {
			if n != 0 {
				t.Errorf("%s of %+v for Euro Reseller: %d rows", name, fl, n)
			}
		}
	}
	for _, fl := range []report.Filter{{Clients: []string{"Gamma"}}, {Resellers: []string{"Euro Reseller"}}} {
		rows, errs := run(euroScope, fl)
		for name, err := range errs {
			t.Errorf("%s of %+v for Euro Reseller: %v", name, fl, err)
		}
		if rows["summary"] == 0 || rows["balance"] == 0 {
			t.Errorf("Euro Reseller's own %+v: %v rows", fl, rows)
		}
	}
	for _, fl := range []report.Filter{{Clients: []string{"Nobody"}}, {Resellers: []string{"Nobody"}}} {
		_, errs := run(report.Scope{}, fl)
		for name, err := range errs {
			var pe *report.ParamError
			if !errors.As(err, &pe) {
				t.Errorf("the operator's %s of %+v: %v; want a ParamError", name, fl, err)
			}
		}
		if len(errs) != 4 {
			t.Errorf("the operator's reports of %+v: errors %v; want 4", fl, errs)
		}
	}
	if _, err := f.reports.Summary(ctx, report.Scope{}, report.SummaryQuery{Period: march, By: []string{"day", "day"}}); err == nil {
		t.Error("a summary by day twice (two JSON fields of one name) was not refused")
	}
}
