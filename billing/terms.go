package billing

import (
	"fmt"
	"strings"
	"time"
)

// The periods payment terms can have.
const (
	PeriodMonthly = "monthly" // on day Day (1–28) of every month
	PeriodWeekly  = "weekly"  // on Weekday of every week
	PeriodDays    = "days"    // every Every days from Anchor
)

// Weekdays are the names a weekly period starts on, Monday first.
var Weekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// PaymentTerms give a client's billing periods and due dates (DOMAIN.md
// "Bill run"): a period starts on day Day of each month, on Weekday of
// each week, or every Every days from Anchor, and ends where the next one
// starts; an invoice is due DueDays after its period's end. Periods are
// calendar days of the client's timezone, so a month of a client in
// Europe/London is 743 or 744 hours as DST has it. A PaymentTerms is a
// value.
type PaymentTerms struct {
	ID      int64  `json:"id,omitempty"`
	Name    string `json:"name"`
	Period  string `json:"period"`
	Day     int    `json:"day,omitempty"`
	Weekday string `json:"weekday,omitempty"`
	Every   int    `json:"every,omitempty"`
	Anchor  Date   `json:"anchor,omitzero"`
	DueDays int    `json:"due_days"`
}

// Validate checks t as the API and the catalog file take it, and says
// what is wrong naming the field (a *FieldError). It is the one check of
// payment terms: both front doors call it before they store.
func (t *PaymentTerms) Validate() error {
	t.Name = strings.TrimSpace(t.Name)
	if t.Name == "" {
		return fieldErr("name", "required")
	}
	if len(t.Name) > 200 {
		return fieldErr("name", "at most 200 characters")
	}
	switch t.Period {
	case PeriodMonthly:
		if t.Day < 1 || t.Day > 28 {
			return fieldErr("day", "a monthly period starts on day 1 to 28 of the month, got %d", t.Day)
		}
		if t.Weekday != "" || t.Every != 0 || !t.Anchor.IsZero() {
			return fieldErr("period", "a monthly period takes day only (not weekday, every or anchor)")
		}
	case PeriodWeekly:
		if weekdayIndex(t.Weekday) < 0 {
			return fieldErr("weekday", "a weekly period starts on one of %s, got %q", strings.Join(Weekdays, ", "), t.Weekday)
		}
		if t.Day != 0 || t.Every != 0 || !t.Anchor.IsZero() {
			return fieldErr("period", "a weekly period takes weekday only (not day, every or anchor)")
		}
	case PeriodDays:
		if t.Every < 1 || t.Every > 3660 {
			return fieldErr("every", "a period of days lasts 1 to 3660 days, got %d", t.Every)
		}
		if t.Anchor.IsZero() {
			return fieldErr("anchor", "required for a period of days: the first day of one of its periods (YYYY-MM-DD)")
		}
		if t.Day != 0 || t.Weekday != "" {
			return fieldErr("period", "a period of days takes every and anchor only (not day or weekday)")
		}
	case "":
		return fieldErr("period", "required: monthly, weekly or days")
	default:
		return fieldErr("period", "must be monthly, weekly or days, got %q", t.Period)
	}
	if t.DueDays < 0 || t.DueDays > 3660 {
		return fieldErr("due_days", "must be 0 to 3660, got %d", t.DueDays)
	}
	return nil
}

func weekdayIndex(s string) int {
	for i, w := range Weekdays {
		if w == s {
			return i
		}
	}
	return -1
}

// PeriodAt returns the period [from, to) of the terms that holds day d.
// t must be valid.
func (t PaymentTerms) PeriodAt(d Date) (from, to Date) {
	switch t.Period {
	case PeriodMonthly:
		y, m, day := d.YMD()
		if day < t.Day {
			m--
		}
		from = NewDate(y, m, t.Day)
		y, m, _ = from.YMD()
		return from, NewDate(y, m+1, t.Day)
	case PeriodWeekly:
		// time.Weekday counts from Sunday; Weekdays from Monday.
		back := (int(d.Weekday()) + 6 - weekdayIndex(t.Weekday)) % 7
		from = d.AddDays(-back)
		return from, from.AddDays(7)
	case PeriodDays:
		n := d.Days(t.Anchor)
		k := n / t.Every
		if n%t.Every < 0 {
			k-- // floor, for days before the anchor
		}
		from = t.Anchor.AddDays(k * t.Every)
		return from, from.AddDays(t.Every)
	}
	panic(fmt.Sprintf("BUG: payment terms %q with period %q", t.Name, t.Period))
}

// Due is the due date of an invoice whose period ends (exclusive) on to.
func (t PaymentTerms) Due(to Date) Date { return to.AddDays(t.DueDays) }

// ClosedPeriods returns the periods of the terms that start on or after
// start and have ended, in loc, by at, in order, at most limit of them.
// The first one starts on start even when the terms' period holding start
// began earlier (the first invoice of a client, or the one after an
// invoice of other dates, covers only what is not invoiced yet).
func (t PaymentTerms) ClosedPeriods(start Date, at time.Time, loc *time.Location, limit int) [][2]Date {
	var out [][2]Date
	from := start
	for len(out) < limit {
		_, to := t.PeriodAt(from)
		if to.Start(loc).After(at) {
			break
		}
		out = append(out, [2]Date{from, to})
		from = to
	}
	return out
}

// Describe says the terms in words, for documents and listings.
func (t PaymentTerms) Describe() string {
	var p string
	switch t.Period {
	case PeriodMonthly:
		p = fmt.Sprintf("monthly from day %d", t.Day)
	case PeriodWeekly:
		p = "weekly from " + t.Weekday
	case PeriodDays:
		p = fmt.Sprintf("every %d days from %s", t.Every, t.Anchor)
	}
	return fmt.Sprintf("%s, due %d days after the period", p, t.DueDays)
}
