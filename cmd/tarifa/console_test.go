package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

// TestConsoleServedByAPI runs the real binary: tarifa api serves the
// console at / (its pages, its embedded assets) next to /v1 and /healthz,
// a token signs in, and --console=false leaves / to the API alone.
func TestConsoleServedByAPI(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	bin := buildTarifa(t)
	env := append(os.Environ(), "TARIFA_PG_DSN="+db.PGDSN, "TARIFA_CLICKHOUSE_DSN="+db.CHDSN)
	cmd := exec.Command(bin, "token", "create", "--role", "admin", "--name", "console-e2e")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	token := strings.TrimSpace(string(out))

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) (int, http.Header, string) {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}

	p := startAPI(t, bin, env)
	if code, h, _ := get(p.base + "/"); code != http.StatusSeeOther || h.Get("Location") != "/signin?next=%2F" {
		t.Fatalf("/ without a session: %d to %q", code, h.Get("Location"))
	}
	if code, _, body := get(p.base + "/signin"); code != http.StatusOK || !strings.Contains(body, `name="token"`) {
		t.Fatalf("/signin: %d", code)
	}
	if code, h, body := get(p.base + "/static/console.css"); code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/css") || !strings.Contains(body, ".tablewrap") {
		t.Fatalf("the embedded style sheet: %d %s", code, h.Get("Content-Type"))
	}
	if code, _, body := get(p.base + "/healthz"); code != http.StatusOK || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/healthz beside the console: %d %s", code, body)
	}
	resp, err := client.PostForm(p.base+"/signin", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Set-Cookie"), "HttpOnly") {
		t.Fatalf("sign-in: %d, Set-Cookie %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	if code, _, body := get(p.base + "/"); code != http.StatusOK || !strings.Contains(body, "Today") || !strings.Contains(body, "console-e2e") {
		t.Fatalf("the dashboard after sign-in: %d\n%s", code, body)
	}
	if code, body := call(t, "GET", p.base+"/v1/me", "Bearer "+token, ""); code != http.StatusOK || !strings.Contains(body, `"role":"admin"`) {
		t.Fatalf("/v1/me beside the console: %d %s", code, body)
	}
	p.stop(t)

	p = startAPI(t, bin, env, "--console=false")
	if code, _, body := get(p.base + "/signin"); code != http.StatusNotFound || strings.Contains(body, "<html") {
		t.Fatalf("/signin with --console=false: %d %s", code, body)
	}
	if code, _ := call(t, "GET", p.base+"/v1/me", "Bearer "+token, ""); code != http.StatusOK {
		t.Fatalf("/v1/me with --console=false: %d", code)
	}
	p.stop(t)
}
