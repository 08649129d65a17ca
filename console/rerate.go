package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tarifa/tarifa/rerate"
)

// reasons are the mismatch reasons a selection may name: the rerate
// package's list, which the API checks against.
func reasons() []string {
	out := make([]string, len(rerate.Reasons))
	for i, r := range rerate.Reasons {
		out[i] = string(r)
	}
	return out
}

type rerateFormData struct {
	Period  period
	Clients []obj
	Reasons []string
	Jobs    []obj
	Posted  url.Values
}

func (c *Console) rerateForm(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.showRerateForm(w, r, s, nil)
}

func (c *Console) showRerateForm(w http.ResponseWriter, r *http.Request, s *session, refused *APIError) error {
	d := rerateFormData{Period: c.periodOf(r, s), Reasons: reasons(), Posted: url.Values{}}
	var cl page
	if err := c.get(r, s, "/v1/clients", url.Values{"status": {"all"}, "limit": {"1000"}}, &cl); err != nil {
		return err
	}
	d.Clients = cl.Items
	var jobs struct {
		Jobs []obj `json:"jobs"`
	}
	if err := c.get(r, s, "/v1/rerate-jobs", url.Values{"limit": {"20"}}, &jobs); err != nil {
		return err
	}
	d.Jobs = jobs.Jobs
	status := http.StatusOK
	if refused != nil {
		d.Posted = r.PostForm
		d.Period = period{From: r.PostFormValue("from"), To: r.PostFormValue("to"), TZ: r.PostFormValue("tz"), Quick: d.Period.Quick}
		status = refused.Status
	}
	c.render(w, r, s, status, "rerate", &view{Title: "Rerating", Section: "rerate", Err: refused, Data: d})
	return nil
}

// selectionBody is a rerating selection as POST /v1/rerate-jobs takes it.
func selectionBody(from, to, tz, side, status string, clients []any, reasons, codes []string, dry bool) map[string]any {
	b := map[string]any{"from": from, "to": to, "tz": tz, "dry_run": dry}
	if side != "" {
		b["side"] = side
	}
	if status != "" {
		b["status"] = status
	}
	if len(clients) > 0 {
		b["clients"] = clients
	}
	if len(reasons) > 0 {
		b["reasons"] = reasons
	}
	if len(codes) > 0 {
		b["codes"] = codes
	}
	return b
}

// rerateDryRun starts a dry run of the selection posted: it changes
// nothing and shows per client, side and currency what a job would move.
func (c *Console) rerateDryRun(w http.ResponseWriter, r *http.Request, s *session) error {
	var clients []any
	for _, v := range r.PostForm["clients"] {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil {
			clients = append(clients, id)
		} else if v = strings.TrimSpace(v); v != "" {
			clients = append(clients, v)
		}
	}
	var codes []string
	for _, p := range strings.Split(r.PostFormValue("codes"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			codes = append(codes, p)
		}
	}
	body := selectionBody(r.PostFormValue("from"), r.PostFormValue("to"), r.PostFormValue("tz"), r.PostFormValue("side"),
		r.PostFormValue("status"), clients, r.PostForm["reasons"], codes, true)
	var job obj
	if _, err := c.send(r, s, http.MethodPost, "/v1/rerate-jobs", body, &job); err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return err
		}
		return c.showRerateForm(w, r, s, ae)
	}
	return c.redirect(w, r, s, "/rerate/"+str(job["job"]), "")
}

type rerateJobData struct {
	J        obj
	Sel      obj
	Running  bool
	Clients  map[string]string
	Progress string
	Confirm  bool // the job's scope is the session's: its dry run is what a job of the session would do
}

// sameScope reports whether job was started for the subtree the session's
// token rerates: the whole world for an admin, its own for a reseller. A
// dry run of another scope is not what the session's job would move (an
// admin's job also moves the vendors a reseller's leaves as they were),
// so it is not offered for confirmation.
func sameScope(me identity, job obj) bool {
	reseller := idOf(job["reseller_id"])
	switch {
	case me.IsAdmin():
		return reseller == 0
	case me.IsReseller():
		return reseller == me.ResellerID
	}
	return false
}

func (c *Console) rerateJob(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var job obj
	if err := c.get(r, s, fmt.Sprintf("/v1/rerate-jobs/%d", id), nil, &job); err != nil {
		return err
	}
	// A job, dry run or not, is under way until it has finished (a failed
	// one has finished too, and waits to be resumed).
	d := rerateJobData{J: job, Running: job["finished_at"] == nil && str(job["state"]) != "failed", Clients: map[string]string{},
		Confirm: sameScope(s.me, job)}
	d.Sel, _ = job["selection"].(obj)
	if ids, ok := d.Sel["clients"].([]any); ok {
		for _, v := range ids {
			var cl obj
			if c.get(r, s, "/v1/clients/"+str(v), nil, &cl) == nil {
				d.Clients[str(v)] = str(cl["name"])
			}
		}
	}
	title := fmt.Sprintf("Rerating job %d", id)
	if str(job["state"]) == "dry_run" {
		title = fmt.Sprintf("Dry run %d", id)
	}
	c.render(w, r, s, http.StatusOK, "rerate_job", &view{Title: title, Section: "rerate", Data: d})
	return nil
}

// rerateConfirm runs, for real, the selection of a dry run. The job rates
// against the catalog as it is when it starts, which may differ from the
// dry run's: the job's own page shows what it moved.
func (c *Console) rerateConfirm(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var dry obj
	if err := c.get(r, s, fmt.Sprintf("/v1/rerate-jobs/%d", id), nil, &dry); err != nil {
		return err
	}
	if !sameScope(s.me, dry) {
		c.sessions.addFlash(s, "error", "This dry run was made for another scope (a reseller's subtree, or the whole world): "+
			"its figures are not what your job would move. Run a dry run of your own first.")
		return c.redirect(w, r, s, fmt.Sprintf("/rerate/%d", id), "")
	}
	sel, _ := dry["selection"].(obj)
	var clients []any
	if ids, ok := sel["clients"].([]any); ok {
		clients = ids
	}
	strs := func(v any) []string {
		var out []string
		if l, ok := v.([]any); ok {
			for _, x := range l {
				out = append(out, str(x))
			}
		}
		return out
	}
	body := selectionBody(str(sel["from"]), str(sel["to"]), str(sel["tz"]), str(sel["side"]), str(sel["status"]),
		clients, strs(sel["reasons"]), strs(sel["codes"]), false)
	var job obj
	status, err := c.send(r, s, http.MethodPost, "/v1/rerate-jobs", body, &job)
	if err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return err
		}
		c.sessions.addFlash(s, "error", "The job was refused: "+ae.Error())
		return c.redirect(w, r, s, fmt.Sprintf("/rerate/%d", id), "")
	}
	msg := fmt.Sprintf("Job %s done: balances moved by the deltas below.", str(job["job"]))
	if status == http.StatusAccepted {
		msg = fmt.Sprintf("Job %s is running; this page follows it.", str(job["job"]))
	}
	return c.redirect(w, r, s, "/rerate/"+str(job["job"]), msg)
}

func (c *Console) rerateResume(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var job obj
	if _, err := c.send(r, s, http.MethodPost, fmt.Sprintf("/v1/rerate-jobs/%d/resume", id), nil, &job); err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return err
		}
		c.sessions.addFlash(s, "error", "Resume refused: "+ae.Error())
		return c.redirect(w, r, s, fmt.Sprintf("/rerate/%d", id), "")
	}
	return c.redirect(w, r, s, fmt.Sprintf("/rerate/%d", id), fmt.Sprintf("Job %d resumed.", id))
}
