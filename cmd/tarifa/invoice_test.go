package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/sinks"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

// TestInvoiceCommands runs the billing commands of DESIGN.md "Invoices and
// bill runs" the way an operator does at month end: the dry run, the run,
// list, show, approve, the PDF, send (to a server that is down: queued),
// pay, void, and the exit codes of mistakes.
func TestInvoiceCommands(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	ctx := context.Background()
	run := func(args ...string) (string, error) {
		t.Helper()
		var out, errb bytes.Buffer
		err := commands()[args[0]].run(ctx, append(args[1:], "--pg-dsn", db.PGDSN, "--clickhouse-dsn", db.CHDSN), &out, &errb)
		return out.String() + errb.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("tarifa %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	yml := filepath.Join("..", "..", "billing", "testdata", "catalog.yaml")
	var out, errb bytes.Buffer
	if err := commands()["catalog"].run(ctx, []string{"apply", "-f", yml, "--pg-dsn", db.PGDSN}, &out, &errb); err != nil {
		t.Fatalf("catalog apply: %v %s", err, errb.String())
	}
	for _, sql := range []string{
		`INSERT INTO payment_terms (name, period, day, due_days) VALUES ('monthly-15', 'monthly', 1, 15)`,
		`INSERT INTO tax_profiles (name, mode, taxes) VALUES ('uk-vat', 'percent_of_total', '[{"name": "VAT", "percent": "20"}]')`,
		`UPDATE resellers SET invoice_number_template = 'ACME-{yyyy}-{n:5}'`,
		`UPDATE clients SET autoinvoice = true, payment_terms_id = 1, tax_profile_id = 1, last_invoiced_at = '2024-02-29' WHERE name = 'London'`,
		`INSERT INTO transactions (client_id, kind, amount, currency, ref, at) VALUES (1, 'charge', 25, 'USD', 'port-fee-03', '2024-03-05')`,
	} {
		if _, err := db.PG.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// Two rated calls and a mismatch of London in March (in London's days),
	// one rated call of April.
	writeXDRs(t, db, []testXDR{
		{"c1", "rated", "", "UK Mobile", "2024-03-10T10:00:00Z", 61, "0.090585"},
		{"c2", "rated", "", "UK Fixed", "2024-03-31T22:30:00Z", 120, "0.027400"},
		{"c3", "mismatch", "no_rate", "", "2024-03-12T10:00:00Z", 0, "0"},
		{"c4", "rated", "", "UK Fixed", "2024-03-31T23:30:00Z", 60, "0.013700"},
	})

	dry := must("billrun", "--at", "2024-04-02T00:00:00Z", "--dry-run")
	mm, inv := strings.Index(dry, "Mismatched calls"), strings.Index(dry, "Invoices the run would create")
	if mm < 0 || inv < mm || !strings.Contains(dry, "no_rate") || !strings.Contains(dry, "c3") ||
		!strings.Contains(dry, "would create 1 invoice(s): 1 USD (total 30.14)") {
		t.Fatalf("dry run:\n%s", dry)
	}
	if got := must("invoice", "list"); strings.Contains(got, "London") {
		t.Fatalf("the dry run made an invoice:\n%s", got)
	}
	var runJSON struct {
		DryRun     bool              `json:"dry_run"`
		Invoices   []json.RawMessage `json:"invoices"`
		Mismatches []struct {
			Client  string `json:"client"`
			Reasons []struct {
				Reason string `json:"reason"`
			} `json:"reasons"`
		} `json:"mismatches"`
	}
	if err := json.Unmarshal([]byte(must("billrun", "--at", "2024-04-02T00:00:00Z", "--format", "json")), &runJSON); err != nil {
		t.Fatal(err)
	}
	if runJSON.DryRun || len(runJSON.Invoices) != 1 || len(runJSON.Mismatches) != 1 || runJSON.Mismatches[0].Reasons[0].Reason != "no_rate" {
		t.Fatalf("run: %+v", runJSON)
	}
	var made struct {
		ID json.Number `json:"id"`
	}
	if err := json.Unmarshal(runJSON.Invoices[0], &made); err != nil || made.ID == "" {
		t.Fatalf("invoice id: %s %v", runJSON.Invoices[0], err)
	}
	id := made.ID.String() // the dry run took an id of the sequence too: ids are not numbers
	// The invoice JSON of the contract, in its order.
	shown := must("invoice", "show", id)
	var keys []string
	dec := json.NewDecoder(strings.NewReader(shown))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(keys[:16], ","); got != "id,number,client_id,client,currency,period_from,period_to,timezone,state,issued_at,due_at,lines,charges,corrections,net,taxes" {
		t.Errorf("invoice keys %s", got)
	}
	var invJSON map[string]any
	if err := json.Unmarshal([]byte(shown), &invJSON); err != nil {
		t.Fatal(err)
	}
	if invJSON["number"] != nil || invJSON["state"] != "to_verify" || invJSON["net"] != "25.12" || invJSON["total"] != "30.14" ||
		invJSON["due_at"] != "2024-04-16" || invJSON["timezone"] != "Europe/London" || invJSON["issued_at"] != nil {
		t.Errorf("invoice %s", shown)
	}
	lines := invJSON["lines"].([]any)
	if len(lines) != 2 || lines[1].(map[string]any)["amount"] != "0.090585" || lines[1].(map[string]any)["minutes"] != "1.02" {
		t.Errorf("lines %v", lines)
	}
	if got := invJSON["taxes"].([]any)[0].(map[string]any); got["name"] != "VAT" || got["percent"] != "20" || got["amount"] != "5.02" {
		t.Errorf("taxes %v", got)
	}
	if got := must("invoice", "approve", id); !strings.Contains(got, "number ACME-") || !strings.Contains(got, "total 30.14 USD") {
		t.Fatalf("approve: %s", got)
	}
	if _, err := run("invoice", "approve", id); err == nil {
		t.Fatal("approved twice")
	}
	var fixed string
	if err := db.PG.QueryRow(ctx, `SELECT fixed::text FROM client_balances WHERE client_id = 1`).Scan(&fixed); err != nil || fixed != "-30.140000" {
		t.Fatalf("fixed balance %s %v", fixed, err)
	}
	pdf := filepath.Join(t.TempDir(), "inv.pdf")
	must("invoice", "show", id, "--format", "pdf", "--out", pdf)
	text, err := exec.Command("pdftotext", "-layout", pdf, "-").CombinedOutput()
	if err != nil || !strings.Contains(string(text), "Total USD") || !strings.Contains(string(text), "30.14") || !strings.Contains(string(text), "port-fee-03") {
		t.Fatalf("pdftotext: %v\n%s", err, text)
	}
	if got := must("invoice", "list", "--format", "csv"); !strings.Contains(got, ",sent,USD,25.12,30.14,") {
		t.Fatalf("a downloaded PDF marks the invoice sent:\n%s", got)
	}
	xdrs := must("invoice", "show", id, "--format", "xdrs")
	if !strings.Contains(xdrs, "c1,") || !strings.Contains(xdrs, "c2,") || strings.Contains(xdrs, "c4,") || !strings.Contains(xdrs, "447700900XXX") {
		t.Fatalf("xdrs csv:\n%s", xdrs)
	}
	// No SMTP server answers: the mail is queued and the command says so.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	got, err := run("invoice", "send", id, "--smtp-addr", dead, "--smtp-from", "billing@acme.example")
	if err == nil || !strings.Contains(err.Error(), "stays in the mail queue") {
		t.Fatalf("send to a dead server: %v\n%s", err, got)
	}
	if got := must("mail", "list"); !strings.Contains(got, "queued") || !strings.Contains(got, "connect to smtp") || !strings.Contains(got, "ap@london.example") {
		t.Fatalf("mail list:\n%s", got)
	}
	if got := must("invoice", "pay", id); !strings.Contains(got, "marked paid") {
		t.Fatalf("pay: %s", got)
	}
	if got := must("invoice", "void", id); !strings.Contains(got, "given back to the fixed balance") {
		t.Fatalf("void: %s", got)
	}
	if err := db.PG.QueryRow(ctx, `SELECT fixed::text FROM client_balances WHERE client_id = 1`).Scan(&fixed); err != nil || fixed != "0.000000" {
		t.Fatalf("fixed balance after void %s %v", fixed, err)
	}
	// A manual invoice of the April period; a vendor statement.
	if got := must("invoice", "create", "--client", "London", "--from", "2024-04-01", "--to", "2024-05-01"); !strings.Contains(got, "UK Fixed") {
		t.Fatalf("create:\n%s", got)
	}
	if got := must("invoice", "statement", "--client", "Vendor", "--from", "2024-03-01", "--to", "2024-04-01", "--format", "csv"); got != "code_name,calls,minutes,currency,amount\n" {
		t.Fatalf("statement of a vendor that carried nothing:\n%q", got)
	}

	// Mistakes exit 2 with the usage, errors of state exit 1.
	bin := buildTarifa(t)
	env := []string{"--pg-dsn", db.PGDSN, "--clickhouse-dsn", db.CHDSN}
	for _, c := range []struct {
		args []string
		code int
		say  string
	}{
		{[]string{"invoice", "approve"}, 2, "invoice ID is required"},
		{[]string{"invoice", "create", "--client", "London", "--from", "2024-04-01"}, 2, "--client, --from and --to are required"},
		{[]string{"invoice", "create", "--client", "London", "--from", "2024-04-10", "--to", "2024-04-01"}, 2, "must be after from"},
		{[]string{"invoice", "approve", "99"}, 1, "not found"},
		{[]string{"invoice", "void", id}, 1, "void already"},
		{[]string{"invoice", "create", "--client", "London", "--from", "2024-03-15", "--to", "2024-04-15"}, 1, "overlaps"},
		{[]string{"billrun", "--at", "yesterday"}, 2, "--at"},
	} {
		_, stderr, code := runBin(t, bin, append(c.args, env...)...)
		if code != c.code || !strings.Contains(stderr, c.say) {
			t.Errorf("tarifa %s: exit %d, want %d saying %q:\n%s", strings.Join(c.args, " "), code, c.code, c.say, stderr)
		}
	}
}

type testXDR struct {
	id, status, reason, name, end string
	seconds                       int
	cost                          string
}

// writeXDRs writes xDRs of client 1 (London) straight into ClickHouse and
// marks their hours as the store does.
func writeXDRs(t *testing.T, db *sinktest.DB, xs []testXDR) {
	t.Helper()
	ctx := context.Background()
	b, err := db.CH.PrepareBatch(ctx, `INSERT INTO xdrs (cdr_id, switch, event_time, setup_time, connect_time, disconnect_time,
		duration_ms, dst, status, reason, orig_client_id, orig_code_name, orig_billed_seconds, orig_cost, orig_currency, currency, version)`)
	if err != nil {
		t.Fatal(err)
	}
	var marks []rater.XDR
	for _, x := range xs {
		end, err := time.Parse(time.RFC3339, x.end)
		if err != nil {
			t.Fatal(err)
		}
		setup := end.Add(-time.Duration(x.seconds) * time.Second)
		if err := b.Append(x.id, "sw1", end, setup, &setup, end, uint64(x.seconds*1000), "447700900123", x.status, x.reason, uint64(1),
			x.name, uint32(x.seconds), decimal.RequireFromString(x.cost), "USD", "USD", uint64(1)); err != nil {
			t.Fatal(err)
		}
		marks = append(marks, rater.XDR{CDR: ingest.CDR{SetupTime: setup}})
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	tx, err := db.PG.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sinks.MarkRollupHours(ctx, tx, marks); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
