package catalog

import (
	"fmt"
	"io"
	"strings"
)

// Counts is what an apply did to one kind of entry.
type Counts struct {
	Created, Updated, Unchanged int
}

func (c Counts) changed() bool { return c.Created+c.Updated > 0 }

func (c *Counts) note(ch Change) {
	switch ch {
	case Created:
		c.Created++
	case Updated:
		c.Updated++
	default:
		c.Unchanged++
	}
}

// RateCounts is what an apply did to the rates of one rate table.
type RateCounts struct {
	Table                              string
	Added, Changed, Removed, Unchanged int
}

func (c RateCounts) changed() bool { return c.Added+c.Changed+c.Removed > 0 }

// Report is the outcome of Apply: counts per kind of entry, per rate table,
// and one line per created or updated entry.
type Report struct {
	DryRun                                       bool
	TimeProfiles, RateTables, Resellers, Clients Counts
	Accounts                                     Counts
	Payments                                     Counts // Updated is always 0: payments are never changed
	PaymentTerms, TaxProfiles                    Counts
	Rates                                        []RateCounts
	Changes                                      []string // such as `created client "Customer A"`
	Version                                      int64    // catalog version after the apply
}

// Changed reports whether the apply changed (or, dry, would change) anything.
func (r *Report) Changed() bool {
	for _, c := range []Counts{r.TimeProfiles, r.RateTables, r.Resellers, r.Clients, r.Accounts, r.Payments, r.PaymentTerms, r.TaxProfiles} {
		if c.changed() {
			return true
		}
	}
	for _, rc := range r.Rates {
		if rc.changed() {
			return true
		}
	}
	return false
}

// note counts a change of an entry and lists it when it is one.
func (r *Report) note(c *Counts, ch Change, kind, name string) {
	c.note(ch)
	switch ch {
	case Created:
		r.Changes = append(r.Changes, fmt.Sprintf("created %s %q", kind, name))
	case Updated:
		r.Changes = append(r.Changes, fmt.Sprintf("updated %s %q", kind, name))
	}
}

// Write prints the report for an operator.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	if r.DryRun {
		b.WriteString("dry run: nothing written; an apply would do this:\n")
	}
	for _, c := range r.Changes {
		fmt.Fprintf(&b, "  %s\n", c)
	}
	line := func(name string, c Counts) {
		fmt.Fprintf(&b, "%-14s %d created, %d updated, %d unchanged\n", name, c.Created, c.Updated, c.Unchanged)
	}
	line("time profiles", r.TimeProfiles)
	line("rate tables", r.RateTables)
	for _, rc := range r.Rates {
		fmt.Fprintf(&b, "  rates of %q: %d added, %d changed, %d removed, %d unchanged\n", rc.Table, rc.Added, rc.Changed, rc.Removed, rc.Unchanged)
	}
	if r.PaymentTerms != (Counts{}) || r.TaxProfiles != (Counts{}) { // a file without billing settings reads as before
		line("payment terms", r.PaymentTerms)
		line("tax profiles", r.TaxProfiles)
	}
	line("resellers", r.Resellers)
	line("clients", r.Clients)
	line("accounts", r.Accounts)
	fmt.Fprintf(&b, "%-14s %d recorded, %d already recorded\n", "payments", r.Payments.Created, r.Payments.Unchanged)
	switch {
	case !r.Changed():
		fmt.Fprintf(&b, "nothing changed (catalog version %d)\n", r.Version)
	case !r.DryRun:
		fmt.Fprintf(&b, "applied (catalog version %d)\n", r.Version)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
