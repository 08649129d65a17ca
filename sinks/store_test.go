package sinks_test

import (
	"context"
	"crypto/md5"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/sinks"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

// call is one CDR of a dedupe test: its id and what it costs the customer.
type call struct {
	id   string
	cost int64 // micro-units; 0 for a call that moves no balance
	late bool  // set up 49 hours after the others
}

// TestCommitDedupe walks the dedupe rules of Store.Commit through the cases
// an operator meets: repeats in one batch, repeats in another partition, a
// zero-cost repeat of a billed call, a replay after a failed commit, and a
// repeat after the 48-hour window.
func TestCommitDedupe(t *testing.T) {
	db := sinktest.New(t)
	ctx := context.Background()
	var client int64
	if err := db.PG.QueryRow(ctx, `WITH r AS (INSERT INTO resellers (name, currency) VALUES ('r', 'EUR') RETURNING id)
		INSERT INTO clients (reseller_id, name, currency) SELECT id, 'acme', 'EUR' FROM r RETURNING id`).Scan(&client); err != nil {
		t.Fatal(err)
	}
	store := sinks.NewStore(db.PG, db.CH, prometheus.NewRegistry())
	t.Cleanup(store.Close)
	stored := map[int]int64{}

	// commit commits calls as the next messages of partition; a worker
	// that is not up to date (stale) expects an offset the store lacks.
	commit := func(partition int, stale bool, calls ...call) (rater.CommitResult, error) {
		t.Helper()
		first, ok := stored[partition]
		b := &rater.Batch{Topic: "cdrs", Partition: partition, First: first, Next: first + int64(len(calls)), Stored: first}
		if !ok {
			b.Stored = -1
		}
		if stale {
			b.Stored = first + 100
		}
		for i, c := range calls {
			b.XDRs = append(b.XDRs, dedupeXDR(c, client, partition, first+int64(i)))
		}
		res, err := store.Commit(ctx, b)
		if err == nil {
			stored[partition] = b.Next
		}
		return res, err
	}
	mustCommit := func(wantDups int, partition int, calls ...call) {
		t.Helper()
		res, err := commit(partition, false, calls...)
		if err != nil {
			t.Fatal(err)
		}
		if res.Duplicates != wantDups {
			t.Errorf("partition %d: %d duplicates, want %d", partition, res.Duplicates, wantDups)
		}
	}
	balance := func(want string) {
		t.Helper()
		var live decimal.Decimal
		if err := db.PG.QueryRow(ctx, `SELECT live FROM client_balances WHERE client_id = $1`, client).Scan(&live); err != nil {
			t.Fatal(err)
		}
		if !live.Equal(decimal.RequireFromString(want)) {
			t.Errorf("balance %s, want %s", live, want)
		}
	}

	// The second "a" in the batch is the same call sent twice.
	mustCommit(1, 0, call{id: "a", cost: 1000}, call{id: "b"}, call{id: "a", cost: 1000}, call{id: "c", cost: 500})
	balance("-0.0015")

	// Another partition: "a" again is a duplicate; "c" again, now rated at
	// zero, must not replace the billed row; "b" was free before, so
	// nothing claimed it, and now it is billed.
	mustCommit(2, 1, call{id: "a", cost: 1000}, call{id: "c"}, call{id: "b", cost: 700})
	balance("-0.0022")

	// A commit that fails after claiming "d" (this worker's view of the
	// offset is stale) leaves the claim with its message: the replay of
	// that message bills it, once.
	if _, err := commit(2, true, call{id: "d", cost: 300}); err == nil {
		t.Fatal("commit with a stale offset succeeded")
	}
	mustCommit(0, 2, call{id: "d", cost: 300})
	balance("-0.0025")
	mustCommit(1, 3, call{id: "d", cost: 300})
	balance("-0.0025")

	// 49 hours later the switch reuses the id "c" for a new call: the old
	// key has expired, so it is billed.
	if _, err := db.PG.Exec(ctx, `UPDATE cdr_keys SET seen_at = now() - interval '49 hours'`); err != nil {
		t.Fatal(err)
	}
	mustCommit(0, 3, call{id: "c", cost: 400, late: true})
	balance("-0.0029")

	var rows uint64
	if err := db.CH.QueryRow(ctx, `SELECT count() FROM xdrs FINAL`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 5 {
		t.Errorf("xdrs FINAL has %d rows, want 5 (a, b, c, d and the later c)", rows)
	}
	var cost string
	if err := db.CH.QueryRow(ctx, `SELECT toString(sum(orig_cost)) FROM xdrs FINAL`).Scan(&cost); err != nil {
		t.Fatal(err)
	}
	if !decimal.RequireFromString(cost).Equal(decimal.RequireFromString("0.0029")) {
		t.Errorf("xdrs FINAL orig cost %s, want 0.0029 (the balance moved)", cost)
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
		Raw:       []byte(`{"id":"` + c.id + `"}`),
		Partition: partition,
		Offset:    offset,
		Version:   uint64(time.Now().UnixNano()),
	}
	x.Rating.Status = "rated"
	x.Rating.Orig = rater.Leg{ClientID: client, CostMicro: c.cost, Currency: "EUR"}
	return x
}

// TestCommitVersionIsTheDatabaseClock: xDRs rated on a host whose clock
// runs far ahead are written with PostgreSQL's clock as their version, so
// a later attempt from a correct host is never outranked by a failed one.
func TestCommitVersionIsTheDatabaseClock(t *testing.T) {
	db := sinktest.New(t)
	ctx := context.Background()
	var client int64
	if err := db.PG.QueryRow(ctx, `WITH r AS (INSERT INTO resellers (name, currency) VALUES ('r', 'EUR') RETURNING id)
		INSERT INTO clients (reseller_id, name, currency) SELECT id, 'acme', 'EUR' FROM r RETURNING id`).Scan(&client); err != nil {
		t.Fatal(err)
	}
	store := sinks.NewStore(db.PG, db.CH, prometheus.NewRegistry())
	t.Cleanup(store.Close)
	x := dedupeXDR(call{id: "a", cost: 1000}, client, 0, 0)
	x.Version = uint64(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()) // a clock 74 years ahead
	before := time.Now()
	if _, err := store.Commit(ctx, &rater.Batch{Topic: "cdrs", First: 0, Next: 1, Stored: -1, XDRs: []rater.XDR{x}}); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"xdrs", "cdrs_raw"} {
		var v uint64
		if err := db.CH.QueryRow(ctx, "SELECT max(version) FROM "+table).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if at := time.Unix(0, int64(v)); at.Before(before.Add(-time.Minute)) || at.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s version is %s, want the database's clock at the commit (about %s)", table, at.UTC(), before.UTC())
		}
	}
}

