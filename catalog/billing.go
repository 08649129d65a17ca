package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/billing"
)

// The billing settings (DESIGN.md "Invoices and bill runs"): payment terms
// and tax profiles, shared by every reseller like time profiles (only the
// operator defines them), and the fields of resellers and clients that
// point at them (Clients' payment_terms_id, tax_profile_id,
// invoice_rounding, invoice_precision; Resellers' invoice_number_template).
// Package billing owns their rules (PaymentTerms.Validate,
// TaxProfile.Validate, NumberTemplate.Validate) and the SQL of the two
// tables (billing.SaveTerms, billing.SaveTaxProfile); the Writer calls
// them and writes the audit row in the same transaction, so the API and
// the catalog file store them one way.

// PaymentTerms is an entry of the catalog file's payment_terms: monthly
// with day, weekly with weekday, or days with every and anchor
// (YYYY-MM-DD); due_days after the period's end.
type PaymentTerms struct {
	Name    string `yaml:"name"`
	Period  string `yaml:"period"`
	Day     int    `yaml:"day"`
	Weekday string `yaml:"weekday"`
	Every   int    `yaml:"every"`
	Anchor  string `yaml:"anchor"`
	DueDays int    `yaml:"due_days"`
}

// TaxProfile is an entry of the catalog file's tax_profiles: a mode
// (percent_of_total or sum_of_items) and its taxes, each a name and a
// percent (a decimal string, kept exact).
type TaxProfile struct {
	Name  string `yaml:"name"`
	Mode  string `yaml:"mode"`
	Taxes []Tax  `yaml:"taxes"`
}

// Tax is one tax of a TaxProfile entry.
type Tax struct {
	Name    string `yaml:"name"`
	Percent string `yaml:"percent"`
}

// value is the entry as package billing takes it, checked.
func (t *PaymentTerms) value() (*billing.PaymentTerms, *FieldError) {
	terms := &billing.PaymentTerms{Name: t.Name, Period: t.Period, Day: t.Day, Weekday: t.Weekday, Every: t.Every, DueDays: t.DueDays}
	if t.Anchor != "" {
		d, err := billing.ParseDate(t.Anchor)
		if err != nil {
			return nil, invalid("anchor", "%q is not a date (YYYY-MM-DD)", t.Anchor)
		}
		terms.Anchor = d
	}
	if err := billingField(terms.Validate()); err != nil {
		return nil, err
	}
	return terms, nil
}

// value is the entry as package billing takes it, checked.
func (p *TaxProfile) value() (*billing.TaxProfile, *FieldError) {
	profile := &billing.TaxProfile{Name: p.Name, Mode: p.Mode, Taxes: []billing.Tax{}}
	for i, t := range p.Taxes {
		d, err := decimal.NewFromString(t.Percent)
		if err != nil || strings.ContainsAny(t.Percent, "eE") {
			return nil, invalid(fmt.Sprintf("taxes[%d].percent", i), "%q is not a decimal number", t.Percent)
		}
		profile.Taxes = append(profile.Taxes, billing.Tax{Name: t.Name, Percent: d})
	}
	if err := billingField(profile.Validate()); err != nil {
		return nil, err
	}
	return profile, nil
}

// billingField turns a refusal of package billing's rules into the
// catalog's (Invalid, naming the field); nil stays nil.
func billingField(err error) *FieldError {
	if err == nil {
		return nil
	}
	var fe *billing.FieldError
	if errors.As(err, &fe) {
		return invalid(fe.Field, "%s", fe.Msg)
	}
	return invalid("", "%v", err)
}

// billingError is billingField for the errors of billing's store path: a
// taken name is a Conflict, an id that does not exist NotFound, anything
// else not the caller's to fix stays as it is.
func billingError(what string, err error) error {
	var fe *billing.FieldError
	var ce *billing.ConflictError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return invalid(fe.Field, "%s", fe.Msg)
	case errors.As(err, &ce):
		return conflict("name", "%s", ce.Msg)
	case errors.Is(err, billing.ErrNotFound):
		return notFound(what)
	}
	return err
}

// checkBillingRef checks that the payment terms or tax profile id that
// field names exists.
func (w *Writer) checkBillingRef(ctx context.Context, field string, id int64) error {
	table := map[string]string{"payment_terms_id": "payment_terms", "tax_profile_id": "tax_profiles"}[field]
	var ok bool
	if err := w.tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+table+" WHERE id = $1)", id).Scan(&ok); err != nil {
		return fmt.Errorf("read %s %d: %w", refNoun(table), id, err)
	}
	if !ok {
		return invalid(field, "%s %d not found", refNoun(table), id)
	}
	return nil
}

