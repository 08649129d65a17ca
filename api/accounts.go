package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/tarifa/tarifa/catalog"
)

// clientInScope answers 404 unless client id is one p may see.
func (s *Server) clientInScope(r *http.Request, p *principal, id int64) error {
	ok, err := catalog.ClientInScope(r.Context(), s.pool, p.catalogActor(), id)
	if err != nil {
		return err
	}
	if !ok {
		return notFound("client")
	}
	return nil
}

// scopedClientID reads the client id of the path and checks the caller may
// see that client (404 otherwise).
func (s *Server) scopedClientID(r *http.Request, p *principal) (int64, error) {
	id, err := pathID(r, "id", "client")
	if err != nil {
		return 0, err
	}
	if err := s.clientInScope(r, p, id); err != nil {
		return 0, err
	}
	return id, nil
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := s.scopedClientID(r, p)
	if err != nil {
		return err
	}
	v := r.URL.Query()
	q := &query{}
	q.add("t.client_id = %s", id)
	if err := q.oneOf(v, "status", "t.status", string(catalog.AccountActive), string(catalog.AccountInactive)); err != nil {
		return err
	}
	pg, err := s.list(r.Context(), catalog.Accounts, q, "t.id", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}

// createAccount creates an account of the client in the path; its rules
// live in catalog.Accounts.
func (s *Server) createAccount(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := s.scopedClientID(r, p)
	if err != nil {
		return err
	}
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	if raw, ok := body["client_id"]; ok && string(raw) != strconv.FormatInt(id, 10) {
		return invalid("client_id", "differs from the client in the path")
	}
	body["client_id"] = json.RawMessage(strconv.FormatInt(id, 10))
	return s.create(w, r, p, catalog.Accounts, body)
}
