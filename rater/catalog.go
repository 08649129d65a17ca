package rater

import (
	"sort"
	"strings"
	"time"

	"github.com/tarifa/tarifa/codedeck"
	"github.com/tarifa/tarifa/ingest"
)

// The reasons a CDR's orig side is not rated, besides the pricing ones, and
// the term-side reasons recorded next to a rated orig side.
const (
	ReasonUnknownAccount         Reason = "unknown_account"
	ReasonInactiveClient         Reason = "inactive_client"
	ReasonTermUnknownAccount     Reason = "term_unknown_account"
	ReasonTermUnknownDestination Reason = "term_unknown_destination"
	ReasonTermNoRate             Reason = "term_no_rate"
	// ReasonDuplicateConflict: the switch and id of a CDR billed within the
	// dedupe window, with other content (see XDR.MarkConflict).
	ReasonDuplicateConflict Reason = "duplicate_conflict"
	// ReasonTermCostOutOfRange: the term side would cost beyond
	// ±MaxCallCostMicro (see ReasonCostOutOfRange).
	ReasonTermCostOutOfRange Reason = "term_cost_out_of_range"
)

// Table is a rate table: its currency and its compiled deck.
type Table struct {
	ID       int64
	Name     string
	Currency string
	Deck     *codedeck.Deck
}

// Client is what rating needs to know of a client (DOMAIN.md "Entities").
type Client struct {
	ID         int64
	ResellerID int64
	Name       string
	Currency   string
	Status     string // active | stop | deleted
	Loc        *time.Location
	BillBy     BillBy
	OrigTable  *Table // nil: the client sends no rated traffic
	TermTable  *Table // nil: the client carries no rated traffic
	// CreditMicro is the credit limit in millionths; Unlimited clients
	// (postpaid) have no available limit.
	CreditMicro int64
	Unlimited   bool
	// ThresholdMicro is the low-balance threshold in millionths; HasThreshold
	// says whether one is set.
	ThresholdMicro int64
	HasThreshold   bool
}

// Active reports whether the client's calls are rated.
func (c *Client) Active() bool { return c.Status == "active" }

// Account is how a client is recognised in a CDR.
type Account struct {
	ID         int64
	Client     *Client
	Kind       string // ip | username | ani
	Ident      string
	TechPrefix string // digits, optionally ending in '#'; ip accounts only
	Orig, Term bool
	OrigTable  *Table // override of the client's orig table, or nil
	TermTable  *Table // override of the client's term table, or nil
}

// OrigRates returns the table the account's orig side is rated with.
func (a *Account) OrigRates() *Table {
	if a.OrigTable != nil {
		return a.OrigTable
	}
	return a.Client.OrigTable
}

// TermRates returns the table the account's term side is rated with.
func (a *Account) TermRates() *Table {
	if a.TermTable != nil {
		return a.TermTable
	}
	return a.Client.TermTable
}

// Catalog is an immutable snapshot of everything rating reads: clients,
// accounts and rate tables, indexed for matching. It is safe for concurrent
// use; a new catalog replaces the old one whole (see CatalogHolder).
type Catalog struct {
	Version int64
	Clients map[int64]*Client
	Tables  map[int64]*Table

	origIP   map[string][]*Account // accounts of an IP, longest tech prefix first
	origUser map[string]*Account
	origANI  map[string]*Account
	termIP   map[string]*Account
	termUser map[string]*Account
}

// NewCatalog indexes accounts for matching. Only active accounts should be
// passed, including those of stopped and deleted clients (their calls are
// inactive_client mismatches). Accounts with orig off are not matched on the
// orig side — except that an IP account with a tech prefix still claims the
// calls carrying that prefix, as unknown_account, rather than letting them
// fall through to another client's account on the same IP — and accounts
// with term off are not matched on the term side.
func NewCatalog(version int64, clients map[int64]*Client, tables map[int64]*Table, accounts []*Account) *Catalog {
	c := &Catalog{
		Version:  version,
		Clients:  clients,
		Tables:   tables,
		origIP:   map[string][]*Account{},
		origUser: map[string]*Account{},
		origANI:  map[string]*Account{},
		termIP:   map[string]*Account{},
		termUser: map[string]*Account{},
	}
	for _, a := range accounts {
		if a.Kind == "ip" && (a.Orig || a.TechPrefix != "") {
			// An IP account with a tech prefix claims the calls that carry
			// its prefix even with orig off, so they never fall through to
			// another client's account on the same IP.
			c.origIP[a.Ident] = append(c.origIP[a.Ident], a)
		}
		if a.Orig {
			switch a.Kind {
			case "username":
				c.origUser[a.Ident] = a
			case "ani":
				c.origANI[a.Ident] = a
			}
		}
		if a.Term {
			switch a.Kind {
			case "ip":
				// Prefer the account without a tech prefix, then the lowest id.
				if prev, ok := c.termIP[a.Ident]; !ok || a.TechPrefix == "" && prev.TechPrefix != "" ||
					(a.TechPrefix == "") == (prev.TechPrefix == "") && a.ID < prev.ID {
					c.termIP[a.Ident] = a
				}
			case "username":
				c.termUser[a.Ident] = a
			}
		}
	}
	for _, accs := range c.origIP {
		sort.Slice(accs, func(i, j int) bool {
			if len(accs[i].TechPrefix) != len(accs[j].TechPrefix) {
				return len(accs[i].TechPrefix) > len(accs[j].TechPrefix)
			}
			return accs[i].ID < accs[j].ID
		})
	}
	return c
}

