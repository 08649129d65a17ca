package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

// get fetches http://addr/path and returns the status code and body; code
// is 0 while nothing listens.
func get(addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestWorkerReadyzWhileServersAreDown starts a worker while its PostgreSQL
// is down: /healthz, /readyz and /metrics answer from the start, /readyz
// with 503 and the reason, and every log line is a JSON object with
// TARIFA_LOG_FORMAT=json. When PostgreSQL comes up the worker becomes ready.
func TestWorkerReadyzWhileServersAreDown(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	pgSrv := sinktest.StartPostgres(t)
	db := sinktest.Open(t, pgSrv.DSN, sinktest.ClickHouseDSN(t))
	if _, err := db.PG.Exec(context.Background(), pipelineCatalog); err != nil {
		t.Fatal(err)
	}
	pgSrv.Stop()
	topic := "t-readyz-" + sinktest.RandomName()
	t.Cleanup(func() { deleteTopic(kafkaBrokers(), topic) })

	addr := freeAddr(t)
	p := startWorkerEnv(t, bin, db, topic, []string{"TARIFA_LOG_FORMAT=json"}, "--metrics-addr", addr, "--max-backoff", "1s")
	deadline := time.Now().Add(30 * time.Second)
	var code int
	var body string
	for time.Now().Before(deadline) {
		if code, body = get(addr, "/readyz"); strings.Contains(body, "postgres: ") {
			break
		}
		if code == http.StatusOK {
			t.Fatalf("/readyz answered 200 while PostgreSQL is down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready: postgres: ") {
		t.Fatalf("/readyz while PostgreSQL is down: %d %q, want 503 \"not ready: postgres: …\"\n%s", code, body, p.stderr)
	}
	if code, body := get(addr, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while PostgreSQL is down: %d %q, want 200 (the process is alive)", code, body)
	}
	_, metrics := get(addr, "/metrics")
	for _, want := range []string{"tarifa_worker_ready 0", `tarifa_build_info{goversion="go`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics while PostgreSQL is down lacks %q", want)
		}
	}

	pgSrv.Start(t)
	waitReady(t, addr, true, 60*time.Second, p)
	produce(t, kafkaBrokers(), topic, []kafka.Message{{Key: []byte("c1"), Value: []byte(`{"id":"c1","switch":"sw1","setup_time":"2024-03-10T12:00:00Z",` +
		`"connect_time":"2024-03-10T12:00:05Z","disconnect_time":"2024-03-10T12:01:05Z","src_ip":"10.0.0.1","dst":"442071234567"}`)}})
	waitConsumed(t, db, topic, 1, 60*time.Second, p)
	if _, metrics := get(addr, "/metrics"); !strings.Contains(metrics, "tarifa_worker_ready 1") {
		t.Errorf("/metrics of a ready worker lacks tarifa_worker_ready 1")
	}
	p.stop(t)

	lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
	unreachable := false
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON with TARIFA_LOG_FORMAT=json: %q", line)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("log record without %q: %s", k, line)
			}
		}
		if rec["msg"] == "server unreachable; retrying with backoff" && rec["server"] == "postgres" {
			unreachable = true
		}
	}
	if !unreachable {
		t.Errorf("no JSON record said PostgreSQL was unreachable\n%s", p.stderr)
	}
}

// TestWorkerMetricsBeforeFirstCommit restarts a worker on a drained topic:
// before it commits anything, /metrics already shows each partition's
// committed offset as stored in PostgreSQL, and every mismatch reason and
// sink with a zero count, so dashboards and alerts have series to work on.
func TestWorkerMetricsBeforeFirstCommit(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	db, topic := setupPipeline(t)
	ts := genTraffic(400, 7)
	produce(t, kafkaBrokers(), topic, ts.msgs)
	p := startWorker(t, bin, db, topic)
	waitConsumed(t, db, topic, len(ts.msgs), 60*time.Second, p)
	p.stop(t)

	addr := freeAddr(t)
	p = startWorker(t, bin, db, topic, "--metrics-addr", addr)
	deadline := time.Now().Add(60 * time.Second)
	for metricSumOr0(addr, "tarifa_committed_offset{") != float64(len(ts.msgs)) {
		if time.Now().After(deadline) {
			t.Fatalf("tarifa_committed_offset sums to %v after a restart, want the %d stored offsets\n%s",
				metricSumOr0(addr, "tarifa_committed_offset{"), len(ts.msgs), p.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, metrics := get(addr, "/metrics")
	for _, want := range []string{`tarifa_cdrs_mismatched_total{reason="no_rate"} 0`, `tarifa_cdrs_mismatched_total{reason="term_no_rate"} 0`,
		`tarifa_sink_errors_total{sink="clickhouse"} 0`, `tarifa_sink_errors_total{sink="postgres"} 0`,
		"tarifa_low_balance_events_total 0", "tarifa_cdrs_consumed_total 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics before the first commit lacks %q", want)
		}
	}
	p.stop(t)
}

// metricSumOr0 is metricSum that reads 0 while the worker does not answer.
func metricSumOr0(addr, prefix string) float64 {
	code, body := get(addr, "/metrics")
	if code != http.StatusOK {
		return 0
	}
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			var v float64
			if err := json.Unmarshal([]byte(line[strings.LastIndexByte(line, ' ')+1:]), &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}
