package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tarifa/tarifa/billing"
	"github.com/tarifa/tarifa/catalog"
	"github.com/tarifa/tarifa/report"
)

// Invoices, bill runs and the mail queue (DESIGN.md "Invoices and bill
// runs"), served by package billing, and the payment terms and tax
// profiles they are made with. Scope: a reseller token sees and acts on the
// invoices of its subtree's clients and runs bill runs over them; a client
// token reads its own invoices and their documents. Every change is
// audited, in the transaction of the change, naming the token: package
// billing writes the rows of invoices, the catalog's Writer those of
// payment terms and tax profiles. Payment terms and tax profiles are
// shared by all resellers, like time profiles: resellers read them,
// admins change them.

func (s *Server) billingRoutes() []route {
	const ar, arc = admin | reseller, admin | reseller | client
	return []route{
		{"GET", "/v1/invoices", arc, "list invoices (?client_id, ?state, ?from, ?to: periods ending after / starting before a date; ?limit, ?offset)", s.listInvoices},
		{"POST", "/v1/invoices", ar, "create the invoice of a client and period as a draft (to_verify); a draft of the same period is regenerated (200)", s.createInvoice},
		{"GET", "/v1/invoices/{id}", arc, "read an invoice; /v1/invoices/{id}.pdf is its PDF and /v1/invoices/{id}.csv its CSV (an approved invoice's document marks it sent)", s.getInvoice},
		{"GET", "/v1/invoices/{id}/xdrs.csv", arc, "the CSV of an invoice's xDRs (numbers masked by the client's hidden digits)", s.invoiceXDRs},
		{"POST", "/v1/invoices/{id}/approve", ar, "approve a draft: number it, freeze it, lower the fixed balance by its total", s.invoiceTransition("approve")},
		{"POST", "/v1/invoices/{id}/send", ar, "e-mail an approved invoice's PDF through the mail queue (202 when the attempt failed: queued)", s.sendInvoice},
		{"POST", "/v1/invoices/{id}/pay", ar, "mark an approved invoice paid", s.invoiceTransition("pay")},
		{"POST", "/v1/invoices/{id}/void", ar, "void an invoice: an approved one gives its total back to the fixed balance and keeps its number", s.invoiceTransition("void")},
		{"POST", "/v1/billruns", ar, "run a bill run: the invoices of every period closed by at under the clients' payment terms (dry_run lists them)", s.billRun},
		{"GET", "/v1/statements", ar, "a vendor's statement: its rated term side by code name (?client_id, ?from, ?to, ?format=json|csv|pdf)", s.statement},
		{"GET", "/v1/mail", ar, "the mail queue, newest first (?state=queued|sent|failed, ?limit)", s.listMail},
		{"POST", "/v1/mail/{id}/retry", ar, "queue a mail again and try it", s.retryMail},

		{"GET", "/v1/payment-terms", ar, "list payment terms", s.listTerms},
		{"POST", "/v1/payment-terms", admin, "create payment terms (period monthly with day, weekly with weekday, days with every and anchor; due_days)", s.saveTerms},
		{"GET", "/v1/payment-terms/{id}", ar, "read payment terms", s.getTerms},
		{"PATCH", "/v1/payment-terms/{id}", admin, "edit payment terms (the whole object)", s.saveTerms},
		{"GET", "/v1/tax-profiles", ar, "list tax profiles", s.listTaxProfiles},
		{"POST", "/v1/tax-profiles", admin, "create a tax profile (mode percent_of_total or sum_of_items, taxes [{name, percent}])", s.saveTaxProfile},
		{"GET", "/v1/tax-profiles/{id}", ar, "read a tax profile", s.getTaxProfile},
		{"PATCH", "/v1/tax-profiles/{id}", admin, "edit a tax profile (the whole object)", s.saveTaxProfile},
	}
}

// caller is p as package billing knows it: its scope and its audit name.
func caller(p *principal) billing.Caller {
	return billing.Caller{Scope: reportScope(p), Actor: p.actor(), TokenID: p.tokenID}
}

func (s *Server) needBilling() error {
	if s.cfg.Billing == nil {
		return &apiError{Status: http.StatusServiceUnavailable, Msg: "invoices need ClickHouse, which this server was started without"}
	}
	return nil
}

