package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

// TestRerateEndToEnd runs `tarifa rerate` as a process against traffic a
// worker rated: after a catalog fix, the dry run moves nothing; the
// confirmed job is SIGKILLed again and again — until one kill lands after
// it wrote a chunk's new xDRs and before it moved their balances — and
// finished by running the same command again, while a worker rates live
// traffic and the switch re-sends the calls the fix makes billable. Every
// balance then equals the test's own computation, to the last decimal, and
// invariant 1 holds.
func TestRerateEndToEnd(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	db, topic := setupPipeline(t)
	ctx := context.Background()
	base := time.Now().UTC().Add(-5 * time.Hour).Truncate(time.Second)
	old := genTrafficFrom(4000, 21, base, 2*time.Second)
	produce(t, kafkaBrokers(), topic, old.msgs)
	w := startWorker(t, bin, db, topic)
	waitConsumed(t, db, topic, len(old.msgs), 90*time.Second, w)
	checkInvariants(t, db, old, 0)
	if _, err := db.PG.Exec(ctx, fixCatalog); err != nil {
		t.Fatal(err)
	}
	// Live traffic from now on is rated by a worker that has the fix.
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(w.stderr.String(), "catalog loaded") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the catalog fix did not reach the worker within 20 s\n%s", w.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	from, to := base.Add(-time.Minute).Format(time.RFC3339), base.Add(3*time.Hour).Format(time.RFC3339)
	rerate := func(mode string) *exec.Cmd {
		cmd := exec.Command(bin, "rerate", "--from", from, "--to", to, "--topic", topic, "--chunk-size", "150", mode, "--format", "json")
		cmd.Env = append(os.Environ(), "TARIFA_PG_DSN="+db.PGDSN, "TARIFA_CLICKHOUSE_DSN="+db.CHDSN)
		return cmd
	}

	out, err := rerate("--dry-run").Output()
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	var dry struct {
		State             string
		Selected, Changed int64
		Clients           []struct {
			ClientID int64 `json:"client_id"`
			Side     string
			Delta    decimal.Decimal
		}
	}
	if err := json.Unmarshal(out, &dry); err != nil || dry.State != "dry_run" || dry.Selected != int64(old.unique) || dry.Changed == 0 {
		t.Fatalf("dry run printed %s (%v)", out, err)
	}
	checkInvariants(t, db, old, 0) // nothing moved

	// Live traffic, and the switch re-sending every call that was a
	// mismatch, while the job runs.
	live := genTrafficFrom(3000, 22, base.Add(4*time.Hour), time.Second)
	sent := make(chan error, 2)
	go func() { sent <- produceErr(kafkaBrokers(), topic, live.msgs) }()
	go func() { sent <- produceErr(kafkaBrokers(), topic, old.mismatched) }()

	// A kill at a random moment, then the kill that matters: the job is
	// held right after it wrote a chunk's new xDRs and moved (uncommitted)
	// their balances — its own progress row is locked under it — and
	// SIGKILLed there.
	cmd := rerate("--yes")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	cmd = rerate("--yes")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	job := waitJobProgress(t, db, 2)
	hold, err := db.PG.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hold.Exec(ctx, `SELECT 1 FROM rerate_jobs WHERE id = $1 FOR UPDATE`, job); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(60 * time.Second)
	for tornChunks(t, db) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the job never wrote a chunk while its progress row was held")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	_ = hold.Rollback(ctx)
	if tornChunks(t, db) == 0 {
		t.Fatal("the kill did not leave a chunk written but not accounted for")
	}
	for range 2 {
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
	}
	out, err = rerate("--yes").Output()
	if err != nil {
		t.Fatalf("the same command again (resume): %v", err)
	}
	var done struct {
		Job      int64
		State    string
		Selected int64
	}
	if err := json.Unmarshal(out, &done); err != nil || done.State != "done" {
		t.Fatalf("resumed job printed %s (%v)", out, err)
	}
	defer func() {
		if t.Failed() {
			jobs, _ := exec.Command(bin, "rerate", "jobs", "--pg-dsn", db.PGDSN, "--clickhouse-dsn", db.CHDSN).Output()
			t.Logf("the job that finished: %.300s\n%s", out, jobs)
			rows, _ := db.CH.Query(ctx, `SELECT setup_time < toDateTime(?) AS old, toString(orig_rate), status, reason, count(), max(version) % 1000
				FROM xdrs FINAL WHERE orig_code = '447' OR reason != '' GROUP BY old, orig_rate, status, reason ORDER BY old, orig_rate`, uint32(base.Add(3*time.Hour).Unix()))
			for rows != nil && rows.Next() {
				var o uint8
				var rate, status, reason string
				var n, mark uint64
				_ = rows.Scan(&o, &rate, &status, &reason, &n, &mark)
				t.Logf("old=%d rate=%s %s %s: %d (version mark %d)", o, rate, status, reason, n, mark)
			}
		}
	}()
	waitConsumed(t, db, topic, len(old.msgs)+len(live.msgs)+len(old.mismatched), 90*time.Second, w)
	w.stop(t)

	// Every old call is priced under the fixed catalog (by the job, or by
	// the worker for a re-sent one — never both), live traffic too.
	for id, v := range live.fixed {
		if id == 1 {
			v = v.Sub(decimal.NewFromInt(100)) // the one payment, counted in old
		}
		old.fixed[id] = old.fixed[id].Add(v)
	}
	checkBooks(t, db)
	for id, want := range old.fixed {
		var live decimal.Decimal
		if err := db.PG.QueryRow(ctx, "SELECT live FROM client_balances WHERE client_id = $1", id).Scan(&live); err != nil {
			t.Fatal(err)
		}
		if !live.Equal(want) {
			t.Errorf("client %d: live balance %s, want %s", id, live, want)
		}
	}
	var rows, distinct, valid uint64
	if err := db.CH.QueryRow(ctx, "SELECT count(), uniqExact(switch, cdr_id), countIf(reason != 'malformed') FROM xdrs FINAL").Scan(&rows, &distinct, &valid); err != nil {
		t.Fatal(err)
	}
	if want := uint64(old.unique + live.unique); rows != distinct || valid != want {
		t.Errorf("xdrs FINAL: %d rows, %d distinct, %d valid; want each CDR once and %d valid", rows, distinct, valid, want)
	}
	jobs, err := exec.Command(bin, "rerate", "jobs", "--format", "json", "--pg-dsn", db.PGDSN, "--clickhouse-dsn", db.CHDSN).Output()
	if err != nil || !strings.Contains(string(jobs), `"state": "done"`) {
		t.Errorf("rerate jobs: %s (%v)", jobs, err)
	}
}

