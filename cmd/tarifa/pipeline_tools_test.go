package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
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

// TestCatalogGenReport runs the operator tools in the order of a demo:
// catalog apply (twice), gen from that catalog, and the reports over xDRs.
func TestCatalogGenReport(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	ctx := context.Background()
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if err := commands()[args[0]].run(ctx, args[1:], &out, &errb); err != nil {
			t.Fatalf("tarifa %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.String()
	}

	yml := filepath.Join("..", "..", "catalog", "testdata", "catalog.good.yaml")
	if out := run("catalog", "apply", "-f", yml, "--pg-dsn", db.PGDSN); !strings.Contains(out, "clients        3 created") {
		t.Errorf("first apply:\n%s", out)
	}
	if out := run("catalog", "apply", "-f", yml, "--pg-dsn", db.PGDSN); !strings.Contains(out, "nothing changed") {
		t.Errorf("second apply:\n%s", out)
	}

	file := filepath.Join(t.TempDir(), "cdrs.jsonl")
	out := run("gen", "--pg-dsn", db.PGDSN, "--count", "3000", "--seed", "9", "--start", "2026-03-01", "--span", "1h", "--out", file)
	if !strings.HasPrefix(out, "generated 3000 CDRs (") {
		t.Errorf("gen summary: %q", out)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var c ingest.CDR
	lines, good, prefixed := 0, 0, 0
	for sc.Scan() {
		lines++
		if ingest.Decode(sc.Bytes(), &c) == nil {
			good++
			if strings.HasPrefix(c.Dst, "7788#") {
				prefixed++
			}
		}
	}
	if lines != 3000 || good < 2980 || prefixed == 0 {
		t.Errorf("gen wrote %d lines, %d decode, %d with the tech prefix", lines, good, prefixed)
	}

	var clientA int64
	if err := db.PG.QueryRow(ctx, "SELECT id FROM clients WHERE name = 'Customer A'").Scan(&clientA); err != nil {
		t.Fatal(err)
	}
	b, err := db.CH.PrepareBatch(ctx, `INSERT INTO xdrs (cdr_id, switch, event_time, setup_time, connect_time, disconnect_time,
		duration_ms, status, reason, orig_client_id, orig_code_name, orig_billed_seconds, orig_cost, term_cost, version)`)
	if err != nil {
		t.Fatal(err)
	}
	ev := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, x := range []struct {
		id, status, reason, name string
		dur                      uint64
		billed                   uint32
		cost, term               string
	}{
		{"a1", "rated", "", "United Kingdom - Mobile", 61000, 120, "0.200000", "0.100000"},
		{"a2", "rated", "", "United Kingdom - Mobile", 0, 0, "0", "0"},
		{"a3", "rated", "", "United Kingdom", 30000, 30, "0.010000", "0.004000"},
		{"m1", "mismatch", "unknown_destination", "", 7000, 0, "0", "0"},
	} {
		var connect *time.Time
		if x.dur > 0 {
			connect = &ev
		}
		if err := b.Append(x.id, "sw1", ev, ev, connect, ev, x.dur, x.status, x.reason, uint64(clientA), x.name, x.billed,
			decimal.RequireFromString(x.cost), decimal.RequireFromString(x.term), uint64(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	// Written straight into ClickHouse, so marked as the store's commit
	// marks what it writes (the rollups read no hour nobody marked).
	tx, err := db.PG.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sinks.MarkRollupHours(ctx, tx, []rater.XDR{{CDR: ingest.CDR{SetupTime: ev}}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	got := run("report", "summary", "--from", "2026-03-01", "--to", "2026-03-02", "--tz", "Europe/London",
		"--by", "orig_client,code_name", "--clickhouse-dsn", db.CHDSN, "--pg-dsn", db.PGDSN)
	want := `Summary of rated calls, 2026-03-01 00:00 to 2026-03-02 00:00 (Europe/London), event time in [from, to)
Mismatched calls are not here: see the mismatches report. Money is per currency (orig_currency for revenue, term_currency for cost); profit and margin only where both are the same. Read from the rollups of 0 setup hours and xdrs FINAL for 1 more.

orig_client  code_name                orig_currency  term_currency  calls  answered  asr_pct  acd_s  minutes   revenue      cost    profit  margin_pct
Customer A   United Kingdom                                             1         1   100.00   30.0     0.50  0.010000  0.004000  0.006000       60.00
Customer A   United Kingdom - Mobile                                    2         1    50.00   61.0     2.00  0.200000  0.100000  0.100000       50.00
total                                                                   3         2    66.67   45.5     2.50  0.210000  0.104000  0.106000       50.48
`
	if got != want {
		t.Errorf("summary table:\n%s\nwant:\n%s", got, want)
	}
	got = run("report", "summary", "--from", "2026-03-01T00:00:00Z", "--to", "2026-03-02T00:00:00Z", "--by", "day", "--format", "csv",
		"--clickhouse-dsn", db.CHDSN, "--pg-dsn", db.PGDSN)
	want = "day,orig_currency,term_currency,calls,answered,asr_pct,acd_s,minutes,revenue,cost,profit,margin_pct\n2026-03-01,,,3,2,66.67,45.5,2.50,0.210000,0.104000,0.106000,50.48\n"
	if got != want {
		t.Errorf("summary csv:\n%s\nwant:\n%s", got, want)
	}
	got = run("report", "mismatches", "--from", "2026-03-01", "--to", "2026-03-02", "--format", "csv", "--clickhouse-dsn", db.CHDSN, "--pg-dsn", db.PGDSN)
	want = "side,reason,calls,duration_s,examples,numbers,detail\norig,unknown_destination,1,7.000,m1,,\nterm,no_term_leg,3,91.000,a1 a2 a3,\"  \",\n"
	if got != want {
		t.Errorf("mismatches csv:\n%s\nwant:\n%s", got, want)
	}
}
