package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

type accountsData struct {
	Accounts []obj
	Tables   map[string]string
	New      form
}

func (c *Console) clientAccounts(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.showAccounts(w, r, s, nil)
}

func (c *Console) showAccounts(w http.ResponseWriter, r *http.Request, s *session, refused *APIError) error {
	h, err := c.header(r, s, "accounts")
	if err != nil {
		return err
	}
	id := str(h.C["id"])
	var pg page
	if err := c.get(r, s, "/v1/clients/"+id+"/accounts", url.Values{"limit": {"1000"}}, &pg); err != nil {
		return err
	}
	d := accountsData{Accounts: pg.Items, Tables: c.names(r, s, "/v1/rate-tables", url.Values{}),
		New: form{Action: "/clients/" + id + "/accounts", Submit: "Add account", Create: true,
			Groups: c.buildForm(r, s, accountLayout, nil, nil, refused)}}
	if refused != nil {
		keepPosted(d.New.Groups, r)
		d.New.Err = refused
	}
	c.clientView(w, r, s, h, "client_accounts", d, refused)
	return nil
}

func (c *Console) accountCreate(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var out obj
	if _, err := c.send(r, s, http.MethodPost, fmt.Sprintf("/v1/clients/%d/accounts", id), c.formBody(r, accountLayout, true), &out); err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return err
		}
		return c.showAccounts(w, r, s, ae)
	}
	return c.redirect(w, r, s, fmt.Sprintf("/clients/%d/accounts", id), fmt.Sprintf("Account %s %s added (#%s).", str(out["kind"]), str(out["ident"]), str(out["id"])))
}

func (c *Console) accountEdit(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var acc obj
	if err := c.get(r, s, fmt.Sprintf("/v1/accounts/%d", id), nil, &acc); err != nil {
		return err
	}
	back := "/clients/" + str(acc["client_id"]) + "/accounts"
	c.formPage(w, r, s, "clients", "Edit account "+str(acc["ident"]), form{Action: fmt.Sprintf("/accounts/%d/edit", id), Submit: "Save",
		Groups: c.buildForm(r, s, accountLayout, acc, nil, nil), Cancel: back})
	return nil
}

func (c *Console) accountUpdate(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var acc obj
	if err := c.get(r, s, fmt.Sprintf("/v1/accounts/%d", id), nil, &acc); err != nil {
		return err
	}
	back := "/clients/" + str(acc["client_id"]) + "/accounts"
	ok, changed, err := c.updateFrom(w, r, s, accountLayout, fmt.Sprintf("/v1/accounts/%d", id), acc,
		form{Action: fmt.Sprintf("/accounts/%d/edit", id), Submit: "Save", Cancel: back}, "clients", "Edit account "+str(acc["ident"]))
	if !ok {
		return err
	}
	msg := "Nothing changed."
	if changed {
		msg = "Account " + str(acc["ident"]) + " saved."
	}
	return c.redirect(w, r, s, back, msg)
}

// accountDeactivate sets an account inactive (history stays).
func (c *Console) accountDeactivate(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var acc obj
	if _, err := c.send(r, s, http.MethodDelete, fmt.Sprintf("/v1/accounts/%d", id), nil, &acc); err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return err
		}
		c.sessions.addFlash(s, "error", "Deactivation refused: "+ae.Error())
		return c.redirect(w, r, s, safeNext(r.PostFormValue("back")), "")
	}
	return c.redirect(w, r, s, "/clients/"+str(acc["client_id"])+"/accounts", "Account "+str(acc["ident"])+" deactivated; its history stays.")
}

// tableRef is a rate table a client is rated with, or why it cannot be
// shown to this token.
type tableRef struct {
	Use   string
	ID    string
	Table obj
	Err   string
}

func (c *Console) clientRates(w http.ResponseWriter, r *http.Request, s *session) error {
	h, err := c.header(r, s, "rates")
	if err != nil {
		return err
	}
	var refs []tableRef
	add := func(use, id string) {
		if id == "" {
			return
		}
		t := tableRef{Use: use, ID: id}
		if err := c.get(r, s, "/v1/rate-tables/"+id, nil, &t.Table); err != nil {
			if _, ok := asAPIError(err); !ok {
				return
			}
			t.Err = err.Error()
		}
		refs = append(refs, t)
	}
	add("Orig (client)", str(h.C["orig_rate_table_id"]))
	add("Term (client)", str(h.C["term_rate_table_id"]))
	if s.me.Operator() {
		var pg page
		if err := c.get(r, s, "/v1/clients/"+str(h.C["id"])+"/accounts", url.Values{"limit": {"1000"}}, &pg); err == nil {
			for _, a := range pg.Items {
				who := str(a["kind"]) + " " + str(a["ident"])
				add("Orig override of "+who, str(a["orig_rate_table_id"]))
				add("Term override of "+who, str(a["term_rate_table_id"]))
			}
		}
	}
	c.clientView(w, r, s, h, "client_rates", refs, nil)
	return nil
}

type transactionsData struct {
	Items []obj
	Pager pager
	Kinds []string
	Ref   string
	Form  map[string]string
}

func (c *Console) clientTransactions(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.showTransactions(w, r, s, nil)
}

