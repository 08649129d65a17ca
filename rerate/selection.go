package rerate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
)

// Side names the leg a selection's clients are looked for on.
type Side string

// The sides of DESIGN.md "Rerating": --side orig|term|both.
const (
	SideOrig Side = "orig"
	SideTerm Side = "term"
	SideBoth Side = "both"
)

// Status filters the current xDRs a selection takes.
type Status string

// The statuses of --status all|rated|mismatch.
const (
	StatusAll      Status = "all"
	StatusRated    Status = "rated"
	StatusMismatch Status = "mismatch"
)

// Reasons lists the mismatch reasons a selection may name (orig reasons and
// term_* reasons). duplicate_conflict is not among them: a conflicting
// re-send is kept as evidence, and rating it again would put it on the row
// of the CDR it conflicts with.
var Reasons = []rater.Reason{
	rater.ReasonUnknownAccount, rater.ReasonInactiveClient, rater.ReasonUnknownDestination, rater.ReasonNoRate,
	rater.ReasonMalformed, rater.ReasonCostOutOfRange,
	rater.ReasonTermUnknownAccount, rater.ReasonTermUnknownDestination, rater.ReasonTermNoRate, rater.ReasonTermCostOutOfRange,
}

// Selection is what a rerating job takes: the CDRs set up in [From, To)
// (setup time never changes, so a selection is stable) whose current xDR
// matches the filters. Clients are ids on Side (empty: any); Reasons match
// the orig reason or the term reason; Codes are prefixes of the dialed
// number as the switch sent it (a leading '+' ignored).
type Selection struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	TZ      string    `json:"tz"`
	Clients []int64   `json:"clients,omitempty"`
	Side    Side      `json:"side"`
	Status  Status    `json:"status"`
	Reasons []string  `json:"reasons,omitempty"`
	Codes   []string  `json:"codes,omitempty"`
}

// Validate fills defaults (side both, status all, tz UTC), normalises the
// lists (sorted, no repeats) and checks every field.
func (s *Selection) Validate() error {
	if s.Side == "" {
		s.Side = SideBoth
	}
	if s.Status == "" {
		s.Status = StatusAll
	}
	if s.TZ == "" {
		s.TZ = "UTC"
	}
	if s.TZ == "Local" {
		return errors.New(`tz "Local" is not a time zone here: name one (UTC, Europe/London, …)`)
	}
	if _, err := time.LoadLocation(s.TZ); err != nil {
		return fmt.Errorf("tz %q: unknown time zone", s.TZ)
	}
	switch {
	case s.From.IsZero() || s.To.IsZero():
		return errors.New("from and to are required")
	case !s.To.After(s.From):
		return fmt.Errorf("to %s is not after from %s", s.To.Format(time.RFC3339), s.From.Format(time.RFC3339))
	case s.From.Before(ingest.MinTime) || s.To.After(ingest.MaxTime.Add(time.Second)):
		return errors.New("from and to must lie within 1970-01-01 .. 2105-12-31 (what the xDRs hold)")
	}
	s.From, s.To = s.From.UTC(), s.To.UTC()
	switch s.Side {
	case SideOrig, SideTerm, SideBoth:
	default:
		return fmt.Errorf("side %q: want orig, term or both", s.Side)
	}
	switch s.Status {
	case StatusAll, StatusRated, StatusMismatch:
	default:
		return fmt.Errorf("status %q: want all, rated or mismatch", s.Status)
	}
	for _, r := range s.Reasons {
		if r == string(rater.ReasonDuplicateConflict) {
			return errors.New("reason duplicate_conflict: conflicting re-sends are kept as they are, not rerated")
		}
		if !slices.Contains(Reasons, rater.Reason(r)) {
			return fmt.Errorf("reason %q: want one of %s", r, reasonList())
		}
	}
	for _, c := range s.Codes {
		if c == "" || len(c) > ingest.MaxNumberLen || strings.Trim(c, "0123456789") != "" {
			return fmt.Errorf("code %q: want a prefix of digits (at most %d)", c, ingest.MaxNumberLen)
		}
	}
	for _, id := range s.Clients {
		if id <= 0 {
			return fmt.Errorf("client id %d: want a positive id", id)
		}
	}
	slices.Sort(s.Clients)
	s.Clients = slices.Compact(s.Clients)
	slices.Sort(s.Reasons)
	s.Reasons = slices.Compact(s.Reasons)
	slices.Sort(s.Codes)
	s.Codes = slices.Compact(s.Codes)
	return nil
}

func reasonList() string {
	names := make([]string, len(Reasons))
	for i, r := range Reasons {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// Key identifies the selection: running the same command again (the same
// key) resumes its unfinished job. Call it after Validate.
func (s Selection) Key() string {
	b, err := json.Marshal(s)
	if err != nil {
		panic("BUG: selection does not marshal: " + err.Error())
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// filter is the ClickHouse condition on an xdrs row for the selection's
// filters (not its time range), restricted to the clients of scope on the
// selection's side when scope is not nil. Every value is a number or a
// validated word, so the condition is built as text.
func (s Selection) filter(scope []int64) string {
	conds := []string{"reason != 'duplicate_conflict'"}
	clients := s.Clients
	if scope != nil {
		if len(clients) == 0 {
			clients = scope
		} else {
			var in []int64
			for _, c := range clients {
				if _, ok := slices.BinarySearch(scope, c); ok {
					in = append(in, c)
				}
			}
			clients = in
			if len(clients) == 0 {
				clients = []int64{-1} // none of them is the caller's
			}
		}
	}
	if len(clients) > 0 {
		list := idList(clients)
		switch s.Side {
		case SideOrig:
			conds = append(conds, "orig_client_id IN ("+list+")")
		case SideTerm:
			conds = append(conds, "term_client_id IN ("+list+")")
		default:
			conds = append(conds, "(orig_client_id IN ("+list+") OR term_client_id IN ("+list+"))")
		}
	}
	switch s.Status {
	case StatusRated:
		conds = append(conds, "status = 'rated'")
	case StatusMismatch:
		conds = append(conds, "status = 'mismatch'")
	}
	if len(s.Reasons) > 0 {
		list := "'" + strings.Join(s.Reasons, "', '") + "'"
		conds = append(conds, "(reason IN ("+list+") OR term_reason IN ("+list+"))")
	}
	if len(s.Codes) > 0 {
		var or []string
		for _, c := range s.Codes {
			or = append(or, "startsWith(dst, '"+c+"')", "startsWith(dst, '+"+c+"')")
		}
		conds = append(conds, "("+strings.Join(or, " OR ")+")")
	}
	return strings.Join(conds, " AND ")
}

func idList(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(parts, ", ")
}
