package sinks_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/sinks"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

type reportXDR struct {
	id         string
	event      time.Time
	answered   bool
	durMs      uint64
	status     string
	reason     string
	termReason string
	client     uint64
	code, name string
	billed     uint32
	cost, term string
	version    uint64
}

// insertXDRs writes xDRs straight into ClickHouse (as the worker would).
func insertXDRs(t *testing.T, db *sinktest.DB, xs []reportXDR) {
	t.Helper()
	ctx := context.Background()
	b, err := db.CH.PrepareBatch(ctx, `INSERT INTO xdrs (cdr_id, switch, event_time, setup_time, connect_time,
		disconnect_time, duration_ms, status, reason, term_reason, reseller_id, orig_client_id, orig_account_id,
		orig_code, orig_code_name, orig_billed_seconds, orig_cost, term_client_id, term_cost, currency, version)`)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range xs {
		var connect *time.Time
		if x.answered {
			c := x.event.Add(-time.Duration(x.durMs) * time.Millisecond)
			connect = &c
		}
		if x.cost == "" {
			x.cost = "0"
		}
		if x.term == "" {
			x.term = "0"
		}
		setup := x.event.Add(-time.Hour) // fixed per CDR: the sort key
		err := b.Append(x.id, "sw1", x.event, setup, connect, x.event, x.durMs, x.status, x.reason, x.termReason,
			uint64(1), x.client, x.client*100, x.code, x.name, x.billed,
			decimal.RequireFromString(x.cost), uint64(50), decimal.RequireFromString(x.term), "USD", x.version)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
}

func reportFixture(t *testing.T) *sinktest.DB {
	db := sinktest.New(t)
	at := func(s string) time.Time { return time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).Add(mustDuration(t, s)) }
	insertXDRs(t, db, []reportXDR{
		{id: "c1", event: at("10h"), answered: true, durMs: 60000, status: "rated", client: 10, code: "447", name: "UK Mobile", billed: 60, cost: "0.100000", term: "0.050000", version: 1},
		{id: "c2", event: at("23h30m"), status: "rated", client: 10, code: "447", name: "UK Mobile", version: 1},
		{id: "c3", event: at("25h"), answered: true, durMs: 30500, status: "rated", client: 11, code: "44", name: "UK", billed: 31, cost: "0.010333", term: "0.012000", version: 1},
		{id: "c4", event: at("12h"), durMs: 12000, answered: true, status: "mismatch", reason: "unknown_account", version: 1},
		{id: "c5", event: at("13h"), status: "mismatch", reason: "unknown_account", version: 1},
		{id: "c6", event: at("26h"), answered: true, durMs: 5000, status: "rated", termReason: "term_unknown_destination", client: 11, code: "44", name: "UK", billed: 5, cost: "0.001667", version: 1},
		{id: "c7", event: at("100h"), answered: true, durMs: 9000, status: "rated", client: 10, code: "447", name: "UK Mobile", billed: 60, cost: "0.100000", version: 1},
		{id: "c8", event: at("-1h"), status: "mismatch", reason: "malformed", version: 1},
	})
	// c1 rerated: the new version replaces the old one.
	insertXDRs(t, db, []reportXDR{
		{id: "c1", event: at("10h"), answered: true, durMs: 60000, status: "rated", client: 10, code: "447", name: "UK Mobile", billed: 60, cost: "0.120000", term: "0.050000", version: 2},
	})
	return db
}

