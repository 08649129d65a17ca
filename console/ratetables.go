package console

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

type rateTablesData struct {
	Items     []obj
	Pager     pager
	Query     url.Values
	Archive   bool
	Tables    map[string]string
	Resellers map[string]string
}

func (c *Console) rateTableList(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	archive := q.Get("mode") == "archive"
	aq := c.listQuery(q, "name", "currency")
	aq.Set("archived", fmt.Sprint(archive))
	var pg page
	if err := c.get(r, s, "/v1/rate-tables", aq, &pg); err != nil {
		return err
	}
	d := rateTablesData{Items: pg.Items, Pager: newPager(pg, q), Query: q, Archive: archive,
		Tables: c.names(r, s, "/v1/rate-tables", url.Values{}), Resellers: map[string]string{}}
	if s.me.Operator() {
		d.Resellers = c.names(r, s, "/v1/resellers", url.Values{})
	}
	c.render(w, r, s, http.StatusOK, "ratetables", &view{Title: "Rate tables", Section: "rates", Data: d})
	return nil
}

// importResult is the API's answer to a deck import (ImportResult).
type importResult struct {
	DryRun    bool   `json:"dry_run"`
	Applied   bool   `json:"applied"`
	Mode      string `json:"mode"`
	Added     int64  `json:"added_count"`
	Changed   int64  `json:"changed_count"`
	Removed   int64  `json:"removed_count"`
	Unchanged int64  `json:"unchanged_count"`
	Rejected  int64  `json:"rejected_count"`
	Lines     []struct {
		Line   int64  `json:"line"`
		Reason string `json:"reason"`
	} `json:"rejected"`
	Error string `json:"error"`
}

type ratesData struct {
	T      obj
	Parent string
	Items  []obj
	Pager  pager
	Query  url.Values
	Check  *importResult // a dry run just made
	Staged *stagedDeck   // what Apply applies
	Upload bool          // the token may import (admin)
}

func (c *Console) rateTableRates(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.showRates(w, r, s, nil, nil, nil)
}

func (c *Console) showRates(w http.ResponseWriter, r *http.Request, s *session, check *importResult, staged *stagedDeck, refused *APIError) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	d := ratesData{Query: r.URL.Query(), Check: check, Staged: staged, Upload: s.me.IsAdmin()}
	if err := c.get(r, s, fmt.Sprintf("/v1/rate-tables/%d", id), nil, &d.T); err != nil {
		return err
	}
	if p := str(d.T["parent_id"]); p != "" {
		var parent obj
		if c.get(r, s, "/v1/rate-tables/"+p, nil, &parent) == nil {
			d.Parent = str(parent["name"])
		}
	}
	q := r.URL.Query()
	if r.Method != http.MethodGet {
		q = url.Values{}
	}
	var pg page
	if err := c.get(r, s, fmt.Sprintf("/v1/rate-tables/%d/rates", id), c.listQuery(q, "code", "prefix", "at", "status"), &pg); err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return err
		}
		refused = ae // a bad filter: say so above the empty table
	}
	d.Items, d.Pager = pg.Items, newPager(pg, q)
	status := http.StatusOK
	if refused != nil {
		status = refused.Status
	}
	c.render(w, r, s, status, "rates", &view{Title: str(d.T["name"]), Section: "rates", Err: refused, Data: d})
	return nil
}

// deckCheck reads an uploaded deck, asks the API for a dry run of it and
// keeps it, byte for byte, for Apply: the operator sees every rejected
// line before anything changes, and applies exactly what was checked.
func (c *Console) deckCheck(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(c.cfg.DeckReadTimeout))
	mr, err := r.MultipartReader()
	if err != nil {
		return &APIError{Status: http.StatusBadRequest, Msg: "send the deck with the upload form"}
	}
	var csrf, mode, name string
	var content []byte
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return &APIError{Status: http.StatusBadRequest, Msg: "read the upload: " + err.Error()}
		}
		switch part.FormName() {
		case "csrf", "mode":
			b, _, err := readLimited(part, 1024)
			if err != nil {
				return &APIError{Status: http.StatusBadRequest, Msg: "read the upload: " + err.Error()}
			}
			if part.FormName() == "csrf" {
				csrf = string(b)
			} else {
				mode = string(b)
			}
		case "deck":
			name = part.FileName()
			b, tooBig, err := readLimited(part, c.cfg.MaxDeck)
			if err != nil {
				return &APIError{Status: http.StatusBadRequest, Msg: "read the upload: " + err.Error()}
			}
			if tooBig {
				return &APIError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("deck above %d bytes", c.cfg.MaxDeck)}
			}
			content = b
		}
		_ = part.Close()
	}
	if !s.validCSRF(csrf) {
		return &APIError{Status: http.StatusForbidden, Msg: "this form has expired (its CSRF token does not match your session): reload the page and try again"}
	}
	if content == nil {
		return c.showRates(w, r, s, nil, nil, &APIError{Status: http.StatusUnprocessableEntity, Field: "deck", Msg: "choose a deck CSV file to check"})
	}
	res, refused, err := c.importDeck(r, s, id, mode, content, true)
	if err != nil {
		return err
	}
	if res == nil {
		return c.showRates(w, r, s, nil, nil, refused)
	}
	var staged *stagedDeck
	if refused == nil { // the API would take it: offer to apply it
		staged = &stagedDeck{id: randomID(), table: id, mode: res.Mode, name: name, content: content}
		if !c.sessions.stage(s, staged) {
			return &APIError{Status: http.StatusServiceUnavailable, Msg: "too many decks are waiting to be applied on this server: apply or drop one, then check again"}
		}
	}
	return c.showRates(w, r, s, res, staged, refused)
}

