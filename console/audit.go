package console

import (
	"net/http"
	"net/url"
	"sort"
)

// change is one field an audited write changed, as the audit row holds it.
type change struct {
	Field, Before, After string
}

type auditRow struct {
	A       obj
	Changes []change
}

type auditPage struct {
	Rows  []auditRow
	Pager pager
	Query url.Values
}

// auditData reads one page of the audit log and lists, per row, the fields
// whose stored values differ between before and after.
func (c *Console) auditData(r *http.Request, s *session, aq, q url.Values) (auditPage, error) {
	var pg page
	if err := c.get(r, s, "/v1/audit", aq, &pg); err != nil {
		return auditPage{}, err
	}
	d := auditPage{Pager: newPager(pg, q), Query: q}
	for _, a := range pg.Items {
		before, _ := a["before"].(obj)
		after, _ := a["after"].(obj)
		keys := map[string]bool{}
		for k := range before {
			keys[k] = true
		}
		for k := range after {
			keys[k] = true
		}
		var names []string
		for k := range keys {
			if k != "updated_at" && k != "created_at" {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		row := auditRow{A: a}
		for _, k := range names {
			b, f := prettyValue(before, k), prettyValue(after, k)
			if b != f {
				row.Changes = append(row.Changes, change{Field: k, Before: b, After: f})
			}
		}
		d.Rows = append(d.Rows, row)
	}
	return d, nil
}

func prettyValue(o obj, k string) string {
	if o == nil {
		return ""
	}
	v, ok := o[k]
	if !ok {
		return ""
	}
	if v == nil {
		return "null"
	}
	switch v.(type) {
	case obj, []any:
		return prettyJSON(v)
	}
	return str(v)
}

func (c *Console) auditLog(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	d, err := c.auditData(r, s, c.listQuery(q, "entity", "entity_id", "action", "token_id", "from", "to"), q)
	if err != nil {
		return err
	}
	c.render(w, r, s, http.StatusOK, "audit", &view{Title: "Audit log", Section: "audit", Data: d})
	return nil
}
