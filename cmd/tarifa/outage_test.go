package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

// TestWorkerSurvivesOutages stops ClickHouse, then PostgreSQL, mid-stream —
// private servers of this test, so the shared stack is never disturbed —
// and checks that the worker pauses, says so on /readyz, resumes when the
// server is back, and that nothing is lost or doubled.
func TestWorkerSurvivesOutages(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	pgSrv := sinktest.StartPostgres(t)
	chSrv := sinktest.StartClickHouse(t)
	db := sinktest.Open(t, pgSrv.DSN, chSrv.DSN)
	if _, err := db.PG.Exec(context.Background(), pipelineCatalog); err != nil {
		t.Fatal(err)
	}
	topic := "t-outage-" + sinktest.RandomName()
	ts := genTraffic(8000, 3)
	produce(t, kafkaBrokers(), topic, ts.msgs)
	total := len(ts.msgs)

	addr := freeAddr(t)
	p := startWorker(t, bin, db, topic, "--metrics-addr", addr, "--max-backoff", "1s", "--batch-size", "200")
	waitConsumed(t, db, topic, total/4, 60*time.Second, p)

	chSrv.Stop()
	waitReady(t, addr, false, 30*time.Second, p)
	stalled := consumed(t, db, topic)
	time.Sleep(2 * time.Second)
	if now := consumed(t, db, topic); now != stalled {
		t.Fatalf("consumed moved from %d to %d while ClickHouse was down", stalled, now)
	}
	chSrv.Start(t)
	waitReady(t, addr, true, 60*time.Second, p)
	waitConsumed(t, db, topic, stalled+total/8, 60*time.Second, p)

	pgSrv.Stop()
	waitReady(t, addr, false, 30*time.Second, p)
	time.Sleep(2 * time.Second)
	pgSrv.Start(t)
	waitReady(t, addr, true, 60*time.Second, p)
	waitConsumed(t, db, topic, total, 90*time.Second, p)
	sinkErrors := metricSum(t, addr, "tarifa_sink_errors_total")
	if q := metricSum(t, addr, "tarifa_cdrs_quarantined_total"); q != 0 {
		t.Errorf("%v messages quarantined during outages: an outage is retried, never blamed on the messages", q)
	}
	p.stop(t)

	checkInvariants(t, db, ts, 0)
	logs := p.stderr.String()
	// Logged once per change of state, not once per retry.
	if n := strings.Count(logs, "component failing"); n < 2 || float64(n) >= sinkErrors {
		t.Errorf("%d 'component failing' log lines for two outages and %v failed commits; want one per outage and component\n%s", n, sinkErrors, logs)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitReady polls /readyz until it answers ready (200) or not (503).
func waitReady(t *testing.T, addr string, ready bool, within time.Duration, p *workerProc) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = resp.Status + " " + string(body)
			if (resp.StatusCode == http.StatusOK) == ready {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("/readyz did not become ready=%v within %v (last: %s)\n%s", ready, within, last, p.stderr)
}

// metricSum adds up every sample of a metric on the worker's /metrics.
func metricSum(t testing.TB, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// TestWorkerSurvivesBrokerOutage stops the Kafka broker — a private dev
// broker of this test, persisted to disk — mid-stream: the worker reports it
// on /readyz, resumes when the broker is back, and bills every CDR once.
func TestWorkerSurvivesBrokerOutage(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	broker := filepath.Join(t.TempDir(), "devbroker")
	if out, err := exec.Command("go", "build", "-o", broker, "../devbroker").CombinedOutput(); err != nil {
		t.Fatalf("build devbroker: %v\n%s", err, out)
	}
	dataDir := t.TempDir()
	brokerAddr := freeAddr(t)
	_, port, _ := net.SplitHostPort(brokerAddr)
	var bproc *exec.Cmd
	startBroker := func() {
		bproc = exec.Command(broker, "--port", port, "--data-dir", dataDir)
		if err := bproc.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			if c, err := net.Dial("tcp", brokerAddr); err == nil {
				c.Close()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal("private broker did not listen")
	}
	stopBroker := func() {
		_ = bproc.Process.Signal(syscall.SIGTERM)
		_ = bproc.Wait()
	}
	startBroker()
	t.Cleanup(func() {
		if bproc.ProcessState == nil {
			stopBroker()
		}
	})

	db, topic := setupPipeline(t)
	ts := genTraffic(8000, 4)
	produce(t, brokerAddr, topic, ts.msgs)
	total := len(ts.msgs)
	addr := freeAddr(t)
	p := startWorker(t, bin, db, topic, "--metrics-addr", addr, "--batch-size", "200", "--brokers", brokerAddr)
	waitConsumed(t, db, topic, total/4, 60*time.Second, p)

	stopBroker()
	waitReady(t, addr, false, 30*time.Second, p)
	time.Sleep(2 * time.Second)
	startBroker()
	waitReady(t, addr, true, 60*time.Second, p)
	waitConsumed(t, db, topic, total, 120*time.Second, p)
	p.stop(t)
	checkInvariants(t, db, ts, 0)
}
