package billing

import "github.com/shopspring/decimal"

// Round rounds d to places decimals, half away from zero (0.005 → 0.01,
// −0.005 → −0.01): the one rounding of invoice figures (DOMAIN.md "Bill
// run"). Per-call costs were rounded the same way to 6 decimals by the
// rater; everything here starts from those.
func Round(d decimal.Decimal, places int) decimal.Decimal {
	return d.Round(int32(places))
}

// minorUnits are the ISO 4217 currencies whose minor unit is not the
// cent; every other currency has 2 decimals.
var minorUnits = map[string]int{
	"BHD": 3, "CLF": 4, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
	"PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}

// Precision is the number of decimals invoice totals of currency are
// rounded to: ISO 4217's minor unit (2 for USD and EUR, 0 for JPY, 3 for
// KWD), 2 for a code it does not list. A client's invoice_precision
// overrides it.
func Precision(currency string) int {
	if p, ok := minorUnits[currency]; ok {
		return p
	}
	return 2
}

// money formats an amount with exactly places decimals.
func money(d decimal.Decimal, places int) string { return d.StringFixed(int32(places)) }
