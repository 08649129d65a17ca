package rerate

import (
	"cmp"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/sinks"
)

// The states of a job (DESIGN.md "Rerating").
const (
	StateDryRun  = "dry_run" // a dry run, finished: it changed nothing
	StateRunning = "running" // confirmed and not finished (killed jobs stay here until resumed)
	StateDone    = "done"
	StateFailed  = "failed" // stopped by an error; resumable
)

// Job is a rerating job as the CLI and the API show it: the contract's
// JSON (job, state, selected, changed, clients, transitions, invoices) and
// what the jobs table records besides.
type Job struct {
	ID          int64         `json:"job"`
	State       string        `json:"state"`
	DryRun      bool          `json:"dry_run"`
	Selected    int64         `json:"selected"`
	Changed     int64         `json:"changed"`
	Skipped     int64         `json:"skipped"`
	Planned     int64         `json:"planned"`
	Clients     []ClientDelta `json:"clients"`
	Transitions []Transition  `json:"transitions"`
	Invoices    []Invoice     `json:"invoices"`
	Selection   Selection     `json:"selection"`
	Actor       string        `json:"actor"`
	ResellerID  int64         `json:"reseller_id,omitempty"`
	// Topic is the CDR topic whose stored offsets the job checked.
	Topic string `json:"topic"`
	// CatalogVersion is the catalog the job started with;
	// ResumedCatalogVersion, when not 0, the one it was resumed with after
	// the catalog changed (asked for): its chunks from then on were rated
	// against that.
	CatalogVersion        int64      `json:"catalog_version"`
	ResumedCatalogVersion int64      `json:"resumed_catalog_version,omitempty"`
	CreatedAt             time.Time  `json:"created_at"`
	FinishedAt            *time.Time `json:"finished_at"`
	Error                 string     `json:"error,omitempty"`

	lockPID uint32 // the backend holding the jobs' lock while this process runs the confirmed job
}

// ClientDelta is one client's side of a job: the selected calls it has on
// that side before or after, and the sums of that side's costs over them.
// Its live balance moves by −Delta for an orig row and +Delta for a term
// row.
type ClientDelta struct {
	ClientID int64           `json:"client_id"`
	Client   string          `json:"client"`
	Side     string          `json:"side"`
	Currency string          `json:"currency"`
	Calls    int64           `json:"calls"`
	Old      decimal.Decimal `json:"old"`
	New      decimal.Decimal `json:"new"`
	Delta    decimal.Decimal `json:"delta"`
}

// Transition counts the calls whose orig outcome went from one reason
// ("rated" for a rated call) to another.
type Transition struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Calls int64  `json:"calls"`
}

// Invoice is an invoice whose period the selection touches: rerating
// changes live balances, never an issued invoice (the difference reaches
// the client's next invoice).
type Invoice struct {
	InvoiceID int64   `json:"invoice_id"`
	Number    *string `json:"number"`
	Client    string  `json:"client"`
	State     string  `json:"state"`
}

// tally accumulates a job's result chunk by chunk; it round-trips through
// the jobs table's result column, so a resumed job carries on counting.
type tally struct {
	clients     map[clientSide]*clientSum
	transitions map[[2]string]int64
	selected    int64
	changed     int64
	skipped     int64
	scope       scope // the clients its result shows (nil: every one)
}

type clientSide struct {
	id   int64
	side string
}

type clientSum struct {
	calls    int64
	old, new sinks.MicroSum
}

func newTally(sc scope) *tally {
	return &tally{clients: map[clientSide]*clientSum{}, transitions: map[[2]string]int64{}, scope: sc}
}

// add counts one rated-again CDR: its old and new rating.
func (t *tally) add(old, new *rater.Rating) {
	t.selected++
	if billingDiffers(old, new) {
		t.changed++
	}
	if from, to := outcome(old), outcome(new); from != to {
		t.transitions[[2]string{from, to}]++
	}
	side := func(name string, leg func(*rater.Rating) (int64, int64)) {
		oc, ocost := leg(old)
		nc, ncost := leg(new)
		if oc != 0 {
			s := t.client(oc, name)
			s.calls++
			s.old.Add(ocost)
		}
		if nc != 0 {
			s := t.client(nc, name)
			if nc != oc {
				s.calls++
			}
			s.new.Add(ncost)
		}
	}
	side("orig", origLeg)
	side("term", termLeg)
}