// importDeck sends a deck to the API. res is the API's report (a refusal
// of a replace with rejected lines carries one too), refused its refusal.
func (c *Console) importDeck(r *http.Request, s *session, id int64, mode string, content []byte, dry bool) (*importResult, *APIError, error) {
	q := url.Values{"mode": {mode}}
	if dry {
		q.Set("dry_run", "true")
	}
	rep, err := c.call(r, s.token, http.MethodPost, fmt.Sprintf("/v1/rate-tables/%d/rates?%s", id, q.Encode()), bytes.NewReader(content), "text/csv")
	if err != nil {
		return nil, nil, err
	}
	refused, _ := asAPIError(rep.asError())
	var res importResult
	if decode(rep.body.Bytes(), &res) != nil || (refused != nil && res.Mode == "") {
		return nil, refused, nil
	}
	return &res, refused, nil
}

// deckApply applies the deck the session checked last, unchanged.
func (c *Console) deckApply(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	d := c.sessions.peekStaged(s, r.PostFormValue("staged"))
	if d == nil || d.table != id {
		c.sessions.addFlash(s, "error", "That checked deck is no longer waiting (applied already, or replaced by a newer check): upload it again.")
		return c.redirect(w, r, s, fmt.Sprintf("/rate-tables/%d", id), "")
	}
	res, refused, err := c.importDeck(r, s, id, d.mode, d.content, false)
	if err != nil {
		return err
	}
	if refused != nil {
		return c.showRates(w, r, s, res, nil, refused)
	}
	c.sessions.takeStaged(s, d.id)
	msg := fmt.Sprintf("Deck %s applied (%s): %d added, %d changed, %d unchanged", d.name, res.Mode, res.Added, res.Changed, res.Unchanged)
	if res.Mode == "replace" {
		msg += fmt.Sprintf(", %d removed", res.Removed)
	}
	if res.Rejected > 0 {
		msg += fmt.Sprintf("; %d lines rejected and left out", res.Rejected)
	}
	return c.redirect(w, r, s, fmt.Sprintf("/rate-tables/%d", id), msg+".")
}

func (c *Console) rateTableNew(w http.ResponseWriter, r *http.Request, s *session) error {
	c.formPage(w, r, s, "rates", "New rate table", form{Action: "/rate-tables/new", Submit: "Create rate table", Create: true,
		Groups: c.buildForm(r, s, rateTableLayout, nil, nil, nil), Cancel: "/rate-tables"})
	return nil
}

func (c *Console) rateTableCreate(w http.ResponseWriter, r *http.Request, s *session) error {
	out, ok, err := c.createFrom(w, r, s, rateTableLayout, "/v1/rate-tables", nil,
		form{Action: "/rate-tables/new", Submit: "Create rate table", Create: true, Cancel: "/rate-tables"}, "rates", "New rate table")
	if !ok {
		return err
	}
	return c.redirect(w, r, s, "/rate-tables/"+str(out["id"]), fmt.Sprintf("Rate table %s created (#%s): upload its deck below.", str(out["name"]), str(out["id"])))
}

func (c *Console) rateTableEdit(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var t obj
	if err := c.get(r, s, fmt.Sprintf("/v1/rate-tables/%d", id), nil, &t); err != nil {
		return err
	}
	c.formPage(w, r, s, "rates", "Edit "+str(t["name"]), form{Action: fmt.Sprintf("/rate-tables/%d/edit", id), Submit: "Save",
		Groups: c.buildForm(r, s, rateTableLayout, t, nil, nil), Cancel: fmt.Sprintf("/rate-tables/%d", id)})
	return nil
}

func (c *Console) rateTableUpdate(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var t obj
	if err := c.get(r, s, fmt.Sprintf("/v1/rate-tables/%d", id), nil, &t); err != nil {
		return err
	}
	ok, changed, err := c.updateFrom(w, r, s, rateTableLayout, fmt.Sprintf("/v1/rate-tables/%d", id), t,
		form{Action: fmt.Sprintf("/rate-tables/%d/edit", id), Submit: "Save", Cancel: fmt.Sprintf("/rate-tables/%d", id)}, "rates", "Edit "+str(t["name"]))
	if !ok {
		return err
	}
	msg := "Nothing changed."
	if changed {
		msg = "Rate table " + strings.TrimSpace(str(t["name"])) + " saved."
	}
	return c.redirect(w, r, s, fmt.Sprintf("/rate-tables/%d", id), msg)
}
