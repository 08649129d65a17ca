package api

import "net/http"

// whoami is the answer of GET /v1/me.
type whoami struct {
	TokenID    int64  `json:"token_id"`
	Name       string `json:"name"`
	Role       string `json:"role"`
	ResellerID *int64 `json:"reseller_id"` // reseller tokens
	ClientID   *int64 `json:"client_id"`   // client tokens
}

// me answers who the token is: its id, name, role and the reseller or
// client it belongs to, so that a front end (the console) can show the
// caller's own world without guessing it from refusals. Every role may
// ask; it reveals nothing the token's holder does not already own.
func (s *Server) me(w http.ResponseWriter, _ *http.Request, p *principal) error {
	out := whoami{TokenID: p.tokenID, Name: p.name, Role: p.role}
	switch p.role {
	case RoleReseller:
		out.ResellerID = &p.resellerID
	case RoleClient:
		out.ClientID = &p.clientID
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
