package codedeck

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func mustDeck(t testing.TB, csv string, p *Profiles) *Deck {
	t.Helper()
	rows, err := ParseCSV(strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Build(rows, p)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLookup(t *testing.T) {
	d := mustDeck(t, "code,rate\n4,1\n44,1\n447,1\n4479,1\n1,1\n12345,1\n", nil)
	f := func(number string, want ...string) {
		t.Helper()
		var buf [MaxCodeLen + 1]*Code
		var got []string
		for _, c := range d.Lookup(number, buf[:0]) {
			got = append(got, c.Code)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: got %v, want %v", number, got, want)
		}
	}
	f("447700900123", "447", "44", "4")
	f("4479", "4479", "447", "44", "4")
	f("4", "4")
	f("45", "4")
	f("1234", "1")
	f("123456", "12345", "1")
	f("2")
	f("")
	f("44x7", "44", "4")
	if d.Len() != 6 {
		t.Fatalf("Len %d", d.Len())
	}
	if c := d.Longest("4478"); c == nil || c.Code != "447" {
		t.Fatalf("Longest: %v", c)
	}
}

// TestBuildGroupsRates checks the layout the rater relies on: a code's rates
// grouped by profile ID ("all" first) and sorted by effective date.
func TestBuildGroupsRates(t *testing.T) {
	d := mustDeck(t, "code,rate,effective_from,time_profile\n"+
		"44,3,2024-03-01,weekend\n44,1,2024-02-01,\n44,2,2024-01-01,business\n44,4,2024-01-01,\n44,5,2024-01-01,weekend\n",
		testProfiles(t))
	var got []string
	for _, r := range d.Longest("44").Rates {
		got = append(got, fmt.Sprintf("%s/%d/%s/%s", r.Profile, r.ProfileID, r.EffectiveFrom.Format("01"), r.RateString()))
	}
	want := []string{"all/0/01/4", "all/0/02/1", "business/1/01/2", "weekend/2/01/5", "weekend/2/03/3"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestBuildRejectsRowsFromElsewhere(t *testing.T) {
	rows := []Row{
		{Code: "44", Rate: decimal.NewFromInt(1), MinVolume: 1, Interval: 1, Profile: "all"},
		{Code: "44", Rate: decimal.NewFromInt(2), MinVolume: 1, Interval: 1}, // "" is all: duplicate
		{Line: 9, Code: "45", Rate: decimal.NewFromInt(1), MinVolume: 1, Interval: 1, Profile: "nights"},
	}
	_, err := Build(rows, nil)
	var pe *ParseError
	if !errors.As(err, &pe) || len(pe.Rows) != 1 || pe.Rows[0].Line != 9 {
		t.Fatalf("got %v", err)
	}
	_, err = Build(rows[:2], nil)
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "duplicate code 44") {
		t.Fatalf("got %v", err)
	}
}

func TestNanoFields(t *testing.T) {
	f := func(rate string, nano int64, exact bool) {
		t.Helper()
		d := mustDeck(t, "code,rate\n1,"+rate+"\n", nil)
		r := d.Longest("1").Rates[0]
		if r.NanoExact != exact || (exact && r.RateNano != nano) {
			t.Fatalf("%s: got %d %v, want %d %v", rate, r.RateNano, r.NanoExact, nano, exact)
		}
	}
	f("0.1", 100_000_000, true)
	f("0.000000001", 1, true)
	f("0.0000000010", 1, true)
	f("0.0000000001", 0, false)
	f("1000", 1000e9, true)
	f("1000.000000001", 0, false)
	f("0", 0, true)
}

func TestProfiles(t *testing.T) {
	p, err := ParseProfiles(strings.NewReader(`{"business": [{"days": "mon-fri", "from": "08:00", "to": "18:00"}],
		"weekend": [{"days": "sat,sun"}], "late": [{"from": "22:00", "to": "24:00"}, {"to": "06:00"}],
		"wrap": [{"days": "fri-mon"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	london, _ := time.LoadLocation("Europe/London")
	f := func(name, at string, loc *time.Location, want bool) {
		t.Helper()
		tm, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Contains(name, tm, loc); got != want {
			t.Fatalf("%s at %s in %s: got %v", name, at, loc, got)
		}
	}
	f("business", "2024-02-15T08:00:00Z", time.UTC, true) // Thursday, from inclusive
	f("business", "2024-02-15T17:59:59Z", time.UTC, true)
	f("business", "2024-02-15T18:00:00Z", time.UTC, false) // to exclusive
	f("business", "2024-02-15T07:59:59Z", time.UTC, false)
	f("business", "2024-02-17T12:00:00Z", time.UTC, false) // Saturday
	f("weekend", "2024-02-17T00:00:00Z", time.UTC, true)
	f("weekend", "2024-02-16T23:30:00Z", time.UTC, false)
	f("weekend", "2024-02-16T23:30:00-01:00", time.UTC, true) // Sat 00:30 UTC
	// summer time: 07:30 UTC is 08:30 in London
	f("business", "2024-07-01T07:30:00Z", london, true)
	f("business", "2024-07-01T07:30:00Z", time.UTC, false)
	f("late", "2024-07-01T23:59:59Z", time.UTC, true)
	f("late", "2024-07-01T05:59:59Z", time.UTC, true)
	f("late", "2024-07-01T06:00:00Z", time.UTC, false)
	f("wrap", "2024-07-01T12:00:00Z", time.UTC, true)  // Monday
	f("wrap", "2024-07-02T12:00:00Z", time.UTC, false) // Tuesday
	f("all", "2024-07-02T12:00:00Z", time.UTC, true)
	f("nope", "2024-07-02T12:00:00Z", time.UTC, false)

	for _, bad := range []string{
		`{"all": [{"days": "mon"}]}`,
		`{"x": [{"days": "mon-fry"}]}`,
		`{"x": [{"from": "18:00", "to": "08:00"}]}`,
		`{"x": [{"from": "8:00"}]}`,
		`{"x": [{"to": "24:01"}]}`,
		`{"x": []}`,
		`{"x": [{"day": "mon"}]}`,
		`[1]`,
	} {
		if _, err := ParseProfiles(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestHolder(t *testing.T) {
	var h Holder
	if h.Load() != nil {
		t.Fatal("not nil")
	}
	d1 := mustDeck(t, "code,rate\n1,1\n", nil)
	d2 := mustDeck(t, "code,rate\n2,1\n", nil)
	h.Store(d1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			if d := h.Load(); d.Longest("1") == nil && d.Longest("2") == nil {
				panic("torn deck")
			}
		}
	}()
	h.Store(d2)
	<-done
	if h.Load() != d2 {
		t.Fatal("not swapped")
	}
}

// synthRows makes n distinct random codes of 4–11 digits, each with one
// rate, plus a second dated rate for one code in ten.
func synthRows(n int) []Row {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := make(map[string]bool, n)
	rows := make([]Row, 0, n+n/10)
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	buf := make([]byte, 0, 16)
	for len(seen) < n {
		buf = buf[:0]
		l := 4 + rng.IntN(8)
		for i := 0; i < l; i++ {
			buf = append(buf, byte('0'+rng.IntN(10)))
		}
		code := string(buf)
		if seen[code] {
			continue
		}
		seen[code] = true
		r := Row{Code: code, CodeName: "Dest", Rate: decimal.New(int64(rng.IntN(100000)), -5),
			EffectiveFrom: from, MinVolume: 1, Interval: 1, Profile: "all"}
		rows = append(rows, r)
		if len(seen)%10 == 0 {
			r.EffectiveFrom = from.AddDate(0, 2, 0)
			rows = append(rows, r)
		}
	}
	return rows
}

var benchDeck *Deck

func BenchmarkLookup(b *testing.B) {
	rows := synthRows(1_000_000)
	d, err := Build(rows, nil)
	if err != nil {
		b.Fatal(err)
	}
	numbers := make([]string, 1024)
	for i := range numbers {
		numbers[i] = rows[(i*7919)%len(rows)].Code + "5550123"
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; b.Loop(); i++ {
		var buf [MaxCodeLen + 1]*Code
		n += len(d.Lookup(numbers[i&1023], buf[:0]))
	}
	if n == 0 {
		b.Fatal("no match")
	}
}

// BenchmarkBuild builds a 1M-code deck from parsed rows; heap-MB is the heap
// the deck retains, alloc-MB what building it allocated in all.
func BenchmarkBuild(b *testing.B) {
	rows := synthRows(1_000_000)
	b.ReportAllocs()
	var before, after runtime.MemStats
	for b.Loop() {
		benchDeck = nil
		runtime.GC()
		runtime.ReadMemStats(&before)
		d, err := Build(rows, nil)
		if err != nil {
			b.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		allocMB := float64(after.TotalAlloc-before.TotalAlloc) / (1 << 20)
		runtime.GC()
		runtime.ReadMemStats(&after)
		benchDeck = d
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MB")
		b.ReportMetric(allocMB, "alloc-MB")
	}
}

func BenchmarkParseCSV(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("code,code_name,rate,effective_from,min_volume,interval\n")
	for _, r := range synthRows(100_000) {
		fmt.Fprintf(&sb, "%s,%s,%s,%s,1,1\n", r.Code, r.CodeName, r.Rate, r.EffectiveFrom.Format("2006-01-02"))
	}
	in := sb.String()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCSV(strings.NewReader(in)); err != nil {
			b.Fatal(err)
		}
	}
}
