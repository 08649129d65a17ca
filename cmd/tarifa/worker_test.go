package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

// pipelineCatalog is the catalog of the worker tests, as SQL. Client 1 and 2
// are customers on the retail table, 3 is stopped, 10 is the vendor.
const pipelineCatalog = `
INSERT INTO resellers (id, name, currency) VALUES (1, 'Reseller', 'USD');
INSERT INTO rate_tables (id, name, currency) VALUES (1, 'retail', 'USD'), (2, 'vendor', 'USD');
INSERT INTO rates (rate_table_id, code, code_name, rate, min_volume, "interval", setup_fee) VALUES
  (1, '44', 'UK', 0.012, 1, 1, 0),
  (1, '447', 'UK Mobile', 0.05, 30, 6, 0),
  (1, '1', 'USA', 0.009, 60, 60, 0.01),
  (2, '44', 'UK', 0.008, 1, 1, 0),
  (2, '447', 'UK Mobile', 0.031, 1, 1, 0);
INSERT INTO clients (id, reseller_id, name, currency, orig_rate_table_id, status) VALUES
  (1, 1, 'Customer A', 'USD', 1, 'active'),
  (2, 1, 'Customer B', 'USD', 1, 'active'),
  (3, 1, 'Customer C', 'USD', 1, 'stop');
INSERT INTO clients (id, reseller_id, name, currency, term_rate_table_id) VALUES (10, 1, 'Vendor X', 'USD', 2);
INSERT INTO accounts (client_id, kind, ident, tech_prefix, orig, term) VALUES
  (1, 'ip', '10.0.0.1', '', true, false),
  (2, 'ip', '10.0.0.1', '77#', true, false),
  (2, 'username', 'trunk-b', '', true, false),
  (3, 'ip', '10.0.0.3', '', true, false),
  (10, 'ip', '192.0.2.7', '', false, true);
INSERT INTO transactions (client_id, kind, amount, currency, ref) VALUES (1, 'payment', 100, 'USD', 'wire-1');
`

type testRate struct {
	rate, setup decimal.Decimal
	min, step   int64
}

// expectedCost is the DOMAIN.md charge written plainly, independent of the
// rater package.
func expectedCost(table map[string]testRate, number string, ms int64) (decimal.Decimal, bool) {
	for l := len(number); l > 0; l-- {
		r, ok := table[number[:l]]
		if !ok {
			continue
		}
		d := (ms + 999) / 1000
		if d == 0 {
			return decimal.Zero, true
		}
		billed := r.min
		if d > r.min {
			billed = r.min + (d-r.min+r.step-1)/r.step*r.step
		}
		return r.setup.Add(r.rate.Mul(decimal.NewFromInt(billed)).Div(decimal.NewFromInt(60))).Round(6), true
	}
	return decimal.Zero, false
}

var (
	retailRates = map[string]testRate{
		"44":  {rate: decimal.RequireFromString("0.012"), min: 1, step: 1},
		"447": {rate: decimal.RequireFromString("0.05"), min: 30, step: 6},
		"1":   {rate: decimal.RequireFromString("0.009"), setup: decimal.RequireFromString("0.01"), min: 60, step: 60},
	}
	vendorRates = map[string]testRate{
		"44":  {rate: decimal.RequireFromString("0.008"), min: 1, step: 1},
		"447": {rate: decimal.RequireFromString("0.031"), min: 1, step: 1},
	}
)

// trafficSet is generated test traffic and what billing it must produce.
type trafficSet struct {
	msgs     []kafka.Message
	unique   int                       // distinct valid CDRs
	reasons  map[string]int            // expected xDR counts by orig reason ("" = rated)
	term     map[string]int            // expected term reasons among rated
	balances map[int64]decimal.Decimal // expected live balance per client
	ids      map[string]bool           // ids of the valid CDRs
	// conflicts is how many re-sends with the switch and id of a billed
	// CDR but other content the traffic holds (each an xDR of its own).
	conflicts int
	// fixed is every live balance once the catalog is fixed (fixCatalog)
	// and every CDR rated again; mismatched are the messages of the CDRs
	// that were mismatches before the fix.
	fixed      map[int64]decimal.Decimal
	mismatched []kafka.Message
}

