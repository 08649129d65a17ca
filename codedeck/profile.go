package codedeck

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// AllProfile is the built-in time profile that contains every moment.
const AllProfile = "all"

// Window is one time window of a profile as written in the time-profile JSON:
// Days is a comma list of mon…sun and ranges such as "mon-fri" (empty means
// every day); From is inclusive and To exclusive, "HH:MM" with To up to
// "24:00". Both empty means the whole day; an empty From means 00:00 and an
// empty To means 24:00.
type Window struct {
	Days string `json:"days"`
	From string `json:"from"`
	To   string `json:"to"`
}

// span is a compiled Window: a set of weekdays and [from, to) in seconds of
// the local day.
type span struct {
	days     uint8 // bit i set = time.Weekday(i)
	from, to int32
}

// Profiles is a parsed set of named time profiles, "all" included. It is
// immutable after NewProfiles or ParseProfiles and safe for concurrent use.
type Profiles struct {
	names []string          // sorted; names[0] is "all"
	spans map[string][]span // by name; "all" has none (contains everything)
}

// NewProfiles compiles profile definitions, for example read from the
// catalog. A definition named "all" is refused: it is built in.
func NewProfiles(defs map[string][]Window) (*Profiles, error) {
	p := &Profiles{names: []string{AllProfile}, spans: make(map[string][]span, len(defs))}
	names := make([]string, 0, len(defs))
	for name := range defs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if name == AllProfile {
			return nil, fmt.Errorf("time profile %q is built in and cannot be redefined", name)
		}
		if name == "" {
			return nil, fmt.Errorf("time profile with an empty name")
		}
		ws := defs[name]
		if len(ws) == 0 {
			return nil, fmt.Errorf("time profile %q: no windows", name)
		}
		spans := make([]span, 0, len(ws))
		for i, w := range ws {
			s, err := compileWindow(w)
			if err != nil {
				return nil, fmt.Errorf("time profile %q window %d: %w", name, i+1, err)
			}
			spans = append(spans, s)
		}
		p.names = append(p.names, name)
		p.spans[name] = spans
	}
	return p, nil
}

// ParseProfiles reads the time-profile JSON: an object of named profiles,
// each a list of windows. An empty input means no profile but "all".
func ParseProfiles(r io.Reader) (*Profiles, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read time profiles: %w", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return NewProfiles(nil)
	}
	var defs map[string][]Window
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&defs); err != nil {
		return nil, fmt.Errorf("parse time profiles: %w", err)
	}
	return NewProfiles(defs)
}

// Names returns the profile names, "all" first, the others sorted.
func (p *Profiles) Names() []string {
	return append([]string(nil), p.names...)
}

// Has reports whether name is a known profile ("all" always is).
func (p *Profiles) Has(name string) bool {
	if name == AllProfile {
		return true
	}
	_, ok := p.spans[name]
	return ok
}

// Contains reports whether the named profile contains the moment t read in
// loc; an unknown name contains nothing.
func (p *Profiles) Contains(name string, t time.Time, loc *time.Location) bool {
	if name == AllProfile {
		return true
	}
	return containsClock(p.spans[name], ClockAt(t, loc))
}

// Clock is a moment as a time profile sees it: the weekday and the second
// of the day in some timezone.
type Clock struct {
	Weekday time.Weekday
	Second  int32
}

// ClockAt returns the Clock of t read in loc (UTC when loc is nil).
func ClockAt(t time.Time, loc *time.Location) Clock {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	h, m, s := t.Clock()
	return Clock{Weekday: t.Weekday(), Second: int32(h*3600 + m*60 + s)}
}

func containsClock(spans []span, c Clock) bool {
	for _, s := range spans {
		if s.days&(1<<uint(c.Weekday)) != 0 && s.from <= c.Second && c.Second < s.to {
			return true
		}
	}
	return false
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func compileWindow(w Window) (span, error) {
	var s span
	days := strings.TrimSpace(w.Days)
	if days == "" {
		s.days = 0x7f
	}
	for _, part := range strings.Split(days, ",") {
		part = strings.ToLower(strings.TrimSpace(part))
		if part == "" {
			if days != "" {
				return s, fmt.Errorf("empty day in %q", w.Days)
			}
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, ok := dayNames[strings.TrimSpace(lo)]
		if !ok {
			return s, fmt.Errorf("unknown day %q", lo)
		}
		b := a
		if isRange {
			if b, ok = dayNames[strings.TrimSpace(hi)]; !ok {
				return s, fmt.Errorf("unknown day %q", hi)
			}
		}
		// Ranges run Monday-first, as people write them: "fri-mon" wraps.
		for d := a; ; d = (d + 1) % 7 {
			s.days |= 1 << uint(d)
			if d == b {
				break
			}
		}
	}
	var err error
	if s.from, err = parseHHMM(w.From, 0); err != nil {
		return s, fmt.Errorf("from: %w", err)
	}
	if s.to, err = parseHHMM(w.To, 24*3600); err != nil {
		return s, fmt.Errorf("to: %w", err)
	}
	if s.from >= s.to {
		return s, fmt.Errorf("from %q must be before to %q (write a night range as two windows)", w.From, w.To)
	}
	return s, nil
}

// parseHHMM parses "HH:MM" ("24:00" allowed) into seconds of the day; empty
// gives def.
func parseHHMM(v string, def int32) (int32, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return def, nil
	}
	if len(v) != 5 || v[2] != ':' || !isDigits(v[:2]) || !isDigits(v[3:]) {
		return 0, fmt.Errorf("%q is not HH:MM", v)
	}
	h := int32(v[0]-'0')*10 + int32(v[1]-'0')
	m := int32(v[3]-'0')*10 + int32(v[4]-'0')
	if m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("%q is not a time of day", v)
	}
	return h*3600 + m*60, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
