package main

import (
	"context"
	"encoding/csv"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/sinks"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

// setupClusterPipeline starts a private two-shard ClickHouse cluster with
// ZooKeeper, migrates a private PostgreSQL database of the local stack and
// a ClickHouse database over the cluster with the real binary (`tarifa
// migrate --clickhouse-cluster`), loads the worker tests' catalog and
// returns the databases (CHDSN names shard 1's server) and the DSN of
// shard 2's server.
func setupClusterPipeline(t testing.TB, bin string) (*sinktest.DB, string, string) {
	t.Helper()
	c := sinktest.StartClickHouseCluster(t, 2)
	pgDSN := sinktest.PostgresDSN(t)
	chDSN, chDSN2 := c.WithDatabase(t, 0, "tarifa"), c.WithDatabase(t, 1, "tarifa")
	out, err := exec.Command(bin, "migrate", "--pg-dsn", pgDSN, "--clickhouse-dsn", chDSN, "--clickhouse-cluster", c.Name).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "(cluster tarifa): applied") {
		t.Fatalf("tarifa migrate --clickhouse-cluster: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg, err := sinks.OpenPostgres(ctx, pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	ch, err := sinks.OpenClickHouse(ctx, chDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	if _, err := pg.Exec(ctx, pipelineCatalog); err != nil {
		t.Fatal(err)
	}
	db := &sinktest.DB{PGDSN: pgDSN, CHDSN: chDSN, PG: pg, CH: ch, Name: sinktest.RandomName()}
	topic := "t-cluster-" + db.Name
	t.Cleanup(func() { deleteTopic(kafkaBrokers(), topic) })
	return db, chDSN2, topic
}

// TestWorkersOnAClickHouseCluster runs two workers in one group over a
// two-shard ClickHouse cluster, each inserting through the Distributed
// tables of a different server, kills one mid-stream and restarts it; then
// invariants 1–3 hold on the xdrs FINAL read through the Distributed table,
// and the summary and mismatch reports, read through the other server,
// give every client's revenue and every reason's count to the last decimal.
func TestWorkersOnAClickHouseCluster(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	db, chDSN2, topic := setupClusterPipeline(t, bin)
	ts := genTraffic(6000, 15)
	produce(t, kafkaBrokers(), topic, ts.msgs)
	total := len(ts.msgs)

	a := startWorker(t, bin, db, topic, "--batch-size", "200")
	b := startWorkerEnv(t, bin, db, topic, []string{"TARIFA_CLICKHOUSE_DSN=" + chDSN2}, "--batch-size", "200")
	waitConsumed(t, db, topic, total/3, 90*time.Second, a, b)
	a.kill(t)
	a = startWorker(t, bin, db, topic, "--batch-size", "200")
	waitConsumed(t, db, topic, total, 120*time.Second, a, b)
	a.stop(t)
	b.stop(t)
	if c := consumed(t, db, topic); c != total {
		t.Fatalf("consumed %d messages, want exactly %d", c, total)
	}
	checkInvariants(t, db, ts, 0)

	// Both shards hold xDRs: the workers' inserts were spread.
	for i, dsn := range []string{db.CHDSN, chDSN2} {
		conn, err := sinks.OpenClickHouse(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		err = conn.QueryRow(context.Background(), "SELECT count() FROM xdrs_local").Scan(&n)
		conn.Close()
		if err != nil || n == 0 {
			t.Errorf("shard %d holds %d xDRs (err %v); want a share of them", i+1, n, err)
		}
	}

	// The reports, through the other server.
	report := func(args ...string) [][]string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"report"}, append(args, "--from", "2024-03-01", "--to", "2024-04-01",
			"--format", "csv", "--clickhouse-dsn", chDSN2, "--pg-dsn", db.PGDSN)...)...).Output()
		if err != nil {
			t.Fatalf("tarifa report %v: %v", args, err)
		}
		rows, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
		if err != nil {
			t.Fatalf("tarifa report %v: %v\n%s", args, err, out)
		}
		return rows
	}
	revenue := map[string]decimal.Decimal{}
	summary := report("summary", "--by", "orig_client")
	col := slices.Index(summary[0], "revenue")
	for _, r := range summary[1:] {
		revenue[r[0]] = decimal.RequireFromString(r[col])
	}
	paid := map[int64]decimal.Decimal{1: decimal.NewFromInt(100)}
	for client, name := range map[int64]string{1: "Customer A", 2: "Customer B"} {
		if want := paid[client].Sub(ts.balances[client]); !revenue[name].Equal(want) {
			t.Errorf("summary report through shard 2: %s revenue %s, want %s (what the test data bills)", name, revenue[name], want)
		}
	}
	calls := map[string]int{}
	for _, r := range report("mismatches")[1:] {
		n, _ := strconv.Atoi(r[2])
		calls[r[0]+" "+r[1]] = n
	}
	// Malformed lines in the period: those whose times could be read.
	timed := 0
	for _, m := range ts.msgs {
		if strings.HasPrefix(string(m.Value), `{"id":"bad-`) {
			timed++
		}
	}
	for reason, want := range map[string]int{"orig unknown_account": ts.reasons["unknown_account"], "orig inactive_client": ts.reasons["inactive_client"],
		"orig malformed": timed, "term term_unknown_destination": ts.term["term_unknown_destination"]} {
		if calls[reason] != want {
			t.Errorf("mismatch report through shard 2: %s %d calls, want %d", reason, calls[reason], want)
		}
	}
}

