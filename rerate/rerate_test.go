package rerate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/sinks"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

// The catalog of these tests: customers A (1) and B (2) on the retail
// table, C (3) stopped, vendor V (10) on the vendor table; every rate is
// per second (min 1, interval 1), so the test's own model prices calls.
const worldCatalog = `
INSERT INTO resellers (id, name, currency) VALUES (1, 'Reseller', 'USD'), (2, 'Other', 'USD');
INSERT INTO rate_tables (id, name, currency) VALUES (1, 'retail', 'USD'), (2, 'vendor', 'USD');
INSERT INTO rates (rate_table_id, code, code_name, rate) VALUES
  (1, '44', 'UK', 0.012), (1, '447', 'UK Mobile', 0.05), (2, '44', 'UK', 0.008), (2, '447', 'UK Mobile', 0.031);
INSERT INTO clients (id, reseller_id, name, currency, orig_rate_table_id, status) VALUES
  (1, 1, 'A', 'USD', 1, 'active'), (2, 1, 'B', 'USD', 1, 'active'), (3, 1, 'C', 'USD', 1, 'stop'), (4, 2, 'D', 'USD', 1, 'active');
INSERT INTO clients (id, reseller_id, name, currency, term_rate_table_id) VALUES (10, 1, 'V', 'USD', 2);
INSERT INTO accounts (client_id, kind, ident, orig, term) VALUES
  (1, 'ip', '10.0.0.1', true, false), (2, 'username', 'trunk-b', true, false), (3, 'ip', '10.0.0.3', true, false),
  (10, 'ip', '192.0.2.7', false, true);
INSERT INTO transactions (client_id, kind, amount, currency, ref) VALUES (1, 'payment', 100, 'USD', 'p1');
`

// model is the test's own account of the catalog, to price calls without
// the rater.
type model struct {
	rates   map[int64]map[string]decimal.Decimal // table → code → rate per minute
	orig    map[string]int64                     // "ip:…" / "user:…" → client
	status  map[int64]string
	tables  map[int64]int64 // client → orig table
	vendors map[int64]int64 // client → term table
	paid    map[int64]decimal.Decimal
}

func newModel() *model {
	d := decimal.RequireFromString
	return &model{
		rates:   map[int64]map[string]decimal.Decimal{1: {"44": d("0.012"), "447": d("0.05")}, 2: {"44": d("0.008"), "447": d("0.031")}},
		orig:    map[string]int64{"ip:10.0.0.1": 1, "user:trunk-b": 2, "ip:10.0.0.3": 3},
		status:  map[int64]string{1: "active", 2: "active", 3: "stop", 4: "active"},
		tables:  map[int64]int64{1: 1, 2: 1, 3: 1, 4: 1},
		vendors: map[int64]int64{10: 2},
		paid:    map[int64]decimal.Decimal{1: decimal.NewFromInt(100)},
	}
}

func (m *model) price(table int64, number string, ms int64) (decimal.Decimal, bool) {
	for l := len(number); l > 0; l-- {
		if r, ok := m.rates[table][number[:l]]; ok {
			secs := (ms + 999) / 1000
			return r.Mul(decimal.NewFromInt(secs)).Div(decimal.NewFromInt(60)).Round(6), true
		}
	}
	return decimal.Zero, false
}

// bill is what call c moves: its orig client pays orig, its vendor earns term.
func (m *model) bill(c *testCall) (origClient int64, orig decimal.Decimal, termClient int64, term decimal.Decimal, rated bool) {
	origClient = m.orig[c.src]
	if origClient == 0 || m.status[origClient] != "active" {
		return origClient, decimal.Zero, 0, decimal.Zero, false
	}
	orig, ok := m.price(m.tables[origClient], c.dst, c.ms)
	if !ok {
		return origClient, decimal.Zero, 0, decimal.Zero, false
	}
	if c.term {
		if t, ok := m.price(m.vendors[10], c.dst, c.ms); ok {
			return origClient, orig, 10, t, true
		}
	}
	return origClient, orig, 0, decimal.Zero, true
}

// testCall is one CDR the tests send, and what a switch sent for it.
type testCall struct {
	id, src, dst string
	ms           int64
	term         bool
	setup        time.Time
}

func (c *testCall) raw() []byte {
	src := `"src_ip":"` + strings.TrimPrefix(c.src, "ip:") + `"`
	if strings.HasPrefix(c.src, "user:") {
		src = `"src_user":"` + strings.TrimPrefix(c.src, "user:") + `"`
	}
	term := ""
	if c.term {
		term = `,"term_ip":"192.0.2.7"`
	}
	connect := ""
	if c.ms > 0 {
		connect = `,"connect_time":"` + c.setup.Format(time.RFC3339) + `"`
	}
	disc := c.setup.Add(time.Duration(c.ms) * time.Millisecond).Add(time.Second)
	return []byte(fmt.Sprintf(`{"id":"%s","switch":"sw1","setup_time":"%s"%s,"disconnect_time":"%s","duration":%d.%03d,%s,"dst":"%s"%s}`,
		c.id, c.setup.Format(time.RFC3339), connect, disc.Format(time.RFC3339Nano), c.ms/1000, c.ms%1000, src, c.dst, term))
}

