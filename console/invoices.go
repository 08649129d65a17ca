package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
)

// invoiceStates are the states of DESIGN.md "Invoices and bill runs".
var invoiceStates = []string{"to_verify", "to_send", "sent", "paid", "void"}

// invoiceActions are the buttons an invoice in a state offers, in the
// order of DOMAIN.md's flow (to_verify → to_send → sent → paid; void).
// They are presentation: the API refuses a transition it does not allow,
// and the console shows its words.
var invoiceActions = map[string][]string{
	"to_verify": {"approve"},
	"to_send":   {"send", "pay", "void"},
	"sent":      {"pay", "void"},
	"paid":      {"void"},
}

var invoiceVerbs = map[string]string{"approve": "approved", "send": "sent", "pay": "marked paid", "void": "voided"}

type invoiceListData struct {
	Items   []obj
	Pager   pager
	Query   url.Values
	States  []string
	Actions map[string][]string
	Err     string
	Back    string
}

// needInvoices answers 404 while the API has no /v1/invoices.
func (c *Console) needInvoices() error {
	if !c.invoices {
		return &APIError{Status: http.StatusNotFound, Msg: "this API does not serve invoices yet"}
	}
	return nil
}

func (c *Console) invoiceList(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.needInvoices(); err != nil {
		return err
	}
	q := r.URL.Query()
	var pg page
	if err := c.get(r, s, "/v1/invoices", c.listQuery(q, "state", "client_id", "from", "to"), &pg); err != nil {
		return err
	}
	d := invoiceListData{Items: pg.Items, Pager: newPager(pg, q), Query: q, States: invoiceStates, Actions: invoiceActions, Back: r.URL.RequestURI()}
	if s.me.IsClient() {
		d.Actions = nil
	}
	c.render(w, r, s, http.StatusOK, "invoices", &view{Title: "Invoices", Section: "invoices", Data: d})
	return nil
}

type invoiceData struct {
	I       obj
	Actions []string
}

func (c *Console) invoiceDetail(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.needInvoices(); err != nil {
		return err
	}
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var inv obj
	if err := c.get(r, s, fmt.Sprintf("/v1/invoices/%d", id), nil, &inv); err != nil {
		return err
	}
	d := invoiceData{I: inv}
	if s.me.Operator() {
		d.Actions = invoiceActions[str(inv["state"])]
	}
	title := "Invoice " + str(inv["number"])
	if str(inv["number"]) == "" {
		title = fmt.Sprintf("Draft invoice %d", id)
	}
	c.render(w, r, s, http.StatusOK, "invoice", &view{Title: title, Section: "invoices", Data: d})
	return nil
}

// invoicePDF and invoiceCSV hand the API's documents to the browser.
func (c *Console) invoicePDF(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.invoiceDoc(w, r, s, "pdf")
}

func (c *Console) invoiceCSV(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.invoiceDoc(w, r, s, "csv")
}

func (c *Console) invoiceDoc(w http.ResponseWriter, r *http.Request, s *session, ext string) error {
	if err := c.needInvoices(); err != nil {
		return err
	}
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if w.Header().Get("Content-Disposition") == "" {
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="invoice-%d.%s"`, id, ext))
	}
	return c.stream(w, r, s, fmt.Sprintf("/v1/invoices/%d.%s", id, ext), nil)
}

// invoiceAction approves, sends, pays or voids an invoice.
func (c *Console) invoiceAction(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.needInvoices(); err != nil {
		return err
	}
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	action := r.PathValue("action")
	if !slices.Contains([]string{"approve", "send", "pay", "void"}, action) {
		return &APIError{Status: http.StatusNotFound, Msg: "no such page in the console"}
	}
	back := safeNext(r.PostFormValue("back"))
	if back == "/" {
		back = fmt.Sprintf("/invoices/%d", id)
	}
	var inv obj
	status, err := c.send(r, s, http.MethodPost, fmt.Sprintf("/v1/invoices/%d/%s", id, action), nil, &inv)
	if err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return err
		}
		c.sessions.addFlash(s, "error", fmt.Sprintf("Invoice %d: %s refused: %s", id, action, ae.Error()))
		return c.redirect(w, r, s, back, "")
	}
	name := str(inv["number"])
	if name == "" {
		name = fmt.Sprintf("#%d", id)
	}
	msg := fmt.Sprintf("Invoice %s %s; it is now %s.", name, invoiceVerbs[action], str(inv["state"]))
	if status == http.StatusAccepted {
		msg = fmt.Sprintf("Invoice %s: the e-mail could not go out yet and waits in the mail queue.", name)
	}
	return c.redirect(w, r, s, back, msg)
}
