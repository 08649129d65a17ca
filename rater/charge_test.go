package rater

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tarifa/tarifa/codedeck"
)

// rate builds a one-rate deck from a CSV row and returns its rate, so the
// derived fast-path fields are set exactly as in production.
func rate(t testing.TB, rateCol, minVol, interval, grace, setup string) *codedeck.Rate {
	t.Helper()
	rows, err := codedeck.ParseCSV(strings.NewReader("code,rate,min_volume,interval,grace_volume,setup_fee\n1," +
		rateCol + "," + minVol + "," + interval + "," + grace + "," + setup + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := codedeck.Build(rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &d.Longest("1").Rates[0]
}

func secs(s string) time.Duration {
	d, err := decimal.NewFromString(s)
	if err != nil {
		panic(err)
	}
	return time.Duration(d.Shift(9).IntPart())
}

// TestChargeWorkedExamples is every example of DOMAIN.md "The charge".
func TestChargeWorkedExamples(t *testing.T) {
	f := func(r *codedeck.Rate, call string, wantBilled int64, wantCost string) {
		t.Helper()
		billed, micro := Charge(r, secs(call))
		cost := decimal.New(micro, -6)
		if billed != wantBilled || (wantCost != "" && !cost.Equal(decimal.RequireFromString(wantCost))) {
			t.Fatalf("%s s under %s/%d/%d/%d/%s: got %d s, %s; want %d s, %s", call, r.Rate, r.MinVolume, r.Interval,
				r.GraceVolume, r.SetupFee, billed, cost, wantBilled, wantCost)
		}
		dBilled, dCost := ChargeDecimal(r, secs(call))
		if dBilled != billed || !dCost.Equal(cost) {
			t.Fatalf("%s s: decimal path %d %s differs from %d %s", call, dBilled, dCost, billed, cost)
		}
	}
	// R 1, M 30, I 1, G 2, S 0.3: 2 s / 3 s / 30 s / 45 s / 0 s → 0 / 0.8 / 0.8 / 1.05 / 0
	r := rate(t, "1", "30", "1", "2", "0.3")
	f(r, "2", 0, "0")
	f(r, "3", 30, "0.8")
	f(r, "30", 30, "0.8")
	f(r, "45", 45, "1.05")
	f(r, "0", 0, "0")
	// M 30, I 1: 20 s → billed 30
	f(rate(t, "1", "30", "1", "", ""), "20", 30, "")
	// M 25, I 8: 26 s → billed 33
	f(rate(t, "1", "25", "8", "", ""), "26", 33, "")
	// R 0.6, M 1, I 1, G 5: 5 s / 6 s → 0 / 0.06
	r = rate(t, "0.6", "1", "1", "5", "")
	f(r, "5", 0, "0")
	f(r, "6", 6, "0.06")
	// R 0.012, 60/60: 30 s / 70 s → 0.012 / 0.024
	r = rate(t, "0.012", "60", "60", "", "")
	f(r, "30", 60, "0.012")
	f(r, "70", 120, "0.024")
	// 60/1: 30 s / 65 s → billed 60 / 65
	r = rate(t, "1", "60", "1", "", "")
	f(r, "30", 60, "")
	f(r, "65", 65, "")
	// 1/1: 35 s / 30.1 s → billed 35 / 31
	r = rate(t, "1", "1", "1", "", "")
	f(r, "35", 35, "")
	f(r, "30.1", 31, "")
	f(r, "30.000000001", 31, "")
	// R 0.05, 30/6: 45 s → billed 48, 0.04
	f(rate(t, "0.05", "30", "6", "", ""), "45", 48, "0.04")
	// R 0.15, S 0.10, 60/30: 43 s / 61 s → 0.25 / 0.325
	r = rate(t, "0.15", "60", "30", "", "0.10")
	f(r, "43", 60, "0.25")
	f(r, "61", 90, "0.325")
}

func TestChargeRounding(t *testing.T) {
	f := func(rateCol, call, want string) {
		t.Helper()
		_, micro := Charge(rate(t, rateCol, "1", "1", "", ""), secs(call))
		if got := decimal.New(micro, -6); !got.Equal(decimal.RequireFromString(want)) {
			t.Fatalf("%s × %s s: got %s, want %s", rateCol, call, got, want)
		}
	}
	f("0.1", "61", "0.101667")    // 0.1016666… rounds up
	f("0.1", "7", "0.011667")     // 0.0116666…
	f("0.00003", "1", "0.000001") // 0.0000005 exactly: half away from zero
	f("0.000029", "1", "0")       // 0.000000483…
	f("0.0000000001", "61", "0")  // > 9 decimals: decimal path
	f("0.00003000001", "1", "0.000001")
	f("123456789.5", "60", "123456789.5") // above the fast-path bound
	// Negative rates (a table that pays the client) round half away from
	// zero too, on both paths.
	f("-0.1", "61", "-0.101667")
	f("-0.00003", "1", "-0.000001")
	f("-0.000029", "1", "0")
	f("-0.00003000001", "1", "-0.000001")
	f("-123456789.5", "60", "-123456789.5")
}

// TestChargeFastEqualsDecimal is the property test: on random rates and
// calls the scaled-integer fast path equals the plain decimal formula.
func TestChargeFastEqualsDecimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	fast := 0
	for i := 0; i < n; i++ {
		r := randomRate(rng)
		d := randomDuration(rng)
		billed, micro := Charge(&r, d)
		wantBilled, wantCost := ChargeDecimal(&r, d)
		if billed != wantBilled || !decimal.New(micro, -6).Equal(wantCost) {
			t.Fatalf("rate %s setup %s M%d I%d G%d, %v: got %d %d µ, want %d %s",
				r.Rate, r.SetupFee, r.MinVolume, r.Interval, r.GraceVolume, d, billed, micro, wantBilled, wantCost)
		}
		if r.NanoExact {
			fast++
		}
	}
	if fast < n/4 {
		t.Fatalf("only %d of %d cases took the fast path", fast, n)
	}
}

func randomRate(rng *rand.Rand) codedeck.Rate {
	amount := func() decimal.Decimal {
		switch rng.IntN(10) {
		case 0:
			return decimal.Zero
		case 1: // more than 9 decimals: the decimal path
			return decimal.New(rng.Int64N(1e12), -int32(10+rng.IntN(4)))
		case 2: // large
			return decimal.New(rng.Int64N(1e6), -int32(rng.IntN(4)))
		}
		return decimal.New(rng.Int64N(1e7), -int32(rng.IntN(10)))
	}
	vol := func(max int) int { return 1 + rng.IntN(max) }
	rateAmount := amount()
	if rng.IntN(4) == 0 { // a table that pays the client
		rateAmount = rateAmount.Neg()
	}
	rows := []codedeck.Row{{Code: "1", Rate: rateAmount, SetupFee: amount(), MinVolume: vol(120), Interval: vol(60),
		GraceVolume: rng.IntN(10), Profile: "all"}}
	d, err := codedeck.Build(rows, nil)
	if err != nil {
		panic(err)
	}
	return d.Longest("1").Rates[0]
}

func randomDuration(rng *rand.Rand) time.Duration {
	switch rng.IntN(6) {
	case 0:
		return time.Duration(rng.IntN(12)) * time.Second
	case 1:
		return time.Duration(rng.Int64N(int64(400 * 24 * time.Hour)))
	}
	return time.Duration(rng.Int64N(int64(2 * time.Hour)))
}

func TestMaxDuration(t *testing.T) {
	r := rate(t, "0.15", "60", "30", "2", "0.10")
	f := func(available string, max, want int64) {
		t.Helper()
		a := decimal.RequireFromString(available).Shift(6).IntPart()
		if got := MaxDuration(r, a, max); got != want {
			t.Fatalf("available %s: got %d, want %d", available, got, want)
		}
		if want > 0 {
			if _, c := Charge(r, time.Duration(want)*time.Second); c > a {
				t.Fatalf("available %s: %d s costs %d µ", available, want, c)
			}
		}
	}
	f("0", 3600, 2)        // only the grace
	f("0.249999", 3600, 2) // 60 s costs 0.25
	f("0.25", 3600, 60)    // up to the first minute
	f("0.325", 3600, 90)   // 61…90 s cost 0.325
	f("1000", 3600, 3600)  // capped by max
	f("-1", 3600, 0)
}