// fixCatalog is the catalog fix of the rerating tests: the retail UK
// Mobile rate goes from 0.05 to 0.06, the missing account 10.9.9.9 is
// added for Customer B, and the stopped Customer C is started.
const fixCatalog = `UPDATE rates SET rate = 0.06 WHERE rate_table_id = 1 AND code = '447';
	INSERT INTO accounts (client_id, kind, ident) VALUES (2, 'ip', '10.9.9.9');
	UPDATE clients SET status = 'active' WHERE id = 3`

var fixedRetailRates = map[string]testRate{
	"44":  retailRates["44"],
	"447": {rate: decimal.RequireFromString("0.06"), min: 30, step: 6},
	"1":   retailRates["1"],
}

func genTraffic(n int, seed uint64) *trafficSet {
	return genTrafficFrom(n, seed, time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC), time.Second)
}

// genTrafficFrom is genTraffic with the i-th call set up at base + i×step.
// Calls set up before the dedupe window (genTraffic's, in 2024) also take
// the look-up of late CDRs in ClickHouse on every batch; traffic as it
// arrives from switches is minutes old.
func genTrafficFrom(n int, seed uint64, base time.Time, step time.Duration) *trafficSet {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ts := &trafficSet{reasons: map[string]int{}, term: map[string]int{}, ids: map[string]bool{},
		balances: map[int64]decimal.Decimal{1: decimal.NewFromInt(100), 2: decimal.Zero, 10: decimal.Zero},
		fixed:    map[int64]decimal.Decimal{1: decimal.NewFromInt(100), 2: decimal.Zero, 3: decimal.Zero, 10: decimal.Zero}}
	var sent [][]byte
	for i := 0; i < n; i++ {
		switch p := rng.IntN(100); {
		case p < 3 && len(sent) > 0: // a duplicate, resent verbatim
			ts.msgs = append(ts.msgs, kafka.Message{Value: sent[rng.IntN(len(sent))]})
			continue
		case p < 4:
			bad := []string{`{"id":`, `not json`, fmt.Sprintf(`{"id":"bad-%d","setup_time":"2024-03-10T12:00:10Z","disconnect_time":"2024-03-10T12:00:00Z","dst":"44"}`, i)}[rng.IntN(3)]
			ts.msgs = append(ts.msgs, kafka.Message{Value: []byte(bad)})
			ts.reasons["malformed"]++
			continue
		}
		id := fmt.Sprintf("call-%d-%d", seed, i)
		setup := base.Add(time.Duration(i) * step)
		ms := int64(0)
		if rng.IntN(10) < 7 {
			ms = rng.Int64N(600_000)
		}
		number := []string{"447700900", "442071234", "12125550"}[rng.IntN(3)] + fmt.Sprintf("%03d", rng.IntN(1000))
		src, client := `"src_ip":"10.0.0.1"`, int64(1)
		dst := number
		switch q := rng.IntN(20); {
		case q < 3:
			src, client, dst = `"src_ip":"10.0.0.1"`, 2, "77#"+number
		case q < 6:
			src, client = `"src_user":"trunk-b"`, 2
		case q < 7:
			src, client = `"src_ip":"10.0.0.3"`, 3
		case q < 8:
			src, client = `"src_ip":"10.9.9.9"`, 0
		case q < 9:
			dst = "+" + number
		}
		connect := ""
		if ms > 0 {
			connect = fmt.Sprintf(`,"connect_time":"%s"`, setup.Add(5*time.Second).Format(time.RFC3339))
		}
		disc := setup.Add(5*time.Second + time.Duration(ms)*time.Millisecond)
		body := fmt.Sprintf(`{"id":"%s","switch":"sw1","setup_time":"%s"%s,"disconnect_time":"%s","duration":%d.%03d,%s,"dst":"%s","term_ip":"192.0.2.7"}`,
			id, setup.Format(time.RFC3339), connect, disc.Format(time.RFC3339Nano), ms/1000, ms%1000, src, dst)
		ts.msgs = append(ts.msgs, kafka.Message{Key: []byte(id), Value: []byte(body)})
		sent = append(sent, []byte(body))
		ts.unique++
		ts.ids[id] = true
		fixedClient := client
		switch client {
		case 0:
			fixedClient = 2
		}
		fcost, _ := expectedCost(fixedRetailRates, number, ms)
		ts.fixed[fixedClient] = ts.fixed[fixedClient].Sub(fcost)
		if vcost, ok := expectedCost(vendorRates, number, ms); ok {
			ts.fixed[10] = ts.fixed[10].Add(vcost)
		}
		if client == 0 || client == 3 {
			ts.mismatched = append(ts.mismatched, ts.msgs[len(ts.msgs)-1])
		}
		switch client {
		case 0:
			ts.reasons["unknown_account"]++
			continue
		case 3:
			ts.reasons["inactive_client"]++
			continue
		}
		ts.reasons[""]++
		cost, _ := expectedCost(retailRates, number, ms)
		ts.balances[client] = ts.balances[client].Sub(cost)
		if vcost, ok := expectedCost(vendorRates, number, ms); ok {
			ts.balances[10] = ts.balances[10].Add(vcost)
		} else {
			ts.term["term_unknown_destination"]++
		}
	}
	return ts
}

