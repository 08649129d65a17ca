package api

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/sinks"
)

// TestRerateJobsScoped: POST /v1/rerate-jobs runs a dry run or a job; a
// reseller rerates its subtree only and sees its own jobs only, a client
// may not rerate; a job moves the balance by its delta.
func TestRerateJobsScoped(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r1 := e.create("/v1/resellers", map[string]any{"name": "R1", "currency": "USD"})
	r1a := e.create("/v1/resellers", map[string]any{"name": "R1a", "currency": "USD", "parent_id": r1})
	r2 := e.create("/v1/resellers", map[string]any{"name": "R2", "currency": "USD"})
	table := e.create("/v1/rate-tables", map[string]any{"name": "retail", "currency": "USD"})
	e.must(200, e.admin, "POST", fmt.Sprintf("/v1/rate-tables/%d/rates", table), "code,rate\n44,0.06\n")
	own := e.create("/v1/clients", map[string]any{"name": "Own", "reseller_id": r1a, "currency": "USD", "orig_rate_table_id": table})
	foreign := e.create("/v1/clients", map[string]any{"name": "Foreign", "reseller_id": r2, "currency": "USD", "orig_rate_table_id": table})
	e.create(fmt.Sprintf("/v1/clients/%d/accounts", own), map[string]any{"kind": "ip", "ident": "10.0.0.1"})
	e.create(fmt.Sprintf("/v1/clients/%d/accounts", foreign), map[string]any{"kind": "ip", "ident": "10.0.0.2"})

	// Two calls a minute each, one per client, committed as a worker does.
	cat, err := sinks.NewCatalogLoader(e.db.PG).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	store := sinks.NewStore(e.db.PG, e.db.CH, prometheus.NewRegistry())
	defer store.Close()
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	b := &rater.Batch{Topic: "cdrs", Partition: 0, First: 0, Next: 2, Stored: -1, XDRs: make([]rater.XDR, 2)}
	rt := rater.NewRater()
	for i, src := range []string{"10.0.0.1", "10.0.0.2"} {
		raw := fmt.Sprintf(`{"id":"c%d","switch":"sw","setup_time":"%s","connect_time":"%s","disconnect_time":"%s","src_ip":"%s","dst":"4420"}`,
			i, at.Format(time.RFC3339), at.Format(time.RFC3339), at.Add(time.Minute).Format(time.RFC3339), src)
		rt.Rate(cat, &ingest.Message{Partition: 0, Offset: int64(i), Time: at, Value: []byte(raw)}, &b.XDRs[i], 0)
	}
	if _, err := store.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	e.must(200, e.admin, "POST", fmt.Sprintf("/v1/rate-tables/%d/rates?mode=replace", table), "code,rate\n44,0.09\n")

	sel := func(extra map[string]any) map[string]any {
		m := map[string]any{"from": "2024-05-01", "to": "2024-05-02"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	client := e.token(RoleClient, 0, own)
	e.must(403, client, "POST", "/v1/rerate-jobs", sel(map[string]any{"dry_run": true}))
	e.must(403, client, "GET", "/v1/rerate-jobs", nil)
	reseller, other := e.token(RoleReseller, r1, 0), e.token(RoleReseller, r2, 0)
	bad := e.must(422, reseller, "POST", "/v1/rerate-jobs", sel(map[string]any{"dry_run": true, "clients": []any{foreign}}))
	if bad["field"] != "clients" {
		t.Errorf("a foreign client: %v", bad)
	}
	e.must(422, reseller, "POST", "/v1/rerate-jobs", sel(nil)) // dry_run is required
	e.must(422, reseller, "POST", "/v1/rerate-jobs", sel(map[string]any{"dry_run": true, "reasons": []string{"duplicate_conflict"}}))

	dry := e.must(201, reseller, "POST", "/v1/rerate-jobs", sel(map[string]any{"dry_run": true}))
	if dry["state"] != "dry_run" || dry["selected"] != json.Number("1") {
		t.Fatalf("the reseller's dry run: %v", dry)
	}
	rows := dry["clients"].([]any)
	if len(rows) != 1 || rows[0].(map[string]any)["client"] != "Own" || rows[0].(map[string]any)["delta"] != "0.03" {
		t.Errorf("the reseller's dry run rows: %v, want Own's alone, delta 0.03", rows)
	}
	id, _ := dry["job"].(json.Number).Int64()
	e.must(404, other, "GET", fmt.Sprintf("/v1/rerate-jobs/%d", id), nil)
	if n := len(e.must(200, other, "GET", "/v1/rerate-jobs", nil)["jobs"].([]any)); n != 0 {
		t.Errorf("another reseller sees %d jobs", n)
	}
	if n := len(e.must(200, e.admin, "GET", "/v1/rerate-jobs", nil)["jobs"].([]any)); n != 1 {
		t.Errorf("admin sees %d jobs, want 1", n)
	}

	done := e.must(201, e.admin, "POST", "/v1/rerate-jobs", sel(map[string]any{"dry_run": false, "clients": []any{"Own", foreign}, "side": "orig"}))
	if done["state"] != "done" || done["changed"] != json.Number("2") {
		t.Fatalf("admin's job: %v", done)
	}
	for _, c := range []struct {
		id   int64
		want string
	}{{own, "-0.09"}, {foreign, "-0.09"}} {
		bal := e.must(200, e.admin, "GET", fmt.Sprintf("/v1/clients/%d/balance", c.id), nil)
		if !decimal.RequireFromString(bal["live"].(string)).Equal(decimal.RequireFromString(c.want)) {
			t.Errorf("client %d live balance %v, want %s", c.id, bal["live"], c.want)
		}
	}
	got := e.must(200, e.admin, "GET", fmt.Sprintf("/v1/rerate-jobs/%s", done["job"]), nil)
	if got["state"] != "done" || got["actor"] == "" || got["topic"] != "cdrs" {
		t.Errorf("GET the job: %v", got)
	}
	resume := fmt.Sprintf("/v1/rerate-jobs/%s/resume", done["job"])
	e.must(422, e.admin, "POST", resume, map[string]any{"current_catalog": "yes"})
	e.must(422, e.admin, "POST", resume, map[string]any{"force": true})
	e.must(409, e.admin, "POST", resume, map[string]any{"current_catalog": true}) // a done job is not resumed
}
