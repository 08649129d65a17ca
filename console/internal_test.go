package console

import (
	"html/template"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTyped(t *testing.T) {
	f := func(spec fieldSpec, raw string, want any) {
		t.Helper()
		if got := typed(spec, raw); !reflect.DeepEqual(got, want) {
			t.Errorf("typed(%+v, %q) = %#v, want %#v", spec, raw, got, want)
		}
	}
	integer, nullInt := fieldSpec{Type: "integer"}, fieldSpec{Type: "integer", Nullable: true}
	money, nullMoney := fieldSpec{Type: "string", Format: "decimal"}, fieldSpec{Type: "string", Format: "decimal", Nullable: true}
	f(integer, "42", int64(42))
	f(integer, " 7 ", int64(7))
	f(integer, "4.5", "4.5") // the API says "must be an integer"
	f(nullInt, "", nil)
	f(money, "100.50", "100.50") // amounts go as typed: never parsed into a number here
	f(money, "0.1234567", "0.1234567")
	f(money, "", "")
	f(nullMoney, " ", nil)
	f(fieldSpec{Type: "boolean"}, "true", true)
	f(fieldSpec{Type: "boolean"}, "false", false)
	f(fieldSpec{Type: "array"}, " gold, uk ,,", []string{"gold", "uk"})
	f(fieldSpec{Type: "array"}, "", []string{})
	f(fieldSpec{Type: "string"}, " Name ", " Name ")
}

func TestSafeNext(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
	f("/clients?name=a", "/clients?name=a")
	f("", "/")
	f("https://evil.example/", "/")
	f("//evil.example/", "/")
	f("/\\evil.example", "/")
	f("/\t/evil.example", "/")
	f("/\r\n/evil.example", "/")
	f("/clients\\..\\x", "/")
	f("/signin?next=/x", "/")
}

// TestChartScale: bar heights come from exact decimals, and every bar
// carries its value as given.
func TestChartScale(t *testing.T) {
	svg := string(barChart("t", []string{"a", "b", "c"}, []string{"999999999999.999999", "499999999999.9999995", "0"}))
	for _, want := range []string{`height="194"`, `height="97"`, `<title>a: 999999999999.999999</title>`, `<title>b: 499999999999.9999995</title>`, "max 999999999999.999999"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %s:\n%s", want, svg)
		}
	}
	neg := string(barChart("t", []string{"a", "b"}, []string{"-2", "2"}))
	if !strings.Contains(neg, `class="bar neg"`) || !strings.Contains(neg, "min -2") {
		t.Errorf("a negative bar:\n%s", neg)
	}
	if esc := string(barChart("<x>", []string{"<b>"}, []string{"1"})); strings.Contains(esc, "<b>") || strings.Contains(esc, "<x>") {
		t.Errorf("chart text is not escaped:\n%s", esc)
	}
}

