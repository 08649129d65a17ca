package report_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/report"
)

// summaryJSON renders a summary as JSON, for comparing two readings.
func summaryJSON(t *testing.T, f *fixture, q report.SummaryQuery) (string, report.Source) {
	t.Helper()
	s, err := f.reports.Summary(context.Background(), report.Scope{}, q)
	if err != nil {
		t.Fatal(err)
	}
	var b = new(stringsBuilder)
	if err := s.Table().Render(b, "json"); err != nil {
		t.Fatal(err)
	}
	return b.String(), s.Source
}

type stringsBuilder struct{ b []byte }

func (s *stringsBuilder) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }
func (s *stringsBuilder) String() string              { return string(s.b) }

// TestRollupEqualsFinal: the summary read from the rollups equals the one
// read from xdrs FINAL after the first refresh, after a rerating (new
// versions of rows, one moving a call to another client and hour of
// event), and after late CDRs for an hour already summarised — before and
// after the rollups catch up.
func TestRollupEqualsFinal(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	march := period(t, "2024-03-01", "2024-04-01", "UTC")
	queries := []report.SummaryQuery{
		{Period: march, By: []string{"day", "orig_client"}},
		{Period: march, By: []string{"hour", "term_client", "code_name"}},
		{Period: period(t, "2024-03-01", "2024-03-04", "Asia/Tokyo"), By: []string{"day", "reseller", "account"}},
		{Period: march},
	}
	check := func(stage string, wantRollup bool) {
		t.Helper()
		for _, q := range queries {
			fast, src := summaryJSON(t, f, q)
			q.Exact = true
			exact, _ := summaryJSON(t, f, q)
			if fast != exact {
				t.Errorf("%s, by %v: rollup summary differs from xdrs FINAL (%s):\n%s\nwant\n%s", stage, q.By, src, fast, exact)
			}
			if wantRollup && src.RollupHours == 0 {
				t.Errorf("%s, by %v: %s, want rollups used", stage, q.By, src)
			}
		}
	}
	check("nothing summarised yet", false)
	res, err := f.reports.RefreshRollups(ctx, 0)
	if err != nil || res.Hours == 0 {
		t.Fatalf("refresh: %+v, %v", res, err)
	}
	check("after the first refresh", true)
	if res, err := f.reports.RefreshRollups(ctx, 0); err != nil || res.Hours != 0 {
		t.Fatalf("second refresh: %+v, %v; want nothing to do", res, err)
	}

	// A rerating: c01 costs more, c05 moves from Beta to Alpha (an account
	// moved) and its event time moves by an hour, c02 becomes a mismatch.
	xs := f.rerate(map[string]func(x *xdrRow){
		"c01": func(x *xdrRow) { x.OrigCost = decimal.RequireFromString("0.200000") },
		"c05": func(x *xdrRow) { x.OrigClientID, x.OrigAccountID = 1, 1; x.EventTime = x.EventTime.Add(time.Hour) },
		"c02": func(x *xdrRow) {
			x.Status, x.Reason, x.OrigCost, x.TermCost = "mismatch", "no_rate", decimal.Zero, decimal.Zero
		},
	})
	if len(xs) != 3 {
		t.Fatalf("rerated %d rows", len(xs))
	}
	check("right after the rerating", true)
	if _, err := f.reports.RefreshRollups(ctx, 0); err != nil {
		t.Fatal(err)
	}
	check("after the rerating was summarised", true)

	// Late CDRs for hours already summarised.
	late := []byte(`{"id":"late1","switch":"sw1","setup_time":"2024-03-01T10:20:00Z","connect_time":"2024-03-01T10:20:01Z","disconnect_time":"2024-03-01T10:25:01Z","src_ip":"192.0.2.1","dst":"447700900123","term_ip":"198.51.100.1"}
{"id":"late2","switch":"sw1","setup_time":"2024-03-02T12:10:00Z","connect_time":"2024-03-02T12:10:01Z","disconnect_time":"2024-03-02T12:11:01Z","src_ip":"192.0.2.3","dst":"4930123456","term_ip":"198.51.100.2"}`)
	f.commit(f.rate(splitLines(late), time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC)))
	check("right after late CDRs", true)
	if _, err := f.reports.RefreshRollups(ctx, 0); err != nil {
		t.Fatal(err)
	}
	check("after the late CDRs were summarised", true)
	_, src := summaryJSON(t, f, queries[0])
	if src.RawHours != 0 {
		t.Errorf("after every refresh: %s, want no raw hours", src)
	}
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, b[start:i])
			start = i + 1
		}
	}
	return append(out, b[start:])
}