// world is a private database pair with the test catalog, fed CDRs through
// the worker's own rater and store, as if from Kafka topic "cdrs".
type world struct {
	t     *testing.T
	db    *sinktest.DB
	store *sinks.Store
	next  map[int]int64
	calls []*testCall
	m     *model
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, db: sinktest.New(t), next: map[int]int64{}, m: newModel()}
	if _, err := w.db.PG.Exec(context.Background(), worldCatalog); err != nil {
		t.Fatal(err)
	}
	w.store = sinks.NewStore(w.db.PG, w.db.CH, prometheus.NewRegistry())
	t.Cleanup(w.store.Close)
	return w
}

// traffic makes n calls set up 20 s apart from base, of every kind.
func traffic(n int, seed uint64, base time.Time) []*testCall {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var out []*testCall
	for i := 0; i < n; i++ {
		c := &testCall{id: fmt.Sprintf("c%d-%d", seed, i), setup: base.Add(time.Duration(i) * 20 * time.Second),
			src:  []string{"ip:10.0.0.1", "ip:10.0.0.1", "user:trunk-b", "ip:10.0.0.3", "ip:10.9.9.9"}[rng.IntN(5)],
			dst:  []string{"447700900", "442071234", "3312345"}[rng.IntN(3)] + fmt.Sprintf("%03d", rng.IntN(1000)),
			term: rng.IntN(3) > 0}
		if rng.IntN(10) < 7 {
			c.ms = 1 + rng.Int64N(600_000)
		}
		out = append(out, c)
	}
	return out
}

// send commits calls as the next messages of partition, through the store.
func (w *world) send(partition int, calls []*testCall) *rater.Batch {
	w.t.Helper()
	b := w.batch(partition, calls)
	if _, err := w.store.Commit(context.Background(), b); err != nil {
		w.t.Fatal(err)
	}
	w.next[partition] = b.Next
	w.calls = append(w.calls, calls...)
	return b
}