func produce(t testing.TB, brokers, topic string, msgs []kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers), Topic: topic, AllowAutoTopicCreation: true, Balancer: &kafka.Hash{},
		BatchSize: 1000, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	for attempt := 0; attempt < 30; attempt++ {
		if err = w.WriteMessages(ctx, msgs...); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("produce %d messages to %s: %v", len(msgs), topic, err)
}

func kafkaBrokers() string {
	if b := os.Getenv("TARIFA_KAFKA_BROKERS"); b != "" {
		return b
	}
	return defaultKafkaBrokers
}

// workerProc is a running `tarifa worker` process.
type workerProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
}

// syncBuffer is a bytes.Buffer the process's output goroutine writes while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Bytes() []byte { return []byte(s.String()) }

func startWorker(t testing.TB, bin string, db *sinktest.DB, topic string, extra ...string) *workerProc {
	t.Helper()
	return startWorkerEnv(t, bin, db, topic, nil, extra...)
}

// startWorkerEnv is startWorker with extra environment variables.
func startWorkerEnv(t testing.TB, bin string, db *sinktest.DB, topic string, env []string, extra ...string) *workerProc {
	t.Helper()
	args := append([]string{"worker", "--topic", topic, "--group", topic + "-rater", "--metrics-addr", "127.0.0.1:0",
		"--batch-size", "300", "--batch-wait", "50ms", "--reload-interval", "500ms"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TARIFA_LOG_LEVEL=debug", "TARIFA_PG_DSN="+db.PGDSN, "TARIFA_CLICKHOUSE_DSN="+db.CHDSN, "TARIFA_KAFKA_BROKERS="+kafkaBrokers())
	cmd.Env = append(cmd.Env, env...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &workerProc{cmd: cmd, stderr: stderr}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return p
}

func (p *workerProc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

func (p *workerProc) stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker exited with %v after SIGTERM\n%s", err, p.stderr)
		}
	case <-time.After(45 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("worker did not stop within 45s of SIGTERM\n%s", p.stderr)
	}
}

// consumed returns the sum of the stored next offsets of topic.
func consumed(t testing.TB, db *sinktest.DB, topic string) int {
	var n int
	if err := db.PG.QueryRow(context.Background(), "SELECT coalesce(sum(next_offset), 0) FROM consumed_offsets WHERE topic = $1", topic).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitConsumed(t testing.TB, db *sinktest.DB, topic string, want int, within time.Duration, procs ...*workerProc) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if consumed(t, db, topic) >= want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	var logs strings.Builder
	for _, p := range procs {
		logs.WriteString(p.stderr.String())
	}
	t.Fatalf("consumed %d of %d messages within %v\n%s", consumed(t, db, topic), want, within, logs.String())
}

// checkInvariants asserts DESIGN.md invariants 1–3 on the test's databases.
func checkInvariants(t *testing.T, db *sinktest.DB, ts *trafficSet, extraMalformed int) {
	t.Helper()
	ctx := context.Background()
	var rows, distinct uint64
	if err := db.CH.QueryRow(ctx, "SELECT count(), uniqExact(switch, cdr_id) FROM xdrs FINAL").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	wantRows := uint64(ts.unique)
	var malformedDistinct uint64
	if err := db.CH.QueryRow(ctx, "SELECT count() FROM xdrs FINAL WHERE reason = 'malformed'").Scan(&malformedDistinct); err != nil {
		t.Fatal(err)
	}
	if rows != distinct || rows != wantRows+malformedDistinct+uint64(ts.conflicts) {
		t.Errorf("xdrs FINAL: %d rows, %d distinct ids; want %d valid CDRs + %d malformed + %d conflicting re-sends, each once",
			rows, distinct, wantRows, malformedDistinct, ts.conflicts)
	}
	if want := ts.reasons["malformed"] + extraMalformed; malformedDistinct != uint64(want) {
		t.Errorf("malformed xDRs: %d, want %d, one per malformed message", malformedDistinct, want)
	}
	got := map[string]int{}
	r, err := db.CH.Query(ctx, "SELECT reason, toUInt64(count()) FROM xdrs FINAL WHERE reason NOT IN ('malformed', 'duplicate_conflict') GROUP BY reason")
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var reason string
		var n uint64
		if err := r.Scan(&reason, &n); err != nil {
			t.Fatal(err)
		}
		got[reason] = int(n)
	}
	r.Close()
	for _, reason := range []string{"", "unknown_account", "inactive_client"} {
		if got[reason] != ts.reasons[reason] {
			t.Errorf("xDRs with reason %q: %d, want %d", reason, got[reason], ts.reasons[reason])
		}
	}
	var termUnknown uint64
	if err := db.CH.QueryRow(ctx, "SELECT count() FROM xdrs FINAL WHERE status = 'rated' AND term_reason = 'term_unknown_destination'").Scan(&termUnknown); err != nil {
		t.Fatal(err)
	}
	if int(termUnknown) != ts.term["term_unknown_destination"] {
		t.Errorf("term_unknown_destination: %d, want %d", termUnknown, ts.term["term_unknown_destination"])
	}
	for client, want := range ts.balances {
		var live decimal.Decimal
		if err := db.PG.QueryRow(ctx, "SELECT live FROM client_balances WHERE client_id = $1", client).Scan(&live); err != nil {
			t.Fatal(err)
		}
		if !live.Equal(want) {
			t.Errorf("client %d live balance %s, want %s (computed from the test data)", client, live, want)
		}
		// Invariant 1 read from ClickHouse: payments − orig costs + term costs.
		var orig, term decimal.Decimal
		if err := db.CH.QueryRow(ctx, "SELECT sumIf(orig_cost, orig_client_id = ? AND status = 'rated'), sumIf(term_cost, term_client_id = ? AND status = 'rated' AND term_reason = '') FROM xdrs FINAL",
			uint64(client), uint64(client)).Scan(&orig, &term); err != nil {
			t.Fatal(err)
		}
		var paid decimal.Decimal
		if err := db.PG.QueryRow(ctx, "SELECT coalesce(sum(amount), 0) FROM transactions WHERE client_id = $1", client).Scan(&paid); err != nil {
			t.Fatal(err)
		}
		if fromXDRs := paid.Sub(orig).Add(term); !live.Equal(fromXDRs) {
			t.Errorf("client %d live balance %s, but payments − orig + term in xdrs FINAL = %s", client, live, fromXDRs)
		}
	}
}

func setupPipeline(t testing.TB) (*sinktest.DB, string) {
	t.Helper()
	db := sinktest.New(t)
	if _, err := db.PG.Exec(context.Background(), pipelineCatalog); err != nil {
		t.Fatal(err)
	}
	topic := "t-cdrs-" + db.Name
	t.Cleanup(func() { deleteTopic(kafkaBrokers(), topic) })
	return db, topic
}

// deleteTopic deletes a test's topic from the shared broker, so that test
// and benchmark runs do not pile up on its disk; a topic that is not there
// (a test with a broker of its own) is no error worth reporting.
func deleteTopic(brokers, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(brokers)}
	_, _ = c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
}

