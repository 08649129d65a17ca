package api

import (
	"net/http"

	"github.com/tarifa/tarifa/catalog"
)

// listResellers lists the resellers in the caller's scope: ?archived,
// ?name, ?parent_id. Their rules live in catalog.Resellers.
func (s *Server) listResellers(w http.ResponseWriter, r *http.Request, p *principal) error {
	v := r.URL.Query()
	q := &query{}
	q.scope(catalog.Resellers, p)
	if err := archivedFilter(q, v); err != nil {
		return err
	}
	if err := nameFilter(q, v); err != nil {
		return err
	}
	if err := idFilter(q, v, "parent_id", "t.parent_id"); err != nil {
		return err
	}
	pg, err := s.list(r.Context(), catalog.Resellers, q, "t.id", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}

// listManagers lists the managers in the caller's scope: ?archived,
// ?name, ?reseller_id.
func (s *Server) listManagers(w http.ResponseWriter, r *http.Request, p *principal) error {
	v := r.URL.Query()
	q := &query{}
	q.scope(catalog.Managers, p)
	if err := archivedFilter(q, v); err != nil {
		return err
	}
	if err := nameFilter(q, v); err != nil {
		return err
	}
	if err := idFilter(q, v, "reseller_id", "t.reseller_id"); err != nil {
		return err
	}
	pg, err := s.list(r.Context(), catalog.Managers, q, "t.id", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}