// The audit log's names of the billing settings.
const (
	paymentTermsEntity = "payment terms"
	taxProfileEntity   = "tax profile"
)

// SavePaymentTerms stores t through billing.SaveTerms (which validates
// it) with its audit row: by id when t.ID is set (an edit of the whole
// object), else by name — created, or, with upsert (the catalog file),
// the row of that name given t's values; without upsert a taken name is a
// Conflict. t.ID is set to the row's id. Terms that already hold t's
// values are not written (Unchanged). Only the operator defines payment
// terms.
func (w *Writer) SavePaymentTerms(ctx context.Context, t *billing.PaymentTerms, upsert bool) (Change, error) {
	if !w.actor.IsOperator() {
		return Unchanged, &FieldError{Kind: Forbidden, Msg: "only the operator defines payment terms"}
	}
	stored, old, err := billing.SaveTerms(ctx, w.tx, t, upsert)
	if err != nil {
		return Unchanged, billingError(paymentTermsEntity, err)
	}
	var before json.RawMessage
	if old != nil {
		before = mustJSON(old)
	}
	return w.auditBilling(ctx, stored, paymentTermsEntity, t.ID, before, mustJSON(t))
}

// SaveTaxProfile is SavePaymentTerms for a tax profile, through
// billing.SaveTaxProfile.
func (w *Writer) SaveTaxProfile(ctx context.Context, p *billing.TaxProfile, upsert bool) (Change, error) {
	if !w.actor.IsOperator() {
		return Unchanged, &FieldError{Kind: Forbidden, Msg: "only the operator defines tax profiles"}
	}
	stored, old, err := billing.SaveTaxProfile(ctx, w.tx, p, upsert)
	if err != nil {
		return Unchanged, billingError(taxProfileEntity, err)
	}
	var before json.RawMessage
	if old != nil {
		before = mustJSON(old)
	}
	return w.auditBilling(ctx, stored, taxProfileEntity, p.ID, before, mustJSON(p))
}

// auditBilling writes the audit row of a billing setting's save.
func (w *Writer) auditBilling(ctx context.Context, stored billing.Stored, entity string, id int64, before, after json.RawMessage) (Change, error) {
	switch stored {
	case billing.Created:
		return Created, w.auditOwned(ctx, "create", entity, id, nil, nil, after)
	case billing.Updated:
		return Updated, w.auditOwned(ctx, "update", entity, id, nil, before, after)
	}
	return Unchanged, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("BUG: a billing setting does not marshal: " + err.Error())
	}
	return b
}

// checkBilling checks the file's payment terms and tax profiles without
// the database.
func (f *File) checkBilling(v *validator) {
	seen := map[string]bool{}
	for i := range f.PaymentTerms {
		t := &f.PaymentTerms[i]
		e := entry("payment_terms", i, t.Name)
		checkName(v, e, t.Name, seen)
		if _, err := t.value(); err != nil {
			v.field(e, err)
		}
	}
	seen = map[string]bool{}
	for i := range f.TaxProfiles {
		p := &f.TaxProfiles[i]
		e := entry("tax_profiles", i, p.Name)
		checkName(v, e, p.Name, seen)
		if _, err := p.value(); err != nil {
			v.field(e, err)
		}
	}
}

// billingSettings stores the file's payment terms and tax profiles by
// name, through the Writer.
func (a *applier) billingSettings(ctx context.Context) error {
	for i := range a.f.PaymentTerms {
		t := &a.f.PaymentTerms[i]
		e := entry("payment_terms", i, t.Name)
		terms, fe := t.value()
		if fe != nil {
			return a.failed(e, fe)
		}
		ch, err := a.w.SavePaymentTerms(ctx, terms, true)
		if err != nil {
			return a.failed(e, err)
		}
		a.rep.note(&a.rep.PaymentTerms, ch, "payment terms", t.Name)
	}
	for i := range a.f.TaxProfiles {
		p := &a.f.TaxProfiles[i]
		e := entry("tax_profiles", i, p.Name)
		profile, fe := p.value()
		if fe != nil {
			return a.failed(e, fe)
		}
		ch, err := a.w.SaveTaxProfile(ctx, profile, true)
		if err != nil {
			return a.failed(e, err)
		}
		a.rep.note(&a.rep.TaxProfiles, ch, "tax profile", p.Name)
	}
	return nil
}
