package report_test

import (
	"context"
	"testing"

	"github.com/tarifa/tarifa/report"
)

// TestGolden renders every report of the fixed data set as JSON (and the
// summary as a table) and compares them with testdata/*.golden.*.
func TestGolden(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	march := period(t, "2024-03-01", "2024-04-01", "UTC")
	all := report.Scope{}

	sum, err := f.reports.Summary(ctx, all, report.SummaryQuery{Period: march, By: []string{"orig_client"}})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "summary_orig_client.golden.json", sum.Table(), "json")
	golden(t, "summary_orig_client.golden.txt", sum.Table(), "table")

	sum, err = f.reports.Summary(ctx, all, report.SummaryQuery{Period: period(t, "2024-03-01", "2024-03-04", "Asia/Tokyo"),
		By: []string{"day", "term_client", "code_name"}, Sort: "-revenue", Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "summary_day_vendor_tokyo.golden.json", sum.Table(), "json")

	sum, err = f.reports.Summary(ctx, all, report.SummaryQuery{Period: march, By: []string{"account", "code"},
		Filter: report.Filter{Tags: []string{"gold"}}})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "summary_account_code_gold.golden.json", sum.Table(), "json")

	ot, err := f.reports.OrigTerm(ctx, all, report.OrigTermQuery{Period: march})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "origterm.golden.json", ot.Table(), "json")

	mm, err := f.reports.Mismatches(ctx, all, report.MismatchQuery{Period: march})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "mismatches.golden.json", mm.Table(), "json")
	golden(t, "mismatches.golden.txt", mm.Table(), "table")

	mm, err = f.reports.Mismatches(ctx, all, report.MismatchQuery{Period: march, By: []string{"orig_client"}})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "mismatches_client.golden.json", mm.Table(), "json")

	bal, err := f.reports.Balance(ctx, all, report.BalanceQuery{Period: period(t, "2024-02-28", "2024-03-05", "UTC")})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "balance_live.golden.json", bal.Table(), "json")

	bal, err = f.reports.Balance(ctx, all, report.BalanceQuery{Period: march, Mode: "fixed", By: "month"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "balance_fixed.golden.json", bal.Table(), "json")
}
