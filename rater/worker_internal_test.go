package rater

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tarifa/tarifa/ingest"
)

// refusingStore is a Store that refuses (ErrRefused) every batch holding a
// CDR whose dst it was told to refuse — as ClickHouse refuses a value it
// cannot hold — and keeps what it commits. While down is positive it fails
// every commit as an outage would, counting down.
type refusingStore struct {
	mu        sync.Mutex
	refuse    func(x *XDR) bool
	down      int
	attempts  int
	committed []XDR
	next      int64
}

func (s *refusingStore) NextOffset(context.Context, string, int) (int64, error) { return -1, nil }

func (s *refusingStore) Commit(_ context.Context, b *Batch) (CommitResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if s.down > 0 {
		s.down--
		return CommitResult{}, &SinkError{Sink: "clickhouse", Err: errors.New("connection refused")}
	}
	for i := range b.XDRs {
		if s.refuse(&b.XDRs[i]) {
			return CommitResult{}, &SinkError{Sink: "clickhouse", Err: fmt.Errorf("%w: insert xdrs: column 4: dateTime overflow", ErrRefused)}
		}
	}
	if b.Stored >= 0 && b.Stored != s.next || b.First != max(s.next, b.First) {
		return CommitResult{}, fmt.Errorf("batch %d-%d after stored %d, store holds %d: %w", b.First, b.Next, b.Stored, s.next, ErrFenced)
	}
	for i := range b.XDRs {
		x := b.XDRs[i]
		x.CDR = ingest.CDR{ID: x.CDR.ID, Dst: x.CDR.Dst} // the slot's decode buffer is reused
		s.committed = append(s.committed, x)
	}
	s.next = b.Next
	return CommitResult{}, nil
}

