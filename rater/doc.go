// Package rater prices calls. It is pure: no I/O, no clocks, no servers.
//
// PriceCall chooses the rate of a dialed number in a codedeck.Deck and
// applies the charge; Charge is the DOMAIN.md charge formula and the one
// place a per-call cost is rounded (half away from zero, 6 decimals).
//
// Choosing the rate (DOMAIN.md "Choosing the rate"):
//
//   - The event time is the CDR's setup, connect or disconnect time, as the
//     client's BillBy says (disconnect by default). BillByConnect on a call
//     that was not answered uses the setup time: the call has no connect
//     time, and its cost is 0 anyway.
//   - The codes that are prefixes of the number are tried longest first.
//     For one code and one time profile the applicable rate is the one with
//     the latest effective_from ≤ event time, and only while event time <
//     its end_date: an ended rate is not revived by an older one.
//   - Time profiles are evaluated in the client's timezone. A rate of a
//     specific profile that contains the event time beats the code's "all"
//     rate; when two specific profiles both contain it, the one with the
//     later effective_from wins, then the profile name first in order.
//   - No code is a prefix of the number: ReasonUnknownDestination. Codes
//     match but none has an applicable rate: ReasonNoRate.
//
// Money is exact. The fast path works in scaled integers (rates in
// billionths, costs in millionths) and falls back to decimal arithmetic
// when a rate has more than 9 decimals or the amounts could overflow;
// ChargeDecimal is the plain decimal formula that a property test holds the
// fast path equal to.
package rater
