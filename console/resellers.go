package console

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
)

// treeRow is a reseller in the tree, with what the operator scans for.
type treeRow struct {
	R        obj
	Depth    int
	Clients  string // every client, whatever its status
	Active   string
	Managers []obj
	Parent   string
}

type treeData struct {
	Rows    []treeRow
	Archive bool
}

func (c *Console) resellerTree(w http.ResponseWriter, r *http.Request, s *session) error {
	archive := r.URL.Query().Get("mode") == "archive"
	var pg, mg page
	if err := c.get(r, s, "/v1/resellers", url.Values{"limit": {"1000"}, "archived": {strconv.FormatBool(archive)}}, &pg); err != nil {
		return err
	}
	if err := c.get(r, s, "/v1/managers", url.Values{"limit": {"1000"}}, &mg); err != nil {
		return err
	}
	names := c.names(r, s, "/v1/resellers", url.Values{})
	for id, n := range c.names(r, s, "/v1/resellers", url.Values{"archived": {"true"}}) {
		names[id] = n
	}
	byID := map[string]obj{}
	children := map[string][]obj{}
	for _, it := range pg.Items {
		byID[str(it["id"])] = it
	}
	var roots []obj
	for _, it := range pg.Items {
		p := str(it["parent_id"])
		if _, ok := byID[p]; ok {
			children[p] = append(children[p], it)
		} else {
			roots = append(roots, it) // top level, or the top of what the token sees
		}
	}
	managers := map[string][]obj{}
	for _, m := range mg.Items {
		managers[str(m["reseller_id"])] = append(managers[str(m["reseller_id"])], m)
	}
	var rows []treeRow
	var walk func(list []obj, depth int)
	walk = func(list []obj, depth int) {
		sort.Slice(list, func(i, j int) bool { return str(list[i]["name"]) < str(list[j]["name"]) })
		for _, it := range list {
			id := str(it["id"])
			rows = append(rows, treeRow{R: it, Depth: min(depth, 8), Managers: managers[id], Parent: names[str(it["parent_id"])]})
			walk(children[id], depth+1)
		}
	}
	walk(roots, 0)
	parallel(len(rows), func(i int) {
		id := str(rows[i].R["id"])
		var all, active page
		if c.get(r, s, "/v1/clients", url.Values{"reseller_id": {id}, "status": {"all"}, "limit": {"1"}}, &all) == nil {
			rows[i].Clients = all.Total.String()
		}
		if c.get(r, s, "/v1/clients", url.Values{"reseller_id": {id}, "status": {"active"}, "limit": {"1"}}, &active) == nil {
			rows[i].Active = active.Total.String()
		}
	})
	title := "Resellers"
	if archive {
		title = "Resellers — archive"
	}
	c.render(w, r, s, http.StatusOK, "resellers", &view{Title: title, Section: "resellers", Data: treeData{Rows: rows, Archive: archive}})
	return nil
}

type resellerData struct {
	R        obj
	Parent   obj
	Groups   []formGroup
	Children []obj
	Managers []obj
	Archived []obj
	New      form
}

func (c *Console) resellerDetail(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.showReseller(w, r, s, nil)
}

func (c *Console) showReseller(w http.ResponseWriter, r *http.Request, s *session, refused *APIError) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	d := resellerData{}
	if err := c.get(r, s, fmt.Sprintf("/v1/resellers/%d", id), nil, &d.R); err != nil {
		return err
	}
	if p := str(d.R["parent_id"]); p != "" {
		_ = c.get(r, s, "/v1/resellers/"+p, nil, &d.Parent) // above the token's tree: not shown
	}
	var kids, active, archived page
	sid := strconv.FormatInt(id, 10)
	if err := c.get(r, s, "/v1/resellers", url.Values{"parent_id": {sid}, "limit": {"1000"}}, &kids); err != nil {
		return err
	}
	if err := c.get(r, s, "/v1/managers", url.Values{"reseller_id": {sid}, "limit": {"1000"}}, &active); err != nil {
		return err
	}
	if err := c.get(r, s, "/v1/managers", url.Values{"reseller_id": {sid}, "limit": {"1000"}, "archived": {"true"}}, &archived); err != nil {
		return err
	}
	d.Children, d.Managers, d.Archived = kids.Items, active.Items, archived.Items
	d.Groups = c.buildForm(r, s, resellerLayout, d.R, nil, nil)
	d.New = form{Action: fmt.Sprintf("/resellers/%d/managers", id), Submit: "Add manager", Create: true,
		Groups: c.buildForm(r, s, managerLayout, nil, nil, refused), Err: refused}
	status := http.StatusOK
	if refused != nil {
		keepPosted(d.New.Groups, r)
		status = refused.Status
	}
	c.render(w, r, s, status, "reseller", &view{Title: str(d.R["name"]), Section: "resellers", Err: refused, Data: d})
	return nil
}