// BenchmarkScaleOut measures TARIFA_BENCH_WORKERS (default 1) worker
// processes in one group over TARIFA_BENCH_CDRS (default 300,000) CDRs
// already in the broker, against the local stack's ClickHouse or, with
// TARIFA_BENCH_CLUSTER=1, a private two-shard cluster (each worker on its
// own server's Distributed tables); PostgreSQL is always the local stack's.
// It reports CDRs/s and the seconds every commit phase took, summed over
// the workers:
//
//	go test -run '^$' -bench ScaleOut -benchtime 1x ./cmd/tarifa
func BenchmarkScaleOut(b *testing.B) {
	n, workers := 300_000, 1
	if v, err := strconv.Atoi(os.Getenv("TARIFA_BENCH_CDRS")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("TARIFA_BENCH_WORKERS")); err == nil && v > 0 {
		workers = v
	}
	bin := buildTarifa(b)
	for i := 0; i < b.N; i++ {
		var db *sinktest.DB
		var topic string
		dsns := []string{""}
		if os.Getenv("TARIFA_BENCH_CLUSTER") == "1" {
			var dsn2 string
			db, dsn2, topic = setupClusterPipeline(b, bin)
			dsns = []string{db.CHDSN, dsn2}
		} else {
			db, topic = setupPipeline(b)
			dsns[0] = db.CHDSN
		}
		ts := genTrafficFrom(n, uint64(i+300), time.Now().Add(-30*time.Hour).Truncate(time.Second), 100*time.Millisecond)
		produce(b, kafkaBrokers(), topic, ts.msgs)
		total := len(ts.msgs)
		ts.msgs = nil
		b.ResetTimer()
		start := time.Now()
		var procs []*workerProc
		var addrs []string
		for w := 0; w < workers; w++ {
			addr := freeAddr(b)
			addrs = append(addrs, addr)
			procs = append(procs, startWorkerEnv(b, bin, db, topic, []string{"TARIFA_CLICKHOUSE_DSN=" + dsns[w%len(dsns)]},
				"--batch-size", "50000", "--batch-wait", "100ms", "--metrics-addr", addr))
		}
		waitConsumed(b, db, topic, total, 30*time.Minute, procs...)
		took := time.Since(start)
		b.StopTimer()
		for _, phase := range []string{"lock", "dedupe", "clickhouse", "balances", "commit"} {
			sum := 0.0
			for _, addr := range addrs {
				sum += metricSum(b, addr, `tarifa_commit_phase_seconds_sum{phase="`+phase+`"}`)
			}
			b.ReportMetric(sum, phase+"-s")
		}
		cpu := 0.0
		for _, addr := range addrs {
			cpu += metricSum(b, addr, "process_cpu_seconds_total")
		}
		b.ReportMetric(cpu, "worker-cpu-s")
		for _, p := range procs {
			p.stop(b)
		}
		// What the traffic occupies, for sizing: compressed ClickHouse bytes
		// per row (before background merges) and PostgreSQL bytes per
		// dedupe key, indexes included.
		if len(dsns) == 1 {
			for _, table := range []string{"xdrs", "cdrs_raw"} {
				var rows, bytes uint64
				if err := db.CH.QueryRow(context.Background(), "SELECT sum(rows), sum(data_compressed_bytes) FROM system.parts WHERE active AND database = currentDatabase() AND table = ?", table).Scan(&rows, &bytes); err == nil && rows > 0 {
					b.ReportMetric(float64(bytes)/float64(rows), "B/"+table+"-row")
				}
			}
		}
		var keyBytes float64
		if err := db.PG.QueryRow(context.Background(), "SELECT pg_total_relation_size('cdr_keys')::float8 / greatest(count(*), 1) FROM cdr_keys").Scan(&keyBytes); err == nil {
			b.ReportMetric(keyBytes, "B/dedupe-key")
		}
		b.ReportMetric(float64(total)/took.Seconds(), "cdrs/s")
		b.ReportMetric(took.Seconds(), "s/run")
	}
}
