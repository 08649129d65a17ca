package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/rater"
)

// poison is a message put at the head of one partition, and the xDR it must
// end as.
type poison struct {
	partition int
	value     string
	id        string // the xDR's id; "" for a synthetic id of the bytes and place
	detail    string // the malformed xDR's detail; "" for a billed CDR
}

// TestWorkerPoisonNeverStopsAPartition puts a hostile or absurd CDR at the
// head of every partition, then ordinary traffic behind them: the ordinary
// traffic is rated, every poison ends as a malformed (or conflicting) xDR
// with a detail that reads as `tarifa rate` says it, with times ClickHouse
// holds, and every balance is exact — including one pushed by an adjustment
// to the edge of what the old balance column held.
func TestWorkerPoisonNeverStopsAPartition(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	db, topic := setupPipeline(t)
	ctx := context.Background()
	createTopic(t, kafkaBrokers(), topic, 8)
	const edge = "-99999999999999.999999" // the most negative numeric(20, 6)
	if _, err := db.PG.Exec(ctx, `INSERT INTO transactions (client_id, kind, amount, currency, ref) VALUES (2, 'adjustment', `+edge+`, 'USD', 'edge')`); err != nil {
		t.Fatal(err)
	}

	now := time.Now().UTC().Truncate(time.Second)
	setup, disc := now.Add(-time.Hour).Format(time.RFC3339), now.Add(-time.Hour+time.Minute).Format(time.RFC3339)
	times := fmt.Sprintf(`"setup_time":"%s","connect_time":"%s","disconnect_time":"%s"`, setup, setup, disc)
	call := func(id, extra string) string {
		return `{"id":"` + id + `","switch":"sw1",` + times + `,"src_ip":"10.0.0.1","dst":"442071234567","term_ip":"192.0.2.7"` + extra + `}`
	}
	old := func(year string) string {
		return `{"id":"y` + year + `","switch":"sw1","setup_time":"` + year + `-01-01T00:00:00Z","disconnect_time":"` + year + `-01-01T00:01:00Z","dst":"44"}`
	}
	const outside = "times outside 1970-01-01 .. 2105-12-31"
	poisons := []poison{
		{0, old("1900"), "", outside},
		{0, old("0000"), "", outside},
		{1, old("2999"), "", outside},
		{1, strings.Replace(call("long-call", ""), `"src_ip"`, `"duration":31535999,"src_ip"`, 1), "long-call",
			"duration 31535999 s is longer than setup_time to disconnect_time (60 s)"},
		{2, strings.Replace(call("digits-10000", ""), "442071234567", strings.Repeat("4", 10_000), 1), "digits-10000", "dst: longer than 256 bytes"},
		{2, strings.Replace(call("digits-40", ""), "442071234567", strings.Repeat("4", 40), 1), "digits-40", "dst: more than 32 digits"},
		{3, call(strings.Repeat("i", 100<<10), ""), "", "id: longer than 256 bytes"},
		{3, strings.Replace(call(`b\u0000c`, ""), `"sw1"`, `"s"`, 1), "", "id: contains a control character"},
		{4, strings.Replace(call(`c`, ""), `"sw1"`, `"s\u0000b"`, 1), "", "switch: contains a control character"},
		{5, call("resend-x", ""), "resend-x", ""},
		{6, strings.Replace(call("edge-call", ""), `"src_ip":"10.0.0.1"`, `"src_user":"trunk-b"`, 1), "edge-call", ""},
		{7, `not json`, "", "invalid json: not an object"},
	}
	var head []kafka.Message
	for _, p := range poisons {
		head = append(head, kafka.Message{Key: []byte("partition-" + strconv.Itoa(p.partition)), Value: []byte(p.value)})
	}
	produceTo(t, topic, head)
	ts := genTrafficFrom(3000, 7, now.Add(-2*time.Hour), time.Second)
	produceTo(t, topic, ts.msgs)
	// The switch re-sends resend-x with another duration: a conflict to
	// keep, not a duplicate to drop, and never billed.
	resend := strings.Replace(call("resend-x", ""), disc, now.Add(-time.Hour+2*time.Minute).Format(time.RFC3339), 1)
	produceTo(t, topic, []kafka.Message{{Key: []byte("partition-5"), Value: []byte(resend)}})
	total := len(head) + len(ts.msgs) + 1

	addr := freeAddr(t)
	p := startWorker(t, bin, db, topic, "--metrics-addr", addr)
	waitConsumed(t, db, topic, total, 60*time.Second, p)

	// Expectations: the two billed poisons and the ordinary traffic.
	ts.unique += 2
	ts.reasons[""] += 2
	for _, c := range []struct {
		client int64
		dst    string
	}{{1, "442071234567"}, {2, "442071234567"}} {
		cost, _ := expectedCost(retailRates, c.dst, 60_000)
		ts.balances[c.client] = ts.balances[c.client].Sub(cost)
		vcost, _ := expectedCost(vendorRates, c.dst, 60_000)
		ts.balances[10] = ts.balances[10].Add(vcost)
	}
	ts.balances[2] = ts.balances[2].Add(decimal.RequireFromString(edge))
	malformed := 0
	for _, p := range poisons {
		if p.detail != "" {
			malformed++
		}
	}
	ts.reasons["malformed"] += malformed
	ts.conflicts = 1
	checkInvariants(t, db, ts, 0)

	// Each poison, by its id, ends as the issue says; its times are ones
	// ClickHouse holds (the received time stands in for a setup it cannot).
	offsets := map[int]int64{}
	for _, ps := range poisons {
		off := offsets[ps.partition]
		offsets[ps.partition]++
		id := ps.id
		if id == "" {
			id = rater.MalformedID([]byte(ps.value), ps.partition, off)
		}
		var status, reason, detail string
		var setupAt time.Time
		err := db.CH.QueryRow(ctx, "SELECT status, reason, detail, setup_time FROM xdrs FINAL WHERE cdr_id = ?", id).Scan(&status, &reason, &detail, &setupAt)
		if err != nil {
			t.Errorf("poison %.60q: no xDR %.40q: %v", ps.value, id, err)
			continue
		}
		want := "rated  "
		if ps.detail != "" {
			want = "mismatch malformed " + ps.detail
		}
		if got := status + " " + reason + " " + detail; got != want {
			t.Errorf("poison %.60q: xDR %q, want %q", ps.value, got, want)
		}
		if setupAt.Year() < 2000 || setupAt.After(now.Add(time.Hour)) {
			t.Errorf("poison %.60q: setup_time %s stored", ps.value, setupAt)
		}
		if ps.detail != "" && ps.detail != rateDetail(t, bin, ps.value) {
			t.Errorf("poison %.60q: the worker says %q, tarifa rate %q", ps.value, ps.detail, rateDetail(t, bin, ps.value))
		}
	}
	var conflictID, dupOf, conflictReason string
	if err := db.CH.QueryRow(ctx, "SELECT cdr_id, duplicate_of FROM cdrs_raw FINAL WHERE cdr_id LIKE 'resend-x#conflict-%'").Scan(&conflictID, &dupOf); err != nil || dupOf != "resend-x" {
		t.Errorf("the conflicting re-send in cdrs_raw: %q duplicate_of %q (%v); want it kept, flagged with resend-x", conflictID, dupOf, err)
	}
	if err := db.CH.QueryRow(ctx, "SELECT reason FROM xdrs FINAL WHERE cdr_id = ?", conflictID).Scan(&conflictReason); err != nil || conflictReason != "duplicate_conflict" {
		t.Errorf("the conflicting re-send's xDR: reason %q (%v), want duplicate_conflict", conflictReason, err)
	}
	var empty uint64
	if err := db.CH.QueryRow(ctx, "SELECT count() FROM xdrs FINAL WHERE reason IN ('malformed', 'duplicate_conflict') AND detail = ''").Scan(&empty); err != nil || empty != 0 {
		t.Errorf("%d malformed or conflicting xDRs without a detail (%v)", empty, err)
	}
	if got := metricSum(t, addr, "tarifa_cdrs_duplicate_conflicts_total"); got != 1 {
		t.Errorf("tarifa_cdrs_duplicate_conflicts_total %v, want 1", got)
	}
	if got := metricSum(t, addr, "tarifa_cdrs_quarantined_total"); got != 0 {
		t.Errorf("tarifa_cdrs_quarantined_total %v: every poison here is caught before the sinks", got)
	}
	p.stop(t)
}

