package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkWorkerEndToEnd measures the whole pipeline: CDRs per second from
// the worker's start to the last committed batch, for TARIFA_BENCH_CDRS
// (default 1,000,000) CDRs set up over the last day already in the broker,
// with one worker process and the broker, PostgreSQL and ClickHouse of the
// local stack on this machine. Beside it, the raw read rate of the same
// topic by kcat to /dev/null in the same run, and the ratio of the two
// (figures drift from machine to machine; the ratio and the CPU seconds
// per million CDRs of each process — worker, ClickHouse, PostgreSQL,
// broker — do not). Run it with `make bench-e2e` (-benchtime 1x).
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
		kcatRate := kcatReadRate(b, topic, total)
		before := stackCPU(b)
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
		workerCPU := metricSum(b, addr, "process_cpu_seconds_total")
		b.ReportMetric(workerCPU, "worker-cpu-s")
		after := stackCPU(b)
		perM := float64(total) / 1e6
		b.ReportMetric(workerCPU/perM, "worker-cpu-s/1M")
		for _, name := range []string{"clickhouse", "postgres", "broker"} {
			b.ReportMetric((after[name]-before[name])/perM, name+"-cpu-s/1M")
		}
		b.ReportMetric(kcatRate, "kcat-msgs/s")
		b.ReportMetric(float64(total)/took.Seconds()/kcatRate, "ratio")
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

// kcatReadRate reads topic from its start to its end with kcat, to
// /dev/null, and returns the messages it read per second: the raw read
// rate the pipeline's figure is compared with.
func kcatReadRate(b *testing.B, topic string, total int) float64 {
	b.Helper()
	start := time.Now()
	cmd := exec.Command("kcat", "-C", "-b", kafkaBrokers(), "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o\n")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("kcat: %v (the local stack installs it)", err)
	}
	n, _ := io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("kcat: %v", err)
	}
	if n == 0 {
		b.Fatal("kcat read nothing")
	}
	return float64(total) / time.Since(start).Seconds()
}

// stackCPU returns the CPU seconds used so far by the local stack's
// ClickHouse, PostgreSQL (the postmaster, its live backends and those that
// ended) and dev broker, read from /proc by the PIDs the stack records.
func stackCPU(b *testing.B) map[string]float64 {
	b.Helper()
	dir := os.Getenv("TARIFA_STACK_DIR")
	if dir == "" {
		dir = "/var/lib/tarifa-stack"
	}
	pid := func(name string) int {
		raw, err := os.ReadFile(filepath.Join(dir, "run", name+".pid"))
		if err != nil {
			b.Fatalf("stack pid %s: %v", name, err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
		return n
	}
	tick := 100.0 // USER_HZ on Linux
	times := func(p int, children bool) float64 {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			return 0
		}
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		sum := 0.0
		for i, field := range f[11:15] { // utime stime cutime cstime
			if i >= 2 && !children {
				break
			}
			v, _ := strconv.ParseFloat(field, 64)
			sum += v
		}
		return sum / tick
	}
	out := map[string]float64{"clickhouse": times(pid("clickhouse"), false), "broker": times(pid("broker"), false)}
	pm := pid("pg")
	pg := times(pm, true)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if ppid, _ := strconv.Atoi(f[1]); ppid == pm {
			pg += times(p, false)
		}
	}
	out["postgres"] = pg
	return out
}