func (t *tally) client(id int64, side string) *clientSum {
	k := clientSide{id, side}
	s := t.clients[k]
	if s == nil {
		s = &clientSum{}
		t.clients[k] = s
	}
	return s
}

// origLeg is the orig client of r and what it pays (0 unless billed).
func origLeg(r *rater.Rating) (client, micro int64) {
	if r.Status == "rated" {
		return r.Orig.ClientID, r.Orig.CostMicro
	}
	return r.Orig.ClientID, 0
}

// termLeg is the term client of r and what it earns (0 unless billed).
func termLeg(r *rater.Rating) (client, micro int64) {
	if r.Status == "rated" && r.Term.Reason == rater.ReasonNone {
		return r.Term.ClientID, r.Term.CostMicro
	}
	return r.Term.ClientID, 0
}

// outcome is "rated" or the reason of r's orig side.
func outcome(r *rater.Rating) string {
	if r.Status == "rated" {
		return "rated"
	}
	return string(r.Reason)
}

// billingDiffers reports whether rating again changed what the call bills
// or why it does not.
func billingDiffers(ra, rb *rater.Rating) bool {
	return ra.Status != rb.Status || ra.Reason != rb.Reason ||
		ra.Orig.ClientID != rb.Orig.ClientID || ra.Orig.CostMicro != rb.Orig.CostMicro ||
		ra.Term.ClientID != rb.Term.ClientID || ra.Term.Reason != rb.Term.Reason || ra.Term.CostMicro != rb.Term.CostMicro
}

// result renders the tally into j, naming clients and their currencies from
// names (an id missing there is shown by id alone).
func (t *tally) result(j *Job, names map[int64]clientInfo) {
	j.Selected, j.Changed, j.Skipped = t.selected, t.changed, t.skipped
	j.Clients = j.Clients[:0]
	for k, s := range t.clients {
		if !t.scope.has(k.id) {
			continue // a reseller's job does not show clients outside its subtree (their balances it left as they were)
		}
		info := names[k.id]
		old, nw := s.old.Decimal(), s.new.Decimal()
		j.Clients = append(j.Clients, ClientDelta{ClientID: k.id, Client: info.name, Side: k.side, Currency: info.currency,
			Calls: s.calls, Old: old, New: nw, Delta: nw.Sub(old)})
	}
	slices.SortFunc(j.Clients, func(a, b ClientDelta) int {
		return cmp.Or(cmp.Compare(a.ClientID, b.ClientID), cmp.Compare(a.Side, b.Side))
	})
	j.Transitions = j.Transitions[:0]
	for k, n := range t.transitions {
		j.Transitions = append(j.Transitions, Transition{From: k[0], To: k[1], Calls: n})
	}
	slices.SortFunc(j.Transitions, func(a, b Transition) int {
		return cmp.Or(cmp.Compare(b.Calls, a.Calls), cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
	})
}

// merge adds o's counts to t.
func (t *tally) merge(o *tally) {
	t.selected += o.selected
	t.changed += o.changed
	t.skipped += o.skipped
	for k, s := range o.clients {
		d := t.client(k.id, k.side)
		d.calls += s.calls
		d.old.AddDecimal(s.old.Decimal())
		d.new.AddDecimal(s.new.Decimal())
	}
	for k, n := range o.transitions {
		t.transitions[k] += n
	}
}

// tallyOf rebuilds the tally a job's stored result holds (a resumed job).
func tallyOf(j *Job, sc scope) *tally {
	t := newTally(sc)
	t.selected, t.changed, t.skipped = j.Selected, j.Changed, j.Skipped
	for _, c := range j.Clients {
		s := t.client(c.ClientID, c.Side)
		s.calls = c.Calls
		s.old.AddDecimal(c.Old)
		s.new.AddDecimal(c.New)
	}
	for _, tr := range j.Transitions {
		t.transitions[[2]string{tr.From, tr.To}] = tr.Calls
	}
	return t
}

type clientInfo struct {
	name, currency string
	resellerID     int64
}