func mustDuration(t *testing.T, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSummaryReport(t *testing.T) {
	t.Parallel()
	db := reportFixture(t)
	ctx := context.Background()
	from, to := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 3, 0, 0, 0, 0, time.UTC)
	tokyo, _ := time.LoadLocation("Asia/Tokyo")

	type want struct {
		keys                                string
		calls, answered, answeredMs, billed uint64
		revenue, cost                       string
	}
	f := func(q sinks.SummaryQuery, wants ...want) {
		t.Helper()
		rows, err := sinks.Summary(ctx, db.CH, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(wants) {
			t.Fatalf("by %v: %d rows %+v, want %d", q.By, len(rows), rows, len(wants))
		}
		for i, w := range wants {
			r := rows[i]
			got := want{keys: join(r.Keys), calls: r.Calls, answered: r.Answered, answeredMs: r.AnsweredMs, billed: r.BilledSeconds,
				revenue: r.Revenue.StringFixed(6), cost: r.Cost.StringFixed(6)}
			if got != w {
				t.Errorf("by %v row %d:\n got %+v\nwant %+v", q.By, i, got, w)
			}
		}
	}
	f(sinks.SummaryQuery{From: from, To: to, By: []string{"orig_client"}},
		want{"10", 2, 1, 60000, 60, "0.120000", "0.050000"},
		want{"11", 2, 2, 35500, 36, "0.012000", "0.012000"})
	f(sinks.SummaryQuery{From: from, To: to, Loc: tokyo, By: []string{"day", "code_name"}},
		want{"2024-03-01|UK Mobile", 1, 1, 60000, 60, "0.120000", "0.050000"},
		want{"2024-03-02|UK", 2, 2, 35500, 36, "0.012000", "0.012000"},
		want{"2024-03-02|UK Mobile", 1, 0, 0, 0, "0.000000", "0.000000"})
	f(sinks.SummaryQuery{From: from, To: to, Loc: tokyo, By: []string{"hour"}},
		want{"2024-03-01 19:00", 1, 1, 60000, 60, "0.120000", "0.050000"},
		want{"2024-03-02 08:00", 1, 0, 0, 0, "0.000000", "0.000000"},
		want{"2024-03-02 10:00", 1, 1, 30500, 31, "0.010333", "0.012000"},
		want{"2024-03-02 11:00", 1, 1, 5000, 5, "0.001667", "0.000000"})
	f(sinks.SummaryQuery{From: from, To: to, By: []string{"month", "reseller", "term_client", "account", "code"}},
		want{"2024-03|1|50|1000|447", 2, 1, 60000, 60, "0.120000", "0.050000"},
		want{"2024-03|1|50|1100|44", 2, 2, 35500, 36, "0.012000", "0.012000"})
	f(sinks.SummaryQuery{From: from, To: to},
		want{"", 4, 3, 95500, 96, "0.132000", "0.062000"})
	f(sinks.SummaryQuery{From: to, To: to.Add(time.Hour)}) // no traffic, no rows

	// The derived columns, exact.
	r := sinks.SummaryRow{Calls: 4, Answered: 3, AnsweredMs: 95500, BilledSeconds: 96,
		Revenue: decimal.RequireFromString("0.132000"), Cost: decimal.RequireFromString("0.062000")}
	m, ok := r.Margin()
	for _, c := range []struct{ name, got, want string }{
		{"ASR", r.ASR().StringFixed(2), "75.00"},
		{"ACD", r.ACD().StringFixed(1), "31.8"},
		{"minutes", r.Minutes().StringFixed(2), "1.60"},
		{"profit", r.Profit().StringFixed(6), "0.070000"},
		{"margin", m.StringFixed(2), "53.03"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
	if !ok {
		t.Error("margin not ok with revenue")
	}
	if _, ok := (sinks.SummaryRow{}).Margin(); ok {
		t.Error("margin ok without revenue")
	}
	if _, err := sinks.Summary(ctx, db.CH, sinks.SummaryQuery{From: from, To: to, By: []string{"colour"}}); err == nil {
		t.Error("unknown grouping accepted")
	}
}

func join(keys []string) string {
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += "|"
		}
		s += k
	}
	return s
}

func TestMismatchesReport(t *testing.T) {
	t.Parallel()
	db := reportFixture(t)
	from, to := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 3, 0, 0, 0, 0, time.UTC)
	rows, err := sinks.Mismatches(context.Background(), db.CH, from, to)
	if err != nil {
		t.Fatal(err)
	}
	want := []sinks.MismatchRow{
		{Reason: "unknown_account", Side: "orig", Calls: 2, DurationMs: 12000, Examples: []string{"c4", "c5"}},
		{Reason: "term_unknown_destination", Side: "term", Calls: 1, DurationMs: 5000, Examples: []string{"c6"}},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v, want %+v", rows, want)
	}
	for i := range want {
		g, w := rows[i], want[i]
		if g.Reason != w.Reason || g.Side != w.Side || g.Calls != w.Calls || g.DurationMs != w.DurationMs || join(g.Examples) != join(w.Examples) {
			t.Errorf("row %d: %+v, want %+v", i, g, w)
		}
	}
}
