package sinks_test

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/sinks"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

// call is one CDR of a store test: its id and what it costs the customer.
type call struct {
	id      string
	cost    int64  // micro-units; 0 for a call that moves no balance
	late    bool   // set up 49 hours after the others
	content uint64 // what the switch said, as the rater hashes it (0: the same for every call)
}

// storeFixture is a Store on a private database pair with one customer,
// committing calls as the next messages of a partition.
type storeFixture struct {
	t      *testing.T
	db     *sinktest.DB
	store  *sinks.Store
	client int64
	next   map[int]int64 // partition → next offset, once one is stored
}

func newStoreFixture(t *testing.T) *storeFixture {
	f := &storeFixture{t: t, db: sinktest.New(t), next: map[int]int64{}}
	if err := f.db.PG.QueryRow(context.Background(), `WITH r AS (INSERT INTO resellers (name, currency) VALUES ('r', 'EUR') RETURNING id)
		INSERT INTO clients (reseller_id, name, currency) SELECT id, 'acme', 'EUR' FROM r RETURNING id`).Scan(&f.client); err != nil {
		t.Fatal(err)
	}
	f.store = sinks.NewStore(f.db.PG, f.db.CH, prometheus.NewRegistry())
	t.Cleanup(f.store.Close)
	return f
}

// batch is calls as the next messages of partition, billed to billTo.
func (f *storeFixture) batch(partition int, billTo int64, calls ...call) *rater.Batch {
	first, ok := f.next[partition]
	b := &rater.Batch{Topic: "cdrs", Partition: partition, First: first, Next: first + int64(len(calls)), Stored: first}
	if !ok {
		b.Stored = -1
	}
	for i, c := range calls {
		b.XDRs = append(b.XDRs, dedupeXDR(c, billTo, partition, first+int64(i)))
	}
	return b
}

// commit commits b and, when it succeeds, advances its partition.
func (f *storeFixture) commit(b *rater.Batch) (rater.CommitResult, error) {
	res, err := f.store.Commit(context.Background(), b)
	if err == nil {
		f.next[b.Partition] = b.Next
	}
	return res, err
}

// mustCommit commits calls to the customer and checks how many of them
// were duplicates.
func (f *storeFixture) mustCommit(wantDups int, partition int, calls ...call) {
	f.t.Helper()
	res, err := f.commit(f.batch(partition, f.client, calls...))
	if err != nil {
		f.t.Fatal(err)
	}
	if res.Duplicates != wantDups {
		f.t.Errorf("partition %d: %d duplicates, want %d", partition, res.Duplicates, wantDups)
	}
}

// check compares the customer's live balance with want, and with the
// opposite of its orig costs in xdrs FINAL (DESIGN.md invariant 1).
func (f *storeFixture) check(want string) {
	f.t.Helper()
	ctx := context.Background()
	var live decimal.Decimal
	if err := f.db.PG.QueryRow(ctx, `SELECT live FROM client_balances WHERE client_id = $1`, f.client).Scan(&live); err != nil {
		f.t.Fatal(err)
	}
	var cost string
	if err := f.db.CH.QueryRow(ctx, `SELECT toString(sum(orig_cost)) FROM xdrs FINAL WHERE orig_client_id = ?`, uint64(f.client)).Scan(&cost); err != nil {
		f.t.Fatal(err)
	}
	if !live.Equal(decimal.RequireFromString(want)) || !live.Neg().Equal(decimal.RequireFromString(cost)) {
		f.t.Errorf("balance %s and xdrs FINAL orig cost %s, want %s and its opposite", live, cost, want)
	}
}

// forget prunes every dedupe key, as if the window had passed.
func (f *storeFixture) forget() {
	f.t.Helper()
	if _, err := f.db.PG.Exec(context.Background(), `DELETE FROM cdr_keys`); err != nil {
		f.t.Fatal(err)
	}
}