// batch rates calls as the next messages of partition, uncommitted.
func (w *world) batch(partition int, calls []*testCall) *rater.Batch {
	w.t.Helper()
	cat, err := sinks.NewCatalogLoader(w.db.PG).Load(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	first, ok := w.next[partition]
	b := &rater.Batch{Topic: "cdrs", Partition: partition, First: first, Next: first + int64(len(calls)), Stored: first}
	if !ok {
		b.Stored = -1
	}
	rt := rater.NewRater()
	b.XDRs = make([]rater.XDR, len(calls))
	for i, c := range calls {
		m := ingest.Message{Partition: partition, Offset: first + int64(i), Time: c.setup.Add(time.Hour), Value: c.raw()}
		rt.Rate(cat, &m, &b.XDRs[i], 0)
	}
	return b
}

func (w *world) runner(cfg Config) *Runner {
	w.t.Helper()
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = 40
	}
	r, err := NewRunner(cfg, w.db.PG, w.db.CH, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(r.Close)
	return r
}

func (w *world) exec(sql string) {
	w.t.Helper()
	if _, err := w.db.PG.Exec(context.Background(), sql); err != nil {
		w.t.Fatal(err)
	}
}

// expected returns every client's live balance as the model prices the
// calls: those of selected (by index, nil for all) under m, the others under
// before.
func (w *world) expected(before, m *model, selected func(*testCall) bool) map[int64]decimal.Decimal {
	out := map[int64]decimal.Decimal{}
	for id, p := range w.m.paid {
		out[id] = p
	}
	for _, c := range w.calls {
		mm := before
		if selected == nil || selected(c) {
			mm = m
		}
		oc, orig, tc, term, rated := mm.bill(c)
		if !rated {
			continue
		}
		out[oc] = out[oc].Sub(orig)
		if tc != 0 {
			out[tc] = out[tc].Add(term)
		}
	}
	return out
}

// check asserts every balance equals want to the last decimal, and
// invariant 1: payments − orig costs + term costs in xdrs FINAL.
func (w *world) check(want map[int64]decimal.Decimal) {
	w.t.Helper()
	ctx := context.Background()
	for _, id := range []int64{1, 2, 3, 4, 10} {
		var live decimal.Decimal
		if err := w.db.PG.QueryRow(ctx, `SELECT live FROM client_balances WHERE client_id = $1`, id).Scan(&live); err != nil {
			w.t.Fatal(err)
		}
		if !live.Equal(want[id]) {
			w.t.Errorf("client %d: live balance %s, want %s", id, live, want[id])
		}
		var orig, term decimal.Decimal
		if err := w.db.CH.QueryRow(ctx, `SELECT sumIf(orig_cost, orig_client_id = ? AND status = 'rated'),
			sumIf(term_cost, term_client_id = ? AND status = 'rated' AND term_reason = '') FROM xdrs FINAL`, uint64(id), uint64(id)).Scan(&orig, &term); err != nil {
			w.t.Fatal(err)
		}
		var paid decimal.Decimal
		if err := w.db.PG.QueryRow(ctx, `SELECT coalesce(sum(CASE kind WHEN 'charge' THEN -amount ELSE amount END), 0) FROM transactions WHERE client_id = $1`, id).Scan(&paid); err != nil {
			w.t.Fatal(err)
		}
		if fromXDRs := paid.Sub(orig).Add(term); !live.Equal(fromXDRs) {
			w.t.Errorf("client %d: live balance %s, but payments − orig + term in xdrs FINAL = %s (invariant 1)", id, live, fromXDRs)
		}
	}
	var rows, distinct uint64
	if err := w.db.CH.QueryRow(ctx, `SELECT count(), uniqExact(switch, cdr_id) FROM xdrs FINAL WHERE reason != 'duplicate_conflict'`).Scan(&rows, &distinct); err != nil {
		w.t.Fatal(err)
	}
	if rows != distinct || rows != uint64(len(w.calls)) {
		w.t.Errorf("xdrs FINAL: %d rows, %d distinct, want %d: one per CDR", rows, distinct, len(w.calls))
	}
}

var day = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

func allOf(from, to time.Time) Selection { return Selection{From: from, To: to} }

// clone copies a model.
func (m *model) clone() *model {
	c := newModel()
	c.rates = map[int64]map[string]decimal.Decimal{}
	for t, codes := range m.rates {
		c.rates[t] = map[string]decimal.Decimal{}
		for k, v := range codes {
			c.rates[t][k] = v
		}
	}
	for k, v := range m.orig {
		c.orig[k] = v
	}
	for k, v := range m.status {
		c.status[k] = v
	}
	return c
}

// TestRerateDryRunThenConfirm: the dry run says exactly what the job will
// do and moves nothing; the confirmed job moves each balance by its delta,
// once, and drops what it staged.
func TestRerateDryRunThenConfirm(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	calls := traffic(400, 1, day)
	for p := 0; p < 4; p++ {
		w.send(p, calls[p*100:(p+1)*100])
	}
	before := w.m.clone()
	w.check(w.expected(before, before, nil))

	// The operator fixes the mobile rate, adds the missing account and
	// starts the stopped client.
	w.exec(`UPDATE rates SET rate = 0.07 WHERE rate_table_id = 1 AND code = '447';
		INSERT INTO accounts (client_id, kind, ident) VALUES (2, 'ip', '10.9.9.9');
		UPDATE clients SET status = 'active' WHERE id = 3`)
	after := before.clone()
	after.rates[1]["447"] = decimal.RequireFromString("0.07")
	after.orig["ip:10.9.9.9"] = 2
	after.status[3] = "active"

	reports := report.New(w.db.PG, w.db.CH, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r := w.runner(Config{Refresh: func(ctx context.Context) error { _, err := reports.RefreshRollups(ctx, 0); return err }})
	sel := allOf(day, day.Add(24*time.Hour))
	dry, err := r.Run(ctx, Request{Selection: sel, DryRun: true, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	w.check(w.expected(before, before, nil)) // the dry run moved nothing
	if dry.State != StateDryRun || dry.Selected != 400 || dry.Changed == 0 {
		t.Fatalf("dry run: %+v", dry)
	}
	want := w.expected(before, after, nil)
	got := w.expected(before, before, nil)
	for _, c := range dry.Clients {
		// A live balance moves by −delta on the orig side, +delta on the term side.
		if c.Side == "orig" {
			got[c.ClientID] = got[c.ClientID].Sub(c.Delta)
		} else {
			got[c.ClientID] = got[c.ClientID].Add(c.Delta)
		}
		if !c.Delta.Equal(c.New.Sub(c.Old)) || c.Currency != "USD" {
			t.Errorf("client row %+v", c)
		}
	}
	for id, v := range want {
		if !got[id].Equal(v) {
			t.Errorf("client %d: the dry run's deltas lead to %s, the model says %s", id, got[id], v)
		}
	}
	var sawTransition bool
	for _, tr := range dry.Transitions {
		if tr.From == "unknown_account" && tr.To == "rated" && tr.Calls > 0 {
			sawTransition = true
		}
	}
	if !sawTransition {
		t.Errorf("transitions %+v lack unknown_account → rated", dry.Transitions)
	}

	done, err := r.Run(ctx, Request{Selection: sel, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if done.State != StateDone || done.Selected != 400 || done.Changed != dry.Changed || done.Skipped != 0 {
		t.Fatalf("job: %+v, dry run changed %d", done, dry.Changed)
	}
	w.check(want)
	// The job refreshed the rollups of the hours it rewrote: reports read
	// them, not xdrs FINAL, right after it.
	var dirty int
	if err := w.db.PG.QueryRow(ctx, `SELECT count(*) FROM rollup_dirty`).Scan(&dirty); err != nil || dirty != 0 {
		t.Errorf("%d setup hours still dirty after the job (%v)", dirty, err)
	}
	var staged uint64
	if err := w.db.CH.QueryRow(ctx, `SELECT count() FROM rerate_staged`).Scan(&staged); err != nil || staged != 0 {
		t.Errorf("rerate_staged holds %d rows after the job (%v)", staged, err)
	}
	// Running it again changes nothing more.
	again, err := r.Run(ctx, Request{Selection: sel, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed != 0 {
		t.Errorf("a second identical job changed %d calls", again.Changed)
	}
	w.check(want)
}

// TestRerateKilledBetweenWritesAndBalances is the first trap: a job killed
// after it wrote a chunk's new xDR versions and before it moved their
// balances is resumed — by a new process, or by running the same command
// again — and no balance moves twice or is skipped. Meanwhile another job
// is refused.
func TestRerateKilledBetweenWritesAndBalances(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	calls := traffic(300, 2, day)
	for p := 0; p < 3; p++ {
		w.send(p, calls[p*100:(p+1)*100])
	}
	before := w.m.clone()
	w.exec(`UPDATE rates SET rate = 0.09 WHERE rate_table_id = 1 AND code = '447'; UPDATE rates SET rate = 0.004 WHERE rate_table_id = 2 AND code = '44'`)
	after := before.clone()
	after.rates[1]["447"] = decimal.RequireFromString("0.09")
	after.rates[2]["44"] = decimal.RequireFromString("0.004")

	r := w.runner(Config{Retries: -1})
	kills := 0
	r.afterWrite = func(chunk int) error {
		if chunk == 2 && kills < 2 {
			kills++
			return errors.New("killed")
		}
		return nil
	}
	sel := allOf(day, day.Add(24*time.Hour))
	_, err := r.Run(ctx, Request{Selection: sel, Actor: "test"})
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the job did not stop where it was killed: %v", err)
	}
	j, err := Get(ctx, w.db.PG, 1, 0)
	if err != nil || j.State != StateFailed {
		t.Fatalf("job after the kill: %+v %v", j, err)
	}
	// The chunk's new versions are in ClickHouse, its balances did not move.
	var written uint64
	if err := w.db.CH.QueryRow(ctx, `SELECT count() FROM xdrs FINAL WHERE version % 1000 = 1`).Scan(&written); err != nil || written == 0 {
		t.Fatalf("%d rows written by the job before the kill (%v)", written, err)
	}

	// Another job is refused while this one is unfinished.
	other := allOf(day, day.Add(time.Hour))
	if _, err := r.Run(ctx, Request{Selection: other, Actor: "test"}); !errors.As(err, new(*BusyError)) {
		t.Fatalf("a second job while the first is unfinished: %v, want a BusyError", err)
	}
	// Running the same command again resumes it; killed once more at the
	// same place, then a fresh runner (a new process) resumes it by id.
	if _, err := r.Run(ctx, Request{Selection: sel, Actor: "test"}); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the same command again: %v", err)
	}
	fresh := w.runner(Config{})
	done, err := fresh.Resume(ctx, ResumeRequest{ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if done.State != StateDone || done.Selected != 300 {
		t.Fatalf("resumed job: %+v", done)
	}
	w.check(w.expected(before, after, nil))
}

// TestRerateBillableThenResent: a mismatched call the rerate makes billable
// is claimed like the worker would claim it, so the switch re-sending it is
// a duplicate (billed once), and a re-send saying something else is a
// conflict, not a second bill.
func TestRerateBillableThenResent(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	c := &testCall{id: "lost", src: "ip:10.9.9.9", dst: "447700900123", ms: 61_000, term: true, setup: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)}
	w.send(0, []*testCall{c})
	w.exec(`INSERT INTO accounts (client_id, kind, ident) VALUES (2, 'ip', '10.9.9.9')`)
	before := w.m.clone()
	after := before.clone()
	after.orig["ip:10.9.9.9"] = 2
	r := w.runner(Config{})
	if _, err := r.Run(ctx, Request{Selection: allOf(c.setup.Add(-time.Minute), c.setup.Add(time.Minute)), Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	want := w.expected(before, after, nil)
	w.check(want)

	b := w.batch(1, []*testCall{c})
	res, err := w.store.Commit(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	w.next[1] = b.Next
	if res.Duplicates != 1 {
		t.Errorf("the switch re-sending the rerated call: %d duplicates, want 1", res.Duplicates)
	}
	changed := *c
	changed.ms = 120_000
	b = w.batch(1, []*testCall{&changed})
	if _, err := w.store.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	w.check(want)
}

// TestRerateMovesACall: an account moved to another client; rerated, the
// first client gets its cost back and the second pays the new one.
func TestRerateMovesACall(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	w.send(0, traffic(120, 3, day))
	before := w.m.clone()
	w.exec(`UPDATE accounts SET client_id = 2 WHERE ident = '10.0.0.1'`)
	after := before.clone()
	after.orig["ip:10.0.0.1"] = 2
	j, err := w.runner(Config{}).Run(ctx, Request{Selection: Selection{From: day, To: day.Add(24 * time.Hour), Clients: []int64{1}, Side: SideOrig}, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	w.check(w.expected(before, after, nil))
	var aNew, bNew decimal.Decimal
	for _, c := range j.Clients {
		switch {
		case c.ClientID == 1 && c.Side == "orig":
			aNew = c.New
		case c.ClientID == 2 && c.Side == "orig":
			bNew = c.New
		}
	}
	if !aNew.IsZero() || bNew.IsZero() {
		t.Errorf("A now pays %s (want 0), B %s (want what A paid before)", aNew, bNew)
	}
}

// TestRerateLeavesInFlightWorkAlone: a worker's batch whose rows reached
// ClickHouse but whose commit did not happen yet (it retries) is left
// alone by a job, and the worker's retry then commits it: balances stay
// exact.
func TestRerateLeavesInFlightWorkAlone(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	calls := traffic(100, 4, day)
	w.send(0, calls[:60])
	// The attempt at the next batch wrote its rows to ClickHouse, as a
	// commit does under its partition's lock, and then lost PostgreSQL: it
	// will retry.
	pending := w.batch(0, calls[60:])
	version, err := sinks.Clock(ctx, w.db.PG)
	if err != nil {
		t.Fatal(err)
	}
	for i := range pending.XDRs {
		pending.XDRs[i].Version = version
	}
	attempt := sinks.NewXDRWriter(w.db.CH)
	defer attempt.Close()
	if err := attempt.Write(ctx, pending.XDRs, true); err != nil {
		t.Fatal(err)
	}
	before := w.m.clone()
	w.exec(`UPDATE rates SET rate = 0.2 WHERE rate_table_id = 1`)
	after := before.clone()
	after.rates[1]["44"], after.rates[1]["447"] = decimal.RequireFromString("0.2"), decimal.RequireFromString("0.2")
	j, err := w.runner(Config{}).Run(ctx, Request{Selection: allOf(day, day.Add(24*time.Hour)), Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if j.Skipped != 40 || j.Selected != 60 {
		t.Errorf("job selected %d and left %d alone, want 60 and the 40 in flight", j.Selected, j.Skipped)
	}
	// The worker's retry, rated with the catalog it had.
	if _, err := w.store.Commit(ctx, pending); err != nil {
		t.Fatal(err)
	}
	w.next[0] = pending.Next
	w.calls = append(w.calls, calls[60:]...)
	inFirst := map[string]bool{}
	for _, c := range calls[:60] {
		inFirst[c.id] = true
	}
	w.check(w.expected(before, after, func(c *testCall) bool { return inFirst[c.id] }))
}

// TestRerateScope: a reseller's job never moves the balance of a client
// outside its subtree.
func TestRerateScope(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	w.send(0, traffic(80, 5, day))
	before := w.m.clone()
	// A's account moves to D, a client of another reseller.
	w.exec(`UPDATE accounts SET client_id = 4 WHERE ident = '10.0.0.1'`)
	j, err := w.runner(Config{}).Run(ctx, Request{Selection: allOf(day, day.Add(24*time.Hour)), Actor: "test", Scope: 1})
	if err != nil {
		t.Fatal(err)
	}
	if j.Skipped == 0 {
		t.Errorf("job %+v moved nothing aside", j)
	}
	for _, c := range j.Clients {
		if c.ClientID == 4 {
			t.Errorf("a reseller's job touched client D of another reseller: %+v", c)
		}
	}
	w.check(w.expected(before, before, nil))
}

// TestRerateScopeOfAManyClientReseller: a reseller with 30,000 clients
// rerates its subtree (every id goes into the job's ClickHouse filter,
// past the server's default query size): the job runs, and bills as the
// operator's would.
func TestRerateScopeOfAManyClientReseller(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	w.exec(`INSERT INTO clients (id, reseller_id, name, currency, orig_rate_table_id, status)
		SELECT 1000 + g, 1, 'many-' || g, 'USD', 1, 'active' FROM generate_series(1, 30000) AS g`)
	w.send(0, traffic(40, 5, day))
	before := w.m.clone()
	w.exec(`UPDATE rates SET rate = 0.02 WHERE rate_table_id = 1 AND code = '44'`)
	after := before.clone()
	after.rates[1]["44"] = decimal.RequireFromString("0.02")
	j, err := w.runner(Config{}).Run(ctx, Request{Selection: allOf(day, day.Add(24*time.Hour)), Actor: "test", Scope: 1})
	if err != nil {
		t.Fatalf("a reseller with 30,000 clients: %v", err)
	}
	if j.Changed == 0 {
		t.Errorf("job %+v changed nothing", j)
	}
	w.check(w.expected(before, after, nil))
}

// TestRerateProperty: random catalog changes, then random selections, then
// rerate: every balance equals the model's, to the last decimal, and
// invariant 1 holds, round after round.
func TestRerateProperty(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	calls := traffic(500, 6, day)
	for p := 0; p < 5; p++ {
		w.send(p, calls[p*100:(p+1)*100])
	}
	// The current model of each call: rerating a call moves it to the
	// catalog of its job; the others keep the model they were priced with.
	priced := map[string]*model{}
	for _, c := range calls {
		priced[c.id] = w.m
	}
	cur := w.m.clone()
	rng := rand.New(rand.NewPCG(61, 62))
	r := w.runner(Config{ChunkSize: 25})
	for round := 0; round < 6; round++ {
		next := cur.clone()
		switch rng.IntN(4) {
		case 0:
			rate := decimal.New(rng.Int64N(200), -3)
			code := []string{"44", "447"}[rng.IntN(2)]
			table := int64(1 + rng.IntN(2))
			w.exec(fmt.Sprintf(`UPDATE rates SET rate = %s WHERE rate_table_id = %d AND code = '%s'`, rate, table, code))
			next.rates[table][code] = rate
		case 1:
			w.exec(`UPDATE clients SET status = CASE status WHEN 'active' THEN 'stop' ELSE 'active' END WHERE id = 3`)
			next.status[3] = map[string]string{"active": "stop", "stop": "active"}[cur.status[3]]
		case 2:
			to := int64(1 + rng.IntN(2))
			w.exec(fmt.Sprintf(`UPDATE accounts SET client_id = %d WHERE ident = '10.0.0.1'`, to))
			next.orig["ip:10.0.0.1"] = to
		case 3:
			w.exec(`INSERT INTO accounts (client_id, kind, ident) VALUES (1, 'ip', '10.9.9.9') ON CONFLICT DO NOTHING`)
			next.orig["ip:10.9.9.9"] = 1
		}
		cur = next
		from := day.Add(time.Duration(rng.IntN(120)) * time.Minute)
		sel := Selection{From: from, To: from.Add(time.Duration(30+rng.IntN(120)) * time.Minute)}
		if rng.IntN(2) == 0 {
			sel.Status = StatusRated
		}
		in := func(c *testCall) bool {
			if c.setup.Before(sel.From) || !c.setup.Before(sel.To) {
				return false
			}
			_, _, _, _, rated := priced[c.id].bill(c)
			return sel.Status != StatusRated || rated
		}
		for _, c := range calls {
			if in(c) {
				priced[c.id] = cur
			}
		}
		if _, err := r.Run(ctx, Request{Selection: sel, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		want := map[int64]decimal.Decimal{1: decimal.NewFromInt(100)}
		for _, c := range calls {
			oc, orig, tc, term, rated := priced[c.id].bill(c)
			if rated {
				want[oc] = want[oc].Sub(orig)
				if tc != 0 {
					want[tc] = want[tc].Add(term)
				}
			}
		}
		w.check(want)
		if t.Failed() {
			t.Fatalf("round %d (%+v)", round, sel)
		}
	}
}

// TestCollector: the rerating metrics read the jobs table: jobs per state,
// CDRs rated again, and the net balance movement per currency.
func TestCollector(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	w.send(0, traffic(60, 7, day))
	w.exec(`UPDATE rates SET rate = 0.1 WHERE rate_table_id = 1`)
	r := w.runner(Config{})
	sel := allOf(day, day.Add(24*time.Hour))
	if _, err := r.Run(ctx, Request{Selection: sel, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	j, err := r.Run(ctx, Request{Selection: sel})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(w.db.PG))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetValue() + "}"
			}
			got[name] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	var move decimal.Decimal
	for _, c := range j.Clients {
		if c.Side == "orig" {
			move = move.Sub(c.Delta)
		} else {
			move = move.Add(c.Delta)
		}
	}
	wantMove, _ := move.Float64()
	for name, want := range map[string]float64{"tarifa_rerate_jobs{dry_run}": 1, "tarifa_rerate_jobs{done}": 1, "tarifa_rerate_jobs{running}": 0,
		"tarifa_rerate_cdrs_total": 60, "tarifa_rerate_balance_delta{USD}": wantMove, "tarifa_rerate_collect_errors": 0} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}

// TestRerateRaceWithAWorkerAttempt: between the moment a job read a chunk
// and the moment it locks the partitions, a worker's attempt bills a
// re-send of a call the job is about to make billable, writes its rows and
// fails before committing (it will retry). No stored offset moved, so the
// job does not read the chunk again: the attempt's dedupe claim tells it
// to leave the call alone, and the worker's retry bills it — once.
func TestRerateRaceWithAWorkerAttempt(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	c := &testCall{id: "raced", src: "ip:10.9.9.9", dst: "447700900123", ms: 61_000, term: true, setup: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)}
	w.send(0, []*testCall{c})
	w.exec(`INSERT INTO accounts (client_id, kind, ident) VALUES (2, 'ip', '10.9.9.9')`)
	before := w.m.clone()
	after := before.clone()
	after.orig["ip:10.9.9.9"] = 2

	r := w.runner(Config{})
	var attempt *rater.Batch
	r.beforeLock = func(int) {
		// The re-send, rated with the fixed catalog: billable; its claim
		// and rows are written, its commit fails (PostgreSQL went away).
		attempt = w.batch(1, []*testCall{c})
		attempt.Stored = 9999
		if _, err := w.store.Commit(ctx, attempt); err == nil {
			t.Error("the attempt committed")
		}
		version, err := sinks.Clock(ctx, w.db.PG)
		if err != nil {
			t.Error(err)
		}
		attempt.XDRs[0].Version = version
		wr := sinks.NewXDRWriter(w.db.CH)
		defer wr.Close()
		if err := wr.Write(ctx, attempt.XDRs, true); err != nil {
			t.Error(err)
		}
	}
	j, err := r.Run(ctx, Request{Selection: allOf(c.setup.Add(-time.Minute), c.setup.Add(time.Minute)), Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if j.Skipped != 1 {
		t.Errorf("job %+v: want the raced call left alone", j)
	}
	attempt.Stored = -1
	if _, err := w.store.Commit(ctx, attempt); err != nil { // the worker's retry
		t.Fatal(err)
	}
	w.next[1] = attempt.Next
	w.check(w.expected(before, after, nil))
}

// TestRerateRaceWithAResend: while a job commits the chunk that makes a
// call billable, the switch re-sends that call saying something else —
// broken (malformed, keeping its id) or unanswered (zero cost). The
// worker's copy must not replace the job's billed row: it sees the job's
// claim (committed before the job takes its version) and is kept as a
// conflict, and a malformed copy ranks below every valid row anyway.
func TestRerateRaceWithAResend(t *testing.T) {
	for _, tc := range []struct{ name, from, to string }{
		{"malformed", `"dst":"447700900123"`, `"dst":"44770090x"`},
		{"unanswered", `"duration":61.000`, `"duration":0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			ctx := context.Background()
			c := &testCall{id: "torn", src: "ip:10.9.9.9", dst: "447700900123", ms: 61_000, term: true, setup: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)}
			w.send(0, []*testCall{c})
			w.exec(`INSERT INTO accounts (client_id, kind, ident) VALUES (2, 'ip', '10.9.9.9')`)
			before := w.m.clone()
			after := before.clone()
			after.orig["ip:10.9.9.9"] = 2

			r := w.runner(Config{})
			done := make(chan error, 1)
			r.afterWrite = func(int) error {
				// The re-send reaches a worker now; its commit waits for the
				// job's (the job holds the partitions' locks) and then goes on.
				cat, err := sinks.NewCatalogLoader(w.db.PG).Load(ctx)
				if err != nil {
					return err
				}
				b := &rater.Batch{Topic: "cdrs", Partition: 1, First: 0, Next: 1, Stored: -1, XDRs: make([]rater.XDR, 1)}
				raw := strings.Replace(string(c.raw()), tc.from, tc.to, 1)
				rater.NewRater().Rate(cat, &ingest.Message{Partition: 1, Offset: 0, Time: time.Now(), Value: []byte(raw)}, &b.XDRs[0], 0)
				if b.XDRs[0].ID != "torn" || b.XDRs[0].Rating.Orig.CostMicro != 0 {
					return fmt.Errorf("the re-send is not a zero-cost copy keeping its id: %+v", b.XDRs[0].Rating)
				}
				go func() { _, err := w.store.Commit(ctx, b); done <- err }()
				time.Sleep(200 * time.Millisecond) // let it reach the partition's lock
				return nil
			}
			if _, err := r.Run(ctx, Request{Selection: allOf(c.setup.Add(-time.Minute), c.setup.Add(time.Minute)), Actor: "test"}); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			w.next[1] = 1
			var status, reason string
			if err := w.db.CH.QueryRow(ctx, `SELECT status, reason FROM xdrs FINAL WHERE cdr_id = 'torn'`).Scan(&status, &reason); err != nil || status != "rated" {
				t.Errorf("the rerated call's row: %s %s (%v), want the job's rated row", status, reason, err)
			}
			w.check(w.expected(before, after, nil))
		})
	}
}

// TestRerateTwoCDRsOfOneIDBilledOnce: two CDRs of one switch and id that
// say different things are billed once, as the worker bills them (the
// second is a conflict), when the rerate makes one of them billable:
// beside a billed one (its claim is another CDR's), beside another one the
// same job makes billable in the same chunk, or in an earlier chunk (the
// first to arrive is billed, as the worker would have billed it).
func TestRerateTwoCDRsOfOneIDBilledOnce(t *testing.T) {
	t.Parallel()
	for _, chunk := range []int{40, 1} {
		t.Run(fmt.Sprintf("chunk size %d", chunk), func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			at := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)
			// "twin": a mismatch (unknown account, zero cost, no claim),
			// then a billed CDR of A with the same id and other content.
			lost := &testCall{id: "twin", src: "ip:10.9.9.9", dst: "447700900123", ms: 61_000, setup: at}
			billed := &testCall{id: "twin", src: "ip:10.0.0.1", dst: "447700900123", ms: 30_000, setup: at.Add(time.Hour)}
			// "pair": two mismatches of one id, each from an unknown account.
			p1 := &testCall{id: "pair", src: "ip:10.9.9.8", dst: "447700900124", ms: 45_000, setup: at.Add(10 * time.Minute)}
			p2 := &testCall{id: "pair", src: "ip:10.9.9.7", dst: "447700900124", ms: 90_000, setup: at.Add(20 * time.Minute)}
			w.send(0, []*testCall{lost, p1})
			w.send(0, []*testCall{p2}) // zero-cost, p1 claimed nothing: a row of its own
			w.send(0, []*testCall{billed})
			w.exec(`INSERT INTO accounts (client_id, kind, ident) VALUES (2, 'ip', '10.9.9.9'), (4, 'ip', '10.9.9.8'), (4, 'ip', '10.9.9.7')`)
			r := w.runner(Config{ChunkSize: chunk})
			sel := allOf(at.Add(-time.Minute), at.Add(2*time.Hour))
			dry, err := r.Run(ctx, Request{Selection: sel, DryRun: true, Actor: "test"})
			if err != nil {
				t.Fatal(err)
			}
			j, err := r.Run(ctx, Request{Selection: sel, Actor: "test"})
			if err != nil {
				t.Fatal(err)
			}
			deltas := func(j *Job) map[string]string {
				out := map[string]string{}
				for _, c := range j.Clients {
					out[fmt.Sprint(c.ClientID, c.Side)] = c.Delta.String()
				}
				return out
			}
			if d, c := deltas(dry), deltas(j); fmt.Sprint(d) != fmt.Sprint(c) || dry.Skipped != j.Skipped || dry.Changed != j.Changed {
				t.Errorf("the dry run said deltas %v, %d changed, %d skipped; the job moved %v, %d changed, %d skipped",
					d, dry.Changed, dry.Skipped, c, j.Changed, j.Skipped)
			}
			aPays, _ := w.m.price(1, billed.dst, billed.ms)
			dPays, _ := w.m.price(1, p1.dst, p1.ms) // p1 arrived first: the worker would have billed it
			want := map[int64]decimal.Decimal{1: decimal.NewFromInt(100).Sub(aPays), 2: decimal.Zero, 4: dPays.Neg()}
			for id, bal := range want {
				var live decimal.Decimal
				if err := w.db.PG.QueryRow(ctx, `SELECT live FROM client_balances WHERE client_id = $1`, id).Scan(&live); err != nil {
					t.Fatal(err)
				}
				if !live.Equal(bal) {
					t.Errorf("client %d: live balance %s, want %s (each switch and id billed once)", id, live, bal)
				}
			}
			var billedRows uint64
			if err := w.db.CH.QueryRow(ctx, `SELECT count() FROM xdrs FINAL WHERE status = 'rated' AND cdr_id IN ('twin', 'pair')`).Scan(&billedRows); err != nil {
				t.Fatal(err)
			}
			if billedRows != 2 || j.Skipped != 2 {
				t.Errorf("%d rated xDRs of twin and pair (want 2), %d CDRs left alone (want 2)", billedRows, j.Skipped)
			}
		})
	}
}
