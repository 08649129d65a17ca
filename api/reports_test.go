package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/sinks"
)

// TestReportScopes: the same report answers each token with its scope
// only — a reseller its subtree's clients, a client its own calls without
// the vendor side — and a parameter error names the parameter.
func TestReportScopes(t *testing.T) {
	e := newEnv(t)
	r1 := e.create("/v1/resellers", map[string]any{"name": "R1", "currency": "USD"})
	r1a := e.create("/v1/resellers", map[string]any{"name": "R1a", "currency": "USD", "parent_id": r1})
	r2 := e.create("/v1/resellers", map[string]any{"name": "R2", "currency": "EUR"})
	c1 := e.create("/v1/clients", map[string]any{"name": "Own", "reseller_id": r1a, "currency": "USD"})
	c2 := e.create("/v1/clients", map[string]any{"name": "Foreign", "reseller_id": r2, "currency": "EUR"})
	v := e.create("/v1/clients", map[string]any{"name": "Vendor", "reseller_id": r1, "currency": "USD"})
	ctx := context.Background()
	b, err := e.db.CH.PrepareBatch(ctx, `INSERT INTO xdrs (cdr_id, switch, event_time, setup_time, disconnect_time, duration_ms, status,
		reseller_id, orig_client_id, orig_cost, term_client_id, term_cost, currency, orig_currency, term_currency, version)`)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 1, 10, 12, 0, 0, 0, time.UTC)
	for i, row := range []struct {
		reseller, client int64
		cur, cost        string
	}{{r1a, c1, "USD", "1.5"}, {r2, c2, "EUR", "2.25"}} {
		if err := b.Append(string(rune('a'+i)), "sw", at, at, at, uint64(60000), "rated", uint64(row.reseller), uint64(row.client),
			decimal.RequireFromString(row.cost), uint64(v), decimal.RequireFromString("0.5"), row.cur, row.cur, "USD", uint64(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	// Every writer of xdrs marks the setup hours it wrote, as the store's
	// commit does; the rollups never read an hour no one marked.
	tx, err := e.db.PG.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sinks.MarkRollupHours(ctx, tx, []rater.XDR{{CDR: ingest.CDR{SetupTime: at}}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	const q = "/v1/reports/summary?from=2024-01-01&to=2024-02-01&by=orig_client"
	clients := func(tok string) string {
		var names []string
		for _, r := range e.must(200, tok, "GET", q, nil)["rows"].([]any) {
			names = append(names, r.(map[string]any)["orig_client"].(string))
		}
		return strings.Join(names, ",")
	}
	reseller, client := e.token(RoleReseller, r1, 0), e.token(RoleClient, 0, c1)
	for _, c := range []struct{ tok, want string }{{e.admin, "Own,Foreign"}, {reseller, "Own"}, {client, "Own"}} {
		if got := clients(c.tok); got != c.want {
			t.Errorf("summary rows %q, want %q", got, c.want)
		}
	}
	rows := e.must(200, client, "GET", q, nil)["rows"].([]any)
	if len(rows) != 1 {
		t.Fatalf("client rows %v", rows)
	}
	row := rows[0].(map[string]any)
	for _, hidden := range []string{"cost", "profit", "margin_pct", "term_currency"} {
		if _, ok := row[hidden]; ok {
			t.Errorf("a client's summary shows %s: %v", hidden, row)
		}
	}
	if row["revenue"] != "1.500000" {
		t.Errorf("client's revenue %v, want 1.500000", row["revenue"])
	}
	e.must(403, client, "GET", "/v1/reports/origterm?from=2024-01-01&to=2024-02-01", nil)
	e.must(400, client, "GET", q+",term_client", nil)
	bal := e.must(200, reseller, "GET", "/v1/reports/balance?from=2024-01-10&to=2024-01-11", nil)["rows"].([]any)
	var seen []string
	for _, r := range bal {
		seen = append(seen, r.(map[string]any)["client"].(string))
	}
	if got := strings.Join(seen, ","); got != "Own,Vendor" {
		t.Errorf("reseller's balance rows %s, want Own,Vendor", got)
	}
	if m := e.must(400, e.admin, "GET", "/v1/reports/summary?from=1969-12-01&to=2024-01-01", nil); m["field"] != "from" {
		t.Errorf("period before 1970: %v", m)
	}
	if _, out := e.call(e.admin, "GET", q+"&format=csv", nil); !strings.HasPrefix(string(out), "orig_client,orig_currency,term_currency,calls") {
		t.Errorf("csv: %s", out)
	}
}
