package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// clientFilters are the list's filters, named as the API names them.
var clientFilters = []string{"name", "email", "tag", "reseller_id", "manager_id", "status"}

type clientRow struct {
	C        obj
	Bal      obj
	BalErr   string
	Reseller string
	Terms    string
}

type clientListData struct {
	Rows      []clientRow
	Pager     pager
	Query     url.Values
	Archive   bool
	Status    string
	Resellers map[string]string
	Export    string
	Back      string
}

// apiClientQuery is the API's query for the list page's query: Normal mode
// shows active and stopped clients, Archive mode the deleted ones.
func (c *Console) apiClientQuery(q url.Values) (url.Values, bool) {
	aq := c.listQuery(q, clientFilters...)
	archive := q.Get("mode") == "archive"
	switch {
	case archive:
		aq.Set("status", "deleted")
	case aq.Get("status") == "" || aq.Get("status") == "all":
		aq.Set("status", "active,stop")
	}
	return aq, archive
}

func (c *Console) clientList(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	aq, archive := c.apiClientQuery(q)
	var pg page
	if err := c.get(r, s, "/v1/clients", aq, &pg); err != nil {
		return err
	}
	resellers := c.names(r, s, "/v1/resellers", url.Values{})
	for id, n := range c.names(r, s, "/v1/resellers", url.Values{"archived": {"true"}}) {
		resellers[id] = n + " (archived)"
	}
	terms := c.names(r, s, "/v1/payment-terms", url.Values{})
	rows := make([]clientRow, len(pg.Items))
	parallel(len(pg.Items), func(i int) {
		cl := pg.Items[i]
		row := clientRow{C: cl, Reseller: resellers[str(cl["reseller_id"])]}
		if row.Reseller == "" {
			row.Reseller = "#" + str(cl["reseller_id"])
		}
		if t := str(cl["payment_terms_id"]); t != "" {
			row.Terms = terms[t]
			if row.Terms == "" {
				row.Terms = "#" + t
			}
		}
		if err := c.get(r, s, fmt.Sprintf("/v1/clients/%s/balance", str(cl["id"])), nil, &row.Bal); err != nil {
			row.BalErr = err.Error()
		}
		rows[i] = row
	})
	eq := url.Values{}
	for _, k := range clientFilters {
		if v := aq.Get(k); v != "" {
			eq.Set(k, v)
		}
	}
	d := clientListData{Rows: rows, Pager: newPager(pg, q), Query: q, Archive: archive, Status: q.Get("status"),
		Resellers: resellers, Export: "/clients.csv?" + eq.Encode(), Back: r.URL.RequestURI()}
	title := "Clients"
	if archive {
		title = "Clients — archive"
	}
	c.render(w, r, s, http.StatusOK, "clients", &view{Title: title, Section: "clients", Data: d})
	return nil
}

// clientExport streams the API's CSV export of the clients the filters
// select.
func (c *Console) clientExport(w http.ResponseWriter, r *http.Request, s *session) error {
	q := url.Values{}
	for _, k := range clientFilters {
		if v := strings.TrimSpace(r.URL.Query().Get(k)); v != "" {
			q.Set(k, v)
		}
	}
	return c.stream(w, r, s, "/v1/clients.csv", q)
}

// clientMassEdit sets the last invoiced date of the ticked clients in one
// call (all or none, as the API does it).
func (c *Console) clientMassEdit(w http.ResponseWriter, r *http.Request, s *session) error {
	back := safeNext(r.PostFormValue("back"))
	var ids []int64
	for _, v := range r.PostForm["ids"] {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		c.sessions.addFlash(s, "error", "Tick the clients whose last invoiced date to set.")
		return c.redirect(w, r, s, back, "")
	}
	date := strings.TrimSpace(r.PostFormValue("last_invoiced_at"))
	var out struct {
		Updated int `json:"updated"`
	}
	if _, err := c.send(r, s, http.MethodPost, "/v1/clients/last-invoiced", map[string]any{"client_ids": ids, "last_invoiced_at": date}, &out); err != nil {
		if ae, ok := asAPIError(err); ok {
			c.sessions.addFlash(s, "error", "Mass edit refused: "+ae.Error())
			return c.redirect(w, r, s, back, "")
		}
		return err
	}
	return c.redirect(w, r, s, back, fmt.Sprintf("Last invoiced date set to %s on %d of %d clients (the others had it already).", date, out.Updated, len(ids)))
}

