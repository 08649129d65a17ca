package billing

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"

	"github.com/tarifa/tarifa/report"
)

// Document reads invoice id of c's scope with what its documents show:
// the reseller's company data (the issuer) and the client's.
func (s *Service) Document(ctx context.Context, c Caller, id int64) (*Invoice, error) {
	inv, err := s.Get(ctx, c, id)
	if err != nil {
		return nil, err
	}
	if inv.Issuer, err = issuer(ctx, s.pg, inv.ResellerID); err != nil {
		return nil, err
	}
	cl, err := s.findClient(ctx, s.pg, Caller{}, strconv.FormatInt(inv.ClientID, 10))
	if err != nil {
		return nil, err
	}
	inv.Customer, inv.HiddenDigits = cl.Party, cl.HiddenDigits
	return inv, nil
}

// WriteCalls writes the CSV of the invoice's xDRs: every rated call of its
// client and period as xdrs FINAL holds it now (after a rerating of an
// approved invoice's period, the calls as rerated; the difference is on
// the next invoice), numbers masked by the client's hidden digits.
func (s *Service) WriteCalls(ctx context.Context, w io.Writer, inv *Invoice) error {
	loc, err := time.LoadLocation(inv.Timezone)
	if err != nil {
		return fmt.Errorf("invoice %d timezone %q: %w", inv.ID, inv.Timezone, err)
	}
	p, err := period(inv.PeriodFrom, inv.PeriodTo, loc)
	if err != nil {
		return err
	}
	return s.reports.WriteCalls(ctx, w, report.StatementQuery{Client: inv.ClientID, Period: p})
}

// Title is the invoice's name on its documents and e-mails.
func (inv *Invoice) Title() string {
	switch {
	case inv.State == StateVoid && inv.Number != "":
		return "Invoice " + inv.Number + " (void)"
	case inv.State == StateVoid:
		return "Invoice draft (void)"
	case inv.Number == "":
		return "Invoice draft (to verify, not issued)"
	}
	return "Invoice " + inv.Number
}

// LastDay is the last day the invoice covers (PeriodTo is exclusive).
func (inv *Invoice) LastDay() Date { return inv.PeriodTo.AddDays(-1) }

// Table is the invoice as a report table: one row per line, charge and
// correction, then the net, each tax and the total; every row names the
// invoice, so the CSV (report.Table.Render) reads on its own in a
// spreadsheet.
func (inv *Invoice) Table() *report.Table {
	t := &report.Table{
		Title: fmt.Sprintf("%s, %s, %s to %s (%s), due %s", inv.Title(), inv.Client, inv.PeriodFrom, inv.LastDay(), inv.Timezone, inv.DueAt),
		Columns: []report.Column{{Name: "invoice_id", Kind: report.Int}, {Name: "number"}, {Name: "client"}, {Name: "currency"},
			{Name: "period_from"}, {Name: "period_to"}, {Name: "kind"}, {Name: "description"}, {Name: "ref"},
			{Name: "calls", Kind: report.Int}, {Name: "minutes", Kind: report.Decimal}, {Name: "amount", Kind: report.Decimal}},
	}
	row := func(kind, desc, ref, calls, minutes, amount string) {
		t.Rows = append(t.Rows, []string{strconv.FormatInt(inv.ID, 10), inv.Number, inv.Client, inv.Currency,
			inv.PeriodFrom.String(), inv.PeriodTo.String(), kind, desc, ref, calls, minutes, amount})
	}
	for _, l := range inv.Lines {
		row("traffic", l.CodeName, "", strconv.FormatInt(l.Calls, 10), l.Minutes().StringFixed(2), money(l.Amount, 6))
	}
	for _, c := range inv.Charges {
		row("charge", "charge of "+c.At.In(inv.loc()).Format(time.DateOnly), c.Ref, "", "", money(c.Amount, 6))
	}
	for _, c := range inv.Corrections {
		row("correction", c.CodeName, correctionRef(c), strconv.FormatInt(c.Calls, 10), minutesOf(c.BilledSeconds).StringFixed(2), money(c.Amount, 6))
	}
	row("net", "net", "", "", "", money(inv.Net, inv.Precision))
	for _, x := range inv.Taxes {
		row("tax", x.Name, x.Percent.String()+"%", "", "", money(x.Amount, inv.Precision))
	}
	row("total", "total", "", "", "", money(inv.Total, inv.Precision))
	return t
}

