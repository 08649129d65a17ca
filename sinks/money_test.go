package sinks_test

import (
	"math"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/sinks"
)

// TestMicroSaturates: balances are unbounded, int64 millionths are not; an
// amount beyond them saturates instead of wrapping to a small or negative
// number (a prepaid authorization would refuse a rich client).
func TestMicroSaturates(t *testing.T) {
	f := func(in string, want int64) {
		t.Helper()
		if got := sinks.Micro(decimal.RequireFromString(in)); got != want {
			t.Errorf("Micro(%s) = %d, want %d", in, got, want)
		}
	}
	f("1.5", 1_500_000)
	f("-0.000001", -1)
	f("9223372036854.775807", math.MaxInt64)
	f("1e30", math.MaxInt64)
	f("-1e30", math.MinInt64)
}

// TestMicroSum: sums of millionths beyond int64 stay exact.
func TestMicroSum(t *testing.T) {
	var s sinks.MicroSum
	for range 20 {
		s.Add(math.MaxInt64 / 2)
	}
	s.AddDecimal(decimal.RequireFromString("0.000001"))
	want := decimal.New(math.MaxInt64/2, -6).Mul(decimal.NewFromInt(20)).Add(decimal.New(1, -6))
	if !s.Decimal().Equal(want) || s.String() != want.StringFixed(6) {
		t.Errorf("sum %s, want %s", s.String(), want.StringFixed(6))
	}
}
