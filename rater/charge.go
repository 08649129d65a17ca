package rater

import (
	"math"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tarifa/tarifa/codedeck"
)

// maxFastBilled bounds the billed seconds of the integer fast path: with a
// rate of at most 1000 per minute (1e12 billionths, see codedeck.Rate
// NanoExact) the numerator stays below 9.1e18, inside int64.
const maxFastBilled = 9_000_000

// BilledSeconds returns the seconds a call of duration d is billed under r
// (DOMAIN.md "The charge"): d rounded up to a whole second; 0 when that is 0
// or within the grace volume (inclusive); else the min volume, and beyond it
// whole intervals. A negative d counts as 0.
func BilledSeconds(r *codedeck.Rate, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	if s <= int64(r.GraceVolume) {
		return 0
	}
	m, i := int64(r.MinVolume), int64(r.Interval)
	if s <= m {
		return m
	}
	return m + (s-m+i-1)/i*i
}

// Charge is the DOMAIN.md charge formula: the billed seconds of a call of
// duration d under r and its cost in millionths of the currency,
// cost = setup fee + rate × billed / 60 rounded half away from zero to 6
// decimals; 0 and 0 for a call within the grace volume. It is the one
// definition of a per-call cost: rating and prepaid authorization both use
// it. It allocates only on the decimal path (rates with more than 9
// decimals or above 1000, calls above 9,000,000 billed seconds). A cost
// beyond ±math.MaxInt64 millionths (9.2 trillion) saturates there; the
// rater refuses anything beyond MaxCallCostMicro anyway.
func Charge(r *codedeck.Rate, d time.Duration) (billedSeconds int64, costMicro int64) {
	billed := BilledSeconds(r, d)
	if billed == 0 {
		return 0, 0
	}
	if r.NanoExact && billed <= maxFastBilled {
		// cost in millionths = (S·60 + R·billed) / 60 in billionths / 1000
		return billed, roundHalfAway(r.SetupNano*60+r.RateNano*billed, 60_000)
	}
	micro := costDecimal(r, billed).Shift(6)
	switch { // beyond 9.2 trillion: saturate rather than wrap
	case micro.GreaterThan(maxMicro):
		return billed, math.MaxInt64
	case micro.LessThan(minMicro):
		return billed, -math.MaxInt64
	}
	return billed, micro.IntPart()
}

var maxMicro, minMicro = decimal.NewFromInt(math.MaxInt64), decimal.NewFromInt(-math.MaxInt64)

// roundHalfAway returns num / den rounded half away from zero; den > 0.
// It is the rounding rule of every per-call cost; costDecimal applies the
// same rule (decimal.DivRound) on the slow path.
func roundHalfAway(num, den int64) int64 {
	q, r := num/den, num%den
	if r < 0 {
		r = -r
	}
	if 2*r >= den {
		if num < 0 {
			q--
		} else {
			q++
		}
	}
	return q
}

// costDecimal is (S·60 + R·billed) / 60 rounded half away from zero to 6
// decimals, in decimal arithmetic.
func costDecimal(r *codedeck.Rate, billed int64) decimal.Decimal {
	num := r.SetupFee.Mul(sixty).Add(r.Rate.Mul(decimal.NewFromInt(billed)))
	return num.DivRound(sixty, 6)
}

var sixty = decimal.NewFromInt(60)

// ChargeDecimal is the charge formula written plainly in decimal
// arithmetic, from r's decimal fields alone. It is the reference the fast
// path of Charge is tested against; production code calls Charge.
func ChargeDecimal(r *codedeck.Rate, d time.Duration) (billedSeconds int64, cost decimal.Decimal) {
	if d <= 0 {
		return 0, decimal.Zero
	}
	secs := decimal.NewFromInt(int64(d)).Div(decimal.NewFromInt(int64(time.Second))).Ceil()
	if secs.LessThanOrEqual(decimal.NewFromInt(int64(r.GraceVolume))) {
		return 0, decimal.Zero
	}
	m, i := decimal.NewFromInt(int64(r.MinVolume)), decimal.NewFromInt(int64(r.Interval))
	billed := m
	if secs.GreaterThan(m) {
		billed = m.Add(secs.Sub(m).Div(i).Ceil().Mul(i))
	}
	num := r.SetupFee.Mul(sixty).Add(r.Rate.Mul(billed))
	return billed.IntPart(), num.DivRound(sixty, 6)
}

// MaxDuration returns the longest call, in whole seconds and at most max,
// whose charge under r is at most availableMicro millionths; 0 when even a
// one-second call costs more (or availableMicro is negative). Prepaid
// authorization uses it, so it agrees with Charge by construction: it
// searches Charge, which never decreases as the duration grows.
func MaxDuration(r *codedeck.Rate, availableMicro int64, max int64) int64 {
	if availableMicro < 0 || max <= 0 {
		return 0
	}
	fits := func(s int64) bool {
		_, c := Charge(r, time.Duration(s)*time.Second)
		return c <= availableMicro
	}
	if max > int64(1<<62)/int64(time.Second) {
		max = int64(1<<62) / int64(time.Second)
	}
	if fits(max) {
		return max
	}
	lo, hi := int64(0), max // fits(lo), !fits(hi)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}
