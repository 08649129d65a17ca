package billing

import (
	"encoding/json"
	"time"

	"github.com/shopspring/decimal"
)

// The states of an invoice (DOMAIN.md "Bill run").
const (
	// StateToVerify is a draft: regenerated from the current xDRs by
	// another create of its period, or voided; no number, no effect on the
	// fixed balance.
	StateToVerify = "to_verify"
	// StateToSend is approved: numbered, frozen, the fixed balance lowered
	// by its total.
	StateToSend = "to_send"
	// StateSent is e-mailed (or its document downloaded).
	StateSent = "sent"
	// StatePaid is marked paid by an operator.
	StatePaid = "paid"
	// StateVoid undoes an approved invoice's effect on the fixed balance
	// and keeps its number; a voided draft is discarded.
	StateVoid = "void"
)

// States are the states in their order.
var States = []string{StateToVerify, StateToSend, StateSent, StatePaid, StateVoid}

// approved reports whether an invoice in state s counts: numbered, frozen,
// on the fixed balance.
func approved(s string) bool { return s == StateToSend || s == StateSent || s == StatePaid }

// Line is the traffic of one code name: the client's rated calls of the
// period, their billed seconds and the exact sum of their costs.
type Line struct {
	CodeName      string
	Calls         int64
	BilledSeconds int64
	Amount        decimal.Decimal
}

// Minutes are the billed minutes, to 2 decimals.
func (l Line) Minutes() decimal.Decimal { return minutesOf(l.BilledSeconds) }

func minutesOf(seconds int64) decimal.Decimal {
	return decimal.NewFromInt(seconds).DivRound(decimal.NewFromInt(60), 2)
}

// Charge is a charge transaction billed by the invoice: one of the
// period's, or an earlier one that no invoice billed yet.
type Charge struct {
	TransactionID int64
	Ref           string
	At            time.Time
	Amount        decimal.Decimal
}

// Correction is the difference that reaches this invoice for one code
// name of an earlier approved invoice's period: what xdrs FINAL says of
// that period now, minus what was billed for it (that invoice's line and
// the corrections before this one). A rerating after approval changes the
// live balance at once and reaches the fixed balance here; the earlier
// invoice stays as it was issued.
type Correction struct {
	InvoiceID     int64
	Number        string
	PeriodFrom    Date
	PeriodTo      Date
	CodeName      string
	Calls         int64
	BilledSeconds int64
	Amount        decimal.Decimal
}

// Party is the company data a document shows for the reseller (the
// issuer) and the client.
type Party struct {
	Name    string
	Company string
	Address string
	Zip     string
	Email   string
	TaxID   string
	RegID   string
	Account string // account details (bank), clients only
}

// Invoice is one invoice with its lines, as stored. Amounts are exact;
// Net, Taxes and Total are rounded to Precision decimals.
type Invoice struct {
	ID          int64
	Number      string // "" until approved
	ResellerID  int64
	ClientID    int64
	Client      string
	Currency    string
	PeriodFrom  Date // the client's dates; PeriodTo exclusive
	PeriodTo    Date
	Timezone    string
	State       string
	Source      string // manual | billrun
	Rounding    string
	Precision   int
	TaxProfile  string
	TaxMode     string
	DueAt       Date
	Lines       []Line
	Charges     []Charge
	Corrections []Correction
	Net         decimal.Decimal
	Taxes       []TaxAmount
	Total       decimal.Decimal
	GeneratedAt time.Time
	IssuedAt    *time.Time
	SentAt      *time.Time
	PaidAt      *time.Time
	VoidedAt    *time.Time

	// Issuer and Customer are read for documents only (Service.Document).
	Issuer, Customer Party
	HiddenDigits     int
}

// amounts are every line amount of the invoice, what its totals are
// computed from.
func (inv *Invoice) amounts() []decimal.Decimal {
	var out []decimal.Decimal
	for _, l := range inv.Lines {
		out = append(out, l.Amount)
	}
	for _, c := range inv.Charges {
		out = append(out, c.Amount)
	}
	for _, c := range inv.Corrections {
		out = append(out, c.Amount)
	}
	return out
}

// Empty reports whether the invoice bills nothing: no traffic, charges or
// corrections.
func (inv *Invoice) Empty() bool {
	return len(inv.Lines) == 0 && len(inv.Charges) == 0 && len(inv.Corrections) == 0
}

