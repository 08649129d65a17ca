package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

// apiProcess is a running `tarifa api`.
type apiProcess struct {
	base, metrics string // http://HOST:PORT of the API and of its own /metrics ("" for none)
	cmd           *exec.Cmd
	done          chan error
}

// startAPI runs the binary's api command with args and waits until it
// listens on every address it was given.
func startAPI(t *testing.T, bin string, env []string, args ...string) *apiProcess {
	t.Helper()
	p := &apiProcess{cmd: exec.Command(bin, append([]string{"api", "--addr", "127.0.0.1:0"}, args...)...), done: make(chan error, 1)}
	p.cmd.Env = env
	logs, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	wantMetrics := strings.Contains(strings.Join(args, " "), "--metrics-addr")
	addrc := make(chan [2]string, 2)
	go func() {
		re := regexp.MustCompile(`msg="api (metrics )?listening" addr=(\S+)`)
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- [2]string{m[1], m[2]}
			}
		}
		p.done <- p.cmd.Wait()
	}()
	for p.base == "" || (wantMetrics && p.metrics == "") {
		select {
		case a := <-addrc:
			if a[0] == "" {
				p.base = "http://" + a[1]
			} else {
				p.metrics = "http://" + a[1]
			}
		case err := <-p.done:
			t.Fatalf("tarifa api exited: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("tarifa api did not start listening")
		}
	}
	return p
}

func (p *apiProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("tarifa api exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("tarifa api did not stop on SIGINT")
	}
}

func call(t *testing.T, method, url, auth, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAPIEndToEnd runs the real binary: token create prints a token once
// (with an expiry), token list shows it without its secret, tarifa api
// serves with it (any case of the Bearer scheme), a bad token answers 401,
// /metrics is for admin tokens only unless it has an address of its own,
// and SIGTERM stops the server cleanly.
func TestAPIEndToEnd(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	bin := filepath.Join(t.TempDir(), "tarifa")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := append(os.Environ(), "TARIFA_PG_DSN="+db.PGDSN, "TARIFA_CLICKHOUSE_DSN="+db.CHDSN)
	run := func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}

	out, errOut, err := run("token", "create", "--role", "admin", "--name", "e2e", "--expires", "90d")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, errOut)
	}
	token := strings.TrimSpace(out)
	if !strings.HasPrefix(token, "tarifa_") || strings.Contains(token, "\n") || !strings.Contains(errOut, "expires "+time.Now().AddDate(0, 0, 90).UTC().Format("2006-01-02")) {
		t.Fatalf("token create printed %q, %q", out, errOut)
	}
	var stored int
	if err := db.PG.QueryRow(t.Context(), "SELECT count(*) FROM api_tokens WHERE position($1::bytea in hash) > 0", []byte(token)).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("the token itself is stored (%d, %v)", stored, err)
	}
	if _, _, err := run("token", "create", "--role", "reseller"); err == nil {
		t.Fatal("a reseller token without --reseller-id was created")
	}
	if _, errOut, err := run("token", "create", "--role", "admin", "--expires", "soon"); err == nil || !strings.Contains(errOut, `--expires: "soon": want a duration`) {
		t.Fatalf("--expires soon: %v %s", err, errOut)
	}
	out, _, err = run("token", "list")
	if err != nil || !regexp.MustCompile(`(?m)^1\s+admin\s+e2e\s+\S+\s+\S+\s+active$`).MatchString(out) || strings.Contains(out, token) {
		t.Fatalf("token list: %v\n%s", err, out)
	}

	p := startAPI(t, bin, env)
	if code, _ := call(t, "GET", p.base+"/healthz", "", ""); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, _ := call(t, "GET", p.base+"/v1/resellers", "Bearer "+token+"x", ""); code != 401 {
		t.Fatalf("bad token: %d", code)
	}
	code, body := call(t, "POST", p.base+"/v1/resellers", "bearer "+token, `{"name": "Acme", "currency": "USD"}`)
	var r struct{ ID int64 }
	if code != 201 || json.Unmarshal([]byte(body), &r) != nil || r.ID == 0 {
		t.Fatalf("create reseller: %d %s", code, body)
	}
	if code, _ := call(t, "GET", p.base+"/metrics", "", ""); code != 401 {
		t.Fatalf("metrics without a token: %d, want 401", code)
	}
	if code, body := call(t, "GET", p.base+"/metrics", "Bearer "+token, ""); code != 200 || !strings.Contains(body, "tarifa_api_requests_total") {
		t.Fatalf("metrics with an admin token: %d", code)
	}
	p.stop(t)

	p = startAPI(t, bin, env, "--metrics-addr", "127.0.0.1:0")
	if code, _ := call(t, "GET", p.base+"/metrics", "Bearer "+token, ""); code != 404 {
		t.Fatalf("metrics on the API address when they have their own: %d, want 404", code)
	}
	if code, body := call(t, "GET", p.metrics+"/metrics", "", ""); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics on their own address: %d", code)
	}
	p.stop(t)
}