// MatchOrig finds the orig account of a CDR, most specific first: IP + the
// longest tech prefix that dst starts with (stripped from the number), then
// username, then IP alone, then ANI. It returns the account and the dialed
// number with any leading '+' and matched tech prefix removed, or
// ReasonUnknownAccount.
func (c *Catalog) MatchOrig(cdr *ingest.CDR) (*Account, string, Reason) {
	dst := cdr.Dst
	if accs := c.origIP[cdr.SrcIP]; cdr.SrcIP != "" && len(accs) > 0 {
		for _, a := range accs {
			if a.TechPrefix != "" && strings.HasPrefix(dst, a.TechPrefix) {
				if !a.Orig {
					return nil, dst, ReasonUnknownAccount
				}
				return a, dst[len(a.TechPrefix):], ReasonNone
			}
		}
	}
	if cdr.SrcUser != "" {
		if a, ok := c.origUser[cdr.SrcUser]; ok {
			return a, dst, ReasonNone
		}
	}
	if accs := c.origIP[cdr.SrcIP]; cdr.SrcIP != "" && len(accs) > 0 {
		if a := accs[len(accs)-1]; a.TechPrefix == "" && a.Orig {
			return a, dst, ReasonNone
		}
	}
	if cdr.ANI != "" {
		if a, ok := c.origANI[cdr.ANI]; ok {
			return a, dst, ReasonNone
		}
	}
	return nil, dst, ReasonUnknownAccount
}

// MatchTerm finds the term (vendor) account of a CDR by term IP, then term
// username. ok is false when the CDR names no term side at all.
func (c *Catalog) MatchTerm(cdr *ingest.CDR) (a *Account, named bool) {
	if cdr.TermIP == "" && cdr.TermUser == "" {
		return nil, false
	}
	if cdr.TermIP != "" {
		if a, ok := c.termIP[cdr.TermIP]; ok {
			return a, true
		}
	}
	if cdr.TermUser != "" {
		if a, ok := c.termUser[cdr.TermUser]; ok {
			return a, true
		}
	}
	return nil, true
}

// Leg is one rated side of a call.
type Leg struct {
	ClientID      int64
	AccountID     int64
	Currency      string
	Reason        Reason
	Rate          *codedeck.Rate // nil unless rated
	EventTime     time.Time
	BilledSeconds int64
	CostMicro     int64
}

// Rating is the outcome of rating one CDR on both sides. Status is "rated"
// when the orig side was rated and "mismatch" otherwise, with Reason saying
// why; Term.Reason names a term-side failure next to a rated orig side.
type Rating struct {
	Status     string
	Reason     Reason
	Detail     string // what is wrong, for ReasonMalformed and ReasonCostOutOfRange
	Number     string // the dialed number after '+' and tech-prefix stripping
	ResellerID int64
	Orig       Leg
	Term       Leg
}

// Rate rates both sides of a valid CDR (DOMAIN.md "Matching a CDR"). The
// order of checks is orig account → client status → number → rate; an orig
// mismatch rates neither side. A term side that cannot be rated leaves the
// orig side rated and records the term reason.
func (c *Catalog) Rate(cdr *ingest.CDR, out *Rating) {
	*out = Rating{Status: "mismatch"}
	acc, number, reason := c.MatchOrig(cdr)
	if reason != ReasonNone {
		out.Reason = reason
		return
	}
	cl := acc.Client
	out.ResellerID = cl.ResellerID
	out.Orig.ClientID, out.Orig.AccountID, out.Orig.Currency = cl.ID, acc.ID, cl.Currency
	if !cl.Active() {
		out.Reason = ReasonInactiveClient
		return
	}
	number, problem := ingest.CheckNumber(number)
	if problem != "" {
		out.Reason, out.Detail = ReasonMalformed, problem
		return
	}
	out.Number = number
	table := acc.OrigRates()
	if table == nil || table.Deck == nil {
		out.Reason = ReasonNoRate
		return
	}
	p := PriceCall(table.Deck, number, cdr, cl.BillBy, cl.Loc)
	if p.Reason != ReasonNone {
		out.Reason, out.Detail = p.Reason, p.Detail
		out.Orig.EventTime = p.EventTime
		return
	}
	out.Status = "rated"
	out.Orig.Rate, out.Orig.EventTime, out.Orig.BilledSeconds, out.Orig.CostMicro = p.Rate, p.EventTime, p.BilledSeconds, p.CostMicro

	term, named := c.MatchTerm(cdr)
	if !named {
		return
	}
	if term == nil {
		out.Term.Reason = ReasonTermUnknownAccount
		return
	}
	tc := term.Client
	out.Term.ClientID, out.Term.AccountID, out.Term.Currency = tc.ID, term.ID, tc.Currency
	tt := term.TermRates()
	if tt == nil || tt.Deck == nil {
		out.Term.Reason = ReasonTermNoRate
		return
	}
	tp := PriceCall(tt.Deck, number, cdr, tc.BillBy, tc.Loc)
	switch {
	case tp.Reason == ReasonCostOutOfRange:
		out.Term.Reason = ReasonTermCostOutOfRange
	case tp.Reason == ReasonNone:
		out.Term.Rate, out.Term.EventTime, out.Term.BilledSeconds, out.Term.CostMicro = tp.Rate, tp.EventTime, tp.BilledSeconds, tp.CostMicro
	case tp.Reason == ReasonUnknownDestination:
		out.Term.Reason = ReasonTermUnknownDestination
	default:
		out.Term.Reason = ReasonTermNoRate
	}
}
