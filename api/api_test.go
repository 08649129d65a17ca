package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tarifa/tarifa/billing"
	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/rerate"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// testEnv is one server on a private database with an admin token.
type testEnv struct {
	t     *testing.T
	db    *sinktest.DB
	srv   *httptest.Server
	api   *Server
	admin string

	mu   sync.Mutex
	xdrs map[int64]int64 // the fake xDR store: client id → xDR count
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	t.Parallel()
	e := &testEnv{t: t, db: sinktest.New(t), xdrs: map[int64]int64{}}
	count := func(_ context.Context, id int64) (int64, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.xdrs[id], nil
	}
	reports := report.New(e.db.PG, e.db.CH, quietLog)
	bill, err := billing.New(billing.Config{}, e.db.PG, reports, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	rr, err := rerate.NewRunner(rerate.Config{ChunkSize: 100}, e.db.PG, e.db.CH, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rr.Close)
	s, err := New(Config{Reports: reports, Rerate: rr, Billing: bill}, e.db.PG, count, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	e.api = s
	e.srv = httptest.NewServer(s)
	t.Cleanup(e.srv.Close)
	e.admin = e.token(RoleAdmin, 0, 0)
	return e
}

func (e *testEnv) token(role string, resellerID, clientID int64) string {
	e.t.Helper()
	tok, err := CreateToken(context.Background(), e.db.PG, role, resellerID, clientID, role+"-test")
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.Secret
}

// call sends body (a string sent as is, or a value encoded as JSON) and
// returns the status and the answer.
func (e *testEnv) call(token, method, path string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
		if strings.HasSuffix(path, "/rates") || strings.Contains(path, "/rates?") {
			ct = "text/csv"
		}
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, out
}

// must calls and fails the test unless the status is want; it decodes the
// answer into a map.
func (e *testEnv) must(want int, token, method, path string, body any) map[string]any {
	e.t.Helper()
	got, out := e.call(token, method, path, body)
	if got != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, want, out)
	}
	m := map[string]any{}
	if len(out) > 0 && out[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
	return m
}

// create POSTs as admin and returns the new id.
func (e *testEnv) create(path string, body any) int64 {
	e.t.Helper()
	m := e.must(201, e.admin, "POST", path, body)
	return num(e.t, m["id"])
}

func num(t *testing.T, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func items(t *testing.T, m map[string]any) []map[string]any {
	t.Helper()
	raw, ok := m["items"].([]any)
	if !ok {
		t.Fatalf("no items in %v", m)
	}
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		out[i] = r.(map[string]any)
	}
	return out
}

func path(format string, id int64) string {
	return strings.Replace(format, "{id}", jsonInt(id), 1)
}

func jsonInt(id int64) string {
	b, _ := json.Marshal(id)
	return string(b)
}