// billingErr maps the errors of package billing to answers.
func billingErr(err error, what string) error {
	var fe *billing.FieldError
	var ce *billing.ConflictError
	var pe *report.ParamError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return invalid(fe.Field, "%s", fe.Msg)
	case errors.As(err, &ce):
		return conflict("state", "%s", ce.Msg)
	case errors.Is(err, billing.ErrNotFound):
		return notFound(what)
	case errors.As(err, &pe):
		return badRequest(pe.Param, "%s", pe.Msg)
	}
	return err
}

func dateParam(r *http.Request, name string) (billing.Date, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return billing.Date{}, nil
	}
	d, err := billing.ParseDate(v)
	if err != nil {
		return d, badRequest(name, "must be a date (YYYY-MM-DD)")
	}
	return d, nil
}

func (s *Server) listInvoices(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := s.needBilling(); err != nil {
		return err
	}
	v := r.URL.Query()
	limit, offset, err := pagination(v)
	if err != nil {
		return err
	}
	q := billing.ListQuery{State: v.Get("state"), Limit: int(limit), Offset: int(offset)}
	if c := v.Get("client_id"); c != "" {
		if id, err := strconv.ParseInt(c, 10, 64); err != nil || id <= 0 {
			return badRequest("client_id", "must be a positive integer")
		}
		q.Client = c
	}
	if q.From, err = dateParam(r, "from"); err != nil {
		return err
	}
	if q.To, err = dateParam(r, "to"); err != nil {
		return err
	}
	if q.State != "" && !slices.Contains(billing.States, q.State) {
		return badRequest("state", "must be one of %s", strings.Join(billing.States, ", "))
	}
	invs, total, err := s.cfg.Billing.List(r.Context(), caller(p), q)
	if errors.Is(err, billing.ErrNotFound) {
		invs, total, err = nil, 0, nil // a client outside the scope has no invoices to see
	}
	if err != nil {
		return billingErr(err, "invoice")
	}
	items, err := json.Marshal(nonNilInvoices(invs))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, &page{Items: items, Total: int64(total), Limit: limit, Offset: offset})
	return nil
}

func nonNilInvoices(invs []*billing.Invoice) []*billing.Invoice {
	if invs == nil {
		return []*billing.Invoice{}
	}
	return invs
}

// createInvoice takes {"client_id", "period_from", "period_to"}.
func (s *Server) createInvoice(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := s.needBilling(); err != nil {
		return err
	}
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	var clientID int64
	var from, to billing.Date
	for k, raw := range body {
		switch k {
		case "client_id":
			if err := json.Unmarshal(raw, &clientID); err != nil || clientID <= 0 {
				return badRequest(k, "must be a positive integer")
			}
		case "period_from", "period_to":
			var d billing.Date
			if err := json.Unmarshal(raw, &d); err != nil || d.IsZero() {
				return badRequest(k, "must be a date (YYYY-MM-DD)")
			}
			if k == "period_from" {
				from = d
			} else {
				to = d
			}
		default:
			return badRequest(k, "unknown field")
		}
	}
	switch {
	case clientID == 0:
		return invalid("client_id", "required")
	case from.IsZero():
		return invalid("period_from", "required")
	case to.IsZero():
		return invalid("period_to", "required")
	}
	before, _, err := s.cfg.Billing.List(r.Context(), caller(p), billing.ListQuery{Client: strconv.FormatInt(clientID, 10), From: from, To: to})
	if errors.Is(err, billing.ErrNotFound) {
		return invalid("client_id", "client %d not found", clientID)
	}
	if err != nil {
		return billingErr(err, "client")
	}
	inv, err := s.cfg.Billing.Create(r.Context(), caller(p), strconv.FormatInt(clientID, 10), from, to)
	if errors.Is(err, billing.ErrNotFound) {
		return invalid("client_id", "client %d not found", clientID)
	}
	if err != nil {
		return billingErr(err, "client")
	}
	status := http.StatusCreated
	for _, b := range before {
		if b.ID == inv.ID {
			status = http.StatusOK // a draft regenerated
		}
	}
	writeJSON(w, status, inv)
	return nil
}