func (c *Console) showTransactions(w http.ResponseWriter, r *http.Request, s *session, refused *APIError) error {
	h, err := c.header(r, s, "transactions")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var pg page
	if err := c.get(r, s, "/v1/clients/"+str(h.C["id"])+"/transactions", c.listQuery(q, "kind", "from", "to"), &pg); err != nil {
		return err
	}
	d := transactionsData{Items: pg.Items, Pager: newPager(pg, q), Kinds: c.schemas["NewTransaction"].Properties["kind"].Enum,
		Ref: "console-" + randomID()[:12], Form: map[string]string{"kind": "payment"}}
	if len(d.Kinds) == 0 {
		d.Kinds = []string{"payment", "adjustment", "charge"}
	}
	if refused != nil {
		for _, k := range []string{"kind", "amount", "at", "ref", "notes"} {
			d.Form[k] = r.PostFormValue(k)
		}
		d.Ref = d.Form["ref"]
	}
	c.clientView(w, r, s, h, "client_transactions", d, refused)
	return nil
}

// transactionCreate posts a payment, charge or adjustment. The form
// carries a reference made when it was shown, so sending it twice (a
// double click, a resubmitted page) records it once: the API answers the
// stored transaction for a ref it has seen.
func (c *Console) transactionCreate(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	body := map[string]any{"client_id": id, "kind": r.PostFormValue("kind"), "amount": strings.TrimSpace(r.PostFormValue("amount"))}
	for _, k := range []string{"at", "ref", "notes"} {
		if v := strings.TrimSpace(r.PostFormValue(k)); v != "" {
			body[k] = v
		}
	}
	var out obj
	status, err := c.send(r, s, http.MethodPost, "/v1/transactions", body, &out)
	if err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return err
		}
		return c.showTransactions(w, r, s, ae)
	}
	msg := fmt.Sprintf("%s of %s %s recorded (#%s).", capital(str(out["kind"])), str(out["amount"]), str(out["currency"]), str(out["id"]))
	if status == http.StatusOK {
		msg = fmt.Sprintf("This %s (ref %s) was recorded already as #%s: nothing was posted twice.", str(out["kind"]), str(out["ref"]), str(out["id"]))
	}
	return c.redirect(w, r, s, fmt.Sprintf("/clients/%d/transactions", id), msg)
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// reportData is a report on a page: the period and choices asked, the
// table, and a chart.
type reportData struct {
	Name    string
	Period  period
	Query   url.Values
	Table   *table
	Err     string
	Chart   any
	Options map[string][]string
	By      []string
	Metric  string
	Metrics []string
	Action  string
}

func (c *Console) clientBalanceReport(w http.ResponseWriter, r *http.Request, s *session) error {
	h, err := c.header(r, s, "balance")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	p := c.periodOf(r, s)
	aq := p.values()
	aq.Set("client", str(h.C["id"]))
	aq.Set("mode", orDefault(q.Get("mode"), "live"))
	aq.Set("by", orDefault(q.Get("by"), "day"))
	d := reportData{Name: "balance", Period: p, Query: q, Action: "/clients/" + str(h.C["id"]) + "/balance",
		Options: map[string][]string{"mode": {"live", "fixed"}, "by": {"day", "month"}}, By: []string{aq.Get("mode"), aq.Get("by")}}
	if d.Table, err = c.reportOf(r, s, "balance", aq); err != nil {
		if _, ok := asAPIError(err); !ok {
			return err
		}
		d.Err = err.Error()
	}
	c.clientView(w, r, s, h, "client_report", d, nil)
	return nil
}

func (c *Console) clientSummary(w http.ResponseWriter, r *http.Request, s *session) error {
	h, err := c.header(r, s, "summary")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	p := c.periodOf(r, s)
	aq := p.values()
	aq.Set("client", str(h.C["id"]))
	by := orDefault(q.Get("by"), "day")
	aq.Set("by", by)
	d := reportData{Name: "summary", Period: p, Query: q, Action: "/clients/" + str(h.C["id"]) + "/summary",
		Options: map[string][]string{"by": {"day", "hour", "month", "code_name", "code", "account"}}, By: []string{by}}
	if d.Table, err = c.reportOf(r, s, "summary", aq); err != nil {
		if _, ok := asAPIError(err); !ok {
			return err
		}
		d.Err = err.Error()
	} else {
		d.Chart = barChart("Calls by "+by, d.Table.column(by), d.Table.column("calls"))
	}
	c.clientView(w, r, s, h, "client_report", d, nil)
	return nil
}

func (c *Console) clientInvoices(w http.ResponseWriter, r *http.Request, s *session) error {
	h, err := c.header(r, s, "invoices")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	aq := c.listQuery(q, "state")
	aq.Set("client_id", str(h.C["id"]))
	d := invoiceListData{Query: q, States: invoiceStates}
	if !c.invoices {
		d.Err = "this API does not serve invoices yet"
	} else {
		var pg page
		if err := c.get(r, s, "/v1/invoices", aq, &pg); err != nil {
			if _, ok := asAPIError(err); !ok {
				return err
			}
			d.Err = err.Error()
		}
		d.Items, d.Pager = pg.Items, newPager(pg, q)
	}
	c.clientView(w, r, s, h, "client_invoices", d, nil)
	return nil
}

func (c *Console) clientAudit(w http.ResponseWriter, r *http.Request, s *session) error {
	h, err := c.header(r, s, "audit")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	aq := c.listQuery(q)
	aq.Set("entity", "client")
	aq.Set("entity_id", str(h.C["id"]))
	d, err := c.auditData(r, s, aq, q)
	if err != nil {
		return err
	}
	c.clientView(w, r, s, h, "client_audit", d, nil)
	return nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// atoi is s as an int, 0 when it is not one.
func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