// tornChunks counts the xDRs a job wrote for chunks it has not recorded as
// done: new versions whose balances have not moved.
func tornChunks(t *testing.T, db *sinktest.DB) uint64 {
	t.Helper()
	ctx := context.Background()
	rows, err := db.PG.Query(ctx, `SELECT job_id, chunk FROM rerate_chunks WHERE done_at IS NULL`)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	var pending [][2]int64
	for rows.Next() {
		var j, c int64
		if err := rows.Scan(&j, &c); err != nil {
			t.Fatal(err)
		}
		pending = append(pending, [2]int64{j, c})
	}
	rows.Close()
	for _, p := range pending {
		var k uint64
		if err := db.CH.QueryRow(ctx, `SELECT count() FROM xdrs WHERE version IN (SELECT version FROM rerate_staged WHERE job = ? AND chunk = ?)`,
			uint64(p[0]), uint32(p[1])).Scan(&k); err != nil {
			t.Fatal(err)
		}
		n += k
	}
	return n
}

// waitJobProgress waits until the running rerating job has at least n
// chunks done and returns its id.
func waitJobProgress(t *testing.T, db *sinktest.DB, n int) int64 {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var id, done int64
		err := db.PG.QueryRow(context.Background(), `SELECT j.id, count(c.done_at) FROM rerate_jobs j JOIN rerate_chunks c ON c.job_id = j.id
			WHERE j.state = 'running' GROUP BY j.id`).Scan(&id, &done)
		if err == nil && done >= int64(n) {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("no running job with %d chunks done within 60 s (%v)", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// produceErr is produce for another goroutine than the test's.
func produceErr(brokers, topic string, msgs []kafka.Message) error {
	w := &kafka.Writer{Addr: kafka.TCP(brokers), Topic: topic, Balancer: &kafka.Hash{}, BatchSize: 1000,
		BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return w.WriteMessages(ctx, msgs...)
}
