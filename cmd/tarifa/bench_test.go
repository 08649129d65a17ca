package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarifa/tarifa/sinks/sinktest"
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
//
// The stack's servers are shared by every clone on the machine, so their
// CPU seconds count whatever other tests do meanwhile. With
// TARIFA_BENCH_PRIVATE=1 the run gets a PostgreSQL, a ClickHouse and a dev
// broker of its own, configured as the stack's (deploy/local), whose CPU
// seconds are the pipeline's alone; TARIFA_BENCH_PG_CONF (postgresql.conf
// lines, separated by ';') and TARIFA_BENCH_CH_PROFILE (XML of ClickHouse's
// default profile) add settings to them, to measure a setting before the
// stack takes it; TARIFA_BENCH_STOP_MERGES=1 stops the private ClickHouse's
// background merges, so that its CPU seconds are the inserts' alone.
// TARIFA_BENCH_BIN runs that tarifa binary instead of one
// built from this tree, to compare two builds in turns.
func BenchmarkWorkerEndToEnd(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("TARIFA_BENCH_CDRS")); err == nil && v > 0 {
		n = v
	}
	bin := os.Getenv("TARIFA_BENCH_BIN")
	if bin == "" {
		bin = buildTarifa(b)
	}
	var private *privateStack
	if os.Getenv("TARIFA_BENCH_PRIVATE") != "" {
		private = startPrivateStack(b)
	}
	for i := 0; i < b.N; i++ {
		brokers, pids := kafkaBrokers(), stackPIDs
		var db *sinktest.DB
		var topic string
		if private != nil {
			db, topic = private.pipeline(b)
			brokers, pids = private.brokers, private.pids
		} else {
			db, topic = setupPipeline(b)
		}
		// Set up over the last day or so, as live traffic is.
		ts := genTrafficFrom(n, uint64(i+100), time.Now().Add(-30*time.Hour).Truncate(time.Second), 100*time.Millisecond)
		produce(b, brokers, topic, ts.msgs)
		total := len(ts.msgs)
		ts.msgs = nil
		kcatRate := kcatReadRate(b, brokers, topic, total)
		before := stackCPU(pids(b))
		if private != nil && os.Getenv("TARIFA_BENCH_STOP_MERGES") != "" {
			if err := db.CH.Exec(context.Background(), "SYSTEM STOP MERGES"); err != nil {
				b.Fatal(err)
			}
		}
		pgBefore := pgWork(b, db)
		chBefore := chWork(b, db)
		b.ResetTimer()
		start := time.Now()
		addr := freeAddr(b)
		p := startWorkerEnv(b, bin, db, topic, []string{"TARIFA_KAFKA_BROKERS=" + brokers},
			"--batch-size", envOr("TARIFA_BENCH_BATCH", "50000"), "--batch-wait", "100ms", "--metrics-addr", addr)
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
		b.ReportMetric(metricSum(b, addr, "tarifa_batch_size_count"), "batches")
		workerCPU := metricSum(b, addr, "process_cpu_seconds_total")
		b.ReportMetric(workerCPU, "worker-cpu-s")
		after := stackCPU(pids(b))
		chAfter := chWork(b, db)
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
		// After the stop: a backend reports its counters when it ends.
		pgAfter := pgWork(b, db)
		b.ReportMetric((pgAfter.blocks-pgBefore.blocks)/float64(total), "pg-blocks/cdr")
		b.ReportMetric(pgAfter.rollbacks-pgBefore.rollbacks, "pg-rollbacks")
		if private != nil { // counters of the whole server: only the pipeline's on a private one
			b.ReportMetric((pgAfter.wal-pgBefore.wal)/float64(total), "pg-wal-bytes/cdr")
			b.ReportMetric(chAfter.parts-chBefore.parts, "ch-parts")
			b.ReportMetric(chAfter.sorted-chBefore.sorted, "ch-parts-in-order")
			b.ReportMetric((chAfter.written-chBefore.written)/float64(total), "ch-written-bytes/cdr")
			b.ReportMetric((chAfter.merged-chBefore.merged)/float64(total), "ch-merged-bytes/cdr")
		}
		if os.Getenv("TARIFA_BENCH_LOG") != "" {
			os.WriteFile(os.Getenv("TARIFA_BENCH_LOG"), p.stderr.Bytes(), 0o644)
		}
		b.ReportMetric(float64(total)/took.Seconds(), "cdrs/s")
		b.ReportMetric(took.Seconds(), "s/run")
	}
}

// privateStack is a PostgreSQL, a ClickHouse and a dev broker of one
// benchmark, configured as the local stack's.
type privateStack struct {
	pg, ch  *sinktest.Server
	broker  *exec.Cmd
	brokers string
	runs    int
}

// stackProfile is the default settings profile of the local stack's
// ClickHouse (deploy/local/stack.sh, users.xml).
const stackProfile = `<max_memory_usage>4000000000</max_memory_usage><background_pool_size>4</background_pool_size>`

// stackPGEnv is the environment the local stack starts PostgreSQL with
// (deploy/local/stack.sh: glibc keeps the memory of large statements).
var stackPGEnv = []string{"MALLOC_MMAP_THRESHOLD_=268435456", "MALLOC_TRIM_THRESHOLD_=536870912", "MALLOC_TOP_PAD_=67108864"}