// TestCommitDedupe walks the dedupe rules of Store.Commit through the cases
// an operator meets: repeats in one batch, repeats in another partition, a
// zero-cost repeat of a billed call, a replay after a failed commit, and an
// id reused after the 48-hour window.
func TestCommitDedupe(t *testing.T) {
	f := newStoreFixture(t)

	// The second "a" in the batch is the same call sent twice.
	f.mustCommit(1, 0, call{id: "a", cost: 1000}, call{id: "b"}, call{id: "a", cost: 1000}, call{id: "c", cost: 500})
	f.check("-0.0015")

	// Another partition: "a" again is a duplicate; "c" again, now rated at
	// zero, must not replace the billed row; "b" was free before, so
	// nothing claimed it, and now it is billed.
	f.mustCommit(2, 1, call{id: "a", cost: 1000}, call{id: "c"}, call{id: "b", cost: 700})
	f.check("-0.0022")

	// A commit that fails after claiming "d" (this worker's view of the
	// offset is stale) leaves the claim with its message: the replay of
	// that message bills it, once.
	stale := f.batch(2, f.client, call{id: "d", cost: 300})
	stale.Stored = 100
	if _, err := f.commit(stale); err == nil {
		t.Fatal("commit with a stale offset succeeded")
	}
	f.mustCommit(0, 2, call{id: "d", cost: 300})
	f.check("-0.0025")
	f.mustCommit(1, 3, call{id: "d", cost: 300})
	f.check("-0.0025")

	// 49 hours later the switch reuses the id "c" for a new call: the old
	// key has expired, so it is billed.
	if _, err := f.db.PG.Exec(context.Background(), `UPDATE cdr_keys SET seen_at = now() - interval '49 hours'`); err != nil {
		t.Fatal(err)
	}
	f.mustCommit(0, 3, call{id: "c", cost: 400, late: true})
	f.check("-0.0029")
	var rows uint64
	if err := f.db.CH.QueryRow(context.Background(), `SELECT count() FROM xdrs FINAL`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 5 {
		t.Errorf("xdrs FINAL has %d rows, want 5 (a, b, c, d and the later c)", rows)
	}
}

// TestCommitRetriedBatch: a batch whose commit failed is committed again as
// it is (the worker retries after a sink error); the duplicates it marked
// stay marked and are counted again, and no marker reaches cdr_keys.
func TestCommitRetriedBatch(t *testing.T) {
	f := newStoreFixture(t)
	f.mustCommit(0, 0, call{id: "warm-up", cost: 100})
	b := f.batch(0, f.client, call{id: "a", cost: 1000}, call{id: "a", cost: 1000})
	b.Stored = 100 // a stale view: fenced after dedupe ran
	if _, err := f.commit(b); err == nil {
		t.Fatal("commit with a stale offset succeeded")
	}
	b.Stored = b.First
	res, err := f.commit(b)
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicates != 1 {
		t.Errorf("the retried batch reports %d duplicates, want 1", res.Duplicates)
	}
	f.check("-0.0011")
	var keys int
	if err := f.db.PG.QueryRow(context.Background(), `SELECT count(*) FROM cdr_keys`).Scan(&keys); err != nil {
		t.Fatal(err)
	}
	if keys != 2 {
		t.Errorf("cdr_keys has %d keys, want 2 (warm-up, a)", keys)
	}
}

// TestCommitZeroCostRace: the same call reaches two partitions, rated at
// zero in one (looked up, nothing found) and billable in the other, which
// claims, writes and commits while the first still waits for its
// partition's lock. The billed row must stay the current one.
func TestCommitZeroCostRace(t *testing.T) {
	f := newStoreFixture(t)
	ctx := context.Background()
	f.mustCommit(0, 0, call{id: "warm-up", cost: 100})

	// Hold partition 0's offset row, so that its next commit stops at the
	// lock, after its dedupe.
	hold, err := f.db.PG.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(ctx) //nolint:errcheck
	if _, err := hold.Exec(ctx, `SELECT 1 FROM consumed_offsets WHERE "partition" = 0 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	zero := f.batch(0, f.client, call{id: "x"})
	done := make(chan error, 1)
	go func() { _, err := f.store.Commit(ctx, zero); done <- err }()
	deadline := time.Now().Add(10 * time.Second)
	for waiting := false; !waiting; {
		if err := f.db.PG.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%consumed_offsets%FOR UPDATE%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the zero-cost commit never reached the partition lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.mustCommit(0, 1, call{id: "x", cost: 700})
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.check("-0.0008")
}

// TestCommitClaimRace: a billable CDR whose key no claim holds when its
// batch looks it up, but which another message claims before the batch's
// own claim is written (a copy in another partition, committing at the same
// moment). The batch's plain INSERT of its new keys then fails on the key;
// that failure is a race, not the batch's fault: the batch must commit,
// with the CDR kept as what the other message's claim makes it — here a
// conflicting re-send, billed nowhere.
func TestCommitClaimRace(t *testing.T) {
	for _, onConflict := range []bool{false, true} {
		t.Run(fmt.Sprintf("on_conflict=%v", onConflict), func(t *testing.T) { testCommitClaimRace(t, onConflict) })
	}
}

// testCommitClaimRace is TestCommitClaimRace with the plain claims, or with
// the claim that a batch falls back on after losing several races.
func testCommitClaimRace(t *testing.T, onConflict bool) {
	f := newStoreFixture(t)
	if onConflict {
		sinks.ClaimWithOnConflict(f.store)
	}
	ctx := context.Background()
	f.mustCommit(0, 0, call{id: "warm-up", cost: 100})

	// The other message's claim, not yet committed: the batch's look-up
	// cannot see it, its INSERT waits for it.
	other, err := f.db.PG.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx) //nolint:errcheck
	key := md5.Sum([]byte("sw1\x00x"))
	if _, err := other.Exec(ctx, `INSERT INTO cdr_keys (key, topic, "partition", "offset", content) VALUES ($1, 'cdrs', 1, 0, 5)`, key); err != nil {
		t.Fatal(err)
	}
	racing := f.batch(0, f.client, call{id: "x", cost: 700, content: 6}, call{id: "y", cost: 200})
	type result struct {
		res rater.CommitResult
		err error
	}
	done := make(chan result, 1)
	go func() { res, err := f.commit(racing); done <- result{res, err} }()
	deadline := time.Now().Add(30 * time.Second)
	for waiting := false; !waiting; {
		if err := f.db.PG.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO cdr_keys%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch's claim never waited for the other message's")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := other.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("a claim that lost a race failed the commit: %v", r.err)
	}
	f.check("-0.0003") // the warm-up and y; x is the other message's
	if got, want := f.xdr("x#conflict-0000000000000006"), "mismatch duplicate_conflict 0.000000 same switch and id as the CDR at partition 1 offset 0, with other content"; got != want {
		t.Errorf("the CDR whose key was claimed under it: %q, want %q", got, want)
	}
	if got := f.xdr("x"); got != "none" {
		t.Errorf("xDR of x: %q, want none (the other message writes it)", got)
	}
	// y, claimed when the retry took what was still free, is y's message's:
	// its replay after a crash would bill it, a copy elsewhere is a duplicate.
	f.mustCommit(1, 1, call{id: "y", cost: 200})
	f.check("-0.0003")
}

// TestCommitLateResend: a switch pushes CDRs again after the dedupe window
// (cdr_keys no longer remembers them). What ClickHouse holds as billed is
// not billed again, whatever the resend is rated at; what it holds unbilled
// is billed now; and a message whose own earlier attempt wrote its row but
// never committed is billed.
func TestCommitLateResend(t *testing.T) {
	f := newStoreFixture(t)

	f.mustCommit(0, 0, call{id: "x", cost: 1000}, call{id: "z"})
	f.check("-0.001")

	f.forget()
	f.mustCommit(1, 1, call{id: "x", cost: 1000}, call{id: "z", cost: 600})
	f.check("-0.0016")
	f.forget()
	f.mustCommit(1, 2, call{id: "x"}) // a zero-cost resend must not replace the billed row
	f.check("-0.0016")

	// "w" is billed to a client deleted under the worker: its row reaches
	// ClickHouse, the commit fails; the message comes back days later.
	if _, err := f.commit(f.batch(3, f.client+1000, call{id: "w", cost: 300})); err == nil {
		t.Fatal("commit billing a client that does not exist succeeded")
	}
	f.forget()
	f.mustCommit(0, 3, call{id: "w", cost: 300})
	f.check("-0.0019")
}

// TestCommitGivesBackClaims: a message gives back the dedupe claim it took
// when it no longer bills the CDR, so that the message that does bill it
// is not turned away later.
func TestCommitGivesBackClaims(t *testing.T) {
	f := newStoreFixture(t)
	f.mustCommit(0, 0, call{id: "warm-up", cost: 100})

	// "r" is claimed by an attempt that fails (a stale offset), then the
	// message is rated again at zero (its client's catalog changed): it
	// gives the claim back, and a billable "r" from elsewhere is billed.
	stale := f.batch(0, f.client, call{id: "r", cost: 500})
	stale.Stored = 100
	if _, err := f.commit(stale); err == nil {
		t.Fatal("commit with a stale offset succeeded")
	}
	f.mustCommit(0, 0, call{id: "r"})
	f.mustCommit(0, 1, call{id: "r", cost: 500})
	f.check("-0.0006")

	// "m" is billed by a message whose commit fails after its rows reached
	// ClickHouse (its client vanished), and stays pending past the window.
	// A re-send of "m" is then a duplicate of that row and must give back
	// the claim it took, so that the pending message, when it comes back,
	// bills "m" once.
	if _, err := f.commit(f.batch(2, f.client+1000, call{id: "m", cost: 700})); err == nil {
		t.Fatal("commit billing a client that does not exist succeeded")
	}
	f.forget()
	f.mustCommit(1, 3, call{id: "m", cost: 700})
	f.mustCommit(0, 2, call{id: "m", cost: 700})
	f.check("-0.0013")
}

// TestCommitVersionIsTheDatabaseClock: xDRs rated on a host whose clock
// runs far ahead are written with PostgreSQL's clock as their version, so
// a later attempt from a correct host is never outranked by a failed one.
func TestCommitVersionIsTheDatabaseClock(t *testing.T) {
	f := newStoreFixture(t)
	b := f.batch(0, f.client, call{id: "a", cost: 1000})
	b.XDRs[0].Version = uint64(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()) // a clock 74 years ahead
	before := time.Now()
	if _, err := f.commit(b); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"xdrs", "cdrs_raw"} {
		var v uint64
		if err := f.db.CH.QueryRow(context.Background(), "SELECT max(version) FROM "+table).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if at := time.Unix(0, int64(v)); at.Before(before.Add(-time.Minute)) || at.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s version is %s, want the database's clock at the commit (about %s)", table, at.UTC(), before.UTC())
		}
	}
}

// dedupeXDR is a rated CDR of switch sw1 billed to client.
func dedupeXDR(c call, client int64, partition int, offset int64) rater.XDR {
	setup := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	if c.late {
		setup = setup.Add(49 * time.Hour)
	}
	x := rater.XDR{
		CDR:       ingest.CDR{ID: c.id, Switch: "sw1", SetupTime: setup, DisconnectTime: setup.Add(time.Minute), Dst: "4420"},
		ID:        c.id,
		Key:       md5.Sum([]byte("sw1\x00" + c.id)),
		Content:   c.content,
		Raw:       []byte(`{"id":"` + c.id + `"}`),
		Partition: partition,
		Offset:    offset,
		Version:   uint64(time.Now().UnixNano()),
	}
	x.Rating.Status = "rated"
	x.Rating.Orig = rater.Leg{ClientID: client, CostMicro: c.cost, Currency: "EUR"}
	return x
}

// xdr returns the status, reason, detail and cost of the current xDR of id.
func (f *storeFixture) xdr(id string) string {
	f.t.Helper()
	var status, reason, detail, cost string
	err := f.db.CH.QueryRow(context.Background(), `SELECT status, reason, detail, toString(orig_cost) FROM xdrs FINAL WHERE cdr_id = ?`, id).
		Scan(&status, &reason, &detail, &cost)
	if err != nil {
		return "none"
	}
	return status + " " + reason + " " + cost + " " + detail
}

// TestCommitConflicts: a CDR with the switch and id of a billed one but
// other content is neither billed nor dropped: it is kept as a
// duplicate_conflict xDR of its own (and in cdrs_raw, flagged with the id
// it conflicts with), and the billed row stays.
func TestCommitConflicts(t *testing.T) {
	f := newStoreFixture(t)
	ctx := context.Background()
	f.mustCommit(0, 0, call{id: "a", cost: 1000, content: 1})

	// Another partition: the same content is a duplicate; other content a
	// conflict, billed nowhere, whatever it costs.
	f.mustCommit(1, 1, call{id: "a", cost: 1000, content: 1}, call{id: "a", cost: 2500, content: 2})
	f.check("-0.001")
	if got, want := f.xdr("a#conflict-0000000000000002"), "mismatch duplicate_conflict 0.000000 same switch and id as the CDR at partition 1 offset 0, with other content"; got != want {
		t.Errorf("conflict xDR: %q, want %q", got, want)
	}
	if got := f.xdr("a"); got != "rated  0.001000 " {
		t.Errorf("billed xDR: %q, want it untouched", got)
	}
	// A zero-cost re-send with other content must not replace the billed row.
	f.mustCommit(0, 2, call{id: "a", content: 3})
	if got := f.xdr("a"); got != "rated  0.001000 " {
		t.Errorf("billed xDR after a zero-cost conflict: %q", got)
	}

	// In one batch: the billed CDR stands, a later different one conflicts,
	// a later identical one is a duplicate; re-sending the conflicting
	// message lands on its row again.
	f.mustCommit(1, 0, call{id: "b", cost: 500, content: 1}, call{id: "b", cost: 500, content: 9}, call{id: "b", cost: 500, content: 1})
	f.mustCommit(0, 2, call{id: "b", cost: 500, content: 9})
	f.check("-0.0015")
	var conflicts uint64
	if err := f.db.CH.QueryRow(ctx, `SELECT count() FROM xdrs FINAL WHERE reason = 'duplicate_conflict'`).Scan(&conflicts); err != nil {
		t.Fatal(err)
	}
	if conflicts != 3 {
		t.Errorf("%d duplicate_conflict xDRs, want 3 (a with content 2 and 3, b with content 9)", conflicts)
	}
	var dupOf string
	if err := f.db.CH.QueryRow(ctx, `SELECT duplicate_of FROM cdrs_raw FINAL WHERE cdr_id = 'b#conflict-0000000000000009'`).Scan(&dupOf); err != nil || dupOf != "b" {
		t.Errorf("cdrs_raw keeps the conflicting re-send flagged with duplicate_of %q (%v), want \"b\"", dupOf, err)
	}

	// A malformed CDR that keeps its id is zero-cost: with the id of a
	// billed CDR it is a conflict, not a replacement of the billed row.
	bad := f.batch(2, f.client, call{id: "a", content: 77})
	bad.XDRs[0].Malformed, bad.XDRs[0].Detail = true, "missing dst"
	bad.XDRs[0].Rating = rater.Rating{Status: "mismatch", Reason: rater.ReasonMalformed}
	if _, err := f.commit(bad); err != nil {
		t.Fatal(err)
	}
	if got := f.xdr("a"); got != "rated  0.001000 " {
		t.Errorf("billed xDR after a malformed re-send: %q", got)
	}
	if got := f.xdr("a#conflict-000000000000004d"); got == "none" {
		t.Errorf("the malformed re-send was dropped instead of kept as a conflict")
	}
}

// TestCommitRefusedIsNotAnOutage: a value ClickHouse cannot store (a time
// before 1970 that slipped past every check) is a refusal of the batch's
// content — rater.ErrRefused, which the worker isolates — not an outage to
// retry forever, and nothing of the batch is billed.
func TestCommitRefusedIsNotAnOutage(t *testing.T) {
	f := newStoreFixture(t)
	b := f.batch(0, f.client, call{id: "ok", cost: 100}, call{id: "old", cost: 100})
	b.XDRs[1].CDR.SetupTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := f.commit(b)
	if !errors.Is(err, rater.ErrRefused) {
		t.Fatalf("commit of a 1900 setup time: %v, want rater.ErrRefused", err)
	}
	f.check("0")
}

// TestCommitHugeCosts: per-batch sums beyond int64 millionths are exact,
// and the balance column holds them (traffic can never make a balance
// update fail).
func TestCommitHugeCosts(t *testing.T) {
	f := newStoreFixture(t)
	var calls []call
	for i := 0; i < 20; i++ {
		calls = append(calls, call{id: fmt.Sprintf("big-%d", i), cost: rater.MaxCallCostMicro})
	}
	f.mustCommit(0, 0, calls...)
	f.check("-19999999999999.99998")
	f.mustCommit(10, 1, calls[:10]...) // all duplicates: nothing moves
	f.check("-19999999999999.99998")
}

// TestBalancesNeverOverflow is the property test of the money bounds: any
// mix of transactions within their bound (|amount| ≤ 10^12, what the API
// and the catalog file accept) and of calls within theirs
// (|cost| ≤ rater.MaxCallCostMicro) never makes a balance update fail, and
// the balance is their exact sum.
func TestBalancesNeverOverflow(t *testing.T) {
	f := newStoreFixture(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 10))
	bound := decimal.New(1, 12)
	want := decimal.Zero
	amount := func(max decimal.Decimal) decimal.Decimal {
		switch rng.IntN(4) {
		case 0:
			return max
		case 1:
			return decimal.New(1, -6)
		}
		return max.Mul(decimal.New(rng.Int64N(1_000_000), -6)).Round(6).Add(decimal.New(1, -6))
	}
	n := 0
	for step := 0; step < 120; step++ {
		if rng.IntN(2) == 0 {
			kind := []string{"payment", "charge", "adjustment"}[rng.IntN(3)]
			a := amount(bound)
			if kind == "adjustment" && rng.IntN(2) == 0 {
				a = a.Neg()
			}
			if _, err := f.db.PG.Exec(ctx, `INSERT INTO transactions (client_id, kind, amount, currency) VALUES ($1, $2, $3, 'EUR')`, f.client, kind, a.String()); err != nil {
				t.Fatalf("step %d: %s of %s: %v", step, kind, a, err)
			}
			if kind == "charge" {
				a = a.Neg()
			}
			want = want.Add(a)
			continue
		}
		var calls []call
		for i := rng.IntN(30); i >= 0; i-- {
			cost := amount(decimal.New(rater.MaxCallCostMicro, 0)).IntPart()
			if rng.IntN(3) == 0 { // a table that pays the client
				cost = -cost
			}
			n++
			calls = append(calls, call{id: fmt.Sprintf("c%d", n), cost: cost})
			want = want.Sub(decimal.New(cost, -6))
		}
		if _, err := f.commit(f.batch(0, f.client, calls...)); err != nil {
			t.Fatalf("step %d: a batch of %d calls: %v", step, len(calls), err)
		}
	}
	var live, available decimal.Decimal
	if err := f.db.PG.QueryRow(ctx, `SELECT live, available FROM client_balances WHERE client_id = $1`, f.client).Scan(&live, &available); err != nil {
		t.Fatal(err)
	}
	if !live.Equal(want) || !available.Equal(want) {
		t.Fatalf("live %s, available %s; want both %s", live, available, want)
	}
}

// TestCommitMalformedResendKeepsTheCall: a malformed re-send that keeps the
// id of a call not billed (a mismatch, zero cost: no dedupe claim) ranks
// below it — the call and its raw CDR stay, so a rerate can still bill it —
// while a corrected re-send of a malformed CDR replaces it.
func TestCommitMalformedResendKeepsTheCall(t *testing.T) {
	f := newStoreFixture(t)
	ctx := context.Background()
	good := f.batch(0, f.client, call{id: "u", content: 1})
	good.XDRs[0].Rating = rater.Rating{Status: "mismatch", Reason: rater.ReasonUnknownAccount}
	good.XDRs[0].Raw = []byte(`{"id":"u","good":true}`)
	if _, err := f.commit(good); err != nil {
		t.Fatal(err)
	}
	broken := f.batch(1, f.client, call{id: "u", content: 2})
	broken.XDRs[0].Malformed, broken.XDRs[0].Detail = true, "dst: not a number"
	broken.XDRs[0].Rating = rater.Rating{Status: "mismatch", Reason: rater.ReasonMalformed}
	broken.XDRs[0].Raw = []byte(`{"id":"u","broken":true}`)
	if _, err := f.commit(broken); err != nil {
		t.Fatal(err)
	}
	var reason, raw string
	if err := f.db.CH.QueryRow(ctx, `SELECT reason FROM xdrs FINAL WHERE cdr_id = 'u'`).Scan(&reason); err != nil || reason != "unknown_account" {
		t.Errorf("after a malformed re-send the call's xDR says %q (%v), want unknown_account", reason, err)
	}
	if err := f.db.CH.QueryRow(ctx, `SELECT raw FROM cdrs_raw FINAL WHERE cdr_id = 'u'`).Scan(&raw); err != nil || raw != `{"id":"u","good":true}` {
		t.Errorf("after a malformed re-send cdrs_raw holds %q (%v), want the call as first received", raw, err)
	}
	// The other way round: a malformed CDR, then its correction.
	b1 := f.batch(0, f.client, call{id: "m", content: 3})
	b1.XDRs[0].Malformed, b1.XDRs[0].Detail = true, "missing dst"
	b1.XDRs[0].Rating = rater.Rating{Status: "mismatch", Reason: rater.ReasonMalformed}
	if _, err := f.commit(b1); err != nil {
		t.Fatal(err)
	}
	f.mustCommit(0, 1, call{id: "m", cost: 400, content: 4})
	if got := f.xdr("m"); got != "rated  0.000400 " {
		t.Errorf("a correction of a malformed CDR: %q, want it rated", got)
	}
	f.check("-0.0004")
}

// TestCommitLateResendEdges: a CDR dated in the future (a switch's clock
// ahead) whose claim expired is not billed again when re-sent; a CDR billed
// before the window and re-sent with other content is a conflict, kept, not
// a duplicate dropped.
func TestCommitLateResendEdges(t *testing.T) {
	f := newStoreFixture(t)
	ctx := context.Background()
	future := time.Now().UTC().Add(3 * time.Hour).Truncate(time.Second)
	b := f.batch(0, f.client, call{id: "ahead", cost: 300, content: 1})
	b.XDRs[0].CDR.SetupTime, b.XDRs[0].CDR.DisconnectTime = future, future.Add(time.Minute)
	if _, err := f.commit(b); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.PG.Exec(ctx, `UPDATE cdr_keys SET seen_at = now() - interval '49 hours'`); err != nil {
		t.Fatal(err)
	}
	again := f.batch(1, f.client, call{id: "ahead", cost: 300, content: 1})
	again.XDRs[0].CDR.SetupTime, again.XDRs[0].CDR.DisconnectTime = future, future.Add(time.Minute)
	res, err := f.commit(again)
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicates != 1 {
		t.Errorf("a future-dated re-send after its claim expired: %d duplicates, want 1", res.Duplicates)
	}
	f.check("-0.0003")

	// "old" was billed long ago (before the window); a re-send says
	// something else: a conflict of its own, the billed row stays.
	orig := f.batch(0, f.client, call{id: "old", cost: 500})
	orig.XDRs[0].Raw = []byte(`{"id":"old","switch":"sw1","setup_time":"2024-03-10T12:00:00Z","disconnect_time":"2024-03-10T12:01:00Z","dst":"4420"}`)
	orig.XDRs[0].Content = rater.ContentOf(orig.XDRs[0].Raw)
	if _, err := f.commit(orig); err != nil {
		t.Fatal(err)
	}
	f.forget()
	differs := f.batch(1, f.client, call{id: "old", cost: 900, content: 8})
	if _, err := f.commit(differs); err != nil {
		t.Fatal(err)
	}
	f.check("-0.0008")
	var conflicts uint64
	if err := f.db.CH.QueryRow(ctx, `SELECT count() FROM xdrs FINAL WHERE reason = 'duplicate_conflict' AND cdr_id LIKE 'old#conflict-%'`).Scan(&conflicts); err != nil || conflicts != 1 {
		t.Errorf("%d conflict rows for the late re-send with other content (%v), want 1", conflicts, err)
	}
}
