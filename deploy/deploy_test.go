package deploy_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

var update = flag.Bool("update", false, "rewrite the generated Kubernetes monitoring manifests")

// run runs a command in dir and fails the test with its output if it fails.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAlertRules checks the rules and runs their unit tests with promtool,
// and checks the compose Prometheus config that loads them.
func TestAlertRules(t *testing.T) {
	sinktest.Install(t, "prometheus", "/usr/bin/promtool")
	run(t, "prometheus", "promtool", "check", "rules", "alerts.yml")
	out := run(t, "prometheus", "promtool", "test", "rules", "alerts_test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
	// Every alert has a unit test that expects it to fire.
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "prometheus/alerts.yml", &rules)
	tests, err := os.ReadFile("prometheus/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if !regexp.MustCompile(`alertname: ` + r.Alert + `\n\s+exp_alerts:\n`).Match(tests) {
				t.Errorf("alert %s has no unit test in which it fires", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s lacks a summary or a description", r.Alert)
			}
			if !strings.Contains(readme(t), "`"+r.Alert+"`") {
				t.Errorf("alert %s is not explained in README.md (Running in production, Alerts)", r.Alert)
			}
		}
	}
	// The compose Prometheus config, with the rule file where compose
	// mounts it.
	cfg, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("prometheus/alerts.yml")
	tmp := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(tmp, bytes.ReplaceAll(cfg, []byte("/etc/prometheus/alerts.yml"), []byte(abs)), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ".", "promtool", "check", "config", tmp)
}

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// knownVariables returns the TARIFA_* variables the tarifa binary reads.
func knownVariables(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../cmd/tarifa/*.go")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`"(TARIFA_[A-Z_]+)"`).FindAllSubmatch(b, -1) {
			vars[string(m[1])] = true
		}
	}
	if !vars["TARIFA_PG_DSN"] || !vars["TARIFA_LOG_FORMAT"] {
		t.Fatalf("read the TARIFA_ variables of cmd/tarifa wrongly: %v", vars)
	}
	return vars
}

// compose is the part of a compose file the test reads.
type composeFile struct {
	Services map[string]struct {
		Image           string            `yaml:"image"`
		Command         []string          `yaml:"command"`
		Restart         string            `yaml:"restart"`
		Environment     map[string]string `yaml:"environment"`
		Volumes         []string          `yaml:"volumes"`
		Ports           []string          `yaml:"ports"`
		StopGracePeriod string            `yaml:"stop_grace_period"`
		DependsOn       map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// TestCompose parses deploy/compose/compose.yaml and checks that the
// pieces fit: the services the issue names, Kafka in KRaft mode, migrations
// as a one-shot step the workers and API wait for, only variables the
// binary reads, files that exist where they are mounted from, and a
// Prometheus that scrapes every worker and the API where they listen.
func TestCompose(t *testing.T) {
	raw, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// depends_on is a list for grafana, a map everywhere else.
	var c composeFile
	if err := yaml.Unmarshal(bytes.Replace(raw, []byte("depends_on: [prometheus]"), []byte("depends_on: {prometheus: {}}"), 1), &c); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kafka", "topics", "clickhouse", "postgres", "migrate", "worker-1", "worker-2", "api", "prometheus", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("compose: no service %s", name)
		}
	}
	if _, ok := c.Services["zookeeper"]; ok {
		t.Error("compose: Kafka must run in KRaft mode, without ZooKeeper")
	}
	if roles := c.Services["kafka"].Environment["KAFKA_PROCESS_ROLES"]; !strings.Contains(roles, "controller") || !strings.Contains(roles, "broker") {
		t.Errorf("compose: kafka process roles %q, want broker and controller (KRaft)", roles)
	}
	if img := c.Services["postgres"].Image; img != "postgres:16" && !strings.HasPrefix(img, "postgres:16.") {
		t.Errorf("compose: postgres image %q, want PostgreSQL 16", img)
	}
	if img := c.Services["clickhouse"].Image; !regexp.MustCompile(`^clickhouse/clickhouse-server:2[3-9]\.`).MatchString(img) {
		t.Errorf("compose: clickhouse image %q, want a current release", img)
	}
	m := c.Services["migrate"]
	if !reflect.DeepEqual(m.Command, []string{"migrate"}) || m.Restart != "no" {
		t.Errorf("compose: migrate runs %v with restart %q, want the one-shot [migrate] with restart \"no\"", m.Command, m.Restart)
	}
	vars := knownVariables(t)
	for name, s := range c.Services {
		if !strings.HasPrefix(s.Image, "${TARIFA_IMAGE") {
			continue
		}
		for k := range s.Environment {
			if strings.HasPrefix(k, "TARIFA_") && !vars[k] {
				t.Errorf("compose: service %s sets %s, which tarifa does not read", name, k)
			}
		}
		for _, need := range []string{"TARIFA_PG_DSN", "TARIFA_CLICKHOUSE_DSN", "TARIFA_KAFKA_BROKERS"} {
			if s.Environment[need] == "" {
				t.Errorf("compose: service %s lacks %s", name, need)
			}
		}
		if name == "migrate" {
			continue
		}
		if dep := s.DependsOn["migrate"].Condition; dep != "service_completed_successfully" {
			t.Errorf("compose: %s depends on migrate with %q, want service_completed_successfully (migrations first)", name, dep)
		}
	}
	for _, w := range []string{"worker-1", "worker-2"} {
		s := c.Services[w]
		if !reflect.DeepEqual(s.Command, []string{"worker"}) {
			t.Errorf("compose: %s runs %v", w, s.Command)
		}
		if d, err := time.ParseDuration(s.StopGracePeriod); err != nil || d <= 30*time.Second {
			t.Errorf("compose: %s stop_grace_period %q, want more than the worker's 30s shutdown timeout", w, s.StopGracePeriod)
		}
		if s.Environment["TARIFA_METRICS_ADDR"] != "0.0.0.0:9464" {
			t.Errorf("compose: %s metrics on %q, want 0.0.0.0:9464 (Prometheus scrapes it from its container)", w, s.Environment["TARIFA_METRICS_ADDR"])
		}
	}
	// Mounted files exist; named volumes are declared.
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src := strings.Split(v, ":")[0]
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join("compose", src)); err != nil {
					t.Errorf("compose: %s mounts %s, which does not exist", name, src)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("compose: %s uses volume %s, which is not declared", name, src)
			}
		}
	}
	// Prometheus scrapes each worker and the API where they listen.
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "prometheus/prometheus.yml", &prom)
	targets := map[string][]string{}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets[sc.JobName] = append(targets[sc.JobName], st.Targets...)
		}
	}
	// The API serves /metrics without a token only on an address of its own.
	_, apiPort, _ := net.SplitHostPort(c.Services["api"].Environment["TARIFA_API_METRICS_ADDR"])
	want := map[string][]string{"tarifa-worker": {"worker-1:9464", "worker-2:9464"}, "tarifa-api": {"api:" + apiPort}}
	if !reflect.DeepEqual(targets, want) {
		t.Errorf("prometheus.yml scrapes %v, want %v", targets, want)
	}
	if !contains(c.Services["prometheus"].Volumes, "../prometheus/alerts.yml:"+prom.RuleFiles[0]+":ro") {
		t.Errorf("compose: prometheus loads %v, which is not where alerts.yml is mounted", prom.RuleFiles)
	}
	// Grafana: the provisioned dashboards path is where the dashboards are mounted.
	var dashProv struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "grafana/provisioning/dashboards/tarifa.yml", &dashProv)
	if p := dashProv.Providers[0].Options.Path; !contains(c.Services["grafana"].Volumes, "../grafana/dashboards:"+p+":ro") {
		t.Errorf("grafana provisioning reads dashboards from %s, where compose mounts none", p)
	}
	var dsProv struct {
		Datasources []struct {
			UID, Type, URL string
		} `yaml:"datasources"`
	}
	readYAML(t, "grafana/provisioning/datasources/tarifa.yml", &dsProv)
	if ds := dsProv.Datasources[0]; ds.Type != "prometheus" || ds.URL != "http://prometheus:9090" {
		t.Errorf("grafana datasource %+v, want the compose prometheus service", ds)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestGrafanaDashboard checks the dashboard's structure: every panel
// queries the datasource variable, the panels the issue asks for are
// there, and titles are unique. (cmd/tarifa's
// TestDashboardQueriesReturnData evaluates every query on a real
// Prometheus.)
func TestGrafanaDashboard(t *testing.T) {
	var d struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct{ Name, Type string } `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	b, err := os.ReadFile("grafana/dashboards/tarifa.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Templating.List) == 0 || d.Templating.List[0].Name != "datasource" || d.Templating.List[0].Type != "datasource" {
		t.Errorf("dashboard templating %+v, want a datasource variable", d.Templating.List)
	}
	titles := map[string]bool{}
	var exprs []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if titles[p.Title] {
			t.Errorf("two panels titled %q", p.Title)
		}
		titles[p.Title] = true
		if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %q and %d queries, want ${datasource} and at least one", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	all := strings.Join(exprs, "\n")
	for _, metric := range []string{"tarifa_cdrs_consumed_total", "tarifa_cdrs_rated_total", "tarifa_cdrs_mismatched_total", "tarifa_consumer_lag",
		"tarifa_commit_phase_seconds", "tarifa_sink_errors_total", "tarifa_worker_ready", "tarifa_catalog_version", "tarifa_low_balance_events_total",
		"tarifa_cdrs_quarantined_total", "tarifa_rerate_jobs"} {
		if !strings.Contains(all, metric) {
			t.Errorf("no dashboard panel shows %s", metric)
		}
	}
}

// manifest is one Kubernetes object, as generic YAML.
type manifest map[string]any

func (m manifest) get(path ...string) any {
	var v any = map[string]any(m)
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

func (m manifest) str(path ...string) string { s, _ := m.get(path...).(string); return s }

func (m manifest) kindName() string { return m.str("kind") + "/" + m.str("metadata", "name") }

// readManifests reads every object of the YAML files of a kustomization
// directory, checking that kustomization.yaml lists exactly those files.
func readManifests(t *testing.T, dir string) []manifest {
	t.Helper()
	var k struct {
		Resources []string `yaml:"resources"`
	}
	readYAML(t, filepath.Join(dir, "kustomization.yaml"), &k)
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	var have []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			have = append(have, filepath.Base(f))
		}
	}
	listed := append([]string(nil), k.Resources...)
	sort.Strings(listed)
	if !reflect.DeepEqual(have, listed) {
		t.Errorf("%s: kustomization lists %v, the directory holds %v", dir, listed, have)
	}
	var out []manifest
	for _, f := range have {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			// Into a plain map: yaml.v3 would give nested maps the named type.
			var raw map[string]any
			if err := dec.Decode(&raw); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("%s/%s: %v", dir, f, err)
			}
			if m := manifest(raw); m != nil {
				if m.str("apiVersion") == "" || m.str("kind") == "" || m.str("metadata", "name") == "" {
					t.Errorf("%s/%s: an object without apiVersion, kind or name", dir, f)
				}
				out = append(out, m)
			}
		}
	}
	return out
}

// TestKubernetes parses the manifests and checks what kubectl would only
// find on a cluster: every workload has an image, resources, probes where
// it serves and a non-root user; references (ConfigMaps, Secrets, PDB and
// Service selectors, probe ports) resolve; the worker is probed on
// /healthz and /readyz where TARIFA_METRICS_ADDR listens and may flush on
// stop; the ConfigMap sets only variables tarifa reads.
func TestKubernetes(t *testing.T) {
	var all []manifest
	for _, dir := range []string{"kubernetes/base", "kubernetes/dependencies", "kubernetes/monitoring"} {
		all = append(all, readManifests(t, dir)...)
	}
	byKind := map[string]manifest{}
	for _, m := range all {
		byKind[m.kindName()] = m
	}
	vars := knownVariables(t)
	cm := byKind["ConfigMap/tarifa-config"]
	if cm == nil {
		t.Fatal("no ConfigMap tarifa-config")
	}
	for k := range cm.get("data").(map[string]any) {
		if !vars[k] {
			t.Errorf("ConfigMap tarifa-config sets %s, which tarifa does not read", k)
		}
	}
	for k := range byKind["Secret/tarifa-secrets"].get("stringData").(map[string]any) {
		if !vars[k] {
			t.Errorf("Secret tarifa-secrets sets %s, which tarifa does not read", k)
		}
	}
	_, metricsPort, _ := net.SplitHostPort(cm.get("data").(map[string]any)["TARIFA_METRICS_ADDR"].(string))
	_, apiPort, _ := net.SplitHostPort(cm.get("data").(map[string]any)["TARIFA_API_ADDR"].(string))

	workloads := 0
	for _, m := range all {
		kind := m.str("kind")
		if kind != "Deployment" && kind != "StatefulSet" && kind != "Job" {
			continue
		}
		workloads++
		pod := manifest(m.get("spec", "template", "spec").(map[string]any))
		labels, _ := m.get("spec", "template", "metadata", "labels").(map[string]any)
		if kind != "Job" {
			sel, _ := m.get("spec", "selector", "matchLabels").(map[string]any)
			if len(sel) == 0 || !subset(sel, labels) {
				t.Errorf("%s: selector %v does not match its pod labels %v", m.kindName(), sel, labels)
			}
		}
		for _, c := range pod.get("containers").([]any) {
			c := manifest(c.(map[string]any))
			where := m.kindName() + " container " + c.str("name")
			if c.str("image") == "" {
				t.Errorf("%s: no image", where)
			}
			for _, r := range []string{"requests", "limits"} {
				for _, res := range []string{"cpu", "memory"} {
					if c.get("resources", r, res) == nil {
						t.Errorf("%s: no resources.%s.%s", where, r, res)
					}
				}
			}
			for _, ef := range asList(c.get("envFrom")) {
				ef := manifest(ef.(map[string]any))
				if n := ef.str("configMapRef", "name"); n != "" && byKind["ConfigMap/"+n] == nil {
					t.Errorf("%s: envFrom ConfigMap %s does not exist", where, n)
				}
				if n := ef.str("secretRef", "name"); n != "" && byKind["Secret/"+n] == nil {
					t.Errorf("%s: envFrom Secret %s does not exist", where, n)
				}
			}
			for _, e := range asList(c.get("env")) {
				e := manifest(e.(map[string]any))
				if n := e.str("valueFrom", "secretKeyRef", "name"); n != "" {
					s := byKind["Secret/"+n]
					if s == nil || s.get("stringData", e.str("valueFrom", "secretKeyRef", "key")) == nil {
						t.Errorf("%s: env %s from secret %s key %s, which does not exist", where, e.str("name"), n, e.str("valueFrom", "secretKeyRef", "key"))
					}
				}
			}
			ports := map[string]string{}
			for _, p := range asList(c.get("ports")) {
				p := manifest(p.(map[string]any))
				ports[p.str("name")] = fmt.Sprint(p.get("containerPort"))
			}
			for _, probe := range []string{"readinessProbe", "livenessProbe"} {
				for _, how := range []string{"httpGet", "tcpSocket"} {
					if port := c.get(probe, how, "port"); port != nil {
						if _, ok := ports[fmt.Sprint(port)]; !ok {
							t.Errorf("%s: %s on port %v, which the container does not declare", where, probe, port)
						}
					}
				}
			}
			if strings.HasPrefix(m.str("metadata", "name"), "tarifa-") {
				if pod.get("securityContext", "runAsNonRoot") != true {
					t.Errorf("%s: pod does not run as non-root", where)
				}
				switch m.str("metadata", "name") {
				case "tarifa-worker":
					if c.str("readinessProbe", "httpGet", "path") != "/readyz" || c.str("livenessProbe", "httpGet", "path") != "/healthz" {
						t.Errorf("%s: probes %v / %v, want readiness /readyz and liveness /healthz", where, c.get("readinessProbe"), c.get("livenessProbe"))
					}
					if ports["metrics"] != metricsPort {
						t.Errorf("%s: metrics port %s, TARIFA_METRICS_ADDR listens on %s", where, ports["metrics"], metricsPort)
					}
					if g, _ := pod.get("terminationGracePeriodSeconds").(int); g <= 30 {
						t.Errorf("%s: terminationGracePeriodSeconds %d, want more than the 30s shutdown timeout", where, g)
					}
				case "tarifa-api":
					if ports["http"] != apiPort || c.str("readinessProbe", "httpGet", "path") != "/healthz" {
						t.Errorf("%s: port %s and readiness %v, want %s and /healthz", where, ports["http"], c.get("readinessProbe"), apiPort)
					}
				}
			}
		}
	}
	if workloads < 6 {
		t.Errorf("found %d workloads, want the migrate Job, worker, API and the dependencies", workloads)
	}
	// PodDisruptionBudgets and Services select pods that exist.
	for _, m := range all {
		var sel map[string]any
		switch m.str("kind") {
		case "PodDisruptionBudget":
			sel, _ = m.get("spec", "selector", "matchLabels").(map[string]any)
		case "Service":
			sel, _ = m.get("spec", "selector").(map[string]any)
		case "ServiceMonitor":
			sel, _ = m.get("spec", "selector", "matchLabels").(map[string]any)
		default:
			continue
		}
		found := false
		for _, w := range all {
			if k := w.str("kind"); k == "Deployment" || k == "StatefulSet" {
				labels, _ := w.get("spec", "template", "metadata", "labels").(map[string]any)
				found = found || subset(sel, labels)
			}
			if m.str("kind") == "ServiceMonitor" && w.str("kind") == "Service" {
				labels, _ := w.get("metadata", "labels").(map[string]any)
				found = found || subset(sel, labels)
			}
		}
		if len(sel) == 0 || !found {
			t.Errorf("%s selects %v, which matches nothing", m.kindName(), sel)
		}
	}
	for _, name := range []string{"PodDisruptionBudget/tarifa-worker", "PodDisruptionBudget/tarifa-api", "Job/tarifa-migrate"} {
		if byKind[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }

func subset(sel, labels map[string]any) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

// TestKubernetesMonitoringIsGenerated keeps the PrometheusRule and the
// Grafana dashboard ConfigMap equal to deploy/prometheus/alerts.yml and
// deploy/grafana/dashboards/tarifa.json (-update writes them).
func TestKubernetesMonitoringIsGenerated(t *testing.T) {
	alerts, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules map[string]any
	if err := yaml.Unmarshal(alerts, &rules); err != nil {
		t.Fatal(err)
	}
	rule := map[string]any{
		"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
		"metadata": map[string]any{"name": "tarifa", "labels": map[string]any{"release": "kube-prometheus-stack"}},
		"spec":     map[string]any{"groups": rules["groups"]},
	}
	dash, err := os.ReadFile("grafana/dashboards/tarifa.json")
	if err != nil {
		t.Fatal(err)
	}
	cm := map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "tarifa-dashboard", "labels": map[string]any{"grafana_dashboard": "1"}},
		"data":     map[string]any{"tarifa.json": string(dash)},
	}
	for file, obj := range map[string]any{"prometheusrule.yaml": rule, "grafana-dashboard.yaml": cm} {
		var b bytes.Buffer
		b.WriteString("# Generated from " + map[string]string{"prometheusrule.yaml": "deploy/prometheus/alerts.yml", "grafana-dashboard.yaml": "deploy/grafana/dashboards/tarifa.json"}[file] +
			" by go test ./deploy -update; do not edit.\n")
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(obj); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("kubernetes/monitoring", file)
		if *update {
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		have, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(have, b.Bytes()) {
			t.Errorf("%s is not what alerts.yml and tarifa.json make; run go test ./deploy -update", path)
		}
	}
}

// TestSystemdUnits verifies the units with systemd-analyze (the binary
// path pointed at a freshly built tarifa) and checks that every ExecStart
// runs a tarifa subcommand with flags it has, and that the example
// environment files set only variables tarifa reads.
func TestSystemdUnits(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tarifa")
	run(t, "..", "go", "build", "-o", bin, "./cmd/tarifa")
	units, _ := filepath.Glob("systemd/*.service")
	units = append(units, "systemd/tarifa.target")
	var args []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/tarifa"), []byte(bin))
		b = bytes.ReplaceAll(b, []byte("/etc/tarifa/tarifa.env"), []byte(filepath.Join(dir, "tarifa.env")))
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(u)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(u)
		if strings.HasSuffix(name, "@.service") {
			name = strings.Replace(name, "@.service", "@1.service", 1)
		}
		args = append(args, "./"+name)
		for _, line := range strings.Split(string(b), "\n") {
			cmdline, ok := strings.CutPrefix(line, "ExecStart=")
			if !ok {
				continue
			}
			f := strings.Fields(cmdline)
			if f[0] != bin || len(f) < 2 {
				t.Errorf("%s: ExecStart %q does not run tarifa", u, cmdline)
				continue
			}
			help, _ := exec.Command(bin, f[1], "--help").CombinedOutput()
			for _, a := range f[2:] {
				if strings.HasPrefix(a, "--") && !strings.Contains(string(help), "  -"+strings.TrimPrefix(a, "--")+" ") {
					t.Errorf("%s: tarifa %s has no flag %s", u, f[1], a)
				}
			}
		}
	}
	env, err := os.ReadFile("systemd/tarifa.env.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tarifa.env"), env, 0o600); err != nil {
		t.Fatal(err)
	}
	vars := knownVariables(t)
	for _, f := range []string{"systemd/tarifa.env.example", "systemd/worker-1.env.example"} {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n") {
			if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") && !vars[k] {
				t.Errorf("%s sets %s, which tarifa does not read", f, k)
			}
		}
	}
	sinktest.Install(t, "systemd", "/usr/bin/systemd-analyze")
	cmd := exec.Command("systemd-analyze", append([]string{"verify"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	// verify exits 0 on unknown keys and bad values, but says so.
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
