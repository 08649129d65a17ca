package api

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/sinks"
)

// billingRoute reports whether a route is one of billingRoutes, whose
// OpenAPI schemas are billingSchemas.
func billingRoute(path string) bool {
	for _, p := range []string{"/v1/invoices", "/v1/billruns", "/v1/statements", "/v1/mail", "/v1/payment-terms", "/v1/tax-profiles"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// billingSchemas are the OpenAPI schemas of the billing routes.
func billingSchemas() obj {
	date := obj{"type": "string", "format": "date"}
	dateNull := obj{"type": "string", "format": "date", "nullable": true}
	stampNull := obj{"type": "string", "format": "date-time", "nullable": true}
	line := props("code_name", str, "calls", integer, "minutes", decimalS, "billed_seconds", integer, "amount", decimalS)
	states := obj{"type": "string", "enum": []string{"to_verify", "to_send", "sent", "paid", "void"}}
	invoice := props("id", integer, "number", obj{"type": "string", "nullable": true, "description": "set on approval"},
		"client_id", integer, "client", str, "currency", str, "period_from", date,
		"period_to", obj{"type": "string", "format": "date", "description": "exclusive; the client's dates"}, "timezone", str,
		"state", states, "issued_at", stampNull, "due_at", date,
		"lines", obj{"type": "array", "items": line},
		"charges", obj{"type": "array", "items": props("ref", str, "amount", decimalS, "transaction_id", integer, "at", stamp)},
		"corrections", obj{"type": "array", "items": props("invoice_id", integer, "number", str, "period_from", date, "period_to", date,
			"code_name", str, "calls", integer, "minutes", decimalS, "billed_seconds", integer, "amount", decimalS)},
		"net", decimalS, "taxes", obj{"type": "array", "items": props("name", str, "percent", decimalS, "amount", decimalS)},
		"total", decimalS, "reseller_id", integer, "source", obj{"type": "string", "enum": []string{"manual", "billrun"}},
		"rounding", obj{"type": "string", "enum": []string{"round_then_sum", "sum_then_round"}}, "precision", integer,
		"tax_profile", str, "generated_at", stamp, "sent_at", stampNull, "paid_at", stampNull, "voided_at", stampNull)
	newInvoice := props("client_id", integer, "period_from", date, "period_to", obj{"type": "string", "format": "date", "description": "exclusive"})
	newInvoice["required"] = []string{"client_id", "period_from", "period_to"}
	mail := props("id", integer, "kind", str, "invoice_id", obj{"type": "integer", "nullable": true}, "client_id", obj{"type": "integer", "nullable": true},
		"recipients", obj{"type": "array", "items": str}, "subject", str,
		"state", obj{"type": "string", "enum": []string{"queued", "sent", "failed"}}, "attempts", integer, "last_error", str,
		"created_at", stamp, "updated_at", stamp, "sent_at", stampNull)
	terms := props("id", obj{"type": "integer", "readOnly": true}, "name", str,
		"period", obj{"type": "string", "enum": []string{"monthly", "weekly", "days"}},
		"day", obj{"type": "integer", "minimum": 1, "maximum": 28, "description": "monthly: the day periods start on"},
		"weekday", obj{"type": "string", "enum": []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, "description": "weekly"},
		"every", obj{"type": "integer", "minimum": 1, "maximum": 3660, "description": "days: the length of a period"},
		"anchor", obj{"type": "string", "format": "date", "description": "days: the first day of one period"},
		"due_days", obj{"type": "integer", "minimum": 0, "maximum": 3660})
	terms["required"] = []string{"name", "period"}
	tax := props("id", obj{"type": "integer", "readOnly": true}, "name", str,
		"mode", obj{"type": "string", "enum": []string{"percent_of_total", "sum_of_items"}},
		"taxes", obj{"type": "array", "items": props("name", str, "percent", obj{"type": "string", "format": "decimal", "description": "0 to 100"})})
	tax["required"] = []string{"name", "mode"}
	newRun := props("at", obj{"type": "string", "format": "date-time", "description": "default now"}, "dry_run", obj{"type": "boolean"})
	run := props("at", stamp, "dry_run", obj{"type": "boolean"},
		"mismatches", obj{"type": "array", "items": props("client_id", obj{"type": "integer", "nullable": true}, "client", obj{"type": "string", "nullable": true},
			"period_from", date, "period_to", date, "timezone", str,
			"reasons", obj{"type": "array", "items": props("reason", str, "calls", integer, "duration_s", decimalS,
				"examples", obj{"type": "array", "items": str}, "numbers", obj{"type": "array", "items": str})})},
		"invoices", obj{"type": "array", "items": ref("Invoice")},
		"skipped", obj{"type": "array", "items": props("client_id", integer, "client", str, "period_from", date, "period_to", date,
			"reason", obj{"type": "string", "enum": []string{"already_invoiced", "nothing_to_bill"}}, "invoice_id", obj{"type": "integer", "nullable": true})},
		"errors", obj{"type": "array", "items": props("client_id", integer, "client", str, "error", str)},
		"totals", obj{"type": "array", "items": props("currency", str, "invoices", integer, "net", decimalS, "total", decimalS)})
	statement := props("client_id", integer, "client", str, "currency", str, "period_from", date, "period_to", date, "timezone", str,
		"lines", obj{"type": "array", "items": line}, "total", decimalS, "total_rounded", decimalS)
	_ = dateNull
	return obj{"Invoice": invoice, "NewInvoice": newInvoice, "Mail": mail, "PaymentTerms": terms, "TaxProfile": tax,
		"NewBillRun": newRun, "BillRun": run, "Statement": statement}
}

// billingSchemaFor names the request and answer schemas of a billing route.
func billingSchemaFor(rt route) (req, resp string, list, ok bool) {
	p := rt.path
	if !billingRoute(p) {
		return "", "", false, false
	}
	switch {
	case p == "/v1/invoices" && rt.method == "GET":
		return "", "Invoice", true, true
	case p == "/v1/invoices":
		return "NewInvoice", "Invoice", false, true
	case p == "/v1/invoices/{id}/send", p == "/v1/mail/{id}/retry":
		return "", "Mail", false, true
	case p == "/v1/invoices/{id}/xdrs.csv":
		return "", "", false, true
	case strings.HasPrefix(p, "/v1/invoices/"):
		return "", "Invoice", false, true
	case p == "/v1/billruns":
		return "NewBillRun", "BillRun", false, true
	case p == "/v1/statements":
		return "", "Statement", false, true
	case p == "/v1/mail":
		return "", "Mail", true, true
	}
	name := "PaymentTerms"
	if strings.HasPrefix(p, "/v1/tax-profiles") {
		name = "TaxProfile"
	}
	if rt.method == "GET" {
		return "", name, !strings.HasSuffix(p, "{id}"), true
	}
	return name, name, false, true
}

// writeTraffic writes rated calls of a client straight into ClickHouse
// and marks their hours as the store does.
func (e *testEnv) writeTraffic(client int64, calls ...string) {
	e.t.Helper()
	ctx := context.Background()
	b, err := e.db.CH.PrepareBatch(ctx, `INSERT INTO xdrs (cdr_id, switch, event_time, setup_time, disconnect_time, duration_ms,
		dst, status, orig_client_id, orig_code_name, orig_billed_seconds, orig_cost, orig_currency, currency, version)`)
	if err != nil {
		e.t.Fatal(err)
	}
	var marks []rater.XDR
	for i, c := range calls { // "2024-03-10T10:00:00Z UK 0.123456"
		f := strings.Fields(c)
		at, err := time.Parse(time.RFC3339, f[0])
		if err != nil {
			e.t.Fatal(err)
		}
		if err := b.Append(fmt.Sprintf("c%d-%d", client, i), "sw", at, at, at, uint64(60000), "447700900123", "rated", uint64(client), f[1],
			uint32(60), decimal.RequireFromString(f[2]), "USD", "USD", uint64(1)); err != nil {
			e.t.Fatal(err)
		}
		marks = append(marks, rater.XDR{CDR: ingest.CDR{SetupTime: at}})
	}
	if err := b.Send(); err != nil {
		e.t.Fatal(err)
	}
	tx, err := e.db.PG.Begin(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := sinks.MarkRollupHours(ctx, tx, marks); err != nil {
		e.t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// TestInvoicesThroughTheAPI: the settings (payment terms, tax profiles,
// the client's and the reseller's), an invoice made, regenerated,
// approved, downloaded, paid; a bill run; every field error named; every
// change audited with the token.
func TestInvoicesThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "Acme", "currency": "USD", "company_name": "Acme Telecom Ltd"})
	// The numbering template is checked where it is set.
	e.must(422, e.admin, "PATCH", path("/v1/resellers/{id}", r), map[string]any{"invoice_number_template": "INV-{yyyy}"})
	e.must(422, e.admin, "PATCH", path("/v1/resellers/{id}", r), map[string]any{"invoice_number_template": "INV-{dd}-{n}"})
	e.must(200, e.admin, "PATCH", path("/v1/resellers/{id}", r), map[string]any{"invoice_number_template": "ACME-{yyyy}-{n:5}"})

	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": "m", "period": "monthly", "day": 29}, "day"},
		{map[string]any{"name": "m", "period": "weekly", "weekday": "monday"}, "weekday"},
		{map[string]any{"name": "m", "period": "days", "every": 14}, "anchor"},
		{map[string]any{"name": "m", "period": "semimonthly"}, "period"},
		{map[string]any{"name": "", "period": "monthly", "day": 1}, "name"},
	} {
		if m := e.must(422, e.admin, "POST", "/v1/payment-terms", c.body); m["field"] != c.field {
			t.Errorf("%v: field %v, want %s", c.body, m["field"], c.field)
		}
	}
	e.must(400, e.admin, "POST", "/v1/payment-terms", map[string]any{"name": "m", "period": "monthly", "day": 1, "colour": "red"})
	terms := e.create("/v1/payment-terms", map[string]any{"name": "monthly-15", "period": "monthly", "day": 1, "due_days": 15})
	e.must(409, e.admin, "POST", "/v1/payment-terms", map[string]any{"name": "monthly-15", "period": "monthly", "day": 2})
	biweekly := e.create("/v1/payment-terms", map[string]any{"name": "fortnight", "period": "days", "every": 14, "anchor": "2024-01-01"})
	if got := e.must(200, e.admin, "GET", path("/v1/payment-terms/{id}", biweekly), nil); got["anchor"] != "2024-01-01" || got["every"] == nil {
		t.Errorf("payment terms %v", got)
	}
	if m := e.must(422, e.admin, "POST", "/v1/tax-profiles", map[string]any{"name": "x", "mode": "percent_of_total",
		"taxes": []any{map[string]any{"name": "VAT", "percent": "120"}}}); m["field"] != "taxes[0].percent" {
		t.Errorf("tax field %v", m["field"])
	}
	vat := e.create("/v1/tax-profiles", map[string]any{"name": "uk-vat", "mode": "percent_of_total",
		"taxes": []any{map[string]any{"name": "VAT", "percent": "20"}}})
	e.must(200, e.admin, "PATCH", path("/v1/tax-profiles/{id}", vat), map[string]any{"name": "uk-vat", "mode": "sum_of_items",
		"taxes": []any{map[string]any{"name": "VAT", "percent": "20"}}})

	c := e.create("/v1/clients", map[string]any{"name": "London", "reseller_id": r, "currency": "USD", "timezone": "Europe/London",
		"email_billing": "ap@london.example"})
	e.must(422, e.admin, "PATCH", path("/v1/clients/{id}", c), map[string]any{"tax_profile_id": 999})
	e.must(422, e.admin, "PATCH", path("/v1/clients/{id}", c), map[string]any{"invoice_rounding": "banker"})
	e.must(422, e.admin, "PATCH", path("/v1/clients/{id}", c), map[string]any{"invoice_precision": 7})
	cl := e.must(200, e.admin, "PATCH", path("/v1/clients/{id}", c), map[string]any{"tax_profile_id": vat, "payment_terms_id": terms,
		"invoice_rounding": "sum_then_round", "autoinvoice": true, "last_invoiced_at": "2024-02-29"})
	if cl["invoice_rounding"] != "sum_then_round" || cl["invoice_precision"] != nil {
		t.Fatalf("client %v", cl)
	}
	e.writeTraffic(c, "2024-03-10T10:00:00Z UK 0.0050", "2024-03-11T10:00:00Z UK 7.1144", "2024-03-12T10:00:00Z Mobile 5.1144",
		"2024-03-31T22:30:00Z Mobile 3.1144", "2024-03-31T23:30:00Z Mobile 100")

	// The bill run through the API: dry, then for real.
	dry := e.must(200, e.admin, "POST", "/v1/billruns", map[string]any{"at": "2024-04-02T00:00:00Z", "dry_run": true})
	invs := dry["invoices"].([]any)
	if len(invs) != 1 || invs[0].(map[string]any)["id"] != nil || invs[0].(map[string]any)["total"] != "18.42" {
		t.Fatalf("dry run %v", dry)
	}
	run := e.must(200, e.admin, "POST", "/v1/billruns", map[string]any{"at": "2024-04-02T00:00:00Z"})
	inv := run["invoices"].([]any)[0].(map[string]any)
	id := num(t, inv["id"])
	// sum_then_round + sum_of_items, VAT 20 %: 15.3482 → 15.35, tax 3.07
	if inv["net"] != "15.35" || inv["taxes"].([]any)[0].(map[string]any)["amount"] != "3.07" || inv["total"] != "18.42" || inv["due_at"] != "2024-04-16" {
		t.Fatalf("invoice %v", inv)
	}
	// A create of the same period regenerates the draft (200, same id).
	if again := e.must(200, e.admin, "POST", "/v1/invoices", map[string]any{"client_id": c, "period_from": "2024-03-01", "period_to": "2024-04-01"}); num(t, again["id"]) != id {
		t.Fatalf("regenerated %v", again)
	}
	e.must(409, e.admin, "POST", "/v1/invoices", map[string]any{"client_id": c, "period_from": "2024-03-15", "period_to": "2024-04-15"})
	if m := e.must(422, e.admin, "POST", "/v1/invoices", map[string]any{"client_id": c, "period_from": "2024-04-15", "period_to": "2024-04-01"}); m["field"] != "to" {
		t.Errorf("backwards period: %v", m)
	}
	e.must(400, e.admin, "POST", "/v1/invoices", map[string]any{"client_id": c, "period_from": "March", "period_to": "2024-04-01"})
	approved := e.must(200, e.admin, "POST", path("/v1/invoices/{id}/approve", id), nil)
	if !strings.HasPrefix(fmt.Sprint(approved["number"]), "ACME-") || approved["state"] != "to_send" {
		t.Fatalf("approved %v", approved)
	}
	e.must(409, e.admin, "POST", path("/v1/invoices/{id}/approve", id), nil)
	if b := e.must(200, e.admin, "GET", path("/v1/clients/{id}/balance", c), nil); b["fixed"] != "-18.420000" {
		t.Fatalf("fixed balance %v", b)
	}
	// Last No cannot go back over the issued number.
	if m := e.must(422, e.admin, "PATCH", path("/v1/resellers/{id}", r), map[string]any{"invoice_last_number": 0}); m["field"] != "invoice_last_number" {
		t.Errorf("Last No lowered: %v", m)
	}

	// The client reads its invoice and downloads the PDF: it is sent.
	ct := e.token(RoleClient, 0, c)
	code, pdf := e.call(ct, "GET", path("/v1/invoices/{id}", id)+".pdf", nil)
	if code != 200 || !strings.HasPrefix(string(pdf), "%PDF-") {
		t.Fatalf("pdf: %d %.40s", code, pdf)
	}
	file := filepath.Join(t.TempDir(), "inv.pdf")
	if err := os.WriteFile(file, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	text, err := exec.Command("pdftotext", "-layout", file, "-").CombinedOutput()
	if err != nil || !strings.Contains(string(text), fmt.Sprint(approved["number"])) || !strings.Contains(string(text), "18.42") {
		t.Fatalf("pdftotext: %v %s", err, text)
	}
	if got := e.must(200, ct, "GET", path("/v1/invoices/{id}", id), nil); got["state"] != "sent" {
		t.Fatalf("after the download: %v", got["state"])
	}
	code, csv := e.call(ct, "GET", path("/v1/invoices/{id}", id)+".csv", nil)
	if code != 200 || !strings.Contains(string(csv), ",total,total,,,,18.42") {
		t.Fatalf("csv: %d %s", code, csv)
	}
	code, xdrs := e.call(ct, "GET", path("/v1/invoices/{id}/xdrs.csv", id), nil)
	if code != 200 || strings.Count(string(xdrs), "\n") != 5 {
		t.Fatalf("xdrs csv: %d %s", code, xdrs)
	}
	e.must(403, ct, "POST", path("/v1/invoices/{id}/pay", id), nil)
	if got := e.must(200, e.admin, "POST", path("/v1/invoices/{id}/pay", id), nil); got["state"] != "paid" {
		t.Fatalf("paid %v", got)
	}
	// Sending without an SMTP server: queued (202), listed with its error.
	m := e.must(202, e.admin, "POST", path("/v1/invoices/{id}/send", id), nil)
	if m["state"] != "queued" || !strings.Contains(fmt.Sprint(m["last_error"]), "no SMTP server") {
		t.Fatalf("send %v", m)
	}
	if q := items(t, e.must(200, e.admin, "GET", "/v1/mail?state=queued", nil)); len(q) != 1 {
		t.Fatalf("mail queue %v", q)
	}
	// Every change is in the audit log, with the token.
	var actions []string
	for _, a := range items(t, e.must(200, e.admin, "GET", path("/v1/audit?entity=invoice&entity_id={id}", id), nil)) {
		actions = append(actions, fmt.Sprint(a["action"]))
		if !strings.HasPrefix(fmt.Sprint(a["actor"]), "token ") || fmt.Sprint(a["reseller_id"]) != jsonInt(r) {
			t.Errorf("audit row %v", a)
		}
	}
	if got := strings.Join(actions, ","); got != "send,pay,download,approve,regenerate,create" {
		t.Errorf("audit actions %s", got)
	}
	if au := items(t, e.must(200, e.admin, "GET", "/v1/audit?entity=payment%20terms", nil)); len(au) != 2 {
		t.Errorf("payment terms audit %v", au)
	}
}
