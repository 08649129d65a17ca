package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/report"
)

// TestStatementEqualsFinal: a client's statement lines, orig and term, sum
// exactly what xdrs FINAL holds for it, before and after a rerating moved
// hours out of the rollups.
func TestStatementEqualsFinal(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.reports.RefreshRollups(ctx, 0); err != nil {
		t.Fatal(err)
	}
	check := func(stage string) {
		t.Helper()
		for _, tc := range []struct {
			client int64
			side   string
			tz     string
		}{{1, "orig", "UTC"}, {2, "orig", "UTC"}, {3, "orig", "Europe/Berlin"}, {5, "term", "UTC"}, {6, "term", "UTC"}} {
			p := period(t, "2024-03-01", "2024-04-01", tc.tz)
			lines, err := f.reports.Statement(ctx, report.StatementQuery{Client: tc.client, Side: tc.side, Period: p})
			if err != nil {
				t.Fatal(err)
			}
			var sum decimal.Decimal
			var calls uint64
			for _, l := range lines {
				sum = sum.Add(l.Amount)
				calls += l.Calls
			}
			col, cost := "orig_client_id", "orig_cost"
			extra := ""
			if tc.side == "term" {
				col, cost, extra = "term_client_id", "term_cost", " AND term_reason = ''"
			}
			var want string
			var wantCalls uint64
			if err := f.db.CH.QueryRow(ctx, `SELECT toString(sum(`+cost+`)), count() FROM xdrs FINAL WHERE status = 'rated' AND `+col+` = ?`+extra+`
				AND event_time >= toDateTime(?) AND event_time < toDateTime(?)`, uint64(tc.client), p.From.Unix(), p.To.Unix()).Scan(&want, &wantCalls); err != nil {
				t.Fatal(err)
			}
			if len(lines) == 0 || sum.IsZero() {
				t.Errorf("%s: client %d %s: no lines", stage, tc.client, tc.side)
			}
			if !sum.Equal(decimal.RequireFromString(want)) || calls != wantCalls {
				t.Errorf("%s: client %d %s: lines sum %s over %d calls, xdrs FINAL %s over %d", stage, tc.client, tc.side, sum, calls, want, wantCalls)
			}
		}
	}
	check("from the rollups")
	f.rerate(map[string]func(x *xdrRow){
		"c01": func(x *xdrRow) { x.OrigCost = x.OrigCost.Add(decimal.RequireFromString("0.123457")) },
		"c05": func(x *xdrRow) { x.TermCost = x.TermCost.Add(decimal.RequireFromString("1.000001")) },
	})
	check("after a rerating")
}

// TestWriteCallsMasks: the xDR attachment of a client with hidden digits
// masks them, and lists its rated calls only.
func TestWriteCallsMasks(t *testing.T) {
	f := newFixture(t)
	var b bytes.Buffer
	if err := f.reports.WriteCalls(context.Background(), &b, report.StatementQuery{Client: 1, Period: period(t, "2024-03-01", "2024-04-01", "UTC")}); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != strings.Join(report.CallColumns, ",") || len(recs) < 3 {
		t.Fatalf("calls csv: %v", recs)
	}
	for _, r := range recs[1:] {
		if !strings.HasSuffix(r[5], "XXX") {
			t.Errorf("dst %q of a client with 3 hidden digits", r[5])
		}
		if r[6] != "" && !strings.HasSuffix(r[6], "XXX") {
			t.Errorf("ani %q not masked", r[6])
		}
		if strings.Contains(b.String(), "447700900123") {
			t.Errorf("a whole number in the attachment")
		}
	}
}

// TestWriteCallsDefusesFormulas: an ANI is whatever the caller's switch
// sends; one that a spreadsheet would run as a formula reaches the xDR
// attachment behind a quote.
func TestWriteCallsDefusesFormulas(t *testing.T) {
	f := newFixture(t)
	line := []byte(`{"id":"=f01","switch":"sw1","setup_time":"2024-03-05T10:00:00Z","connect_time":"2024-03-05T10:00:05Z",` +
		`"disconnect_time":"2024-03-05T10:01:05Z","src_ip":"192.0.2.1","dst":"447700900123","ani":"=cmd|' /C calc'!A0"}`)
	f.commit(f.rate([][]byte{line}, time.Date(2024, 3, 5, 11, 0, 0, 0, time.UTC)))
	var b bytes.Buffer
	if err := f.reports.WriteCalls(context.Background(), &b, report.StatementQuery{Client: 1, Period: period(t, "2024-03-01", "2024-04-01", "UTC")}); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs[1:] {
		if strings.HasPrefix(r[0], "'=f01") {
			found = true
			if !strings.HasPrefix(r[6], "'=cmd") {
				t.Errorf("ani %q of a formula", r[6])
			}
		}
		for _, c := range r {
			if c != "" && strings.ContainsRune("=+@", rune(c[0])) {
				t.Errorf("cell %q begins a formula", c)
			}
		}
	}
	if !found {
		t.Fatalf("the call =f01 is not in the attachment: %v", recs)
	}
}