func (c *Console) resellerNew(w http.ResponseWriter, r *http.Request, s *session) error {
	init := map[string]string{"parent_id": r.URL.Query().Get("parent_id")}
	if init["parent_id"] == "" && s.me.IsReseller() {
		init["parent_id"] = strconv.FormatInt(s.me.ResellerID, 10)
	}
	c.formPage(w, r, s, "resellers", "New reseller", form{Action: "/resellers/new", Submit: "Create reseller", Create: true,
		Groups: c.buildForm(r, s, resellerLayout, nil, init, nil), Cancel: "/resellers"})
	return nil
}

func (c *Console) resellerCreate(w http.ResponseWriter, r *http.Request, s *session) error {
	out, ok, err := c.createFrom(w, r, s, resellerLayout, "/v1/resellers", nil,
		form{Action: "/resellers/new", Submit: "Create reseller", Create: true, Cancel: "/resellers"}, "resellers", "New reseller")
	if !ok {
		return err
	}
	return c.redirect(w, r, s, "/resellers/"+str(out["id"]), fmt.Sprintf("Reseller %s created (#%s).", str(out["name"]), str(out["id"])))
}

func (c *Console) resellerEdit(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var rs obj
	if err := c.get(r, s, fmt.Sprintf("/v1/resellers/%d", id), nil, &rs); err != nil {
		return err
	}
	c.formPage(w, r, s, "resellers", "Edit "+str(rs["name"]), form{Action: fmt.Sprintf("/resellers/%d/edit", id), Submit: "Save",
		Groups: c.buildForm(r, s, resellerLayout, rs, nil, nil), Cancel: fmt.Sprintf("/resellers/%d", id)})
	return nil
}

func (c *Console) resellerUpdate(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var rs obj
	if err := c.get(r, s, fmt.Sprintf("/v1/resellers/%d", id), nil, &rs); err != nil {
		return err
	}
	ok, changed, err := c.updateFrom(w, r, s, resellerLayout, fmt.Sprintf("/v1/resellers/%d", id), rs,
		form{Action: fmt.Sprintf("/resellers/%d/edit", id), Submit: "Save", Cancel: fmt.Sprintf("/resellers/%d", id)}, "resellers", "Edit "+str(rs["name"]))
	if !ok {
		return err
	}
	msg := "Nothing changed."
	if changed {
		msg = "Reseller " + str(rs["name"]) + " saved."
	}
	return c.redirect(w, r, s, fmt.Sprintf("/resellers/%d", id), msg)
}

// resellerArchive archives a reseller (status deleted), which the API
// refuses while it still has live clients or sub-resellers.
func (c *Console) resellerArchive(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var out obj
	if _, err := c.send(r, s, http.MethodDelete, fmt.Sprintf("/v1/resellers/%d", id), nil, &out); err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return err
		}
		c.sessions.addFlash(s, "error", "Archiving refused: "+ae.Error())
		return c.redirect(w, r, s, fmt.Sprintf("/resellers/%d", id), "")
	}
	return c.redirect(w, r, s, "/resellers?mode=archive", "Reseller "+str(out["name"])+" archived.")
}

func (c *Console) managerCreate(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	body := c.formBody(r, managerLayout, true)
	body["reseller_id"] = id
	var out obj
	if _, err := c.send(r, s, http.MethodPost, "/v1/managers", body, &out); err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return err
		}
		return c.showReseller(w, r, s, ae)
	}
	return c.redirect(w, r, s, fmt.Sprintf("/resellers/%d", id), "Manager "+str(out["name"])+" added.")
}

func (c *Console) managerArchive(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var out obj
	if _, err := c.send(r, s, http.MethodDelete, fmt.Sprintf("/v1/managers/%d", id), nil, &out); err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return err
		}
		c.sessions.addFlash(s, "error", "Archiving refused: "+ae.Error())
		return c.redirect(w, r, s, safeNext(r.PostFormValue("back")), "")
	}
	return c.redirect(w, r, s, "/resellers/"+str(out["reseller_id"]), "Manager "+str(out["name"])+" archived.")
}