func testWorker(t *testing.T, store Store) (*Worker, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	w, err := NewWorker(WorkerConfig{Topic: "cdrs", MaxBackoff: 10 * time.Millisecond}, nil, store, nil, nil,
		slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	w.catalog.Store(testCatalog(t))
	return w, reg
}

func messages(n int, poison map[int]bool) []ingest.Message {
	msgs := make([]ingest.Message, n)
	for i := range msgs {
		dst := "447700900123"
		if poison[i] {
			dst = "4471" // refused by the test store
		}
		msgs[i] = ingest.Message{Offset: int64(100 + i), Time: time.Date(2024, 3, 1, 10, 5, 0, 0, time.UTC), Value: []byte(fmt.Sprintf(
			`{"id":"c%d","setup_time":"2024-03-01T10:00:00Z","connect_time":"2024-03-01T10:00:00Z","disconnect_time":"2024-03-01T10:01:00Z","src_ip":"10.0.0.1","dst":"%s"}`, i, dst))}
	}
	return msgs
}

// TestCommitRangeIsolatesRefusedMessages: a batch a sink refuses is split
// until the messages it refuses are alone; those are stored as malformed
// (quarantined) with the sink's reason, every other message commits rated,
// in offset order, each offset once, and the metric counts the quarantined.
func TestCommitRangeIsolatesRefusedMessages(t *testing.T) {
	store := &refusingStore{refuse: func(x *XDR) bool { return x.CDR.Dst == "4471" && !x.Malformed }}
	w, _ := testWorker(t, store)
	poison := map[int]bool{0: true, 37: true, 38: true, 99: true}
	msgs := messages(100, poison)
	b := &Batch{Topic: "cdrs"}
	var commits int
	err := w.commitRange(context.Background(), NewRater(), 0, msgs, b, -1, msgs[99].Offset+1, func(b *Batch, _ CommitResult) { commits++ })
	if err != nil {
		t.Fatal(err)
	}
	if len(store.committed) != 100 {
		t.Fatalf("%d xDRs committed, want 100", len(store.committed))
	}
	for i, x := range store.committed {
		if x.Offset != int64(100+i) {
			t.Fatalf("xDR %d has offset %d, want %d: every offset once, in order", i, x.Offset, 100+i)
		}
		switch {
		case poison[i] && (!x.Malformed || x.ID != fmt.Sprintf("c%d", i) || !strings.HasPrefix(x.Detail, "quarantined: a sink refused it: ")):
			t.Errorf("refused message %d: %+v, want a malformed xDR keeping its id, with the sink's reason", i, x)
		case poison[i] && x.Rating.Orig.CostMicro != 0:
			t.Errorf("refused message %d still bills %d", i, x.Rating.Orig.CostMicro)
		case !poison[i] && (x.Malformed || x.Rating.Status != "rated"):
			t.Errorf("message %d: %s %s, want rated", i, x.Rating.Status, x.Rating.Reason)
		}
	}
	if got := testutil.ToFloat64(w.m.quarantined); got != 4 {
		t.Errorf("tarifa_cdrs_quarantined_total %v, want 4", got)
	}
	if commits < 5 {
		t.Errorf("%d commits: the batch was not split", commits)
	}
}

// TestQuarantineRefusedAgainIsAnOutage: when a sink refuses even the
// quarantined form of a message, the fault is not the message's: the
// worker retries it as an outage until the sink takes it.
func TestQuarantineRefusedAgainIsAnOutage(t *testing.T) {
	refusals := 0
	store := &refusingStore{}
	store.refuse = func(x *XDR) bool {
		if x.CDR.ID == "c3" || x.ID == "c3" {
			refusals++
			return refusals < 6 // refuses c3, then its quarantined form four times, then recovers
		}
		return false
	}
	w, _ := testWorker(t, store)
	msgs := messages(8, nil)
	err := w.commitRange(context.Background(), NewRater(), 0, msgs, &Batch{Topic: "cdrs"}, -1, msgs[7].Offset+1, func(*Batch, CommitResult) {})
	if err != nil {
		t.Fatal(err)
	}
	if len(store.committed) != 8 || !store.committed[3].Malformed {
		t.Fatalf("committed %d xDRs (c3 malformed: %v), want all 8 with c3 quarantined", len(store.committed), len(store.committed) > 3 && store.committed[3].Malformed)
	}
}

// TestCommitRangeRetriesOutages: an outage is retried, never split: the
// batch commits whole once the sink is back.
func TestCommitRangeRetriesOutages(t *testing.T) {
	store := &refusingStore{refuse: func(*XDR) bool { return false }, down: 3}
	w, _ := testWorker(t, store)
	msgs := messages(50, nil)
	commits := 0
	if err := w.commitRange(context.Background(), NewRater(), 0, msgs, &Batch{Topic: "cdrs"}, -1, msgs[49].Offset+1,
		func(*Batch, CommitResult) { commits++ }); err != nil {
		t.Fatal(err)
	}
	if commits != 1 || store.attempts != 4 || len(store.committed) != 50 {
		t.Fatalf("%d commits after %d attempts (%d xDRs), want the whole batch in 1 commit after 3 failed attempts", commits, store.attempts, len(store.committed))
	}
	if got := testutil.ToFloat64(w.m.quarantined); got != 0 {
		t.Errorf("an outage quarantined %v messages", got)
	}
}

// TestMarkMalformedSafeTimes: a malformed CDR's times are ones every store
// can hold, and it keeps its id only when it still names its call.
func TestMarkMalformedSafeTimes(t *testing.T) {
	received := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	f := func(msg, wantID, wantSetup, wantDetail string) {
		t.Helper()
		r := NewRater()
		var x XDR
		r.Rate(testCatalog(t), &ingest.Message{Partition: 2, Offset: 7, Time: received, Value: []byte(msg)}, &x, 1)
		if !x.Malformed || x.Detail != wantDetail {
			t.Fatalf("%s: malformed %v detail %q, want %q", msg, x.Malformed, x.Detail, wantDetail)
		}
		if wantID == "synthetic" {
			wantID = MalformedID([]byte(msg), 2, 7)
		}
		if x.ID != wantID || x.CDR.SetupTime.Format(time.RFC3339) != wantSetup || x.CDR.DisconnectTime.Before(x.CDR.SetupTime) {
			t.Fatalf("%s: id %q setup %s disconnect %s, want id %q setup %s", msg, x.ID, x.CDR.SetupTime, x.CDR.DisconnectTime, wantID, wantSetup)
		}
		if (x.Key != [16]byte{}) != (wantID == x.CDR.ID && x.CDR.ID != "") {
			t.Fatalf("%s: dedupe key %x for id %q", msg, x.Key, x.ID)
		}
		for _, tm := range []time.Time{x.CDR.SetupTime, x.CDR.DisconnectTime} {
			if !inRange(tm) {
				t.Fatalf("%s: time %s outside what ClickHouse holds", msg, tm)
			}
		}
	}
	f(`{"id":"a","setup_time":"1900-01-01T00:00:00Z","disconnect_time":"1900-01-01T00:01:00Z","dst":"44"}`, "synthetic", "2026-11-30T08:00:00Z", "times outside 1970-01-01 .. 2105-12-31")
	f(`{"id":"a","setup_time":"2999-01-01T00:00:00Z","disconnect_time":"2999-01-01T00:01:00Z","dst":"44"}`, "synthetic", "2026-11-30T08:00:00Z", "times outside 1970-01-01 .. 2105-12-31")
	f(`{"id":"a","setup_time":"2024-01-01T00:00:00Z","disconnect_time":"2999-01-01T00:01:00Z","dst":"44"}`, "a", "2024-01-01T00:00:00Z", "times outside 1970-01-01 .. 2105-12-31")
	f(`{"id":"a","setup_time":"2024-01-01T00:02:00Z","disconnect_time":"2024-01-01T00:01:00Z","dst":"44"}`, "a", "2024-01-01T00:02:00Z", "disconnect_time before setup_time")
	f(`{"id":"a","switch":"s\u0000","setup_time":"2024-01-01T00:00:00Z","disconnect_time":"2024-01-01T00:01:00Z","dst":"44"}`, "synthetic", "2024-01-01T00:00:00Z", "switch: contains a control character")
	f(`{"id":"a","setup_time":"2024-01-01T00:00:00Z","connect_time":"2024-01-01T00:00:00Z","disconnect_time":"2024-01-01T00:01:00Z","duration":31535999,"src_ip":"10.0.0.1","dst":"44"}`,
		"a", "2024-01-01T00:00:00Z", "duration 31535999 s is longer than setup_time to disconnect_time (60 s)")
	f(`{"id":"a","setup_time":"2024-01-01T00:00:00Z","disconnect_time":"2024-01-01T00:01:00Z","src_ip":"10.0.0.1","dst":"44`+strings.Repeat("1", 40)+`"}`,
		"a", "2024-01-01T00:00:00Z", "dst: more than 32 digits")
	f(`not json`, "synthetic", "2026-11-30T08:00:00Z", "invalid json: not an object")
}
