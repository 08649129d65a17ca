package main

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkWorkerEndToEnd measures the whole pipeline: CDRs per second from
// the first message to the last committed batch, for TARIFA_BENCH_CDRS
// (default 1,000,000) CDRs already in the broker, with one worker process and
// the broker, PostgreSQL and ClickHouse of the local stack on this machine.
// Run it with `make bench-e2e` (-benchtime 1x).
func BenchmarkWorkerEndToEnd(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("TARIFA_BENCH_CDRS")); err == nil && v > 0 {
		n = v
	}
	bin := buildTarifa(b)
	for i := 0; i < b.N; i++ {
		db, topic := setupPipeline(b)
		// Set up over the last day or so, as live traffic is.
		ts := genTrafficFrom(n, uint64(i+100), time.Now().Add(-30*time.Hour).Truncate(time.Second), 100*time.Millisecond)
		produce(b, kafkaBrokers(), topic, ts.msgs)
		total := len(ts.msgs)
		ts.msgs = nil
		b.ResetTimer()
		start := time.Now()
		addr := freeAddr(b)
		p := startWorker(b, bin, db, topic, "--batch-size", envOr("TARIFA_BENCH_BATCH", "50000"), "--batch-wait", "100ms", "--metrics-addr", addr)
		if file := os.Getenv("TARIFA_BENCH_PROFILE"); file != "" {
			go profileWorker(b, addr, file)
		}
		waitConsumed(b, db, topic, total, 30*time.Minute, p)
		took := time.Since(start)
		b.StopTimer()
		for _, phase := range []string{"lock", "dedupe", "clickhouse", "balances", "commit"} {
			sum := metricSum(b, addr, `tarifa_commit_phase_seconds_sum{phase="`+phase+`"}`)
			b.ReportMetric(sum, phase+"-s")
		}
		b.ReportMetric(metricSum(b, addr, "process_cpu_seconds_total"), "worker-cpu-s")
		if file := os.Getenv("TARIFA_BENCH_ALLOCS"); file != "" {
			saveURL(b, "http://"+addr+"/debug/pprof/allocs", file)
		}
		p.stop(b)
		if os.Getenv("TARIFA_BENCH_LOG") != "" {
			os.WriteFile(os.Getenv("TARIFA_BENCH_LOG"), p.stderr.Bytes(), 0o644)
		}
		b.ReportMetric(float64(total)/took.Seconds(), "cdrs/s")
		b.ReportMetric(took.Seconds(), "s/run")
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// profileWorker saves a 5-second CPU profile of the worker, taken 1 s into
// the run (a run takes about 8 s), to file (TARIFA_BENCH_PROFILE=cpu.prof
// make bench-e2e).
func profileWorker(b *testing.B, addr, file string) {
	time.Sleep(time.Second)
	saveURL(b, "http://"+addr+"/debug/pprof/profile?seconds=5", file)
}

// saveURL saves the body of url to file; a failure is logged, not fatal.
func saveURL(b *testing.B, url, file string) {
	resp, err := http.Get(url)
	if err != nil {
		b.Logf("profile: %v", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		b.Logf("profile: %v", err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}