// TestWorkerExactlyOnceUnderKills produces traffic with duplicates and
// malformed lines, SIGKILLs the worker several times mid-stream, restarts
// it, and checks that every CDR is billed once, to the last decimal.
func TestWorkerExactlyOnceUnderKills(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	db, topic := setupPipeline(t)
	ts := genTraffic(6000, 1)
	produce(t, kafkaBrokers(), topic, ts.msgs)
	total := len(ts.msgs)

	for kill := 1; kill <= 3; kill++ {
		p := startWorker(t, bin, db, topic)
		waitConsumed(t, db, topic, total*kill/5, 60*time.Second, p)
		p.kill(t)
	}
	p := startWorker(t, bin, db, topic)
	waitConsumed(t, db, topic, total, 90*time.Second, p)
	p.stop(t)
	if c := consumed(t, db, topic); c != total {
		t.Fatalf("consumed %d messages, want exactly %d", c, total)
	}
	checkInvariants(t, db, ts, 0)

	// Replaying the same traffic (a producer retry storm) bills nothing twice.
	produce(t, kafkaBrokers(), topic, ts.msgs[:500])
	p = startWorker(t, bin, db, topic)
	waitConsumed(t, db, topic, total+500, 60*time.Second, p)
	p.stop(t)
	// A malformed message that still names its call ("bad-…": a valid id
	// and setup time) lands on its own row again; garbage gets an id of its
	// bytes and offset, so its re-send is a row of its own.
	resentMalformed := 0
	for _, m := range ts.msgs[:500] {
		if v := string(m.Value); m.Key == nil && !strings.HasPrefix(v, `{"id":"call-`) && !strings.HasPrefix(v, `{"id":"bad-`) {
			resentMalformed++
		}
	}
	checkInvariants(t, db, ts, resentMalformed)
}