// clientHeader is what every tab of a client shows on top.
type clientHeader struct {
	C      obj
	Bal    obj
	BalErr string
	Tab    string
	Tabs   []navItem
	Query  url.Values
}

// clientTabs are the tabs of a client's page; a client token's portal has
// those it may read.
func (c *Console) clientTabs(me identity, id string) []navItem {
	base := "/clients/" + id
	tabs := []navItem{{"Overview", base, "overview"}}
	if me.Operator() {
		tabs = append(tabs, navItem{"Accounts", base + "/accounts", "accounts"})
	}
	tabs = append(tabs, navItem{"Rate tables", base + "/rates", "rates"}, navItem{"Transactions", base + "/transactions", "transactions"},
		navItem{"Balance report", base + "/balance", "balance"}, navItem{"Summary report", base + "/summary", "summary"})
	if c.invoices {
		tabs = append(tabs, navItem{"Invoices", base + "/invoices", "invoices"})
	}
	if me.Operator() {
		tabs = append(tabs, navItem{"Audit log", base + "/audit", "audit"})
	}
	return tabs
}

// header reads the client of the path and its balance.
func (c *Console) header(r *http.Request, s *session, tab string) (*clientHeader, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return nil, err
	}
	h := &clientHeader{Tab: tab, Query: r.URL.Query()}
	if err := c.get(r, s, fmt.Sprintf("/v1/clients/%d", id), nil, &h.C); err != nil {
		return nil, err
	}
	if err := c.get(r, s, fmt.Sprintf("/v1/clients/%d/balance", id), nil, &h.Bal); err != nil {
		if _, ok := asAPIError(err); !ok {
			return nil, err
		}
		h.BalErr = err.Error()
	}
	h.Tabs = c.clientTabs(s.me, strconv.FormatInt(id, 10))
	return h, nil
}

func (c *Console) clientView(w http.ResponseWriter, r *http.Request, s *session, h *clientHeader, page string, data any, apiErr *APIError) {
	section := "clients"
	if s.me.IsClient() && h.Tab == "transactions" {
		section = "transactions"
	}
	status := http.StatusOK
	if apiErr != nil {
		status = apiErr.Status
	}
	c.render(w, r, s, status, page, &view{Title: str(h.C["name"]), Section: section, Err: apiErr,
		Data: map[string]any{"H": h, "D": data}})
}

func (c *Console) clientOverview(w http.ResponseWriter, r *http.Request, s *session) error {
	h, err := c.header(r, s, "overview")
	if err != nil {
		return err
	}
	groups := c.buildForm(r, s, clientLayout, h.C, nil, nil)
	c.clientView(w, r, s, h, "client", groups, nil)
	return nil
}

// formPage is a create or edit form on a page of its own.
func (c *Console) formPage(w http.ResponseWriter, r *http.Request, s *session, section, title string, f form) {
	status := http.StatusOK
	if f.Err != nil {
		status = f.Err.Status
	}
	c.render(w, r, s, status, "form", &view{Title: title, Section: section, Err: f.Err, Data: f})
}

func (c *Console) clientNew(w http.ResponseWriter, r *http.Request, s *session) error {
	init := map[string]string{"reseller_id": r.URL.Query().Get("reseller_id")}
	if init["reseller_id"] == "" && s.me.IsReseller() {
		init["reseller_id"] = strconv.FormatInt(s.me.ResellerID, 10)
	}
	c.formPage(w, r, s, "clients", "New client", form{Action: "/clients/new", Submit: "Create client", Create: true,
		Groups: c.buildForm(r, s, clientLayout, nil, init, nil), Cancel: "/clients"})
	return nil
}

