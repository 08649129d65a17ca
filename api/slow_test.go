package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// smallBuffers makes every accepted connection's kernel send buffer tiny,
// so that a client that stops reading blocks the server's writes after a
// few kilobytes instead of megabytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// realServer serves e's API through the http.Server that `tarifa api`
// runs (its deadlines), on a listener with small send buffers.
func realServer(t *testing.T, e *testEnv, cfg Config) string {
	t.Helper()
	s, err := New(cfg, e.db.PG, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(s)
	ts.Listener.Close()
	ts.Listener = smallBuffers{ln}
	ts.Config = s.HTTPServer(s)
	ts.Start()
	t.Cleanup(ts.Close)
	return ts.URL
}

// TestSlowReadersDoNotStallTheAPI is issue 10's outage: clients that ask
// for the clients export and never read it. There are more of them than
// the pool has connections (sinktest's pool: 4), yet every other request,
// /healthz included, is still answered, because an export gives its
// connection back before it writes a page.
func TestSlowReadersDoNotStallTheAPI(t *testing.T) {
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	if _, err := e.db.PG.Exec(context.Background(), `INSERT INTO clients (reseller_id, name, currency, company_name)
		SELECT $1, 'client ' || g, 'USD', repeat('x', 300) FROM generate_series(1, 5000) g`, r); err != nil {
		t.Fatal(err)
	}
	base := realServer(t, e, Config{WriteTimeout: 10 * time.Minute})
	host := strings.TrimPrefix(base, "http://")
	readers := e.db.PG.Config().MaxConns + 2
	for i := range readers {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.(*net.TCPConn).SetReadBuffer(4096)
		fmt.Fprintf(c, "GET /v1/clients.csv?status=all HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", host, e.admin)
		// Read the answer's head only: the export has started, and this
		// client will read nothing more.
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		head, err := bufio.NewReaderSize(c, 16).ReadString('\n')
		if err != nil || !strings.HasPrefix(head, "HTTP/1.1 200") {
			t.Fatalf("slow reader %d: %q %v", i, head, err)
		}
	}
	client := &http.Client{Timeout: time.Minute} // a bound for a hang, not a speed requirement
	for _, p := range []string{"/healthz", "/v1/clients?limit=1", "/v1/resellers"} {
		req, _ := http.NewRequest("GET", base+p, nil)
		req.Header.Set("Authorization", "Bearer "+e.admin)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s while %d exports stall: %v", p, readers, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s while %d exports stall: %d", p, readers, resp.StatusCode)
		}
	}
}

// TestDrippedBodyIsCut: a body that never arrives (no token needed) holds
// its connection only until the read deadline; then the server closes it.
func TestDrippedBodyIsCut(t *testing.T) {
	e := newEnv(t)
	base := realServer(t, e, Config{ReadTimeout: time.Second})
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/resellers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	_ = c.SetReadDeadline(time.Now().Add(time.Minute)) // a bound for a hang: the server must close first
	answer, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the server kept the connection of a dripped body: %v (read %q)", err, answer)
	}
}

// TestExportStreamsEveryClientOnce: the paged export has every client of
// the scope exactly once, in id order, across page boundaries.
func TestExportStreamsEveryClientOnce(t *testing.T) {
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	n := 2*exportPage + 7
	if _, err := e.db.PG.Exec(context.Background(), `INSERT INTO clients (reseller_id, name, currency)
		SELECT $1, 'client ' || g, 'USD' FROM generate_series(1, $2) g`, r, n); err != nil {
		t.Fatal(err)
	}
	_, out := e.call(e.admin, "GET", "/v1/clients.csv", nil)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != n+1 {
		t.Fatalf("export has %d lines, want %d and a header", len(lines)-1, n)
	}
	for i, l := range lines[1:] {
		if !strings.HasPrefix(l, fmt.Sprintf("%d,", i+1)) {
			t.Fatalf("line %d: %.40s", i+2, l)
		}
	}
}
