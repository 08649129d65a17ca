package report

import (
	"errors"
	"fmt"
	"time"
)

// The times a report period may span: what ClickHouse's DateTime holds
// (DESIGN.md), so that no bound wraps around and silently selects nothing.
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Period is a report's [From, To) on the calls' event time (the client's
// billing event), with the timezone its days, hours and months are read in.
type Period struct {
	From, To time.Time
	Loc      *time.Location
}

// ParsePeriod reads a period as the CLI and the API take it: from and to
// are dates (YYYY-MM-DD, midnight in tz) or RFC 3339 times; tz is an IANA
// name, "" for UTC. Periods outside 1970–2105 and empty periods are
// refused.
func ParsePeriod(from, to, tz string) (Period, error) {
	if tz == "" {
		tz = "UTC"
	}
	if tz == "Local" {
		// Go's name for the machine's own zone: a report would mean one
		// thing on one server and another on the next.
		return Period{}, &ParamError{Param: "tz", Msg: `"Local" is not a time zone here: name one (UTC, Europe/London, …)`}
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return Period{}, &ParamError{Param: "tz", Msg: fmt.Sprintf("unknown time zone %q", tz)}
	}
	if from == "" || to == "" {
		return Period{}, &ParamError{Param: "from", Msg: "from and to are required"}
	}
	p := Period{Loc: loc}
	if p.From, err = parseTime(from, loc); err != nil {
		return Period{}, &ParamError{Param: "from", Msg: err.Error()}
	}
	if p.To, err = parseTime(to, loc); err != nil {
		return Period{}, &ParamError{Param: "to", Msg: err.Error()}
	}
	return p, p.Validate()
}

// Validate checks that the period is not empty and lies in 1970–2105.
func (p Period) Validate() error {
	if p.Loc == nil {
		return errors.New("BUG: period without a location")
	}
	if !p.To.After(p.From) {
		return &ParamError{Param: "to", Msg: "must be after from"}
	}
	if p.From.Before(minTime) {
		return &ParamError{Param: "from", Msg: fmt.Sprintf("%s is before 1970-01-01 UTC, the first time xDRs can hold", p.From.Format(time.RFC3339))}
	}
	if p.To.After(maxTime) {
		return &ParamError{Param: "to", Msg: fmt.Sprintf("%s is after 2106-01-01 UTC, the last time xDRs can hold", p.To.Format(time.RFC3339))}
	}
	return nil
}

// String describes the period for a report's title.
func (p Period) String() string {
	return fmt.Sprintf("%s to %s (%s)", p.From.In(p.Loc).Format("2006-01-02 15:04"), p.To.In(p.Loc).Format("2006-01-02 15:04"), p.Loc)
}

func parseTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither YYYY-MM-DD nor RFC 3339", s)
	}
	return t, nil
}

// hourAligned reports whether every hour boundary of the period falls on
// a whole hour of its timezone, so that days, hours and months in Loc are
// unions of UTC hours (not so in India, Nepal or Newfoundland), and the
// period's bounds are whole UTC hours.
func (p Period) hourAligned() bool {
	if p.From.Truncate(time.Hour) != p.From || p.To.Truncate(time.Hour) != p.To {
		return false
	}
	for t := p.From; t.Before(p.To); t = t.Add(time.Hour) {
		if _, off := t.In(p.Loc).Zone(); off%3600 != 0 {
			return false
		}
	}
	return true
}

// ParamError is a report parameter the caller got wrong: the CLI prints it
// with its usage, the API answers 400 naming the parameter.
type ParamError struct {
	Param string
	Msg   string
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Msg }
