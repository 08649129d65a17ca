package billing

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/report"
)

// ShowTable is the invoice for people (tarifa invoice show --format
// table): its facts above, one row per line, charge and correction, then
// the net, taxes and total.
func (inv *Invoice) ShowTable() *report.Table {
	full := inv.Table()
	t := &report.Table{Title: inv.Title() + " — " + inv.Client + ", " + inv.Currency + ", " + inv.State,
		Note: "period " + inv.PeriodFrom.String() + " to " + inv.LastDay().String() + " (" + inv.Timezone + "), issued " +
			issueDate(inv) + ", due " + inv.DueAt.String(),
		Columns: full.Columns[6:]}
	for _, r := range full.Rows {
		t.Rows = append(t.Rows, r[6:])
	}
	return t
}

// ListTable is a list of invoices (tarifa invoice list).
func ListTable(invs []*Invoice, total int) *report.Table {
	t := &report.Table{Title: "Invoices",
		Columns: []report.Column{{Name: "id", Kind: report.Int}, {Name: "number"}, {Name: "client"}, {Name: "period_from"},
			{Name: "period_to"}, {Name: "timezone"}, {Name: "state"}, {Name: "currency"}, {Name: "net", Kind: report.Decimal},
			{Name: "total", Kind: report.Decimal}, {Name: "issued"}, {Name: "due_at"}}}
	if total > len(invs) {
		t.Note = "The first " + strconv.Itoa(len(invs)) + " of " + strconv.Itoa(total) + "."
	}
	for _, inv := range invs {
		issued := ""
		if inv.IssuedAt != nil {
			issued = inv.IssuedAt.In(inv.loc()).Format(time.DateOnly)
		}
		t.Rows = append(t.Rows, []string{strconv.FormatInt(inv.ID, 10), inv.Number, inv.Client, inv.PeriodFrom.String(),
			inv.PeriodTo.String(), inv.Timezone, inv.State, inv.Currency, money(inv.Net, inv.Precision), money(inv.Total, inv.Precision),
			issued, inv.DueAt.String()})
	}
	return t
}

// Tables are the bill run for people: the mismatched calls first, then
// the invoices, the periods skipped and the clients that failed.
func (r *BillRun) Tables() []*report.Table {
	mm := &report.Table{Title: "Mismatched calls of the periods invoiced: on no invoice until fixed and rerated",
		Columns: []report.Column{{Name: "client"}, {Name: "period_from"}, {Name: "period_to"}, {Name: "timezone"}, {Name: "reason"},
			{Name: "calls", Kind: report.Int}, {Name: "duration_s", Kind: report.Decimal}, {Name: "examples"}}}
	for _, m := range r.Mismatches {
		name := m.Client
		if m.ClientID == 0 {
			name = "(no client)"
		}
		for _, x := range m.Reasons {
			mm.Rows = append(mm.Rows, []string{name, m.PeriodFrom.String(), m.PeriodTo.String(), m.Timezone, x.Reason,
				strconv.FormatUint(x.Calls, 10), decimal.New(int64(x.DurationMs), -3).StringFixed(3), strings.Join(x.Examples, " ")})
		}
	}
	verb := "Invoices created (drafts: to verify, then approve)"
	if r.DryRun {
		verb = "Invoices the run would create (dry run: nothing was written)"
	}
	invs := &report.Table{Title: verb,
		Columns: []report.Column{{Name: "id"}, {Name: "client"}, {Name: "period_from"}, {Name: "period_to"}, {Name: "timezone"},
			{Name: "lines", Kind: report.Int}, {Name: "charges", Kind: report.Int}, {Name: "corrections", Kind: report.Int},
			{Name: "currency"}, {Name: "net", Kind: report.Decimal}, {Name: "total", Kind: report.Decimal}, {Name: "due_at"}}}
	for _, inv := range r.Invoices {
		id := "-"
		if inv.ID != 0 {
			id = strconv.FormatInt(inv.ID, 10)
		}
		invs.Rows = append(invs.Rows, []string{id, inv.Client, inv.PeriodFrom.String(), inv.PeriodTo.String(), inv.Timezone,
			strconv.Itoa(len(inv.Lines)), strconv.Itoa(len(inv.Charges)), strconv.Itoa(len(inv.Corrections)), inv.Currency,
			money(inv.Net, inv.Precision), money(inv.Total, inv.Precision), inv.DueAt.String()})
	}
	out := []*report.Table{mm, invs}
	if len(r.Skipped) > 0 {
		sk := &report.Table{Title: "Periods left alone",
			Columns: []report.Column{{Name: "client"}, {Name: "period_from"}, {Name: "period_to"}, {Name: "reason"}, {Name: "invoice"}}}
		for _, s := range r.Skipped {
			id := ""
			if s.InvoiceID != 0 {
				id = strconv.FormatInt(s.InvoiceID, 10)
			}
			sk.Rows = append(sk.Rows, []string{s.Client, s.PeriodFrom.String(), s.PeriodTo.String(), s.Reason, id})
		}
		out = append(out, sk)
	}
	if len(r.Errors) > 0 {
		er := &report.Table{Title: "Clients not invoiced", Columns: []report.Column{{Name: "client"}, {Name: "error"}}}
		for _, e := range r.Errors {
			er.Rows = append(er.Rows, []string{e.Client, e.Err})
		}
		out = append(out, er)
	}
	return out
}

