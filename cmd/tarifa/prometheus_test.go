package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboardQueriesReturnData runs a real Prometheus (Debian's package)
// on loopback scraping a worker and the API during a short run, with the
// alert rules loaded, and evaluates every query of the Grafana dashboard
// through its HTTP API: each must return data,
// and every alert rule must evaluate without error.
func TestDashboardQueriesReturnData(t *testing.T) {
	t.Parallel()
	sinktest.Install(t, "prometheus", "/usr/bin/prometheus")
	bin := buildTarifa(t)
	db, topic := setupPipeline(t)
	ctx := context.Background()
	if _, err := db.PG.Exec(ctx, "UPDATE clients SET low_balance_threshold = 0 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	workerAddr, apiAddr, apiMetrics, promAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	w := startWorker(t, bin, db, topic, "--metrics-addr", workerAddr)
	api := exec.Command(bin, "api", "--addr", apiAddr, "--metrics-addr", apiMetrics, "--pg-dsn", db.PGDSN, "--clickhouse-dsn", db.CHDSN)
	api.Stderr = &syncBuffer{}
	if err := api.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Process.Kill(); _ = api.Wait() })

	dir := t.TempDir()
	rules, err := filepath.Abs("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - {job_name: tarifa-worker, static_configs: [{targets: [%q]}]}
  - {job_name: tarifa-api, static_configs: [{targets: [%q]}]}
`, rules, workerAddr, apiMetrics)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := exec.Command("/usr/bin/prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr, "--log.level=warn")
	promLog := &syncBuffer{}
	prom.Stdout, prom.Stderr = promLog, promLog
	prom.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prom.Process.Signal(syscall.SIGTERM); _ = prom.Wait() })
	waitHTTP(t, "http://"+promAddr+"/-/ready", 60*time.Second, promLog)
	waitHTTP(t, "http://"+apiAddr+"/healthz", 60*time.Second, api.Stderr.(*syncBuffer))
	for _, path := range []string{"/healthz", "/v1/clients", "/v1/openapi.json"} {
		get(apiAddr, path)
	}

	// Traffic in two rounds, a few scrapes apart, so that rates see it move.
	ts := genTraffic(3000, 21)
	half := len(ts.msgs) / 2
	produce(t, kafkaBrokers(), topic, ts.msgs[:half])
	waitConsumed(t, db, topic, half, 60*time.Second, w)
	waitQuery(t, promAddr, fmt.Sprintf("tarifa_cdrs_consumed_total == %d", half), 30*time.Second)
	produce(t, kafkaBrokers(), topic, ts.msgs[half:])
	waitConsumed(t, db, topic, len(ts.msgs), 60*time.Second, w)
	waitQuery(t, promAddr, fmt.Sprintf("tarifa_cdrs_consumed_total == %d", len(ts.msgs)), 30*time.Second)
	// A rate needs two samples of a series in its window: wait until the
	// youngest series (the API's, born with the first requests) has them.
	waitQuery(t, promAddr, `count_over_time(tarifa_api_requests_total[1m]) >= 2`, 30*time.Second)

	raw, err := os.ReadFile("../../deploy/grafana/dashboards/tarifa.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	queries := 0
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			queries++
			expr := strings.ReplaceAll(target.Expr, "$__rate_interval", "1m")
			result, err := promQuery(promAddr, expr)
			if err != nil {
				t.Errorf("panel %q: %s: %v", p.Title, expr, err)
				continue
			}
			if len(result) == 0 {
				t.Errorf("panel %q: %s returned no data", p.Title, expr)
			}
		}
	}
	if queries < 20 {
		t.Errorf("the dashboard has %d queries; the test found too few to trust its parse", queries)
	}

	// Values the dashboard shows are the worker's (mismatches count
	// messages: a repeat of a zero-cost CDR is rated and counted again).
	byReason, err := promQuery(promAddr, `sum by (reason) (tarifa_cdrs_mismatched_total)`)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range byReason {
		if reason := r.Metric["reason"]; reason == "unknown_account" || reason == "inactive_client" {
			if want := fmt.Sprint(metricSum(t, workerAddr, `tarifa_cdrs_mismatched_total{reason="`+reason+`"}`)); r.Value[1] != want || want == "0" {
				t.Errorf("mismatches %s through Prometheus: %v, want %s", reason, r.Value[1], want)
			}
		}
	}
	if low, err := promQuery(promAddr, `tarifa_low_balance_events_total > 0`); err != nil || len(low) != 1 {
		t.Errorf("low-balance events through Prometheus: %v (err %v), want the worker's count above 0", low, err)
	}

	// Every alert rule evaluates cleanly against the real series.
	resp, err := http.Get("http://" + promAddr + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rr struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rr); err != nil {
		t.Fatal(err)
	}
	nrules := 0
	for _, g := range rr.Data.Groups {
		for _, r := range g.Rules {
			nrules++
			if r.Health != "ok" {
				t.Errorf("alert %s: health %q %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	if nrules == 0 {
		t.Errorf("Prometheus loaded no rules from %s\n%s", rules, promLog)
	}
	w.stop(t)
}

// promSample is one series of an instant query's vector result.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// promQuery evaluates expr now through Prometheus's HTTP API.
func promQuery(addr, expr string) ([]promSample, error) {
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("%s: %s", out.Status, out.Error)
	}
	return out.Data.Result, nil
}

// waitQuery polls until expr returns data.
func waitQuery(t *testing.T, addr, expr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if r, err := promQuery(addr, expr); err == nil && len(r) > 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	r, err := promQuery(addr, expr)
	t.Fatalf("Prometheus: %s returned no data within %v (%v, %v)", expr, within, r, err)
}

// waitHTTP polls url until it answers 200.
func waitHTTP(t *testing.T, url string, within time.Duration, log *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200 within %v\n%s", url, within, log)
}
