package catalog_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarifa/tarifa/catalog"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

const billingYAML = `payment_terms:
  - {name: monthly-15, period: monthly, day: 1, due_days: 15}
  - {name: weekly-fri, period: weekly, weekday: fri, due_days: 7}
  - {name: fortnight, period: days, every: 14, anchor: "2024-01-01"}
tax_profiles:
  - {name: eu-vat, mode: percent_of_total, taxes: [{name: VAT, percent: "21"}]}
  - {name: ca-gst-qst, mode: sum_of_items, taxes: [{name: GST, percent: "5"}, {name: QST, percent: "9.975"}]}
resellers:
  - {name: Acme Wholesale, currency: USD, invoice_number_template: "ACME-{yyyy}-{n:5}"}
clients:
  - {name: Customer A, payment_terms: monthly-15, tax_profile: eu-vat, invoice_rounding: round_then_sum}
  - {name: Customer B, payment_terms: fortnight, tax_profile: ca-gst-qst, invoice_rounding: sum_then_round, invoice_precision: 3}
  - {name: Customer C}
`

// TestBillingSettings: the catalog file's billing settings (DESIGN.md's
// example) land where the API's routes put them, and applying the file
// again changes nothing.
func TestBillingSettings(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(path, []byte(billingYAML), 0o644); err != nil {
		t.Fatal(err)
	}
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
	v := version(t, db.PG)
	if rep := apply(t, db.PG, path, false); rep.Changed() || version(t, db.PG) != v {
		t.Errorf("second apply changed something: %+v", rep.Changes)
	}
}

func TestBillingSettingsErrors(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	f := func(yml, want string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "catalog.yaml")
		if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := catalog.Load(path)
		if err == nil {
			_, err = catalog.Apply(context.Background(), db.PG, file, catalog.Options{})
		}
		if err == nil {
			t.Errorf("no error, want %q", want)
			return
		}
		if got := strings.ReplaceAll(err.Error(), filepath.Dir(path)+"/", ""); got != want {
			t.Errorf("error\n got: %s\nwant: %s", got, want)
		}
	}
	const head = "resellers: [{name: R, currency: USD}]\n"
	f("payment_terms: [{name: m, period: monthly, day: 29}]\n",
		`catalog.yaml: payment_terms[0] "m": day: a monthly period starts on day 1 to 28 of the month, got 29`)
	f("payment_terms: [{name: d, period: days, every: 14}]\n",
		`catalog.yaml: payment_terms[0] "d": anchor: required for a period of days: the first day of one of its periods (YYYY-MM-DD)`)
	f("payment_terms: [{name: d, period: days, every: 14, anchor: soon}]\n",
		`catalog.yaml: payment_terms[0] "d": anchor: "soon" is not a date (YYYY-MM-DD)`)
	f("tax_profiles: [{name: t, mode: per_line}]\n",
		`catalog.yaml: tax_profiles[0] "t": mode: must be percent_of_total or sum_of_items, got "per_line"`)
	f("tax_profiles: [{name: t, mode: sum_of_items, taxes: [{name: VAT, percent: twenty}]}]\n",
		`catalog.yaml: tax_profiles[0] "t": taxes[0].percent: "twenty" is not a decimal number`)
	f("resellers: [{name: R, currency: USD, invoice_number_template: \"INV-{yyyy}\"}]\n",
		`catalog.yaml: resellers[0] "R": invoice_number_template: must hold {n} (or {n:W}) exactly once, holds it 0 times`)
	f(head+"clients: [{name: C, invoice_rounding: bankers}]\n",
		`catalog.yaml: clients[0] "C": invoice_rounding: must be round_then_sum or sum_then_round, got "bankers"`)
	f(head+"clients: [{name: C, invoice_precision: 7}]\n",
		`catalog.yaml: clients[0] "C": invoice_precision: must be 0 to 6, got 7`)
	f(head+"clients: [{name: C, payment_terms: nope}]\n",
		`catalog.yaml: clients[0] "C": payment_terms: unknown payment terms "nope"`)
	f(head+"clients: [{name: C, tax_profile: nope}]\n",
		`catalog.yaml: clients[0] "C": tax_profile: unknown tax profile "nope"`)
}