// MarshalJSON writes the bill run: {"at", "dry_run", "mismatches",
// "invoices" (invoice objects, id null in a dry run), "skipped",
// "errors", "totals"}.
func (r *BillRun) MarshalJSON() ([]byte, error) {
	type reason struct {
		Reason    string   `json:"reason"`
		Calls     uint64   `json:"calls"`
		DurationS string   `json:"duration_s"`
		Examples  []string `json:"examples"`
		Numbers   []string `json:"numbers"`
	}
	type mismatches struct {
		ClientID   *int64   `json:"client_id"`
		Client     *string  `json:"client"`
		PeriodFrom Date     `json:"period_from"`
		PeriodTo   Date     `json:"period_to"`
		Timezone   string   `json:"timezone"`
		Reasons    []reason `json:"reasons"`
	}
	type skip struct {
		ClientID   int64  `json:"client_id"`
		Client     string `json:"client"`
		PeriodFrom Date   `json:"period_from"`
		PeriodTo   Date   `json:"period_to"`
		Reason     string `json:"reason"`
		InvoiceID  *int64 `json:"invoice_id"`
	}
	type failure struct {
		ClientID int64  `json:"client_id"`
		Client   string `json:"client"`
		Error    string `json:"error"`
	}
	type total struct {
		Currency string `json:"currency"`
		Invoices int    `json:"invoices"`
		Net      string `json:"net"`
		Total    string `json:"total"`
	}
	out := struct {
		At         time.Time    `json:"at"`
		DryRun     bool         `json:"dry_run"`
		Mismatches []mismatches `json:"mismatches"`
		Invoices   []*Invoice   `json:"invoices"`
		Skipped    []skip       `json:"skipped"`
		Errors     []failure    `json:"errors"`
		Totals     []total      `json:"totals"`
	}{At: r.At, DryRun: r.DryRun, Mismatches: []mismatches{}, Invoices: r.Invoices, Skipped: []skip{}, Errors: []failure{}, Totals: []total{}}
	if out.Invoices == nil {
		out.Invoices = []*Invoice{}
	}
	for _, m := range r.Mismatches {
		x := mismatches{PeriodFrom: m.PeriodFrom, PeriodTo: m.PeriodTo, Timezone: m.Timezone}
		if m.ClientID != 0 {
			id, name := m.ClientID, m.Client
			x.ClientID, x.Client = &id, &name
		}
		for _, rr := range m.Reasons {
			x.Reasons = append(x.Reasons, reason{Reason: rr.Reason, Calls: rr.Calls, DurationS: decimal.New(int64(rr.DurationMs), -3).StringFixed(3),
				Examples: nonNil(rr.Examples), Numbers: nonNil(rr.Numbers)})
		}
		out.Mismatches = append(out.Mismatches, x)
	}
	for _, s := range r.Skipped {
		x := skip{ClientID: s.ClientID, Client: s.Client, PeriodFrom: s.PeriodFrom, PeriodTo: s.PeriodTo, Reason: s.Reason}
		if s.InvoiceID != 0 {
			id := s.InvoiceID
			x.InvoiceID = &id
		}
		out.Skipped = append(out.Skipped, x)
	}
	for _, e := range r.Errors {
		out.Errors = append(out.Errors, failure{ClientID: e.ClientID, Client: e.Client, Error: e.Err})
	}
	for _, t := range r.Totals() {
		out.Totals = append(out.Totals, total{Currency: t.Currency, Invoices: t.Invoices, Net: t.Net.String(), Total: t.Total.String()})
	}
	return json.Marshal(out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// MailTable is the mail queue for people (tarifa mail list).
func MailTable(ms []*Mail) *report.Table {
	t := &report.Table{Title: "Mail queue, newest first",
		Columns: []report.Column{{Name: "id", Kind: report.Int}, {Name: "kind"}, {Name: "invoice"}, {Name: "to"}, {Name: "subject"},
			{Name: "state"}, {Name: "attempts", Kind: report.Int}, {Name: "created"}, {Name: "sent"}, {Name: "last_error"}}}
	for _, m := range ms {
		inv, sent := "", ""
		if m.InvoiceID != nil {
			inv = strconv.FormatInt(*m.InvoiceID, 10)
		}
		if m.SentAt != nil {
			sent = m.SentAt.UTC().Format(time.RFC3339)
		}
		t.Rows = append(t.Rows, []string{strconv.FormatInt(m.ID, 10), m.Kind, inv, strings.Join(m.Recipients, ", "), m.Subject,
			m.State, strconv.Itoa(m.Attempts), m.CreatedAt.UTC().Format(time.RFC3339), sent, m.LastError})
	}
	return t
}