func correctionRef(c Correction) string {
	n := c.Number
	if n == "" {
		n = strconv.FormatInt(c.InvoiceID, 10)
	}
	return fmt.Sprintf("invoice %s, %s to %s", n, c.PeriodFrom, c.PeriodTo.AddDays(-1))
}

func (inv *Invoice) loc() *time.Location {
	if l, err := time.LoadLocation(inv.Timezone); err == nil {
		return l
	}
	return time.UTC
}

// WritePDF renders the invoice (read by Document) as a PDF: the issuer's
// and the client's company data, the number, period, lines, charges,
// corrections, taxes, total and due date. It uses the Go fonts embedded in
// the binary (Latin, Greek and Cyrillic text), nothing installed or
// fetched; the document's dates are the invoice's, so the same invoice
// renders to the same bytes.
func WritePDF(w io.Writer, inv *Invoice) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCompression(true)
	pdf.AddUTF8FontFromBytes("go", "", goregular.TTF)
	pdf.AddUTF8FontFromBytes("go", "B", gobold.TTF)
	stamp := inv.GeneratedAt
	if inv.IssuedAt != nil {
		stamp = *inv.IssuedAt
	}
	pdf.SetCreationDate(stamp.UTC())
	pdf.SetModificationDate(stamp.UTC())
	pdf.SetTitle(inv.Title(), true)
	pdf.SetAuthor(partyName(inv.Issuer), true)
	pdf.SetCreator("Tarifa", true)
	pdf.SetProducer("Tarifa", true)
	pdf.SetMargins(15, 15, 15)
	pdf.SetAutoPageBreak(true, 18)
	pdf.AliasNbPages("{nb}")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-12)
		pdf.SetFont("go", "", 8)
		pdf.SetTextColor(110, 110, 110)
		pdf.CellFormat(0, 5, fmt.Sprintf("%s · page %d of {nb}", inv.Title(), pdf.PageNo()), "", 0, "C", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
	})
	pdf.AddPage()
	const width = 180.0

	// Title and number.
	pdf.SetFont("go", "B", 18)
	pdf.CellFormat(width, 9, inv.Title(), "", 1, "L", false, 0, "")
	pdf.Ln(2)

	// The issuer on the left, the client on the right.
	top := pdf.GetY()
	party := func(x float64, heading string, p Party) float64 {
		pdf.SetXY(x, top)
		pdf.SetFont("go", "B", 9)
		pdf.CellFormat(85, 5, heading, "", 2, "L", false, 0, "")
		pdf.SetFont("go", "B", 10)
		pdf.MultiCell(85, 5, partyName(p), "", "L", false) // a long name wraps in its column
		pdf.SetFont("go", "", 9)
		for _, l := range partyLines(p) {
			pdf.SetX(x)
			pdf.MultiCell(85, 4.5, l, "", "L", false)
		}
		return pdf.GetY()
	}
	y1 := party(15, "From", inv.Issuer)
	y2 := party(110, "Bill to", inv.Customer)
	pdf.SetXY(15, max(y1, y2)+4)

	// The invoice's facts.
	facts := [][2]string{
		{"Invoice number", orDash(inv.Number)},
		{"Issue date", issueDate(inv)},
		{"Period", fmt.Sprintf("%s to %s (%s)", inv.PeriodFrom, inv.LastDay(), inv.Timezone)},
		{"Due date", inv.DueAt.String()},
		{"Currency", inv.Currency},
		{"State", inv.State},
	}
	for _, f := range facts {
		pdf.SetFont("go", "B", 9)
		pdf.CellFormat(35, 5, f[0], "", 0, "L", false, 0, "")
		pdf.SetFont("go", "", 9)
		pdf.CellFormat(width-35, 5, f[1], "", 1, "L", false, 0, "")
	}
	pdf.Ln(4)

	cols := []float64{96, 22, 27, 35}
	var current []string // the heading of the table being written, repeated atop the next page
	pdf.SetHeaderFunc(func() {
		if pdf.PageNo() == 1 {
			return
		}
		pdf.SetFont("go", "", 8)
		pdf.SetTextColor(110, 110, 110)
		pdf.CellFormat(width, 5, inv.Title()+" · "+inv.Client+" · "+inv.PeriodFrom.String()+" to "+inv.LastDay().String(), "", 1, "L", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
		if current != nil {
			pdf.SetFont("go", "B", 9)
			pdf.SetFillColor(230, 233, 238)
			for i, n := range current {
				align := "R"
				if i == 0 {
					align = "L"
				}
				pdf.CellFormat(cols[i], 6, n, "B", 0, align, true, 0, "")
			}
			pdf.Ln(-1)
		}
		pdf.SetFont("go", "", 9)
	})
	header := func(names ...string) {
		current = names
		pdf.SetFont("go", "B", 9)
		pdf.SetFillColor(230, 233, 238)
		for i, n := range names {
			align := "R"
			if i == 0 {
				align = "L"
			}
			pdf.CellFormat(cols[i], 6, n, "B", 0, align, true, 0, "")
		}
		pdf.Ln(-1)
		pdf.SetFont("go", "", 9)
	}
	cells := func(cs ...string) {
		for i, c := range cs {
			align := "R"
			if i == 0 {
				align = "L"
			}
			pdf.CellFormat(cols[i], 5.5, c, "", 0, align, false, 0, "")
		}
		pdf.Ln(-1)
	}
	header("Destination", "Calls", "Minutes", "Amount")
	if len(inv.Lines) == 0 {
		cells("(no calls)", "", "", "")
	}
	for _, l := range inv.Lines {
		cells(orName(l.CodeName), strconv.FormatInt(l.Calls, 10), l.Minutes().StringFixed(2), money(l.Amount, 6))
	}
	if len(inv.Charges) > 0 {
		pdf.Ln(3)
		header("Charges", "", "Date", "Amount")
		for _, c := range inv.Charges {
			cells(orName(c.Ref), "", c.At.In(inv.loc()).Format(time.DateOnly), money(c.Amount, 6))
		}
	}
	if len(inv.Corrections) > 0 {
		pdf.Ln(3)
		header("Corrections of earlier invoices", "Calls", "Minutes", "Amount")
		for _, c := range inv.Corrections {
			cells(orName(c.CodeName)+" — "+correctionRef(c), strconv.FormatInt(c.Calls, 10),
				minutesOf(c.BilledSeconds).StringFixed(2), money(c.Amount, 6))
		}
	}

	// Totals on the right.
	current = nil
	pdf.Ln(4)
	total := func(label, amount string, bold bool) {
		style := ""
		if bold {
			style = "B"
		}
		pdf.SetFont("go", style, 10)
		pdf.CellFormat(cols[0]+cols[1], 6, "", "", 0, "L", false, 0, "")
		pdf.CellFormat(cols[2], 6, label, "", 0, "R", false, 0, "")
		pdf.CellFormat(cols[3], 6, amount, "", 1, "R", false, 0, "")
	}
	total("Net", money(inv.Net, inv.Precision), false)
	for _, x := range inv.Taxes {
		total(x.Name+" "+x.Percent.String()+"%", money(x.Amount, inv.Precision), false)
	}
	total("Total "+inv.Currency, money(inv.Total, inv.Precision), true)
	pdf.Ln(4)
	pdf.SetFont("go", "", 8)
	note := fmt.Sprintf("Calls are billed by their event time in %s. Amounts per destination are exact sums of per-call costs; "+
		"the net is rounded to %d decimals (%s)", inv.Timezone, inv.Precision, strings.ReplaceAll(inv.Rounding, "_", " "))
	if inv.TaxProfile != "" {
		note += fmt.Sprintf(", taxes by %s (%s)", inv.TaxProfile, strings.ReplaceAll(inv.TaxMode, "_", " "))
	}
	pdf.MultiCell(width, 4, note+".", "", "L", false)
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("render invoice %d pdf: %w", inv.ID, err)
	}
	return nil
}

func partyName(p Party) string {
	if p.Company != "" {
		return p.Company
	}
	return p.Name
}

func partyLines(p Party) []string {
	var out []string
	if p.Address != "" {
		out = append(out, p.Address)
	}
	if p.Zip != "" {
		out = append(out, p.Zip)
	}
	if p.Email != "" {
		out = append(out, p.Email)
	}
	if p.TaxID != "" {
		out = append(out, "Tax ID: "+p.TaxID)
	}
	if p.RegID != "" {
		out = append(out, "Reg. ID: "+p.RegID)
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func orName(s string) string {
	if s == "" {
		return "(no name)"
	}
	return s
}

func issueDate(inv *Invoice) string {
	if inv.IssuedAt == nil {
		return "— (not issued)"
	}
	return inv.IssuedAt.In(inv.loc()).Format(time.DateOnly)
}