// getInvoice answers /v1/invoices/{id}, {id}.pdf and {id}.csv.
func (s *Server) getInvoice(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := s.needBilling(); err != nil {
		return err
	}
	raw := r.PathValue("id")
	format := "json"
	for _, ext := range []string{".pdf", ".csv"} {
		if strings.HasSuffix(raw, ext) {
			raw, format = strings.TrimSuffix(raw, ext), ext[1:]
		}
	}
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return notFound("invoice")
	}
	inv, err := s.cfg.Billing.Document(r.Context(), caller(p), id)
	if err != nil {
		return billingErr(err, "invoice")
	}
	if format == "json" {
		writeJSON(w, http.StatusOK, inv)
		return nil
	}
	var b bytes.Buffer
	name := fmt.Sprintf("invoice-%d", id)
	if inv.Number != "" {
		name = "invoice-" + strings.NewReplacer("/", "_", `"`, "_", " ", "_").Replace(inv.Number)
	}
	if format == "pdf" {
		if err := billing.WritePDF(&b, inv); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/pdf")
	} else {
		if err := inv.Table().Render(&b, "csv"); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	}
	if _, err := s.cfg.Billing.MarkDownloaded(r.Context(), caller(p), id); err != nil {
		return billingErr(err, "invoice")
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name+"."+format))
	_, _ = w.Write(b.Bytes())
	return nil
}

func (s *Server) invoiceXDRs(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := s.needBilling(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "invoice")
	if err != nil {
		return err
	}
	inv, err := s.cfg.Billing.Get(r.Context(), caller(p), id)
	if err != nil {
		return billingErr(err, "invoice")
	}
	var b bytes.Buffer
	if err := s.cfg.Billing.WriteCalls(r.Context(), &b, inv); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=\"invoice-%d-xdrs.csv\"", id))
	_, _ = w.Write(b.Bytes())
	return nil
}

func (s *Server) invoiceTransition(action string) func(http.ResponseWriter, *http.Request, *principal) error {
	return func(w http.ResponseWriter, r *http.Request, p *principal) error {
		if err := s.needBilling(); err != nil {
			return err
		}
		id, err := pathID(r, "id", "invoice")
		if err != nil {
			return err
		}
		var inv *billing.Invoice
		switch action {
		case "approve":
			inv, err = s.cfg.Billing.Approve(r.Context(), caller(p), id)
		case "pay":
			inv, err = s.cfg.Billing.Pay(r.Context(), caller(p), id)
		case "void":
			inv, err = s.cfg.Billing.Void(r.Context(), caller(p), id)
		default:
			panic("BUG: invoice transition " + action)
		}
		if err != nil {
			return billingErr(err, "invoice")
		}
		writeJSON(w, http.StatusOK, inv)
		return nil
	}
}

// sendInvoice answers the mail: 200 when the server took it, 202 when
// the attempt failed and it waits in the queue.
func (s *Server) sendInvoice(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := s.needBilling(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "invoice")
	if err != nil {
		return err
	}
	m, err := s.cfg.Billing.Send(r.Context(), caller(p), id)
	var de *billing.DeliveryError
	if errors.As(err, &de) {
		writeJSON(w, http.StatusAccepted, m)
		return nil
	}
	if err != nil {
		return billingErr(err, "invoice")
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

// billRun takes {"at": RFC 3339 (default now), "dry_run": bool}.
func (s *Server) billRun(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := s.needBilling(); err != nil {
		return err
	}
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	at := time.Now()
	var dry bool
	for k, raw := range body {
		switch k {
		case "at":
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return badRequest(k, "must be an RFC 3339 time")
			}
			if at, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return invalid(k, "must be an RFC 3339 time such as 2024-04-01T00:00:00Z")
			}
		case "dry_run":
			if err := json.Unmarshal(raw, &dry); err != nil {
				return badRequest(k, "must be true or false")
			}
		default:
			return badRequest(k, "unknown field")
		}
	}
	run, err := s.cfg.Billing.BillRun(r.Context(), caller(p), at, dry)
	if err != nil {
		return billingErr(err, "bill run")
	}
	writeJSON(w, http.StatusOK, run)
	return nil
}

func (s *Server) statement(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := s.needBilling(); err != nil {
		return err
	}
	v := r.URL.Query()
	id, err := strconv.ParseInt(v.Get("client_id"), 10, 64)
	if err != nil || id <= 0 {
		return badRequest("client_id", "required: a positive integer")
	}
	from, err := dateParam(r, "from")
	if err != nil {
		return err
	}
	to, err := dateParam(r, "to")
	if err != nil {
		return err
	}
	st, err := s.cfg.Billing.Statement(r.Context(), caller(p), strconv.FormatInt(id, 10), from, to)
	if err != nil {
		return billingErr(err, "client")
	}
	var b bytes.Buffer
	switch v.Get("format") {
	case "", "json":
		writeJSON(w, http.StatusOK, st)
		return nil
	case "csv":
		if err := st.Table().Render(&b, "csv"); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	case "pdf":
		if err := billing.WriteStatementPDF(&b, st); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/pdf")
	default:
		return badRequest("format", "must be json, csv or pdf")
	}
	_, _ = w.Write(b.Bytes())
	return nil
}

