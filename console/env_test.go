package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tarifa/tarifa/api"
	"github.com/tarifa/tarifa/console"
	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/rerate"
	"github.com/tarifa/tarifa/sinks"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is the real API on a private database, with reports and rerating
// (ClickHouse), and the console in front of it, served as tarifa api
// serves them: /v1 and /healthz by the API, everything else by the
// console.
type env struct {
	t       *testing.T
	db      *sinktest.DB
	srv     *httptest.Server
	console *console.Console
	admin   string
	base    string // the server's URL, when it is not srv (a real binary)
}

func newEnv(t *testing.T) *env { return newEnvWith(t, nil) }

// newEnvWith is newEnv with the API's Config changed by set.
func newEnvWith(t *testing.T, set func(*api.Config)) *env {
	t.Helper()
	e := &env{t: t, db: sinktest.New(t)}
	rr, err := rerate.NewRunner(rerate.Config{ChunkSize: 100}, e.db.PG, e.db.CH, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rr.Close)
	ch := e.db.CH
	count := func(ctx context.Context, id int64) (int64, error) {
		var n uint64
		err := ch.QueryRow(ctx, "SELECT count() FROM xdrs WHERE orig_client_id = ? OR term_client_id = ?", uint64(id), uint64(id)).Scan(&n)
		return int64(n), err
	}
	reg := prometheus.NewRegistry()
	cfg := api.Config{Reports: report.New(e.db.PG, e.db.CH, quiet), Rerate: rr}
	if set != nil {
		set(&cfg)
	}
	a, err := api.New(cfg, e.db.PG, count, quiet, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if e.console, err = console.New(console.Config{}, a, quiet, reg); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", a)
	mux.Handle("/healthz", a)
	mux.Handle("/", e.console)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.admin = e.token(api.RoleAdmin, 0, 0)
	return e
}

func (e *env) token(role string, resellerID, clientID int64) string {
	e.t.Helper()
	tok, err := api.CreateToken(context.Background(), e.db.PG, role, resellerID, clientID, role+"-console")
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.Secret
}

// v1 calls the API directly (setting up and checking what the console
// shows); body is a string sent as CSV or a value sent as JSON.
func (e *env) v1(want int, token, method, path string, body any) map[string]any {
	e.t.Helper()
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "text/csv"
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, _ := http.NewRequest(method, e.url()+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if rd != nil {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, out)
	}
	m := map[string]any{}
	if len(out) > 0 && out[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			e.t.Fatal(err)
		}
	}
	return m
}

// create POSTs as admin and returns the new id.
func (e *env) create(path string, body any) int64 {
	e.t.Helper()
	return num(e.t, e.v1(201, e.admin, "POST", path, body)["id"])
}

// idByName finds an object of a list by name.
func (e *env) idByName(path, name string) int64 {
	e.t.Helper()
	m := e.v1(200, e.admin, "GET", path, nil)
	for _, it := range m["items"].([]any) {
		o := it.(map[string]any)
		if o["name"] == name {
			return num(e.t, o["id"])
		}
	}
	e.t.Fatalf("no %q in %s", name, path)
	return 0
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

// call is a CDR a switch sent: answered, for seconds, from src to dst.
type call struct {
	id, src, dst, term string // term: the vendor's IP, if any
	at                 time.Time
	seconds            int
}

// commitCalls rates calls against the catalog as it is and commits them
// as a worker does (xDRs in ClickHouse, balances in PostgreSQL).
func (e *env) commitCalls(calls ...call) { commitCalls(e.t, e.db, calls...) }

func commitCalls(t *testing.T, db *sinktest.DB, calls ...call) {
	t.Helper()
	ctx := context.Background()
	cat, err := sinks.NewCatalogLoader(db.PG).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	store := sinks.NewStore(db.PG, db.CH, prometheus.NewRegistry())
	defer store.Close()
	first, stored := int64(0), int64(-1) // the stored next offset; -1: none yet
	if err := db.PG.QueryRow(ctx, "SELECT coalesce(max(next_offset), -1) FROM consumed_offsets WHERE topic = 'cdrs' AND partition = 0").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored >= 0 {
		first = stored
	}
	b := &rater.Batch{Topic: "cdrs", Partition: 0, First: first, Next: first + int64(len(calls)), Stored: stored, XDRs: make([]rater.XDR, len(calls))}
	rt := rater.NewRater()
	for i, c := range calls {
		end := c.at.Add(time.Duration(c.seconds) * time.Second)
		raw := fmt.Sprintf(`{"id":%q,"switch":"sw1","setup_time":%q,"connect_time":%q,"disconnect_time":%q,"src_ip":%q,"dst":%q,"term_ip":%q}`,
			c.id, c.at.Format(time.RFC3339), c.at.Format(time.RFC3339), end.Format(time.RFC3339), c.src, c.dst, c.term)
		rt.Rate(cat, &ingest.Message{Partition: 0, Offset: first + int64(i), Time: c.at, Value: []byte(raw)}, &b.XDRs[i], 0)
	}
	if _, err := store.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
}

// serves reports whether the API has route path (an existing route asks
// for a token, a missing one is not found).
func (e *env) serves(path string) bool {
	e.t.Helper()
	resp, err := http.Get(e.url() + path)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusNotFound
}

// url is where the server under test listens.
func (e *env) url() string {
	if e.base != "" {
		return e.base
	}
	return e.srv.URL
}
