package api

import (
	"encoding/json"
	"testing"
)

// TestMe: GET /v1/me tells each role who it is, and nobody without a
// token.
func TestMe(t *testing.T) {
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	c := e.create("/v1/clients", map[string]any{"name": "C", "reseller_id": r, "currency": "USD"})
	f := func(token, role string, reseller, client any) {
		t.Helper()
		m := e.must(200, token, "GET", "/v1/me", nil)
		if m["role"] != role || m["reseller_id"] != reseller || m["client_id"] != client || m["name"] != role+"-test" {
			t.Errorf("%s token: /v1/me answered %v", role, m)
		}
		if _, ok := m["token_id"].(json.Number); !ok {
			t.Errorf("%s token: no token_id in %v", role, m)
		}
	}
	f(e.admin, RoleAdmin, nil, nil)
	f(e.token(RoleReseller, r, 0), RoleReseller, json.Number(jsonInt(r)), nil)
	f(e.token(RoleClient, 0, c), RoleClient, nil, json.Number(jsonInt(c)))
	e.must(401, "", "GET", "/v1/me", nil)
}