// The JSON of an invoice: DESIGN.md "Invoices and bill runs", extended
// with the corrections, the settings that made the figures and the
// times of every transition.
type invoiceJSON struct {
	ID          *int64           `json:"id"`
	Number      *string          `json:"number"`
	ClientID    int64            `json:"client_id"`
	Client      string           `json:"client"`
	Currency    string           `json:"currency"`
	PeriodFrom  Date             `json:"period_from"`
	PeriodTo    Date             `json:"period_to"`
	Timezone    string           `json:"timezone"`
	State       string           `json:"state"`
	IssuedAt    *time.Time       `json:"issued_at"`
	DueAt       Date             `json:"due_at"`
	Lines       []lineJSON       `json:"lines"`
	Charges     []chargeJSON     `json:"charges"`
	Corrections []correctionJSON `json:"corrections"`
	Net         string           `json:"net"`
	Taxes       []taxJSON        `json:"taxes"`
	Total       string           `json:"total"`
	ResellerID  int64            `json:"reseller_id"`
	Source      string           `json:"source"`
	Rounding    string           `json:"rounding"`
	Precision   int              `json:"precision"`
	TaxProfile  string           `json:"tax_profile"`
	GeneratedAt time.Time        `json:"generated_at"`
	SentAt      *time.Time       `json:"sent_at"`
	PaidAt      *time.Time       `json:"paid_at"`
	VoidedAt    *time.Time       `json:"voided_at"`
}

type lineJSON struct {
	CodeName      string `json:"code_name"`
	Calls         int64  `json:"calls"`
	Minutes       string `json:"minutes"`
	BilledSeconds int64  `json:"billed_seconds"`
	Amount        string `json:"amount"`
}

type chargeJSON struct {
	Ref           string    `json:"ref"`
	Amount        string    `json:"amount"`
	TransactionID int64     `json:"transaction_id"`
	At            time.Time `json:"at"`
}

type correctionJSON struct {
	InvoiceID     int64  `json:"invoice_id"`
	Number        string `json:"number"`
	PeriodFrom    Date   `json:"period_from"`
	PeriodTo      Date   `json:"period_to"`
	CodeName      string `json:"code_name"`
	Calls         int64  `json:"calls"`
	Minutes       string `json:"minutes"`
	BilledSeconds int64  `json:"billed_seconds"`
	Amount        string `json:"amount"`
}

type taxJSON struct {
	Name    string `json:"name"`
	Percent string `json:"percent"`
	Amount  string `json:"amount"`
}

// MarshalJSON writes the invoice of the contract: amounts as decimal
// strings (lines at 6 decimals, net, taxes and total at the invoice's
// precision), dates as YYYY-MM-DD, times as RFC 3339 UTC, null id and
// number before they exist.
func (inv *Invoice) MarshalJSON() ([]byte, error) {
	p := inv.Precision
	j := invoiceJSON{ClientID: inv.ClientID, Client: inv.Client, Currency: inv.Currency, PeriodFrom: inv.PeriodFrom,
		PeriodTo: inv.PeriodTo, Timezone: inv.Timezone, State: inv.State, IssuedAt: utc(inv.IssuedAt), DueAt: inv.DueAt,
		Lines: []lineJSON{}, Charges: []chargeJSON{}, Corrections: []correctionJSON{}, Taxes: []taxJSON{},
		Net: money(inv.Net, p), Total: money(inv.Total, p), ResellerID: inv.ResellerID, Source: inv.Source,
		Rounding: inv.Rounding, Precision: p, TaxProfile: inv.TaxProfile, GeneratedAt: inv.GeneratedAt.UTC(),
		SentAt: utc(inv.SentAt), PaidAt: utc(inv.PaidAt), VoidedAt: utc(inv.VoidedAt)}
	if inv.ID != 0 {
		j.ID = &inv.ID
	}
	if inv.Number != "" {
		j.Number = &inv.Number
	}
	for _, l := range inv.Lines {
		j.Lines = append(j.Lines, lineJSON{CodeName: l.CodeName, Calls: l.Calls, Minutes: l.Minutes().String(),
			BilledSeconds: l.BilledSeconds, Amount: money(l.Amount, 6)})
	}
	for _, c := range inv.Charges {
		j.Charges = append(j.Charges, chargeJSON{Ref: c.Ref, Amount: money(c.Amount, 6), TransactionID: c.TransactionID, At: c.At.UTC()})
	}
	for _, c := range inv.Corrections {
		j.Corrections = append(j.Corrections, correctionJSON{InvoiceID: c.InvoiceID, Number: c.Number, PeriodFrom: c.PeriodFrom,
			PeriodTo: c.PeriodTo, CodeName: c.CodeName, Calls: c.Calls, Minutes: minutesOf(c.BilledSeconds).String(),
			BilledSeconds: c.BilledSeconds, Amount: money(c.Amount, 6)})
	}
	for _, t := range inv.Taxes {
		j.Taxes = append(j.Taxes, taxJSON{Name: t.Name, Percent: t.Percent.String(), Amount: money(t.Amount, p)})
	}
	return json.Marshal(j)
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
