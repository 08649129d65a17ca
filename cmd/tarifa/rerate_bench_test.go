package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

// BenchmarkRerate measures rerating jobs on TARIFA_BENCH_CDRS (default
// 1,000,000) CDRs already rated by a worker, after a catalog fix that
// changes most of them (a mobile rate, an account that was missing, a
// client that was stopped): the dry run, then the confirmed job, each as
// a `tarifa rerate` process from start to exit, with its CDRs per second
// and its peak RSS; then it checks every balance against xdrs FINAL. Run it
// with `make bench-rerate` (TARIFA_BENCH_CHUNK passes --chunk-size).
func BenchmarkRerate(b *testing.B) {
	n := 1_000_000
	if v, err := atoiEnv("TARIFA_BENCH_CDRS"); err == nil && v > 0 {
		n = v
	}
	bin := buildTarifa(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		db, topic := setupPipeline(b)
		from := time.Now().Add(-30 * time.Hour).Truncate(time.Hour)
		// n CDRs over the 28 hours after from, whatever n: all of them
		// in the past, all of them in the job's selection.
		ts := genTrafficFrom(n, uint64(i+300), from, 28*time.Hour/time.Duration(n))
		produce(b, kafkaBrokers(), topic, ts.msgs)
		total := len(ts.msgs)
		ts.msgs = nil
		p := startWorker(b, bin, db, topic, "--batch-size", "50000", "--batch-wait", "100ms")
		waitConsumed(b, db, topic, total, 30*time.Minute, p)
		p.stop(b)
		if _, err := db.PG.Exec(ctx, `UPDATE rates SET rate = 0.06 WHERE rate_table_id = 1 AND code = '447';
			INSERT INTO accounts (client_id, kind, ident) VALUES (2, 'ip', '10.9.9.9');
			UPDATE clients SET status = 'active' WHERE id = 3`); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		run := func(mode string) (took time.Duration, rssMB float64, selected int64) {
			cmd := exec.Command(bin, "rerate", "--from", from.Format(time.RFC3339), "--to", time.Now().Add(time.Hour).Format(time.RFC3339),
				"--topic", topic, mode, "--format", "json")
			if size := os.Getenv("TARIFA_BENCH_CHUNK"); size != "" {
				cmd.Args = append(cmd.Args, "--chunk-size", size)
			}
			if prof := os.Getenv("TARIFA_BENCH_PROFILE"); prof != "" {
				cmd.Args = append(cmd.Args, "--cpu-profile", prof+mode)
			}
			cmd.Env = append(os.Environ(), "TARIFA_PG_DSN="+db.PGDSN, "TARIFA_CLICKHOUSE_DSN="+db.CHDSN)
			cmd.Stderr = os.Stderr
			var out bytes.Buffer
			cmd.Stdout = &out
			start := time.Now()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			// The peak RSS is read from /proc while the process runs: the
			// rusage of a child started with vfork carries the parent's
			// high-water mark (this benchmark's, with its million messages).
			peak := make(chan int64, 1)
			stop := make(chan struct{})
			go func() {
				var kb int64
				t := time.NewTicker(20 * time.Millisecond)
				defer t.Stop()
				for {
					if v := vmHWM(cmd.Process.Pid); v > kb {
						kb = v
					}
					select {
					case <-stop:
						peak <- kb
						return
					case <-t.C:
					}
				}
			}()
			err := cmd.Wait()
			took = time.Since(start)
			close(stop)
			kb := <-peak
			if err != nil {
				b.Fatalf("tarifa rerate %s: %v", mode, err)
			}
			var j struct{ Selected int64 }
			if err := json.Unmarshal(out.Bytes(), &j); err != nil {
				b.Fatal(err)
			}
			return took, float64(kb) / 1024, j.Selected
		}
		dryTook, dryRSS, sel := run("--dry-run")
		yesTook, yesRSS, _ := run("--yes")
		b.StopTimer()
		b.ReportMetric(float64(sel)/dryTook.Seconds(), "dry-cdrs/s")
		b.ReportMetric(float64(sel)/yesTook.Seconds(), "yes-cdrs/s")
		b.ReportMetric(dryRSS, "dry-rss-MB")
		b.ReportMetric(yesRSS, "yes-rss-MB")
		b.ReportMetric(float64(sel), "cdrs")
		checkBooks(b, db)
	}
}

// checkBooks asserts invariant 1 for every client: its live balance is its
// payments and adjustments − its orig costs + its term costs in xdrs FINAL.
func checkBooks(t testing.TB, db *sinktest.DB) {
	t.Helper()
	ctx := context.Background()
	rows, err := db.PG.Query(ctx, `SELECT c.id, coalesce(b.live, 0), coalesce((SELECT sum(CASE kind WHEN 'charge' THEN -amount ELSE amount END)
		FROM transactions WHERE client_id = c.id), 0) FROM clients c LEFT JOIN balances b ON b.client_id = c.id`)
	if err != nil {
		t.Fatal(err)
	}
	type books struct{ live, paid decimal.Decimal }
	want := map[int64]books{}
	for rows.Next() {
		var id int64
		var bk books
		if err := rows.Scan(&id, &bk.live, &bk.paid); err != nil {
			t.Fatal(err)
		}
		want[id] = bk
	}
	rows.Close()
	for id, bk := range want {
		var orig, term decimal.Decimal
		if err := db.CH.QueryRow(ctx, `SELECT sumIf(orig_cost, orig_client_id = ? AND status = 'rated'),
			sumIf(term_cost, term_client_id = ? AND status = 'rated' AND term_reason = '') FROM xdrs FINAL`, uint64(id), uint64(id)).Scan(&orig, &term); err != nil {
			t.Fatal(err)
		}
		if got := bk.paid.Sub(orig).Add(term); !got.Equal(bk.live) {
			t.Errorf("client %d: live balance %s, payments − orig + term in xdrs FINAL %s", id, bk.live, got)
		}
	}
}

func atoiEnv(name string) (int, error) { return strconv.Atoi(os.Getenv(name)) }

// vmHWM is the peak resident set of process pid in KiB (0 once it is gone).
func vmHWM(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
