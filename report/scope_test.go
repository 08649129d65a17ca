package report_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/report"
)

func atoi(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }

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

// TestResellerSeesNoVendorBeyondItsScope: Acme's customers' calls carried
// by Vendor EU (Euro Reseller's) show, in Acme's summary and orig-term
// report, no vendor name, no cost, no profit and no margin — nobody sees
// sideways or upward — while its own Vendor US shows as the operator sees
// it; revenue and calls are the operator's figures either way. Naming the
// other reseller's vendor in a filter finds nothing.
func TestResellerSeesNoVendorBeyondItsScope(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cat, err := report.LoadCatalog(ctx, f.db.PG)
	if err != nil {
		t.Fatal(err)
	}
	acme, err := cat.Reseller("Acme")
	if err != nil {
		t.Fatal(err)
	}
	scope := report.Scope{Resellers: cat.Subtree(acme.ID)}
	march := period(t, "2024-03-01", "2024-04-01", "UTC")
	all := report.Filter{Resellers: []string{"Acme"}}
	for _, by := range [][]string{{"term_client"}, {"orig_client"}, {"day", "term_client"}} {
		op, err := f.reports.Summary(ctx, report.Scope{}, report.SummaryQuery{Period: march, By: by, Filter: all})
		if err != nil {
			t.Fatal(err)
		}
		own, err := f.reports.Summary(ctx, scope, report.SummaryQuery{Period: march, By: by})
		if err != nil {
			t.Fatal(err)
		}
		var opRevenue, ownRevenue, opUSCost, ownCost decimal.Decimal
		sawEU := false
		for _, g := range op.Groups {
			opRevenue = opRevenue.Add(g.Revenue)
			for i, b := range by {
				if b == "term_client" && cat.ClientName(atoi(g.Keys[i])) == "Vendor EU" {
					sawEU = true
				}
				if b == "term_client" && cat.ClientName(atoi(g.Keys[i])) == "Vendor US" {
					opUSCost = opUSCost.Add(g.Cost)
				}
			}
		}
		if by[len(by)-1] == "term_client" && !sawEU {
			t.Fatalf("the fixture has no call of Acme's customers carried by Vendor EU (by %v)", by)
		}
		tab := own.Table()
		for _, row := range tab.Rows {
			line := strings.Join(row, ",")
			if strings.Contains(line, "Vendor EU") || strings.Contains(line, "EUR") && !strings.Contains(line, "USD") {
				t.Errorf("Acme's summary by %v shows Euro Reseller's vendor: %s", by, line)
			}
		}
		for _, g := range own.Groups {
			ownRevenue = ownRevenue.Add(g.Revenue)
			ownCost = ownCost.Add(g.Cost)
			if g.Withheld && g.TermCalls != 0 {
				t.Errorf("a withheld group keeps its term calls: %+v", g)
			}
		}
		if !ownRevenue.Equal(opRevenue) {
			t.Errorf("by %v: Acme's revenue %s, the operator's for Acme %s", by, ownRevenue, opRevenue)
		}
		if by[0] == "term_client" && !ownCost.Equal(opUSCost) {
			t.Errorf("by %v: Acme's cost %s, want Vendor US's alone %s", by, ownCost, opUSCost)
		}
		for i, c := range tab.Columns {
			if c.Name != "profit" && c.Name != "margin_pct" {
				continue
			}
			for k, g := range own.Groups {
				if g.Withheld && tab.Rows[k][i] != "" {
					t.Errorf("by %v: a row with a withheld vendor shows %s %q: %q", by, c.Name, tab.Rows[k][i], tab.Rows[k])
				}
			}
		}
	}
	ot, err := f.reports.OrigTerm(ctx, scope, report.OrigTermQuery{Period: march})
	if err != nil {
		t.Fatal(err)
	}
	outside := 0
	for _, row := range ot.Table().Rows {
		if strings.Contains(strings.Join(row, ","), "Vendor EU") {
			t.Errorf("Acme's orig-term report shows Euro Reseller's vendor: %q", row)
		}
		if row[1] == "(outside your scope)" {
			outside++
		}
	}
	if outside == 0 {
		t.Errorf("Acme's orig-term report has no row for the calls of vendors outside its scope: %q", ot.Table().Rows)
	}
	s, err := f.reports.Summary(ctx, scope, report.SummaryQuery{Period: march, Filter: report.Filter{Vendors: []string{"Vendor EU"}}})
	if err != nil || len(s.Groups) != 0 {
		t.Errorf("Acme filtering on Euro Reseller's vendor: %v rows, %v", len(s.Groups), err)
	}
}
