package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tarifa/tarifa/codedeck"
	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
)

const quoteSummary = `Price one call against a deck and explain the price: the codes that match
the number, the code and rate row chosen (effective dates, time profile,
min / interval / grace / setup fee), the billed seconds and the cost.
The call is taken to end at --at, its event time. Exit status 1 when no
rate applies.`

func runQuote(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("quote",
		"quote --deck D.csv [--profiles P.json] --number N --duration 61s [--at TIME] [--timezone TZ]",
		quoteSummary, stderr)
	deckPath := fs.String("deck", "", "rate deck CSV (required)")
	profilesPath := fs.String("profiles", "", "time-profile JSON (default: only the built-in profile all)")
	number := fs.String("number", "", "dialed number, digits with an optional leading + (required)")
	durText := fs.String("duration", "", `call duration: a Go duration ("1m1s") or seconds ("61", "30.1") (required)`)
	atText := fs.String("at", "", "event time, RFC 3339 or YYYY-MM-DD (default now)")
	tz := fs.String("timezone", "UTC", "IANA timezone time profiles are read in")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	usageErr := func(format string, a ...any) error {
		fmt.Fprintf(stderr, format+"\n", a...)
		fs.Usage()
		return errUsage
	}
	if *deckPath == "" || *number == "" || *durText == "" {
		return usageErr("--deck, --number and --duration are required")
	}
	num, ok := ingest.NormalizeNumber(*number)
	if !ok {
		return usageErr("--number %q: want digits with an optional leading +", *number)
	}
	dur, err := parseCallDuration(*durText)
	if err != nil {
		return usageErr("--duration: %v", err)
	}
	at := time.Now().UTC()
	if *atText != "" {
		if at, err = parseAt(*atText); err != nil {
			return usageErr("--at: %v", err)
		}
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("timezone %q: %w", *tz, err)
	}
	deck, err := loadDeck(*deckPath, *profilesPath)
	if err != nil {
		return err
	}

	c := ingest.CDR{SetupTime: at, ConnectTime: at, DisconnectTime: at, Duration: dur}
	p := rater.PriceCall(deck, num, &c, rater.BillByDisconnect, loc)

	var buf [codedeck.MaxCodeLen + 1]*codedeck.Code
	var prefixes []string
	for _, code := range deck.Lookup(num, buf[:0]) {
		prefixes = append(prefixes, code.Code)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("number", "%s", num)
	row("at", "%s (%s %s)", at.Format(time.RFC3339Nano), loc, at.In(loc).Format("Mon 15:04:05"))
	row("duration", "%s", dur)
	if len(prefixes) == 0 {
		row("matching codes", "none")
	} else {
		row("matching codes", "%s (longest first)", strings.Join(prefixes, ", "))
	}
	if p.Rate == nil {
		row("result", "%s", p.Reason)
		tw.Flush()
		if p.Reason == rater.ReasonNoRate {
			return fmt.Errorf("no_rate: codes match %s but none has a rate in effect at %s", num, at.Format(time.RFC3339))
		}
		return fmt.Errorf("unknown_destination: no code of the deck is a prefix of %s", num)
	}
	r := p.Rate
	row("code", "%s  %s", r.Code, r.CodeName)
	row("rate", "%s per minute", r.RateString())
	end := "no end"
	if !r.EndDate.IsZero() {
		end = "until " + r.EndDate.UTC().Format(time.RFC3339)
	}
	row("effective", "from %s, %s", r.EffectiveFrom.UTC().Format(time.RFC3339), end)
	row("time profile", "%s", r.Profile)
	row("increments", "min %d s, interval %d s, grace %d s, setup fee %s",
		r.MinVolume, r.Interval, r.GraceVolume, r.SetupFee.String())
	if r.Line > 0 {
		row("deck line", "%d", r.Line)
	}
	row("billed", "%d s", p.BilledSeconds)
	row("cost", "%s", decimal.New(p.CostMicro, -6).StringFixed(6))
	return tw.Flush()
}

// parseCallDuration accepts a Go duration ("1m1s") or plain seconds ("61",
// "30.1"), the latter exact to the nanosecond (finer fractions round up).
func parseCallDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, err := decimal.NewFromString(s); err == nil && !strings.ContainsAny(s, "eE") {
		if d.Sign() < 0 {
			return 0, fmt.Errorf("%q is negative", s)
		}
		ns := d.Shift(9).Ceil()
		if ns.GreaterThan(decimal.NewFromInt(int64(ingest.MaxDuration))) {
			return 0, fmt.Errorf("%q is too long", s)
		}
		return time.Duration(ns.IntPart()), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither a duration (1m1s) nor seconds (61)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

func parseAt(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not RFC 3339 or YYYY-MM-DD", s)
}