// TestWorkerRebalance runs two workers in one group, adds the second
// mid-stream and stops the first, and checks the same invariants.
func TestWorkerRebalance(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	db, topic := setupPipeline(t)
	ts := genTraffic(6000, 2)
	produce(t, kafkaBrokers(), topic, ts.msgs)
	total := len(ts.msgs)

	a := startWorker(t, bin, db, topic, "--batch-size", "100")
	waitConsumed(t, db, topic, total/5, 60*time.Second, a)
	b := startWorker(t, bin, db, topic, "--batch-size", "100")
	waitConsumed(t, db, topic, total/2, 60*time.Second, a, b)
	a.stop(t)
	waitConsumed(t, db, topic, total, 90*time.Second, a, b)
	b.stop(t)
	if !strings.Contains(b.stderr.String(), "partitions assigned") {
		t.Fatalf("second worker never got partitions:\n%s", b.stderr)
	}
	checkInvariants(t, db, ts, 0)
}

// TestWorkerHotReloadAndLowBalance changes a rate while the worker runs:
// later CDRs use it, earlier ones keep theirs. A client whose available
// balance falls below its threshold is notified once, in PostgreSQL, in the
// log and on the events topic.
// TestWorkerRatesAgainWhenAClientVanishes deletes a client outright while
// the worker still holds it in its catalog (it checks for changes only once
// an hour here): the commit of calls billed to it fails on the missing
// client, and the worker reloads the catalog and rates the batch again, so
// the calls end up as unknown_account mismatches, nothing billed.
func TestWorkerRatesAgainWhenAClientVanishes(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	db, topic := setupPipeline(t)
	ctx := context.Background()
	if _, err := db.PG.Exec(ctx, `INSERT INTO clients (id, reseller_id, name, currency, orig_rate_table_id) VALUES (20, 1, 'Customer D', 'USD', 1);
		INSERT INTO accounts (client_id, kind, ident, tech_prefix, orig, term) VALUES (20, 'ip', '10.0.0.20', '', true, false)`); err != nil {
		t.Fatal(err)
	}
	call := func(id, src string) kafka.Message {
		return kafka.Message{Key: []byte(id), Value: []byte(`{"id":"` + id + `","switch":"sw1","setup_time":"2024-03-10T12:00:00Z","connect_time":"2024-03-10T12:00:05Z",` +
			`"disconnect_time":"2024-03-10T12:01:05Z","src_ip":"` + src + `","dst":"442071234567"}`)}
	}
	p := startWorker(t, bin, db, topic, "--reload-interval", "1h")
	produce(t, kafkaBrokers(), topic, []kafka.Message{call("warm-up", "10.0.0.1")})
	waitConsumed(t, db, topic, 1, 60*time.Second, p)

	if _, err := db.PG.Exec(ctx, `DELETE FROM accounts WHERE client_id = 20; DELETE FROM clients WHERE id = 20`); err != nil {
		t.Fatal(err)
	}
	produce(t, kafkaBrokers(), topic, []kafka.Message{call("gone-1", "10.0.0.20"), call("gone-2", "10.0.0.20")})
	waitConsumed(t, db, topic, 3, 60*time.Second, p)
	p.stop(t)

	if !strings.Contains(p.stderr.String(), "rating it again") {
		t.Errorf("the worker did not say it rated the batch again\n%s", p.stderr)
	}
	rows, err := db.CH.Query(ctx, "SELECT cdr_id, status, reason, orig_client_id, toString(orig_cost) FROM xdrs FINAL ORDER BY cdr_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var id, status, reason, cost string
		var client uint64
		if err := rows.Scan(&id, &status, &reason, &client, &cost); err != nil {
			t.Fatal(err)
		}
		got[id] = fmt.Sprintf("%s %s client=%d cost=%s", status, reason, client, cost)
	}
	for id, want := range map[string]string{
		"warm-up": "rated  client=1 cost=0.012000",
		"gone-1":  "mismatch unknown_account client=0 cost=0.000000",
		"gone-2":  "mismatch unknown_account client=0 cost=0.000000",
	} {
		if got[id] != want {
			t.Errorf("xDR %s: %q, want %q", id, got[id], want)
		}
	}
	var live decimal.Decimal
	if err := db.PG.QueryRow(ctx, "SELECT live FROM balances WHERE client_id = 1").Scan(&live); err != nil {
		t.Fatal(err)
	}
	if !live.Equal(decimal.RequireFromString("99.988")) {
		t.Errorf("client 1 live balance %s, want 99.988 (the 100 paid, less the warm-up call)", live)
	}
}

