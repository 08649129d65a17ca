package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

// TestRerateAfterInvoiceApproval is DOMAIN.md's last rerating trap with
// the real binaries: a worker rates a London customer's March and April,
// March is invoiced and approved, the operator fixes a rate and rerates
// March. The dry run names the approved invoice; the job moves the live
// balance and leaves the invoice (lines, figures, number, state) and the
// fixed balance as they were; the April invoice carries the difference as
// a correction line of the March invoice, and the March period's xdrs FINAL
// equals what was invoiced plus that correction, to the last decimal.
func TestRerateAfterInvoiceApproval(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	db := sinktest.New(t)
	topic := "t-cdrs-" + db.Name
	t.Cleanup(func() { deleteTopic(kafkaBrokers(), topic) })
	env := append(os.Environ(), "TARIFA_PG_DSN="+db.PGDSN, "TARIFA_CLICKHOUSE_DSN="+db.CHDSN, "TARIFA_KAFKA_BROKERS="+kafkaBrokers())
	tarifa := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tarifa %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return out
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	deck := func(mobile string) {
		write("decks/retail.csv", "code,code_name,rate\n44,UK Fixed,0.0137\n447,UK Mobile,"+mobile+"\n")
	}
	deck("0.0891")
	cat := write("catalog.yaml", `payment_terms: [{name: monthly-15, period: monthly, day: 1, due_days: 15}]
rate_tables: [{name: retail, currency: USD, deck: decks/retail.csv}]
resellers: [{name: Acme, currency: USD, company_name: Acme Telecom Ltd, invoice_number_template: "ACME-{yyyy}-{n:5}"}]
clients:
  - name: London
    timezone: Europe/London
    orig_rate_table: retail
    payment_terms: monthly-15
    accounts: [{kind: ip, ident: 192.0.2.1}]
`)
	tarifa("catalog", "apply", "-f", cat)

	// Three calls of London's March (the last one at 23:30 on March 31,
	// BST), one of its April; each call is setup + 5 s ringing + talk.
	cdr := func(id, dst, end string, seconds int) kafka.Message {
		e, err := time.Parse(time.RFC3339, end)
		if err != nil {
			t.Fatal(err)
		}
		connect := e.Add(-time.Duration(seconds) * time.Second)
		return kafka.Message{Key: []byte(id), Value: fmt.Appendf(nil,
			`{"id":%q,"switch":"sw1","setup_time":%q,"connect_time":%q,"disconnect_time":%q,"src_ip":"192.0.2.1","dst":%q}`,
			id, connect.Add(-5*time.Second).Format(time.RFC3339), connect.Format(time.RFC3339), end, dst)}
	}
	msgs := []kafka.Message{
		cdr("m1", "447700900001", "2024-03-10T10:00:00Z", 60),
		cdr("m2", "442071230002", "2024-03-20T10:00:00Z", 60),
		cdr("m3", "447700900003", "2024-03-31T22:30:00Z", 120),
		cdr("a1", "447700900004", "2024-04-10T10:00:00Z", 60),
	}
	produce(t, kafkaBrokers(), topic, msgs)
	w := startWorker(t, bin, db, topic)
	waitConsumed(t, db, topic, len(msgs), 90*time.Second, w)
	w.stop(t)

	type line struct {
		CodeName string          `json:"code_name"`
		Calls    int64           `json:"calls"`
		Amount   decimal.Decimal `json:"amount"`
	}
	type correction struct {
		InvoiceID  int64           `json:"invoice_id"`
		Number     string          `json:"number"`
		PeriodFrom string          `json:"period_from"`
		PeriodTo   string          `json:"period_to"`
		CodeName   string          `json:"code_name"`
		Amount     decimal.Decimal `json:"amount"`
	}
	type invoice struct {
		ID          int64           `json:"id"`
		Number      *string         `json:"number"`
		State       string          `json:"state"`
		Lines       []line          `json:"lines"`
		Corrections []correction    `json:"corrections"`
		Net         decimal.Decimal `json:"net"`
		Total       decimal.Decimal `json:"total"`
	}
	decode := func(b []byte, v any) {
		t.Helper()
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%v:\n%s", err, b)
		}
	}
	var march invoice
	decode(tarifa("invoice", "create", "--client", "London", "--from", "2024-03-01", "--to", "2024-04-01", "--format", "json"), &march)
	decode(tarifa("invoice", "approve", fmt.Sprint(march.ID), "--format", "json"), &march)
	// UK Fixed 0.0137; UK Mobile 0.0891 + 0.1782 = 0.2673; round_then_sum: 0.01 + 0.27
	// ACME-{yyyy}-{n:5}: the year it was issued, the reseller's first number
	if march.State != "to_send" || march.Number == nil || !strings.HasPrefix(*march.Number, "ACME-") || !strings.HasSuffix(*march.Number, "-00001") || len(march.Lines) != 2 ||
		!march.Lines[1].Amount.Equal(decimal.RequireFromString("0.2673")) || march.Total.String() != "0.28" {
		t.Fatalf("the approved March invoice: %+v", march)
	}
	balances := func() (live, fixed decimal.Decimal) {
		t.Helper()
		if err := db.PG.QueryRow(t.Context(), "SELECT live, fixed FROM client_balances WHERE client_id = 1").Scan(&live, &fixed); err != nil {
			t.Fatal(err)
		}
		return live, fixed
	}
	live0, fixed0 := balances()
	if !fixed0.Equal(decimal.RequireFromString("-0.28")) {
		t.Fatalf("fixed balance after the approval: %s", fixed0)
	}

	// The fix: UK Mobile costs 0.02 a minute more. Rerating London's March:
	// 3 minutes of UK Mobile, 0.06 more.
	deck("0.1091")
	tarifa("catalog", "apply", "-f", cat)
	type job struct {
		State    string
		Selected int64
		Changed  int64
		Clients  []struct {
			Client string
			Side   string
			Delta  decimal.Decimal
		}
		Invoices []struct {
			InvoiceID int64 `json:"invoice_id"`
			Number    *string
			Client    string
			State     string
		}
	}
	rerate := func(mode string) job {
		t.Helper()
		var j job
		decode(tarifa("rerate", "--from", "2024-03-01", "--to", "2024-04-01", "--tz", "Europe/London", "--topic", topic,
			"--client", "London", mode, "--format", "json"), &j)
		return j
	}
	for _, mode := range []string{"--dry-run", "--yes"} {
		j := rerate(mode)
		if j.Selected != 3 || j.Changed != 2 || len(j.Clients) != 1 || !j.Clients[0].Delta.Equal(decimal.RequireFromString("0.06")) {
			t.Fatalf("rerate %s: %+v", mode, j)
		}
		if len(j.Invoices) != 1 || j.Invoices[0].InvoiceID != march.ID || j.Invoices[0].Number == nil ||
			*j.Invoices[0].Number != *march.Number || j.Invoices[0].Client != "London" || j.Invoices[0].State != "to_send" {
			t.Fatalf("rerate %s names the invoices %+v, want March's %d %s", mode, j.Invoices, march.ID, *march.Number)
		}
		live, fixed := balances()
		want := live0
		if mode == "--yes" {
			want = live0.Sub(decimal.RequireFromString("0.06"))
		}
		if !live.Equal(want) || !fixed.Equal(fixed0) {
			t.Fatalf("after rerate %s: live %s fixed %s, want %s and %s", mode, live, fixed, want, fixed0)
		}
	}

	var again invoice
	decode(tarifa("invoice", "show", fmt.Sprint(march.ID), "--format", "json"), &again)
	if again.State != march.State || *again.Number != *march.Number || !again.Total.Equal(march.Total) || !again.Net.Equal(march.Net) ||
		len(again.Lines) != len(march.Lines) || !again.Lines[1].Amount.Equal(march.Lines[1].Amount) {
		t.Fatalf("the rerate changed the approved invoice: %+v, was %+v", again, march)
	}
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	var final decimal.Decimal
	if err := db.CH.QueryRow(t.Context(), `SELECT sum(orig_cost) FROM xdrs FINAL WHERE status = 'rated' AND orig_client_id = 1
		AND event_time >= toDateTime(?) AND event_time < toDateTime(?)`,
		time.Date(2024, 3, 1, 0, 0, 0, 0, london).Unix(), time.Date(2024, 4, 1, 0, 0, 0, 0, london).Unix()).Scan(&final); err != nil {
		t.Fatal(err)
	}

	// The April invoice: its own call (rated before the fix, not rerated)
	// and the correction of March, once.
	var april invoice
	decode(tarifa("invoice", "create", "--client", "London", "--from", "2024-04-01", "--to", "2024-05-01", "--format", "json"), &april)
	if len(april.Lines) != 1 || !april.Lines[0].Amount.Equal(decimal.RequireFromString("0.0891")) {
		t.Fatalf("April lines %+v", april.Lines)
	}
	if len(april.Corrections) != 1 {
		t.Fatalf("April corrections %+v, want one of March", april.Corrections)
	}
	c := april.Corrections[0]
	if c.InvoiceID != march.ID || c.Number != *march.Number || c.PeriodFrom != "2024-03-01" || c.PeriodTo != "2024-04-01" ||
		c.CodeName != "UK Mobile" || !c.Amount.Equal(decimal.RequireFromString("0.06")) {
		t.Fatalf("April correction %+v", c)
	}
	invoiced := march.Lines[0].Amount.Add(march.Lines[1].Amount)
	if !final.Equal(invoiced.Add(c.Amount)) {
		t.Fatalf("March in xdrs FINAL %s, invoiced %s + corrected %s", final, invoiced, c.Amount)
	}
	if april.Net.String() != "0.15" { // 0.09 + 0.06
		t.Fatalf("April net %s", april.Net)
	}
}
