package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/catalog"
	"github.com/tarifa/tarifa/codedeck"
	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/sinks"
)

// ReasonInsufficientBalance is the authorize reason of a prepaid client
// whose available balance does not pay for a single second.
const ReasonInsufficientBalance = "insufficient_balance"

// authorizeAnswer is the answer of POST /v1/authorize.
type authorizeAnswer struct {
	Allowed    bool        `json:"allowed"`
	Reason     string      `json:"reason"`
	ClientID   int64       `json:"client_id,omitempty"`
	AccountID  int64       `json:"account_id,omitempty"`
	Number     string      `json:"number,omitempty"`
	Currency   string      `json:"currency,omitempty"`
	Unlimited  bool        `json:"unlimited"`
	Available  *string     `json:"available"`
	Rate       *rateAnswer `json:"rate"`
	MaxSeconds int64       `json:"max_seconds"`
	At         string      `json:"at"`
}

type rateAnswer struct {
	Code          string  `json:"code"`
	CodeName      string  `json:"code_name"`
	Rate          string  `json:"rate"`
	EffectiveFrom string  `json:"effective_from"`
	EndDate       *string `json:"end_date"`
	MinVolume     int     `json:"min_volume"`
	Interval      int     `json:"interval"`
	GraceVolume   int     `json:"grace_volume"`
	SetupFee      string  `json:"setup_fee"`
	TimeProfile   string  `json:"time_profile"`
}

// authorize answers whether a new call may start, by the rules the rater
// charges with: the orig account is matched as rating matches it (IP +
// tech prefix, username, IP, ANI), the client must be active, the rate is
// chosen for the dialed number at time (default now; the event time of the
// call, read in the client's timezone), and a prepaid client may talk for
// the longest whole-second call whose rater.Charge is at most its available
// balance (live + credit limit, read fresh), capped at Config.MaxCall;
// an unlimited client gets MaxCall. The catalog is reloaded whenever its
// version moved, so an edit made a moment ago is already in force.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, p *principal) error {
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	var cdr ingest.CDR
	at := time.Now().UTC()
	for name, raw := range body {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			if _, known := map[string]bool{"src_ip": true, "src_user": true, "ani": true, "dst": true, "time": true}[name]; !known {
				return badRequest(name, "unknown field")
			}
			return badRequest(name, "must be a string")
		}
		v = strings.TrimSpace(v)
		switch name {
		case "src_ip":
			if v != "" {
				a, err := netip.ParseAddr(v)
				if err != nil || a.Zone() != "" {
					return invalid(name, "not an IPv4 or IPv6 address: %q", v)
				}
				v = a.Unmap().String()
			}
			cdr.SrcIP = v
		case "src_user":
			cdr.SrcUser = v
		case "ani":
			cdr.ANI = strings.TrimPrefix(v, "+")
		case "dst":
			cdr.Dst = strings.TrimPrefix(v, "+")
		case "time":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return invalid(name, "must be an RFC 3339 time such as 2024-01-01T00:00:00Z")
			}
			at = t
		default:
			return badRequest(name, "unknown field")
		}
	}
	if cdr.Dst == "" {
		return invalid("dst", "required")
	}
	if cdr.SrcIP == "" && cdr.SrcUser == "" && cdr.ANI == "" {
		return invalid("src_ip", "one of src_ip, src_user or ani is required")
	}
	ctx := r.Context()
	cat, err := s.catalog(ctx)
	if err != nil {
		return err
	}
	ans := &authorizeAnswer{At: at.UTC().Format(time.RFC3339)}
	acc, number, reason := cat.MatchOrig(&cdr)
	if reason != rater.ReasonNone || !p.inSubtree(acc.Client.ResellerID) {
		ans.Reason = string(rater.ReasonUnknownAccount)
		writeJSON(w, http.StatusOK, ans)
		return nil
	}
	cl := acc.Client
	ans.ClientID, ans.AccountID, ans.Currency, ans.Unlimited = cl.ID, acc.ID, cl.Currency, cl.Unlimited
	done := func(reason rater.Reason) error {
		ans.Reason = string(reason)
		writeJSON(w, http.StatusOK, ans)
		return nil
	}
	if !cl.Active() {
		return done(rater.ReasonInactiveClient)
	}
	number, ok := ingest.NormalizeNumber(number)
	if !ok {
		return done(rater.ReasonMalformed)
	}
	ans.Number = number
	table := acc.OrigRates()
	if table == nil || table.Deck == nil {
		return done(rater.ReasonNoRate)
	}
	rate, reason := rater.Select(table.Deck, number, at, cl.Loc)
	if rate == nil {
		return done(reason)
	}
	ans.Rate = newRateAnswer(rate)

	// Money is read fresh: balances move with every rated batch.
	var available *string
	var unlimited bool
	err = s.pool.QueryRow(ctx, "SELECT "+catalog.MoneyText("available")+", unlimited FROM client_balances WHERE client_id = $1", cl.ID).Scan(&available, &unlimited)
	if err != nil {
		return fmt.Errorf("read balance of client %d: %w", cl.ID, err)
	}
	ans.Unlimited, ans.Available = unlimited, available
	maxCall := int64(s.cfg.MaxCall / time.Second)
	if unlimited || available == nil {
		ans.MaxSeconds, ans.Allowed = maxCall, true
		return done(rater.ReasonNone)
	}
	avail, err := decimal.NewFromString(*available)
	if err != nil {
		return fmt.Errorf("balance of client %d: %w", cl.ID, err)
	}
	ans.MaxSeconds = rater.MaxDuration(rate, sinks.Micro(avail), maxCall)
	if ans.MaxSeconds == 0 {
		return done(ReasonInsufficientBalance)
	}
	ans.Allowed = true
	return done(rater.ReasonNone)
}

func newRateAnswer(r *codedeck.Rate) *rateAnswer {
	ra := &rateAnswer{
		Code: r.Code, CodeName: r.CodeName, Rate: r.Rate.String(),
		EffectiveFrom: r.EffectiveFrom.UTC().Format(time.RFC3339),
		MinVolume:     r.MinVolume, Interval: r.Interval, GraceVolume: r.GraceVolume,
		SetupFee: r.SetupFee.String(), TimeProfile: r.Profile,
	}
	if !r.EndDate.IsZero() {
		e := r.EndDate.UTC().Format(time.RFC3339)
		ra.EndDate = &e
	}
	if ra.TimeProfile == "" {
		ra.TimeProfile = "all"
	}
	return ra
}

// catalog returns the rating catalog, reloaded when catalog_version has
// moved since the last load (one cheap query per call).
func (s *Server) catalog(ctx context.Context) (*rater.Catalog, error) {
	v, err := s.loader.Version(ctx)
	if err != nil {
		return nil, err
	}
	if c := s.cat.Load(); c != nil && c.Version >= v {
		return c, nil
	}
	s.catMu.Lock()
	defer s.catMu.Unlock()
	if c := s.cat.Load(); c != nil && c.Version >= v {
		return c, nil
	}
	c, err := s.loader.Load(ctx)
	if err != nil {
		return nil, err
	}
	s.reloads.Inc()
	s.cat.Store(c)
	return c, nil
}