// TestWorkerPublishesEventsLeftUnpublished: a low-balance notification
// committed by a worker that died before publishing it (a row with no
// published_at) is published by the next worker, with its row id, and
// marked published.
func TestWorkerPublishesEventsLeftUnpublished(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	db, topic := setupPipeline(t)
	ctx := context.Background()
	var id int64
	if err := db.PG.QueryRow(ctx, `INSERT INTO notifications (client_id, kind, message, available, threshold)
		VALUES (2, 'low_balance', 'available balance -1.000000 fell below the threshold 0.000000', -1, 0) RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	events := topic + "-events"
	p := startWorker(t, bin, db, topic, "--events-topic", events)
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{kafkaBrokers()}, Topic: events, GroupID: events + "-reader", StartOffset: kafka.FirstOffset, MaxBytes: 1 << 20})
	defer r.Close()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m, err := r.ReadMessage(rctx)
	if err != nil {
		t.Fatalf("no event on %s: %v\n%s", events, err, p.stderr)
	}
	var ev struct {
		ID        int64  `json:"id"`
		Kind      string `json:"kind"`
		Client    string `json:"client"`
		Available string `json:"available"`
	}
	if err := json.Unmarshal(m.Value, &ev); err != nil || ev.ID != id || ev.Kind != "low_balance" || ev.Client != "Customer B" || ev.Available != "-1.000000" {
		t.Errorf("event %s (%v), want notification %d for Customer B at -1.000000", m.Value, err, id)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var published bool
		if err := db.PG.QueryRow(ctx, `SELECT published_at IS NOT NULL FROM notifications WHERE id = $1`, id).Scan(&published); err != nil {
			t.Fatal(err)
		}
		if published {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the notification was published but not marked so")
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop(t)
}

func TestWorkerHotReloadAndLowBalance(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	db, topic := setupPipeline(t)
	ctx := context.Background()
	if _, err := db.PG.Exec(ctx, "UPDATE clients SET low_balance_threshold = 0 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	call := func(id, dst string) kafka.Message {
		return kafka.Message{Key: []byte(id), Value: []byte(`{"id":"` + id + `","switch":"sw1","setup_time":"2024-03-10T12:00:00Z","connect_time":"2024-03-10T12:00:05Z",` +
			`"disconnect_time":"2024-03-10T12:01:05Z","src_user":"trunk-b","dst":"` + dst + `"}`)}
	}
	events := topic + "-events"
	metricsAddr := freeAddr(t)
	p := startWorker(t, bin, db, topic, "--events-topic", events, "--metrics-addr", metricsAddr)
	produce(t, kafkaBrokers(), topic, []kafka.Message{call("before-1", "442071234567"), call("before-2", "442071234568")})
	waitConsumed(t, db, topic, 2, 60*time.Second, p)

	if _, err := db.PG.Exec(ctx, "UPDATE rates SET rate = 0.5, updated_at = now() WHERE rate_table_id = 1 AND code = '44'"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.stderr.String(), "catalog loaded") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the rate change did not reach the running worker within 10s\n%s", p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	produce(t, kafkaBrokers(), topic, []kafka.Message{call("after-1", "442071234569"), call("after-2", "442071234560")})
	waitConsumed(t, db, topic, 4, 60*time.Second, p)

	rates := map[string]string{}
	rows, err := db.CH.Query(ctx, "SELECT cdr_id, toString(orig_rate), toString(orig_cost) FROM xdrs FINAL")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, rate, cost string
		if err := rows.Scan(&id, &rate, &cost); err != nil {
			t.Fatal(err)
		}
		rates[id] = rate + " " + cost
	}
	rows.Close()
	for id, want := range map[string]string{"before-1": "0.012000000 0.012000", "before-2": "0.012000000 0.012000", "after-1": "0.500000000 0.500000", "after-2": "0.500000000 0.500000"} {
		if rates[id] != want {
			t.Errorf("xDR %s: rate and cost %q, want %q", id, rates[id], want)
		}
	}

	var n int
	if err := db.PG.QueryRow(ctx, "SELECT count(*) FROM notifications WHERE client_id = 2 AND kind = 'low_balance'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d low-balance notifications for client 2 after four calls below the threshold, want exactly 1", n)
	}
	if !strings.Contains(p.stderr.String(), "low balance") {
		t.Errorf("no low balance log line\n%s", p.stderr)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{kafkaBrokers()}, Topic: events, GroupID: events + "-reader", StartOffset: kafka.FirstOffset, MaxBytes: 1 << 20})
	defer r.Close()
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	m, err := r.ReadMessage(rctx)
	if err != nil || !strings.Contains(string(m.Value), `"client":"Customer B"`) || !strings.Contains(string(m.Value), `"kind":"low_balance"`) {
		t.Errorf("events topic: %s, %v; want a low_balance event for Customer B", m.Value, err)
	}

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"tarifa_cdrs_consumed_total 4", "tarifa_cdrs_rated_total 4", "tarifa_batch_size_count", "tarifa_batch_duration_seconds_bucket",
		"tarifa_committed_offset{partition=", "tarifa_consumer_lag{partition=", "tarifa_catalog_reloads_total 2", "tarifa_low_balance_events_total 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	p.stop(t)
}