func (s *Server) listMail(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := s.needBilling(); err != nil {
		return err
	}
	v := r.URL.Query()
	limit := 100
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit", "must be an integer from 1 to 1000")
		}
		limit = n
	}
	ms, err := s.cfg.Billing.ListMail(r.Context(), caller(p), v.Get("state"), limit)
	var fe *billing.FieldError
	if errors.As(err, &fe) {
		return badRequest(fe.Field, "%s", fe.Msg)
	}
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []*billing.Mail{}
	}
	items, err := json.Marshal(ms)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, &page{Items: items, Total: int64(len(ms)), Limit: int64(limit)})
	return nil
}

func (s *Server) retryMail(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := s.needBilling(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "mail")
	if err != nil {
		return err
	}
	m, err := s.cfg.Billing.RetryMail(r.Context(), caller(p), id)
	var de *billing.DeliveryError
	if errors.As(err, &de) {
		writeJSON(w, http.StatusAccepted, m)
		return nil
	}
	if err != nil {
		return billingErr(err, "mail")
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

// saveTerms creates (POST) or replaces (PATCH) payment terms through the
// catalog's Writer (billing's rules and store, the catalog file's path
// too), with an audit row in the same transaction.
func (s *Server) saveTerms(w http.ResponseWriter, r *http.Request, p *principal) error {
	var t billing.PaymentTerms
	if err := decodeStrict(r, &t); err != nil {
		return err
	}
	t.ID = 0
	status := http.StatusCreated
	if r.Method == http.MethodPatch {
		id, err := pathID(r, "id", "payment terms")
		if err != nil {
			return err
		}
		t.ID, status = id, http.StatusOK
	}
	err := catalog.Write(r.Context(), s.pool, p.catalogActor(), func(cw *catalog.Writer) error {
		_, err := cw.SavePaymentTerms(r.Context(), &t, false)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, status, &t)
	return nil
}

func (s *Server) getTerms(w http.ResponseWriter, r *http.Request, _ *principal) error {
	id, err := pathID(r, "id", "payment terms")
	if err != nil {
		return err
	}
	t, err := billing.GetTerms(r.Context(), s.pool, id)
	if err != nil {
		return billingErr(err, "payment terms")
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) listTerms(w http.ResponseWriter, r *http.Request, _ *principal) error {
	ts, err := billing.ListTerms(r.Context(), s.pool)
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []*billing.PaymentTerms{}
	}
	items, err := json.Marshal(ts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, &page{Items: items, Total: int64(len(ts)), Limit: int64(len(ts))})
	return nil
}

// saveTaxProfile creates (POST) or replaces (PATCH) a tax profile through
// the catalog's Writer, audited.
func (s *Server) saveTaxProfile(w http.ResponseWriter, r *http.Request, p *principal) error {
	var t billing.TaxProfile
	if err := decodeStrict(r, &t); err != nil {
		return err
	}
	t.ID = 0
	status := http.StatusCreated
	if r.Method == http.MethodPatch {
		id, err := pathID(r, "id", "tax profile")
		if err != nil {
			return err
		}
		t.ID, status = id, http.StatusOK
	}
	err := catalog.Write(r.Context(), s.pool, p.catalogActor(), func(cw *catalog.Writer) error {
		_, err := cw.SaveTaxProfile(r.Context(), &t, false)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, status, &t)
	return nil
}

func (s *Server) getTaxProfile(w http.ResponseWriter, r *http.Request, _ *principal) error {
	id, err := pathID(r, "id", "tax profile")
	if err != nil {
		return err
	}
	t, err := billing.GetTaxProfile(r.Context(), s.pool, id)
	if err != nil {
		return billingErr(err, "tax profile")
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) listTaxProfiles(w http.ResponseWriter, r *http.Request, _ *principal) error {
	ts, err := billing.ListTaxProfiles(r.Context(), s.pool)
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []*billing.TaxProfile{}
	}
	items, err := json.Marshal(ts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, &page{Items: items, Total: int64(len(ts)), Limit: int64(len(ts))})
	return nil
}

// decodeStrict reads a JSON object body into v, refusing unknown fields
// (400) and keeping numbers exact.
func decodeStrict(r *http.Request, v any) error {
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(body)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		field := ""
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field = te.Field
		}
		if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return badRequest(strings.Trim(msg, `"`), "unknown field")
		}
		return badRequest(field, "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}
