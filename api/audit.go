package api

import (
	"net/http"

	"github.com/tarifa/tarifa/catalog"
)

// upstreamActor is the actor a reseller reads on audit rows written by
// someone above its subtree (the operator, its parent reseller's tokens,
// a catalog file): nobody sees upward, not even a name.
const upstreamActor = "upstream (operator or a parent reseller)"

// auditSelect is the read shape of the audit log for p: who (the token),
// what (action, entity, id), when, and the object before and after. A
// reseller (subtree bound as the placeholder subtree) sees the actor and
// token of a row only when the token is one of its subtree's.
func auditSelect(p *principal, subtree string) string {
	actor, token := "t.actor", "t.token_id"
	if p.role == RoleReseller {
		mine := "t.token_id IN (SELECT id FROM api_tokens WHERE reseller_id = ANY(" + subtree + "))"
		actor = "CASE WHEN " + mine + " THEN t.actor ELSE '" + upstreamActor + "' END"
		token = "CASE WHEN " + mine + " THEN t.token_id END"
	}
	return "t.id, " + catalog.TimeText("t.at") + " AS at, " + actor + " AS actor, " + token + ` AS token_id,
		t.action, t.entity, t.entity_id, t.reseller_id, t.before, t.after`
}

// listAudit lists audit records, newest first: ?entity, ?entity_id,
// ?action, ?token_id, ?from, ?to. A reseller reads the audit of its
// subtree's objects; changes of what belongs to no reseller (the
// operator's rate tables, time profiles) only admins read.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p *principal) error {
	v := r.URL.Query()
	q := &query{}
	subtree := ""
	if p.role == RoleReseller {
		subtree = q.arg(p.subtree) // every statement below uses it in its WHERE
		q.conds = append(q.conds, "t.reseller_id = ANY("+subtree+")")
	}
	sel := auditSelect(p, subtree)
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
	if v.Get("token_id") != "" && p.role == RoleReseller { // only its own tokens are known to it
		q.conds = append(q.conds, "t.token_id IN (SELECT id FROM api_tokens WHERE reseller_id = ANY("+subtree+"))")
	}
	if err := timeRange(q, v.Get("from"), v.Get("to"), "t.at"); err != nil {
		return err
	}
	pg, err := s.listAs(r.Context(), "audit_log", sel, q, "t.id DESC", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}