// rateDetail is the detail `tarifa rate` gives for one CDR line.
func rateDetail(t *testing.T, bin, line string) string {
	t.Helper()
	deck := filepath.Join(t.TempDir(), "deck.csv")
	if err := os.WriteFile(deck, []byte("code,code_name,rate\n44,UK,0.012\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "rate", "--deck", deck)
	cmd.Stdin = strings.NewReader(line + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tarifa rate: %v", err)
	}
	var r struct{ Detail string }
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		t.Fatalf("tarifa rate printed %q: %v", out, err)
	}
	return r.Detail
}

// produceTo writes msgs in order; a key "partition-N" sends a message to
// partition N, any other key is hashed.
func produceTo(t *testing.T, topic string, msgs []kafka.Message) {
	t.Helper()
	hash := &kafka.Hash{}
	w := &kafka.Writer{Addr: kafka.TCP(kafkaBrokers()), Topic: topic, BatchSize: 1000, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll,
		BatchBytes: 8 << 20,
		Balancer: kafka.BalancerFunc(func(m kafka.Message, partitions ...int) int {
			if n, ok := strings.CutPrefix(string(m.Key), "partition-"); ok {
				p, _ := strconv.Atoi(n)
				return p
			}
			return hash.Balance(m, partitions...)
		})}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce %d messages to %s: %v", len(msgs), topic, err)
	}
}
