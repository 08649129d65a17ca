package billing

import (
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
)

// The rounding of invoice figures (a client's invoice_rounding).
const (
	// RoundThenSum: net = Σ round(line, p).
	RoundThenSum = "round_then_sum"
	// SumThenRound: net = round(Σ lines, p).
	SumThenRound = "sum_then_round"
)

// The modes of a tax profile.
const (
	// PercentOfTotal: each tax = round(net × percent / 100, p).
	PercentOfTotal = "percent_of_total"
	// SumOfItems: each tax = round(Σ line × percent / 100, p), over the
	// unrounded lines.
	SumOfItems = "sum_of_items"
)

// Tax is one tax of a profile: a name and a percentage.
type Tax struct {
	Name    string          `json:"name"`
	Percent decimal.Decimal `json:"percent"`
}

// TaxProfile is the set of taxes an invoice carries and how they are
// computed. A TaxProfile is a value.
type TaxProfile struct {
	ID    int64  `json:"id,omitempty"`
	Name  string `json:"name"`
	Mode  string `json:"mode"`
	Taxes []Tax  `json:"taxes"`
}

var hundred = decimal.NewFromInt(100)

// Validate checks p as the API and the catalog file take it (a
// *FieldError naming the field). It is the one check of tax profiles.
func (p *TaxProfile) Validate() error {
	p.Name = strings.TrimSpace(p.Name)
	if p.Name == "" {
		return fieldErr("name", "required")
	}
	if len(p.Name) > 200 {
		return fieldErr("name", "at most 200 characters")
	}
	switch p.Mode {
	case PercentOfTotal, SumOfItems:
	case "":
		return fieldErr("mode", "required: %s or %s", PercentOfTotal, SumOfItems)
	default:
		return fieldErr("mode", "must be %s or %s, got %q", PercentOfTotal, SumOfItems, p.Mode)
	}
	if len(p.Taxes) > 20 {
		return fieldErr("taxes", "at most 20 taxes")
	}
	seen := map[string]bool{}
	for i := range p.Taxes {
		t := &p.Taxes[i]
		f := fmt.Sprintf("taxes[%d]", i)
		t.Name = strings.TrimSpace(t.Name)
		switch {
		case t.Name == "":
			return fieldErr(f+".name", "required")
		case len(t.Name) > 100:
			return fieldErr(f+".name", "at most 100 characters")
		case seen[t.Name]:
			return fieldErr(f+".name", "%q twice", t.Name)
		}
		seen[t.Name] = true
		if t.Percent.Sign() < 0 || t.Percent.GreaterThan(hundred) {
			return fieldErr(f+".percent", "must be 0 to 100, got %s", t.Percent)
		}
		if !t.Percent.Equal(t.Percent.Round(4)) {
			return fieldErr(f+".percent", "at most 4 decimals, got %s", t.Percent)
		}
	}
	return nil
}

// TaxAmount is one tax of an invoice: the profile's tax and what it came to.
type TaxAmount struct {
	Name    string          `json:"name"`
	Percent decimal.Decimal `json:"percent"`
	Amount  decimal.Decimal `json:"amount"`
}

// Totals are an invoice's net, taxes and total, each rounded to the
// precision.
type Totals struct {
	Net   decimal.Decimal
	Taxes []TaxAmount
	Total decimal.Decimal
}

// ComputeTotals turns line amounts (exact: sums of per-call costs at 6
// decimals, charges, corrections) into an invoice's figures at precision
// decimals (DOMAIN.md "Bill run", "Rounding" and "Taxes"):
//
//	round_then_sum:   net = Σ round(line)      sum_then_round: net = round(Σ lines)
//	percent_of_total: tax = round(net × % / 100)
//	sum_of_items:     tax = round(Σ line × % / 100), over the unrounded lines
//	total = net + Σ taxes
//
// profile may be nil (no taxes). Every rounding is Round's, half away from
// zero.
func ComputeTotals(lines []decimal.Decimal, rounding string, precision int, profile *TaxProfile) Totals {
	var exact, rounded decimal.Decimal
	for _, l := range lines {
		exact = exact.Add(l)
		rounded = rounded.Add(Round(l, precision))
	}
	t := Totals{Net: Round(exact, precision)}
	if rounding != SumThenRound {
		t.Net = rounded
	}
	t.Total = t.Net
	if profile == nil {
		return t
	}
	for _, tax := range profile.Taxes {
		base := t.Net
		if profile.Mode == SumOfItems {
			base = exact
		}
		amount := Round(base.Mul(tax.Percent).Shift(-2), precision) // exact: no division
		t.Taxes = append(t.Taxes, TaxAmount{Name: tax.Name, Percent: tax.Percent, Amount: amount})
		t.Total = t.Total.Add(amount)
	}
	return t
}