// createFrom posts a create form of lay to path; on the API's refusal it
// shows the form again with what was typed and the API's words.
func (c *Console) createFrom(w http.ResponseWriter, r *http.Request, s *session, lay layout, path string, extra map[string]any, f form, section, title string) (obj, bool, error) {
	body := c.formBody(r, lay, true)
	for k, v := range extra {
		body[k] = v
	}
	var out obj
	if _, err := c.send(r, s, http.MethodPost, path, body, &out); err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return nil, false, err
		}
		f.Err = ae
		f.Groups = c.buildForm(r, s, lay, nil, nil, ae)
		keepPosted(f.Groups, r)
		c.formPage(w, r, s, section, title, f)
		return nil, false, nil
	}
	return out, true, nil
}

func (c *Console) clientCreate(w http.ResponseWriter, r *http.Request, s *session) error {
	out, ok, err := c.createFrom(w, r, s, clientLayout, "/v1/clients", nil,
		form{Action: "/clients/new", Submit: "Create client", Create: true, Cancel: "/clients"}, "clients", "New client")
	if !ok {
		return err
	}
	return c.redirect(w, r, s, "/clients/"+str(out["id"]), fmt.Sprintf("Client %s created (#%s).", str(out["name"]), str(out["id"])))
}

func (c *Console) clientEdit(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var cl obj
	if err := c.get(r, s, fmt.Sprintf("/v1/clients/%d", id), nil, &cl); err != nil {
		return err
	}
	c.formPage(w, r, s, "clients", "Edit "+str(cl["name"]), form{Action: fmt.Sprintf("/clients/%d/edit", id), Submit: "Save",
		Groups: c.buildForm(r, s, clientLayout, cl, nil, nil), Cancel: fmt.Sprintf("/clients/%d", id)})
	return nil
}

// updateFrom PATCHes what an edit form changed; on the API's refusal it
// shows the form again.
func (c *Console) updateFrom(w http.ResponseWriter, r *http.Request, s *session, lay layout, path string, cur obj, f form, section, title string) (bool, bool, error) {
	body := c.formBody(r, lay, false)
	if len(body) == 0 {
		return true, false, nil
	}
	if _, err := c.send(r, s, http.MethodPatch, path, body, nil); err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return false, false, err
		}
		f.Err = ae
		f.Groups = c.buildForm(r, s, lay, cur, nil, ae)
		keepPosted(f.Groups, r)
		c.formPage(w, r, s, section, title, f)
		return false, false, nil
	}
	return true, true, nil
}

func (c *Console) clientUpdate(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var cl obj
	if err := c.get(r, s, fmt.Sprintf("/v1/clients/%d", id), nil, &cl); err != nil {
		return err
	}
	ok, changed, err := c.updateFrom(w, r, s, clientLayout, fmt.Sprintf("/v1/clients/%d", id), cl,
		form{Action: fmt.Sprintf("/clients/%d/edit", id), Submit: "Save", Cancel: fmt.Sprintf("/clients/%d", id)}, "clients", "Edit "+str(cl["name"]))
	if !ok {
		return err
	}
	msg := "Nothing changed."
	if changed {
		msg = fmt.Sprintf("Client %s saved.", str(cl["name"]))
	}
	return c.redirect(w, r, s, fmt.Sprintf("/clients/%d", id), msg)
}

func (c *Console) clientDeletePage(w http.ResponseWriter, r *http.Request, s *session) error {
	h, err := c.header(r, s, "overview")
	if err != nil {
		return err
	}
	c.clientView(w, r, s, h, "client_delete", nil, nil)
	return nil
}

// clientDelete deletes a client (status deleted: its accounts lose orig
// and term but stay) or, for a client already deleted, removes it for good
// when the API allows it.
func (c *Console) clientDelete(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	full := r.PostFormValue("full") == "true"
	path := fmt.Sprintf("/v1/clients/%d", id)
	if full {
		path += "?full=true"
	}
	if _, err := c.send(r, s, http.MethodDelete, path, nil, nil); err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return err
		}
		h, herr := c.header(r, s, "overview")
		if herr != nil {
			return herr
		}
		c.clientView(w, r, s, h, "client_delete", nil, ae)
		return nil
	}
	if full {
		return c.redirect(w, r, s, "/clients?mode=archive", fmt.Sprintf("Client #%d removed for good.", id))
	}
	return c.redirect(w, r, s, fmt.Sprintf("/clients/%d", id), "Client deleted: its accounts lost orig and term but stay.")
}
