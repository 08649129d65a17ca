package rater

import (
	"fmt"
	"time"

	"github.com/tarifa/tarifa/codedeck"
	"github.com/tarifa/tarifa/ingest"
)

// BillBy says which CDR timestamp is a call's event time, the time its rate
// is chosen at. The zero value is BillByDisconnect, the default.
type BillBy uint8

// The bill-events-by choices of a client.
const (
	BillByDisconnect BillBy = iota
	BillBySetup
	BillByConnect
)

// ParseBillBy parses "setup", "connect" or "disconnect"; "" is disconnect.
func ParseBillBy(s string) (BillBy, error) {
	switch s {
	case "disconnect", "":
		return BillByDisconnect, nil
	case "setup":
		return BillBySetup, nil
	case "connect":
		return BillByConnect, nil
	}
	return 0, fmt.Errorf("bill-by %q: want setup, connect or disconnect", s)
}

func (b BillBy) String() string {
	switch b {
	case BillBySetup:
		return "setup"
	case BillByConnect:
		return "connect"
	case BillByDisconnect:
		return "disconnect"
	}
	return fmt.Sprintf("BillBy(%d)", uint8(b))
}

// EventTime returns c's timestamp that b names. BillByConnect on a call that
// was not answered uses the setup time: there is no connect time, and the
// call costs nothing anyway.
func (b BillBy) EventTime(c *ingest.CDR) time.Time {
	switch b {
	case BillBySetup:
		return c.SetupTime
	case BillByConnect:
		if c.ConnectTime.IsZero() {
			return c.SetupTime
		}
		return c.ConnectTime
	}
	return c.DisconnectTime
}

// Reason names why a leg was not rated; "" means it was.
type Reason string

// The reasons PriceCall and the offline rater give.
const (
	ReasonNone               Reason = ""
	ReasonMalformed          Reason = "malformed"
	ReasonUnknownDestination Reason = "unknown_destination"
	ReasonNoRate             Reason = "no_rate"
	// ReasonCostOutOfRange: one call would cost beyond ±MaxCallCostMicro —
	// a rate or a duration no carrier means (fix the rate, then rerate).
	ReasonCostOutOfRange Reason = "cost_out_of_range"
)

// MaxCallCostMicro bounds the cost of one call on either side, in
// millionths: ±999,999,999,999.999999, what xdrs' Decimal(18, 6) columns
// hold. Every balance is a sum of such costs, in an unbounded numeric.
const MaxCallCostMicro = 999_999_999_999_999_999

// CostInRange reports whether a per-call cost is within ±MaxCallCostMicro.
func CostInRange(micro int64) bool { return micro <= MaxCallCostMicro && micro >= -MaxCallCostMicro }

// Price is the result of pricing one leg. Rate is nil unless the leg was
// rated; CostMicro is the cost in millionths of the currency, already
// rounded (decimal.New(CostMicro, -6) is the cost).
type Price struct {
	Reason        Reason
	Detail        string // for ReasonCostOutOfRange
	Rate          *codedeck.Rate
	EventTime     time.Time
	BilledSeconds int64
	CostMicro     int64
}

// PriceCall chooses the rate for number (digits only, already normalized)
// at the event time billBy picks from c, reading time profiles in loc (UTC
// when nil), and charges c.Duration under it; a charge beyond
// ±MaxCallCostMicro is ReasonCostOutOfRange. It allocates nothing on the
// fast path and is safe for concurrent use.
func PriceCall(d *codedeck.Deck, number string, c *ingest.CDR, billBy BillBy, loc *time.Location) Price {
	at := billBy.EventTime(c)
	r, reason := Select(d, number, at, loc)
	if r == nil {
		return Price{Reason: reason, EventTime: at}
	}
	billed, cost := Charge(r, c.Duration)
	if !CostInRange(cost) {
		return Price{Reason: ReasonCostOutOfRange, EventTime: at,
			Detail: "one call would cost beyond ±999999999999.999999 at rate " + r.RateString() + " per minute (code " + r.Code + ")"}
	}
	return Price{Rate: r, EventTime: at, BilledSeconds: billed, CostMicro: cost}
}

// Select chooses the rate for number at time at, with time profiles read in
// loc (UTC when nil), by the rules of DOMAIN.md "Choosing the rate" (see the
// package doc). It returns the rate, or nil and ReasonUnknownDestination or
// ReasonNoRate. It allocates nothing.
func Select(d *codedeck.Deck, number string, at time.Time, loc *time.Location) (*codedeck.Rate, Reason) {
	var buf [codedeck.MaxCodeLen + 1]*codedeck.Code
	codes := d.Lookup(number, buf[:0])
	if len(codes) == 0 {
		return nil, ReasonUnknownDestination
	}
	key := codedeck.TimeKey(at)
	var clock codedeck.Clock
	haveClock := false
	for _, code := range codes {
		var best *codedeck.Rate
		rates := code.Rates
		// Rates are grouped by profile, each group sorted by effective date:
		// walk the groups from the end, taking from each the latest rate in
		// effect at key.
		for i := len(rates) - 1; i >= 0; {
			p := rates[i].ProfileID
			j := i
			for j >= 0 && rates[j].ProfileID == p && rates[j].EffectiveKey > key {
				j--
			}
			for i >= 0 && rates[i].ProfileID == p {
				i--
			}
			if j <= i { // every rate of the group starts after key
				continue
			}
			r := &rates[j]
			if key >= r.EndKey { // ended; an older rate does not come back
				continue
			}
			if p != 0 {
				if !haveClock {
					clock, haveClock = codedeck.ClockAt(at, loc), true
				}
				if !d.InProfile(p, clock) {
					continue
				}
			}
			if best == nil || better(r, best) {
				best = r
			}
		}
		if best != nil {
			return best, ReasonNone
		}
	}
	return nil, ReasonNoRate
}

// better reports whether candidate r beats best, both applicable to one
// code: a specific profile beats "all", then the later effective_from, then
// the profile first in name order (groups are visited in reverse order, so
// a tie goes to the later visit).
func better(r, best *codedeck.Rate) bool {
	if r.Specific() != best.Specific() {
		return r.Specific()
	}
	if r.EffectiveKey != best.EffectiveKey {
		return r.EffectiveKey > best.EffectiveKey
	}
	return r.ProfileID < best.ProfileID
}