func startPrivateStack(b *testing.B) *privateStack {
	b.Helper()
	conf, err := os.ReadFile("../../deploy/local/postgresql.conf")
	if err != nil {
		b.Fatal(err)
	}
	extra := strings.ReplaceAll(os.Getenv("TARIFA_BENCH_PG_CONF"), ";", "\n")
	s := &privateStack{
		pg: sinktest.StartPostgresWith(b, string(conf)+"\n"+extra+"\n", stackPGEnv...),
		ch: sinktest.StartClickHouseIn(b, sinktest.JournaledDir(b), stackProfile+os.Getenv("TARIFA_BENCH_CH_PROFILE")),
	}
	brokerBin := filepath.Join(b.TempDir(), "devbroker")
	if out, err := exec.Command("go", "build", "-o", brokerBin, "../devbroker").CombinedOutput(); err != nil {
		b.Fatalf("build devbroker: %v\n%s", err, out)
	}
	s.brokers = freeAddr(b)
	_, port, _ := net.SplitHostPort(s.brokers)
	s.broker = exec.Command(brokerBin, "--port", port, "--data-dir", b.TempDir())
	if err := s.broker.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = s.broker.Process.Signal(syscall.SIGTERM)
		_ = s.broker.Wait()
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", s.brokers); err == nil {
			c.Close()
			break
		}
		if i == 100 {
			b.Fatalf("private broker did not listen on %s", s.brokers)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// pipeline returns fresh databases on the private servers, with the
// pipeline tests' catalog, and a fresh topic name.
func (s *privateStack) pipeline(b *testing.B) (*sinktest.DB, string) {
	b.Helper()
	s.runs++
	name := "bench" + strconv.Itoa(s.runs)
	db := sinktest.Open(b, withDB(b, s.pg.DSN, name), withDB(b, s.ch.DSN, name))
	if _, err := db.PG.Exec(context.Background(), pipelineCatalog); err != nil {
		b.Fatal(err)
	}
	return db, "cdrs-" + name
}

func (s *privateStack) pids(testing.TB) map[string]int {
	return map[string]int{"clickhouse": s.ch.PID(), "postgres": s.pg.PID(), "broker": s.broker.Process.Pid}
}

func withDB(t testing.TB, dsn, name string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// pgCounters are PostgreSQL's counts of the work done for one database:
// buffers read or found in shared buffers, transactions rolled back, and
// WAL bytes written (by the whole server). Unlike CPU seconds they do not
// depend on what else the machine runs.
type pgCounters struct{ blocks, rollbacks, wal float64 }

func pgWork(b *testing.B, db *sinktest.DB) pgCounters {
	b.Helper()
	var c pgCounters
	if err := db.PG.QueryRow(context.Background(), `SELECT (blks_hit + blks_read)::float8, xact_rollback::float8,
		(SELECT wal_bytes::float8 FROM pg_stat_wal) FROM pg_stat_database WHERE datname = current_database()`).Scan(&c.blocks, &c.rollbacks, &c.wal); err != nil {
		b.Fatal(err)
	}
	return c
}

// chCounters are ClickHouse's counts (system.events, the whole server) of
// the parts its inserts wrote, those whose rows came in the table's order
// (which it then need not sort), the bytes they wrote (uncompressed) and the
// bytes background merges rewrote so far.
type chCounters struct{ parts, sorted, written, merged float64 }

func chWork(b *testing.B, db *sinktest.DB) chCounters {
	b.Helper()
	rows, err := db.CH.Query(context.Background(), `SELECT event, value FROM system.events
		WHERE event IN ('MergeTreeDataWriterBlocks', 'MergeTreeDataWriterBlocksAlreadySorted', 'MergeTreeDataWriterUncompressedBytes',
		  'MergedUncompressedBytes')`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var c chCounters
	for rows.Next() {
		var name string
		var v uint64
		if err := rows.Scan(&name, &v); err != nil {
			b.Fatal(err)
		}
		switch name {
		case "MergeTreeDataWriterBlocks":
			c.parts = float64(v)
		case "MergeTreeDataWriterBlocksAlreadySorted":
			c.sorted = float64(v)
		case "MergeTreeDataWriterUncompressedBytes":
			c.written = float64(v)
		case "MergedUncompressedBytes":
			c.merged = float64(v)
		}
	}
	return c
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
func kcatReadRate(b *testing.B, brokers, topic string, total int) float64 {
	b.Helper()
	start := time.Now()
	cmd := exec.Command("kcat", "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o\n")
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

// stackPIDs returns the PIDs the local stack recorded for its ClickHouse,
// PostgreSQL (postmaster) and dev broker.
func stackPIDs(t testing.TB) map[string]int {
	t.Helper()
	dir := os.Getenv("TARIFA_STACK_DIR")
	if dir == "" {
		dir = "/var/lib/tarifa-stack"
	}
	out := map[string]int{}
	for name, file := range map[string]string{"clickhouse": "clickhouse", "postgres": "pg", "broker": "broker"} {
		raw, err := os.ReadFile(filepath.Join(dir, "run", file+".pid"))
		if err != nil {
			t.Fatalf("stack pid %s: %v", name, err)
		}
		out[name], _ = strconv.Atoi(strings.TrimSpace(string(raw)))
	}
	return out
}

// stackCPU returns the CPU seconds used so far by the processes of pids:
// ClickHouse, PostgreSQL (the postmaster, its live backends and those that
// ended) and the dev broker, read from /proc.
func stackCPU(pids map[string]int) map[string]float64 {
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
	out := map[string]float64{"clickhouse": times(pids["clickhouse"], false), "broker": times(pids["broker"], false)}
	pm := pids["postgres"]
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