// TestCommitLateResend: a switch pushes CDRs again after the dedupe window
// (cdr_keys no longer remembers them). What ClickHouse holds as billed is
// not billed again, whatever the resend is rated at; what it holds unbilled
// is billed now; and a message whose own earlier attempt wrote its row but
// never committed is billed.
func TestCommitLateResend(t *testing.T) {
	db := sinktest.New(t)
	ctx := context.Background()
	var client int64
	if err := db.PG.QueryRow(ctx, `WITH r AS (INSERT INTO resellers (name, currency) VALUES ('r', 'EUR') RETURNING id)
		INSERT INTO clients (reseller_id, name, currency) SELECT id, 'acme', 'EUR' FROM r RETURNING id`).Scan(&client); err != nil {
		t.Fatal(err)
	}
	store := sinks.NewStore(db.PG, db.CH, prometheus.NewRegistry())
	t.Cleanup(store.Close)
	next := map[int]int64{}
	commit := func(partition int, billTo int64, calls ...call) (rater.CommitResult, error) {
		t.Helper()
		first := next[partition]
		b := &rater.Batch{Topic: "cdrs", Partition: partition, First: first, Next: first + int64(len(calls)), Stored: first}
		if first == 0 {
			b.Stored = -1
		}
		for i, c := range calls {
			b.XDRs = append(b.XDRs, dedupeXDR(c, billTo, partition, first+int64(i)))
		}
		res, err := store.Commit(ctx, b)
		if err == nil {
			next[partition] = b.Next
		}
		return res, err
	}
	mustCommit := func(wantDups int, partition int, calls ...call) {
		t.Helper()
		res, err := commit(partition, client, calls...)
		if err != nil {
			t.Fatal(err)
		}
		if res.Duplicates != wantDups {
			t.Errorf("partition %d: %d duplicates, want %d", partition, res.Duplicates, wantDups)
		}
	}
	forget := func() { // the window passes and the keys are pruned
		t.Helper()
		if _, err := db.PG.Exec(ctx, `DELETE FROM cdr_keys`); err != nil {
			t.Fatal(err)
		}
	}
	check := func(wantBalance string) {
		t.Helper()
		var live decimal.Decimal
		if err := db.PG.QueryRow(ctx, `SELECT live FROM client_balances WHERE client_id = $1`, client).Scan(&live); err != nil {
			t.Fatal(err)
		}
		var rows uint64
		var cost string
		if err := db.CH.QueryRow(ctx, `SELECT count(), toString(sum(orig_cost)) FROM xdrs FINAL WHERE orig_client_id = ?`, uint64(client)).Scan(&rows, &cost); err != nil {
			t.Fatal(err)
		}
		if !live.Equal(decimal.RequireFromString(wantBalance)) || !live.Neg().Equal(decimal.RequireFromString(cost)) {
			t.Errorf("balance %s and xdrs FINAL orig cost %s, want %s and its opposite", live, cost, wantBalance)
		}
	}

	mustCommit(0, 0, call{id: "x", cost: 1000}, call{id: "z"})
	check("-0.001")

	forget()
	mustCommit(1, 1, call{id: "x", cost: 1000}, call{id: "z", cost: 600})
	check("-0.0016")
	forget()
	mustCommit(1, 2, call{id: "x"}) // a zero-cost resend must not replace the billed row
	check("-0.0016")

	// "w" is billed to a client deleted under the worker: its row reaches
	// ClickHouse, the commit fails; the message comes back days later.
	if _, err := commit(3, client+1000, call{id: "w", cost: 300}); err == nil {
		t.Fatal("commit billing a client that does not exist succeeded")
	}
	forget()
	mustCommit(0, 3, call{id: "w", cost: 300})
	check("-0.0019")
}
