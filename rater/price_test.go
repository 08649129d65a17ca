package rater

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tarifa/tarifa/codedeck"
	"github.com/tarifa/tarifa/ingest"
)

func deck(t testing.TB, csv string) *codedeck.Deck {
	t.Helper()
	p, err := codedeck.ParseProfiles(strings.NewReader(`{"business": [{"days": "mon-fri", "from": "08:00", "to": "18:00"}],
		"weekend": [{"days": "sat,sun"}], "evening": [{"from": "18:00", "to": "24:00"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := codedeck.ParseCSV(strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	d, err := codedeck.Build(rows, p)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// want is "code@rate" of the chosen rate, or a reason.
func checkSelect(t *testing.T, d *codedeck.Deck, loc *time.Location) func(number, when, want string) {
	return func(number, when, want string) {
		t.Helper()
		r, reason := Select(d, number, at(when), loc)
		got := string(reason)
		if r != nil {
			got = r.Code + "@" + r.RateString()
		}
		if got != want {
			t.Fatalf("%s at %s: got %s, want %s", number, when, got, want)
		}
	}
}

// TestSelectDeckExample is the deck example of DOMAIN.md.
func TestSelectDeckExample(t *testing.T) {
	d := deck(t, "code,code_name,rate,effective_from\n44,UK,0.02,2024-01-01\n447,UK Mobile,0.10,2024-01-01\n447,UK Mobile,0.12,2024-03-01\n")
	f := checkSelect(t, d, time.UTC)
	f("447700900123", "2024-02-15T10:00:00Z", "447@0.1")
	f("447700900123", "2024-03-01T00:00:00Z", "447@0.12")
	f("447700900123", "2024-02-29T23:59:59Z", "447@0.1")
	f("442071234567", "2024-02-15T10:00:00Z", "44@0.02")
	f("442071234567", "2023-12-31T23:59:59Z", "no_rate")
	f("33123", "2024-02-15T10:00:00Z", "unknown_destination")
	f("4", "2024-02-15T10:00:00Z", "unknown_destination")
}

func TestSelectDates(t *testing.T) {
	d := deck(t, "code,rate,effective_from,end_date\n"+
		"44,0.02,2024-01-01,\n"+
		"447,0.10,2024-01-01,\n"+
		"447,0.11,2024-02-01,2024-03-01\n"+ // ends: not revived by 0.10
		"4479,0.20,2024-01-01,2024-01-15T12:00:00Z\n") // ends: fall back to 447
	f := checkSelect(t, d, time.UTC)
	f("44790", "2024-01-15T11:59:59Z", "4479@0.2")
	f("44790", "2024-01-15T12:00:00Z", "447@0.1") // end_date exclusive
	f("4478", "2024-01-31T23:59:59Z", "447@0.1")
	f("4478", "2024-02-01T00:00:00Z", "447@0.11") // effective_from inclusive
	f("4478", "2024-02-29T23:59:59Z", "447@0.11")
	f("4478", "2024-03-01T00:00:00Z", "44@0.02") // 447 ended, 0.10 not revived: next shorter prefix
	f("4478", "2023-06-01T00:00:00Z", "no_rate")
}

func TestSelectProfiles(t *testing.T) {
	d := deck(t, "code,rate,effective_from,time_profile\n"+
		"44,0.02,2024-01-01,\n"+
		"447,0.10,2024-01-01,\n"+
		"447,0.15,2024-01-01,business\n"+
		"447,0.16,2024-02-01,business\n"+
		"448,0.30,2024-01-01,weekend\n"+ // no all rate: falls back to 44 outside weekends
		"449,0.40,2024-01-01,business\n"+
		"449,0.41,2024-01-01,evening\n")
	f := checkSelect(t, d, time.UTC)
	f("4471", "2024-01-18T09:00:00Z", "447@0.15") // Thursday: specific beats all
	f("4471", "2024-02-15T09:00:00Z", "447@0.16") // latest effective of the profile
	f("4471", "2024-01-18T18:00:00Z", "447@0.1")  // outside business hours: all
	f("4471", "2024-01-20T09:00:00Z", "447@0.1")  // Saturday
	f("4481", "2024-01-20T09:00:00Z", "448@0.3")
	f("4481", "2024-01-18T09:00:00Z", "44@0.02") // profile misses: shorter prefix
	f("4491", "2024-01-18T17:59:59Z", "449@0.4")
	f("4491", "2024-01-18T18:00:00Z", "449@0.41")
	f("4491", "2024-01-20T12:00:00Z", "44@0.02")

	// Timezones: 07:30 UTC on a July Monday is 08:30 in London, 03:30 in New York.
	london, _ := time.LoadLocation("Europe/London")
	ny, _ := time.LoadLocation("America/New_York")
	checkSelect(t, d, london)("4471", "2024-07-01T07:30:00Z", "447@0.16")
	checkSelect(t, d, time.UTC)("4471", "2024-07-01T07:30:00Z", "447@0.1")
	checkSelect(t, d, ny)("4471", "2024-07-01T07:30:00Z", "447@0.1")
	// Saturday 02:00 UTC is Friday 22:00 in New York: not weekend there.
	checkSelect(t, d, ny)("4481", "2024-07-06T02:00:00Z", "44@0.02")
	checkSelect(t, d, time.UTC)("4481", "2024-07-06T02:00:00Z", "448@0.3")
}

func TestSelectExpandedCodes(t *testing.T) {
	d := deck(t, "code,rate\n\"44301,44303\",0.1\n44310-44312,0.2\n443(5-6)1,0.3\n")
	f := checkSelect(t, d, time.UTC)
	f("443011", "2024-01-01T00:00:00Z", "44301@0.1")
	f("443021", "2024-01-01T00:00:00Z", "unknown_destination")
	f("443031", "2024-01-01T00:00:00Z", "44303@0.1")
	f("443111", "2024-01-01T00:00:00Z", "44311@0.2")
	f("443611", "2024-01-01T00:00:00Z", "44361@0.3")
	f("443711", "2024-01-01T00:00:00Z", "unknown_destination")
}

func TestPriceCallBillBy(t *testing.T) {
	d := deck(t, "code,rate,effective_from\n447,0.10,2024-01-01\n447,0.12,2024-03-01\n")
	answered := ingest.CDR{ // crosses midnight into March
		SetupTime: at("2024-02-29T23:59:00Z"), ConnectTime: at("2024-02-29T23:59:30Z"),
		DisconnectTime: at("2024-03-01T00:00:30Z"), Duration: 60 * time.Second,
	}
	unanswered := ingest.CDR{SetupTime: at("2024-02-29T23:59:50Z"), DisconnectTime: at("2024-03-01T00:00:10Z")}
	f := func(c ingest.CDR, b BillBy, wantAt, wantRate, wantCost string, wantBilled int64) {
		t.Helper()
		p := PriceCall(d, "447700", &c, b, time.UTC)
		if !p.EventTime.Equal(at(wantAt)) || p.Rate == nil || p.Rate.RateString() != wantRate ||
			p.BilledSeconds != wantBilled || !decimal.New(p.CostMicro, -6).Equal(decimal.RequireFromString(wantCost)) {
			t.Fatalf("%v: got %+v", b, p)
		}
	}
	f(answered, BillByDisconnect, "2024-03-01T00:00:30Z", "0.12", "0.12", 60)
	f(answered, BillBySetup, "2024-02-29T23:59:00Z", "0.1", "0.1", 60)
	f(answered, BillByConnect, "2024-02-29T23:59:30Z", "0.1", "0.1", 60)
	f(unanswered, BillByConnect, "2024-02-29T23:59:50Z", "0.1", "0", 0) // no connect: setup
	f(unanswered, BillByDisconnect, "2024-03-01T00:00:10Z", "0.12", "0", 0)

	for _, s := range []string{"setup", "connect", "disconnect"} {
		b, err := ParseBillBy(s)
		if err != nil || b.String() != s {
			t.Fatalf("%s: %v %v", s, b, err)
		}
	}
	if b, err := ParseBillBy(""); err != nil || b != BillByDisconnect {
		t.Fatal("default is not disconnect")
	}
	if _, err := ParseBillBy("answer"); err == nil {
		t.Fatal("answer accepted")
	}
}

func TestPriceCallReasons(t *testing.T) {
	d := deck(t, "code,rate,effective_from\n447,0.10,2024-01-01\n")
	c := ingest.CDR{SetupTime: at("2023-01-01T00:00:00Z"), DisconnectTime: at("2023-01-01T00:00:00Z")}
	if p := PriceCall(d, "4471", &c, BillByDisconnect, nil); p.Reason != ReasonNoRate || p.Rate != nil {
		t.Fatalf("got %+v", p)
	}
	if p := PriceCall(d, "33", &c, BillByDisconnect, nil); p.Reason != ReasonUnknownDestination {
		t.Fatalf("got %+v", p)
	}
	// A '+' number is normalized before pricing.
	n, ok := ingest.NormalizeNumber("+4471")
	c.DisconnectTime = at("2024-01-01T00:00:00Z")
	if p := PriceCall(d, n, &c, BillByDisconnect, nil); !ok || p.Rate == nil {
		t.Fatalf("got %+v", p)
	}
}

func TestPriceCallAllocs(t *testing.T) {
	d := deck(t, "code,rate,effective_from,time_profile\n447,0.10,2024-01-01,\n447,0.2,2024-01-01,business\n")
	c := ingest.CDR{DisconnectTime: at("2024-01-18T09:00:00Z"), Duration: 61 * time.Second}
	london, _ := time.LoadLocation("Europe/London")
	if n := testing.AllocsPerRun(100, func() { PriceCall(d, "447700", &c, BillByDisconnect, london) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

// synthDeck makes a deck of n random codes of 4–11 digits; one code in ten
// has a second, later rate, one in twenty a business-hours rate.
func synthDeck(b *testing.B, n int) (*codedeck.Deck, []string) {
	rng := rand.New(rand.NewPCG(1, 2))
	p, _ := codedeck.ParseProfiles(strings.NewReader(`{"business": [{"days": "mon-fri", "from": "08:00", "to": "18:00"}]}`))
	seen := make(map[string]bool, n)
	rows := make([]codedeck.Row, 0, n+n/5)
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var codes []string
	buf := make([]byte, 0, 16)
	for len(seen) < n {
		buf = buf[:0]
		for i, l := 0, 4+rng.IntN(8); i < l; i++ {
			buf = append(buf, byte('0'+rng.IntN(10)))
		}
		code := string(buf)
		if seen[code] {
			continue
		}
		seen[code] = true
		codes = append(codes, code)
		r := codedeck.Row{Code: code, CodeName: "Dest", Rate: decimal.New(int64(rng.IntN(100000)), -5),
			EffectiveFrom: from, MinVolume: 1 + rng.IntN(60), Interval: 1 + rng.IntN(60), Profile: "all"}
		rows = append(rows, r)
		if len(seen)%10 == 0 {
			r.EffectiveFrom = from.AddDate(0, 2, 0)
			rows = append(rows, r)
		}
		if len(seen)%20 == 0 {
			r.Profile = "business"
			rows = append(rows, r)
		}
	}
	d, err := codedeck.Build(rows, p)
	if err != nil {
		b.Fatal(err)
	}
	numbers := make([]string, 1024)
	for i := range numbers {
		numbers[i] = codes[(i*7919)%len(codes)] + "5550123"
	}
	return d, numbers
}

func BenchmarkPriceCall(b *testing.B) {
	d, numbers := synthDeck(b, 1_000_000)
	london, _ := time.LoadLocation("Europe/London")
	c := ingest.CDR{DisconnectTime: at("2024-05-15T09:00:00Z"), Duration: 61500 * time.Millisecond}
	b.ReportAllocs()
	b.ResetTimer()
	var sum int64
	for i := 0; b.Loop(); i++ {
		sum += PriceCall(d, numbers[i&1023], &c, BillByDisconnect, london).CostMicro
	}
	if sum == 0 {
		b.Fatal("nothing priced")
	}
}

func BenchmarkCharge(b *testing.B) {
	r := rate(b, "0.0125", "30", "6", "0", "0.01")
	b.ReportAllocs()
	var sum int64
	for i := 0; b.Loop(); i++ {
		_, c := Charge(r, time.Duration(i&4095)*time.Second)
		sum += c
	}
	_ = sum
}
