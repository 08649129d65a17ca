package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/billing"
)

// The catalog file's billing settings (DESIGN.md "Invoices and bill runs"):
// payment terms and tax profiles by name, a reseller's
// invoice_number_template, a client's payment_terms, tax_profile,
// invoice_rounding and invoice_precision. They are checked and stored by
// package billing's functions, the ones the API's routes call
// (PaymentTerms.Validate, TaxProfile.Validate, NumberTemplate.Validate,
// ValidRounding; SaveTerms, SaveTaxProfile): one rule for both front doors.

// PaymentTerms is an entry of payment_terms: monthly with day, weekly
// with weekday, or days with every and anchor (YYYY-MM-DD); due_days.
type PaymentTerms struct {
	Name    string `yaml:"name"`
	Period  string `yaml:"period"`
	Day     int    `yaml:"day"`
	Weekday string `yaml:"weekday"`
	Every   int    `yaml:"every"`
	Anchor  string `yaml:"anchor"`
	DueDays int    `yaml:"due_days"`

	terms billing.PaymentTerms
}

// TaxProfile is an entry of tax_profiles: a mode (percent_of_total or
// sum_of_items) and its taxes, each a name and a percent (a decimal
// string, kept exact).
type TaxProfile struct {
	Name  string `yaml:"name"`
	Mode  string `yaml:"mode"`
	Taxes []struct {
		Name    string `yaml:"name"`
		Percent string `yaml:"percent"`
	} `yaml:"taxes"`

	profile billing.TaxProfile
}

// problem adds err (a *billing.FieldError) as a problem of entry e.
func problem(v *validator, e string, err error) {
	var fe *billing.FieldError
	if errors.As(err, &fe) {
		v.add(e, fe.Field, "%s", fe.Msg)
		return
	}
	v.add(e, "", "%v", err)
}

// validateBilling checks the billing settings of the file with package
// billing's rules.
func (f *File) validateBilling(v *validator) {
	seen := map[string]bool{}
	for i := range f.PaymentTerms {
		t := &f.PaymentTerms[i]
		e := entry("payment_terms", i, t.Name)
		if seen[t.Name] {
			v.add(e, "name", "defined twice")
		}
		seen[t.Name] = true
		t.terms = billing.PaymentTerms{Name: t.Name, Period: t.Period, Day: t.Day, Weekday: t.Weekday, Every: t.Every, DueDays: t.DueDays}
		if t.Anchor != "" {
			d, err := billing.ParseDate(t.Anchor)
			if err != nil {
				v.add(e, "anchor", "%v", err)
				continue
			}
			t.terms.Anchor = d
		}
		if err := t.terms.Validate(); err != nil {
			problem(v, e, err)
		}
	}
	seen = map[string]bool{}
	for i := range f.TaxProfiles {
		p := &f.TaxProfiles[i]
		e := entry("tax_profiles", i, p.Name)
		if seen[p.Name] {
			v.add(e, "name", "defined twice")
		}
		seen[p.Name] = true
		p.profile = billing.TaxProfile{Name: p.Name, Mode: p.Mode, Taxes: []billing.Tax{}}
		bad := false
		for j, t := range p.Taxes {
			d, err := decimal.NewFromString(t.Percent)
			if err != nil || strings.ContainsAny(t.Percent, "eE") {
				v.add(e, fmt.Sprintf("taxes[%d].percent", j), "%q is not a decimal number", t.Percent)
				bad = true
				continue
			}
			p.profile.Taxes = append(p.profile.Taxes, billing.Tax{Name: t.Name, Percent: d})
		}
		if err := p.profile.Validate(); err != nil && !bad {
			problem(v, e, err)
		}
	}
	for i := range f.Resellers {
		r := &f.Resellers[i]
		if r.InvoiceNumberTemplate == "" {
			r.InvoiceNumberTemplate = string(billing.DefaultNumberTemplate)
		}
		if err := billing.NumberTemplate(r.InvoiceNumberTemplate).Validate(); err != nil {
			problem(v, entry("resellers", i, r.Name), err)
		}
	}
	for i := range f.Clients {
		c := &f.Clients[i]
		e := entry("clients", i, c.Name)
		if err := billing.ValidRounding(c.InvoiceRounding); err != nil {
			problem(v, e, err)
		}
		if c.InvoiceRounding == "" {
			c.InvoiceRounding = billing.RoundThenSum
		}
		if c.InvoicePrecision != nil && (*c.InvoicePrecision < 0 || *c.InvoicePrecision > 6) {
			v.add(e, "invoice_precision", "must be 0 to 6, got %d", *c.InvoicePrecision)
		}
	}
}

// billingSettings stores the file's payment terms and tax profiles, by
// name, through package billing's store path.
func (a *applier) billingSettings(ctx context.Context) error {
	for i := range a.f.PaymentTerms {
		t := &a.f.PaymentTerms[i]
		st, err := billing.SaveTerms(ctx, a.tx, &t.terms, true)
		if err != nil {
			var fe *billing.FieldError
			if errors.As(err, &fe) {
				return a.fail(entry("payment_terms", i, t.Name), fe.Field, "%s", fe.Msg)
			}
			return fmt.Errorf("%s: %w", entry("payment_terms", i, t.Name), err)
		}
		a.note(&a.rep.PaymentTerms, stateOf(st), "payment terms", t.Name)
	}
	for i := range a.f.TaxProfiles {
		p := &a.f.TaxProfiles[i]
		st, err := billing.SaveTaxProfile(ctx, a.tx, &p.profile, true)
		if err != nil {
			var fe *billing.FieldError
			if errors.As(err, &fe) {
				return a.fail(entry("tax_profiles", i, p.Name), fe.Field, "%s", fe.Msg)
			}
			return fmt.Errorf("%s: %w", entry("tax_profiles", i, p.Name), err)
		}
		a.note(&a.rep.TaxProfiles, stateOf(st), "tax profile", p.Name)
	}
	return nil
}

func stateOf(s billing.Stored) state {
	switch s {
	case billing.Created:
		return created
	case billing.Updated:
		return updated
	}
	return unchanged
}

// billingRef resolves a client's payment_terms or tax_profile name to an
// id (nil for none).
func (a *applier) billingRef(ctx context.Context, e, field, table, label, name string) (any, error) {
	if name == "" {
		return nil, nil
	}
	id, err := a.lookup(ctx, table, name)
	if err != nil {
		return nil, err
	}
	if id == 0 {
		return nil, a.fail(e, field, "unknown %s %q", label, name)
	}
	return id, nil
}
