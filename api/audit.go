package api

import (
	"net/http"
)

// auditRows is the read shape of the audit log: who (the token), what
// (action, entity, id), when, and the object before and after.
var auditRows = &entity{
	name:  "audit record",
	table: "audit_log",
	extra: []string{ts("t.at") + " AS at", "t.actor", "t.token_id", "t.action", "t.entity", "t.entity_id",
		"t.reseller_id", "t.before", "t.after"},
	noStamps: true,
	// A reseller reads the audit of its subtree; rate table changes,
	// which belong to no reseller, only admins read.
	scope: scopeByReseller("t.reseller_id"),
}

// listAudit lists audit records, newest first: ?entity, ?entity_id,
// ?action, ?token_id, ?from, ?to.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p *principal) error {
	v := r.URL.Query()
	q := &query{}
	auditRows.scope(q, p)
	if e := v.Get("entity"); e != "" {
		q.add("t.entity = %s", e)
	}
	if a := v.Get("action"); a != "" {
		q.add("t.action = %s", a)
	}
	if err := idFilter(q, v, "entity_id", "t.entity_id"); err != nil {
		return err
	}
	if err := idFilter(q, v, "token_id", "t.token_id"); err != nil {
		return err
	}
	if err := timeRange(q, v.Get("from"), v.Get("to"), "t.at"); err != nil {
		return err
	}
	pg, err := s.list(r.Context(), auditRows, q, "t.id DESC", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}
