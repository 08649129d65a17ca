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

// TestAPIEndToEnd runs the real binary: token create prints a token once,
// tarifa api serves with it, a bad token answers 401, and SIGTERM stops the
// server cleanly.
func TestAPIEndToEnd(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	bin := filepath.Join(t.TempDir(), "tarifa")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := append(os.Environ(), "TARIFA_PG_DSN="+db.PGDSN, "TARIFA_CLICKHOUSE_DSN="+db.CHDSN)

	create := exec.Command(bin, "token", "create", "--role", "admin", "--name", "e2e")
	create.Env = env
	var stdout, stderr bytes.Buffer
	create.Stdout, create.Stderr = &stdout, &stderr
	if err := create.Run(); err != nil {
		t.Fatalf("token create: %v\n%s", err, stderr.String())
	}
	token := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(token, "tarifa_") || strings.Contains(token, "\n") {
		t.Fatalf("token create printed %q", stdout.String())
	}
	var stored int
	if err := db.PG.QueryRow(t.Context(), "SELECT count(*) FROM api_tokens WHERE position($1::bytea in hash) > 0", []byte(token)).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("the token itself is stored (%d, %v)", stored, err)
	}
	bad := exec.Command(bin, "token", "create", "--role", "reseller")
	bad.Env = env
	if err := bad.Run(); err == nil {
		t.Fatal("a reseller token without --reseller-id was created")
	}

	srv := exec.Command(bin, "api", "--addr", "127.0.0.1:0")
	srv.Env = env
	logs, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	t.Cleanup(func() {
		if srv.ProcessState == nil {
			_ = srv.Process.Kill()
		}
	})
	addrc := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`msg="api listening" addr=(\S+)`)
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
		done <- srv.Wait()
	}()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("tarifa api did not start listening")
	}

	call := func(method, path, tok, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := call("GET", "/healthz", "", ""); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, _ := call("GET", "/v1/resellers", token+"x", ""); code != 401 {
		t.Fatalf("bad token: %d", code)
	}
	code, body := call("POST", "/v1/resellers", token, `{"name": "Acme", "currency": "USD"}`)
	var r struct{ ID int64 }
	if code != 201 || json.Unmarshal([]byte(body), &r) != nil || r.ID == 0 {
		t.Fatalf("create reseller: %d %s", code, body)
	}
	if code, body := call("GET", "/metrics", "", ""); code != 200 || !strings.Contains(body, "tarifa_api_requests_total") {
		t.Fatalf("metrics: %d", code)
	}

	if err := srv.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tarifa api exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("tarifa api did not stop on SIGINT")
	}
}