// TestBalanceChain: each closing is the next opening, and the last
// closing equals the client's live balance, in every mode and step.
func TestBalanceChain(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	live := map[string]decimal.Decimal{}
	rows, err := f.db.PG.Query(ctx, `SELECT client_name, live::text FROM client_balances`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, v string
		if err := rows.Scan(&name, &v); err != nil {
			t.Fatal(err)
		}
		live[name] = decimal.RequireFromString(v)
	}
	rows.Close()
	if _, err := f.reports.RefreshRollups(ctx, 0); err != nil {
		t.Fatal(err)
	}
	for _, q := range []report.BalanceQuery{
		{Period: period(t, "2024-02-25", "2030-01-01", "UTC"), By: "month"},
		{Period: period(t, "2024-03-01", "2030-01-01", "Europe/Berlin"), By: "month", Exact: true},
		{Period: period(t, "2024-03-01", "2024-04-01", "America/New_York"), By: "day"},
	} {
		b, err := f.reports.Balance(ctx, report.Scope{}, q)
		if err != nil {
			t.Fatal(err)
		}
		last := map[int64]report.BalanceRow{}
		for i, r := range b.Rows {
			if i > 0 && b.Rows[i-1].ClientID == r.ClientID && !b.Rows[i-1].Closing.Equal(r.Opening) {
				t.Errorf("%v: client %d step %s opens at %s, the step before closed at %s", q.Period, r.ClientID, r.Step, r.Opening, b.Rows[i-1].Closing)
			}
			last[r.ClientID] = r
		}
		if q.Period.To.Year() < 2030 {
			continue
		}
		for id, r := range last {
			name := f.clientName(id)
			if !r.Closing.Equal(live[name]) {
				t.Errorf("%v: %s closes at %s, live balance %s", q.Period, name, r.Closing, live[name])
			}
		}
	}
}

func (f *fixture) clientName(id int64) string {
	var n string
	if err := f.db.PG.QueryRow(context.Background(), `SELECT name FROM clients WHERE id = $1`, id).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// TestCurrencySeparation: no total adds two currencies, and a client in
// EUR is summed in EUR only.
func TestCurrencySeparation(t *testing.T) {
	f := newFixture(t)
	s, err := f.reports.Summary(context.Background(), report.Scope{}, report.SummaryQuery{Period: period(t, "2024-03-01", "2024-04-01", "UTC")})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, g := range s.Groups {
		got[g.OrigCurrency+"/"+g.TermCurrency] = g.Revenue.String() + " " + g.Cost.String()
	}
	want := map[string]string{
		"USD/USD": "0.315 0.110833", // Alpha and Beta on Vendor US (and calls without a vendor)
		"USD/EUR": "0.15 0.018",     // Beta's call on Vendor EU
		"EUR/EUR": "0.083333 0.05",  // Gamma on Vendor EU
		"EUR/USD": "0.111833 0.061", // Gamma on Vendor US
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("groups by currency %v, want %v", got, want)
	}
	for _, r := range s.Table().Rows {
		if (r[0] != r[1]) && r[len(r)-2] != "" {
			t.Errorf("profit across currencies: %v", r)
		}
	}
}