// TestReportColumnsInOrder: a report's columns keep the API's order, and
// the totals and per-currency rows line up under them.
func TestReportColumnsInOrder(t *testing.T) {
	tb, err := decodeReport([]byte(`{"rows":[{"orig_client":"A","orig_currency":"USD","calls":3,"revenue":"0.300000","margin_pct":null}],
		"total":{"calls":3,"by_currency":[{"orig_currency":"USD","calls":3,"revenue":"0.300000","margin_pct":"40.00"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &table{Columns: []string{"orig_client", "orig_currency", "calls", "revenue", "margin_pct"},
		Rows:  [][]string{{"A", "USD", "3", "0.300000", ""}},
		Total: []string{"", "", "3", "", ""}, ByCur: [][]string{{"", "USD", "3", "0.300000", "40.00"}},
		Num: []bool{false, false, true, true, true}}
	if !reflect.DeepEqual(tb, want) {
		t.Errorf("decoded %+v\nwant    %+v", tb, want)
	}
}

// TestSessionBounds: expired sessions end, a full store ends the one idle
// longest, and staged decks are bounded in bytes across sessions.
func TestSessionBounds(t *testing.T) {
	cfg := Config{MaxSessions: 2, MaxStaged: 10, MaxDeck: 1024}
	if err := cfg.Validate(); err == nil {
		t.Fatal("a staged bound below the deck bound was accepted")
	}
	cfg.MaxStaged = 2048
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	st := newSessions(cfg)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	st.now = func() time.Time { return now }
	a := st.create("tarifa_a", identity{Role: "admin"})
	now = now.Add(time.Minute)
	b := st.create("tarifa_b", identity{Role: "admin"})
	now = now.Add(time.Minute)
	st.lookup(a.id) // a is used again: b is now idle longest
	c := st.create("tarifa_c", identity{Role: "admin"})
	if st.lookup(b.id) != nil || st.lookup(a.id) == nil || st.lookup(c.id) == nil {
		t.Fatal("a full store did not end the session idle longest")
	}
	if !st.stage(a, &stagedDeck{id: "1", content: make([]byte, 1500)}) {
		t.Fatal("a deck within the bound was refused")
	}
	if st.stage(c, &stagedDeck{id: "2", content: make([]byte, 1000)}) {
		t.Fatal("decks beyond the bound were staged")
	}
	if !st.stage(a, &stagedDeck{id: "3", content: make([]byte, 2000)}) {
		t.Fatal("a session's new deck does not replace its old one in the bound")
	}
	if st.takeStaged(a, "1") != nil || st.takeStaged(a, "3") == nil || st.stagedNow != 0 {
		t.Fatalf("take: staged bytes %d", st.stagedNow)
	}
	now = now.Add(cfg.SessionIdle + time.Second)
	if st.lookup(a.id) != nil {
		t.Fatal("an idle session outlived SessionIdle")
	}
	d := st.create("tarifa_d", identity{})
	for i := 0; i < 14; i++ { // 14 × (12h − 1m) < 7 days
		now = now.Add(cfg.SessionIdle - time.Minute)
		if st.lookup(d.id) == nil {
			t.Fatalf("a used session ended after %s", now.Sub(d.created))
		}
	}
	now = now.Add(cfg.SessionIdle - time.Minute)
	if st.lookup(d.id) != nil {
		t.Fatalf("a session outlived SessionMax (%s)", cfg.SessionMax)
	}
}

// TestOneTokenCannotSignEverybodyOut: a token signing in again and again
// ends its own oldest sessions, never the other tokens' (a full store
// would otherwise end the operator's session idle longest).
func TestOneTokenCannotSignEverybodyOut(t *testing.T) {
	cfg := Config{MaxSessions: 5, MaxTokenSessions: 2}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	st := newSessions(cfg)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	st.now = func() time.Time { return now }
	admin := st.create("tarifa_admin", identity{Role: "admin"})
	var portal []*session
	for range 50 {
		now = now.Add(time.Second)
		portal = append(portal, st.create("tarifa_portal", identity{Role: "client"}))
	}
	if st.lookup(admin.id) == nil {
		t.Fatal("one token's sign-ins ended another token's session")
	}
	if st.count() != 3 {
		t.Fatalf("%d sessions held, want the admin's and the portal's last 2", st.count())
	}
	if st.lookup(portal[49].id) == nil || st.lookup(portal[48].id) == nil || st.lookup(portal[47].id) != nil {
		t.Fatal("a token over its bound did not keep its newest sessions")
	}
	if err := (&Config{MaxSessions: 5, MaxTokenSessions: 6}).Validate(); err == nil {
		t.Fatal("a token bound above the store's bound was accepted")
	}
}

// TestDayHours: the dashboard's hours of a day are the summary's hour
// labels, each once, on the days DST changes too.
func TestDayHours(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	day := func(y int, m time.Month, d int) []string {
		return dayHours(time.Date(y, m, d, 0, 0, 0, 0, london), time.Date(y, m, d+1, 0, 0, 0, 0, london))
	}
	for _, c := range []struct {
		name  string
		hours []string
		want  int
	}{
		{"a plain day", day(2026, 12, 1), 24},
		{"spring forward (no 01:00)", day(2026, 3, 29), 23},
		{"fall back (01:00 twice, one label)", day(2026, 10, 25), 24},
	} {
		seen := map[string]bool{}
		for _, h := range c.hours {
			if seen[h] {
				t.Errorf("%s: hour %s twice: its calls would be drawn twice", c.name, h)
			}
			seen[h] = true
		}
		if len(c.hours) != c.want {
			t.Errorf("%s: %d hours, want %d: %v", c.name, len(c.hours), c.want, c.hours)
		}
	}
}

// TestSummaryChartAddsCountsOverCurrencies: a day the API splits by
// currency pair is one bar of calls (their sum), while money is charted
// for one currency only.
func TestSummaryChartAddsCountsOverCurrencies(t *testing.T) {
	tb := &table{Columns: []string{"day", "orig_currency", "term_currency", "calls", "revenue"}, Rows: [][]string{
		{"2026-12-01", "EUR", "EUR", "2", "1.500000"},
		{"2026-12-01", "USD", "USD", "3", "2.250000"},
		{"2026-12-02", "USD", "USD", "4", "3.000000"},
	}}
	chart := func(metric string) string {
		d := &reportPage{reportData: reportData{Table: tb, By: []string{"day"}}}
		(&Console{}).summaryChart(d, url.Values{"metric": {metric}, "currency": {"USD"}})
		return string(d.Chart.(template.HTML))
	}
	calls := chart("calls")
	if strings.Count(calls, "<rect") != 2 || !strings.Contains(calls, "<title>2026-12-01: 5</title>") {
		t.Errorf("calls: want one bar of 5 for 2026-12-01 and one for 2026-12-02:\n%s", calls)
	}
	rev := chart("revenue")
	if strings.Count(rev, "<rect") != 2 || !strings.Contains(rev, "<title>2026-12-01: 2.250000</title>") {
		t.Errorf("revenue: want the USD figures only:\n%s", rev)
	}
}
