package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/go-pdf/fpdf"
	"github.com/shopspring/decimal"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"

	"github.com/tarifa/tarifa/report"
)

// Statement is what we owe a vendor for a period (DOMAIN.md "Bill run",
// lines: "a term-side statement as a document of its own"): the rated term
// side of the calls it carried, by code name, in its currency, at the
// customers' event time in the vendor's timezone. It is a document to
// check the vendor's invoice against, not an invoice: no number, no
// state, no effect on any balance (the term costs are credited to its live
// balance as the calls are rated).
type Statement struct {
	ClientID   int64
	Client     string
	Currency   string
	PeriodFrom Date
	PeriodTo   Date
	Timezone   string
	Precision  int
	Lines      []Line
	Total      decimal.Decimal // exact
	Issuer     Party           // the vendor's reseller: us
	Vendor     Party
}

// Statement computes the statement of a vendor (name or id, in c's
// scope) for [from, to), dates of its timezone.
func (s *Service) Statement(ctx context.Context, c Caller, vendorRef string, from, to Date) (*Statement, error) {
	if from.IsZero() || to.IsZero() || !to.After(from) {
		return nil, fieldErr("to", "a period needs from before to")
	}
	cl, err := s.findClient(ctx, s.pg, c, vendorRef)
	if err != nil {
		return nil, err
	}
	p, err := period(from, to, cl.Loc)
	if err != nil {
		return nil, err
	}
	lines, err := s.reports.Statement(ctx, report.StatementQuery{Client: cl.ID, Side: "term", Period: p})
	if err != nil {
		return nil, fmt.Errorf("statement of %s: %w", cl.Name, err)
	}
	st := &Statement{ClientID: cl.ID, Client: cl.Name, Currency: cl.Currency, PeriodFrom: from, PeriodTo: to, Timezone: cl.Timezone,
		Precision: cl.Precision, Vendor: cl.Party}
	for _, l := range lines {
		st.Lines = append(st.Lines, Line{CodeName: l.CodeName, Calls: int64(l.Calls), BilledSeconds: int64(l.BilledSeconds), Amount: l.Amount})
		st.Total = st.Total.Add(l.Amount)
	}
	if st.Issuer, err = issuer(ctx, s.pg, cl.ResellerID); err != nil {
		return nil, err
	}
	return st, nil
}

// Table is the statement as a report table: one row per code name and
// the total.
func (st *Statement) Table() *report.Table {
	t := &report.Table{
		Title: fmt.Sprintf("Statement of %s (what we owe it), %s to %s (%s)", st.Client, st.PeriodFrom, st.PeriodTo.AddDays(-1), st.Timezone),
		Note:  "The rated term side of the calls it carried, by the customer's code name; amounts are exact sums of per-call costs.",
		Columns: []report.Column{{Name: "code_name"}, {Name: "calls", Kind: report.Int}, {Name: "minutes", Kind: report.Decimal},
			{Name: "currency"}, {Name: "amount", Kind: report.Decimal, Money: true}},
		CurrencyKeys: []string{"currency"},
	}
	var calls int64
	for _, l := range st.Lines {
		t.Rows = append(t.Rows, []string{l.CodeName, strconv.FormatInt(l.Calls, 10), l.Minutes().String(), st.Currency, money(l.Amount, 6)})
		calls += l.Calls
	}
	t.Total = []string{"", strconv.FormatInt(calls, 10), "", st.Currency, ""}
	t.CurrencyTotals = [][]string{{"", strconv.FormatInt(calls, 10), "", st.Currency, money(st.Total, 6)}}
	return t
}

// MarshalJSON writes {"client_id", "client", "currency", "period_from",
// "period_to", "timezone", "lines", "total"} (the total exact and rounded).
func (st *Statement) MarshalJSON() ([]byte, error) {
	lines := []lineJSON{}
	for _, l := range st.Lines {
		lines = append(lines, lineJSON{CodeName: l.CodeName, Calls: l.Calls, Minutes: l.Minutes().String(), BilledSeconds: l.BilledSeconds,
			Amount: money(l.Amount, 6)})
	}
	return json.Marshal(struct {
		ClientID     int64      `json:"client_id"`
		Client       string     `json:"client"`
		Currency     string     `json:"currency"`
		PeriodFrom   Date       `json:"period_from"`
		PeriodTo     Date       `json:"period_to"`
		Timezone     string     `json:"timezone"`
		Lines        []lineJSON `json:"lines"`
		Total        string     `json:"total"`
		TotalRounded string     `json:"total_rounded"`
	}{st.ClientID, st.Client, st.Currency, st.PeriodFrom, st.PeriodTo, st.Timezone, lines, money(st.Total, 6), money(Round(st.Total, st.Precision), st.Precision)})
}

// WriteStatementPDF renders the statement as a PDF with the Go fonts.
func WriteStatementPDF(w io.Writer, st *Statement) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.AddUTF8FontFromBytes("go", "", goregular.TTF)
	pdf.AddUTF8FontFromBytes("go", "B", gobold.TTF)
	pdf.SetCreator("Tarifa", true)
	title := "Vendor statement: " + partyName(st.Vendor)
	pdf.SetTitle(title, true)
	pdf.SetMargins(15, 15, 15)
	pdf.AddPage()
	pdf.SetFont("go", "B", 16)
	pdf.CellFormat(180, 9, title, "", 1, "L", false, 0, "")
	pdf.SetFont("go", "", 9)
	pdf.CellFormat(180, 5, fmt.Sprintf("What %s owes %s for %s to %s (%s), in %s.", partyName(st.Issuer), partyName(st.Vendor),
		st.PeriodFrom, st.PeriodTo.AddDays(-1), st.Timezone, st.Currency), "", 1, "L", false, 0, "")
	pdf.Ln(4)
	cols := []float64{96, 22, 27, 35}
	pdf.SetFont("go", "B", 9)
	pdf.SetFillColor(230, 233, 238)
	for i, h := range []string{"Destination", "Calls", "Minutes", "Amount"} {
		align := "R"
		if i == 0 {
			align = "L"
		}
		pdf.CellFormat(cols[i], 6, h, "B", 0, align, true, 0, "")
	}
	pdf.Ln(-1)
	pdf.SetFont("go", "", 9)
	for _, l := range st.Lines {
		pdf.CellFormat(cols[0], 5.5, orName(l.CodeName), "", 0, "L", false, 0, "")
		pdf.CellFormat(cols[1], 5.5, strconv.FormatInt(l.Calls, 10), "", 0, "R", false, 0, "")
		pdf.CellFormat(cols[2], 5.5, l.Minutes().StringFixed(2), "", 0, "R", false, 0, "")
		pdf.CellFormat(cols[3], 5.5, money(l.Amount, 6), "", 1, "R", false, 0, "")
	}
	pdf.Ln(3)
	pdf.SetFont("go", "B", 10)
	pdf.CellFormat(cols[0]+cols[1]+cols[2], 6, "Total "+st.Currency, "", 0, "R", false, 0, "")
	pdf.CellFormat(cols[3], 6, money(Round(st.Total, st.Precision), st.Precision), "", 1, "R", false, 0, "")
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("render statement pdf: %w", err)
	}
	return nil
}
