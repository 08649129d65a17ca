package catalog_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

// TestBillingSettings: the catalog file's billing settings (DESIGN.md's
// example, testdata/check/billing.good.yaml) land where the API's routes
// put them, each with its audit row under the file's actor, and applying
// the file again changes nothing. (The refusals are fixtures of
// testdata/check and testdata/apply.)
func TestBillingSettings(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	path := filepath.Join("testdata", "check", "billing.good.yaml")
	rep := apply(t, db.PG, path, false)
	var b bytes.Buffer
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"payment terms  3 created", "tax profiles   2 created", `created tax profile "eu-vat"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	ctx := context.Background()
	var got string
	if err := db.PG.QueryRow(ctx, `SELECT string_agg(concat_ws(' ', c.name, pt.name, tp.name, c.invoice_rounding, c.invoice_precision), '; ' ORDER BY c.name)
		FROM clients c LEFT JOIN payment_terms pt ON pt.id = c.payment_terms_id LEFT JOIN tax_profiles tp ON tp.id = c.tax_profile_id`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := "Customer A monthly-15 eu-vat round_then_sum; Customer B fortnight ca-gst-qst sum_then_round 3; Customer C round_then_sum"; got != want {
		t.Errorf("clients: %s, want %s", got, want)
	}
	if err := db.PG.QueryRow(ctx, `SELECT concat_ws(' ', period, every, anchor, due_days) FROM payment_terms WHERE name = 'fortnight'`).Scan(&got); err != nil || got != "days 14 2024-01-01 0" {
		t.Errorf("fortnight: %s %v", got, err)
	}
	if err := db.PG.QueryRow(ctx, `SELECT taxes::text FROM tax_profiles WHERE name = 'ca-gst-qst'`).Scan(&got); err != nil ||
		got != `[{"name": "GST", "percent": "5"}, {"name": "QST", "percent": "9.975"}]` {
		t.Errorf("taxes: %s %v", got, err)
	}
	if err := db.PG.QueryRow(ctx, `SELECT invoice_number_template FROM resellers`).Scan(&got); err != nil || got != "ACME-{yyyy}-{n:5}" {
		t.Errorf("numbering: %s %v", got, err)
	}
	if err := db.PG.QueryRow(ctx, `SELECT string_agg(concat_ws(' ', action, entity, after->>'name'), '; ' ORDER BY id) FROM audit_log
		WHERE entity IN ('payment terms', 'tax profile') AND actor = $1`, "catalog apply ("+path+")").Scan(&got); err != nil ||
		got != "create payment terms monthly-15; create payment terms weekly-fri; create payment terms fortnight; create tax profile eu-vat; create tax profile ca-gst-qst" {
		t.Errorf("audit of the billing settings: %s %v", got, err)
	}
	v := version(t, db.PG)
	if rep := apply(t, db.PG, path, false); rep.Changed() || version(t, db.PG) != v {
		t.Errorf("second apply changed something: %+v", rep.Changes)
	}
}
