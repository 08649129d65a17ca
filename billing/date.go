package billing

import (
	"encoding/json"
	"fmt"
	"time"
)

// Date is a calendar day with no time and no zone: the dates of invoice
// periods and due dates, which are the client's days. The zero Date is no
// date. Dates compare with Before, After and Equal; they are values, safe
// to share.
type Date struct {
	t time.Time // midnight UTC of the day
}

// NewDate returns the date y-m-d, normalised like time.Date (Feb 30 is
// Mar 1 or 2).
func NewDate(y int, m time.Month, d int) Date {
	return Date{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

// ParseDate reads YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("%q is not a date (YYYY-MM-DD)", s)
	}
	return Date{t}, nil
}

// DateOf is the day instant t falls on in loc.
func DateOf(t time.Time, loc *time.Location) Date {
	y, m, d := t.In(loc).Date()
	return NewDate(y, m, d)
}

// dateFromDB turns a PostgreSQL date (midnight UTC as pgx scans it) into a
// Date.
func dateFromDB(t time.Time) Date {
	y, m, d := t.Date()
	return NewDate(y, m, d)
}

// IsZero reports whether d is no date.
func (d Date) IsZero() bool { return d.t.IsZero() }

// Start is the first instant of d in loc: its midnight, or the first
// instant after it where a DST change skips midnight.
func (d Date) Start(loc *time.Location) time.Time {
	y, m, day := d.t.Date()
	return time.Date(y, m, day, 0, 0, 0, 0, loc)
}

// AddDays is d moved by n days.
func (d Date) AddDays(n int) Date { return Date{d.t.AddDate(0, 0, n)} }

// Days is the number of days from o to d (negative when d is before o).
func (d Date) Days(o Date) int { return int(d.t.Sub(o.t) / (24 * time.Hour)) }

// Weekday is d's day of the week.
func (d Date) Weekday() time.Weekday { return d.t.Weekday() }

// YMD returns the year, month and day of d.
func (d Date) YMD() (int, time.Month, int) { return d.t.Date() }

// Before reports whether d is before o.
func (d Date) Before(o Date) bool { return d.t.Before(o.t) }

// After reports whether d is after o.
func (d Date) After(o Date) bool { return d.t.After(o.t) }

// Equal reports whether d and o are the same day.
func (d Date) Equal(o Date) bool { return d.t.Equal(o.t) }

// String is YYYY-MM-DD, "" for the zero Date.
func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	return d.t.Format(time.DateOnly)
}

// MarshalJSON writes "YYYY-MM-DD", or null for the zero Date.
func (d Date) MarshalJSON() ([]byte, error) {
	if d.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(d.String())
}

// UnmarshalJSON reads "YYYY-MM-DD" or null.
func (d *Date) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*d = Date{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := ParseDate(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// dbValue is d as a PostgreSQL date parameter (nil for the zero Date).
func (d Date) dbValue() any {
	if d.IsZero() {
		return nil
	}
	return d.String()
}
