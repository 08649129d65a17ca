package report_test

import (
	"context"
	"testing"
)

// TestReconcile: silent on the books the store kept, and it names the one
// client whose balance was moved behind the books' back, with the amount.
func TestReconcile(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	drifts, checked, err := f.reports.Reconcile(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(drifts) != 0 || checked != 6 {
		t.Fatalf("clean books: %d checked, drifts %+v; want 6 and none", checked, drifts)
	}
	if _, err := f.db.PG.Exec(ctx, `UPDATE balances SET live = live + 0.000001 WHERE client_id = (SELECT id FROM clients WHERE name = 'Gamma')`); err != nil {
		t.Fatal(err)
	}
	drifts, _, err = f.reports.Reconcile(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(drifts) != 1 || drifts[0].Client != "Gamma" || drifts[0].Diff().String() != "0.000001" || drifts[0].Currency != "EUR" {
		t.Fatalf("drifts %+v, want Gamma off by 0.000001 EUR", drifts)
	}
	if drifts, _, err := f.reports.Reconcile(ctx, []string{"Alpha"}); err != nil || len(drifts) != 0 {
		t.Fatalf("--client Alpha: %+v, %v; want silent", drifts, err)
	}
}
