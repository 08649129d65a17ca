package api

import (
	"testing"
)

func TestClientLifecycle(t *testing.T) {
	e := newEnv(t)
	top := e.create("/v1/resellers", map[string]any{"name": "Acme", "currency": "USD"})
	east := e.create("/v1/resellers", map[string]any{"name": "Acme East", "currency": "USD", "parent_id": top})
	rt := e.create("/v1/rate-tables", map[string]any{"name": "retail-usd", "currency": "USD"})
	m := e.must(201, e.admin, "POST", "/v1/clients", map[string]any{
		"name": "Customer A", "reseller_id": east, "currency": "USD", "timezone": "Europe/London",
		"tags": []string{"gold", "uk"}, "credit_limit": "100", "orig_rate_table_id": rt, "email_main": "noc@a.example",
	})
	c := num(t, m["id"])
	if m["credit_limit"] != "100.000000" || m["status"] != "active" || m["timezone"] != "Europe/London" {
		t.Fatalf("created client: %v", m)
	}
	acc := e.create(path("/v1/clients/{id}/accounts", c), map[string]any{"kind": "ip", "ident": "203.0.113.10", "tech_prefix": "7788#"})
	e.must(201, e.admin, "POST", "/v1/transactions", map[string]any{"client_id": c, "kind": "payment", "amount": "50.5", "ref": "wire-1"})
	b := e.must(200, e.admin, "GET", path("/v1/clients/{id}/balance", c), nil)
	if b["live"] != "50.500000" || b["available"] != "150.500000" || b["currency"] != "USD" {
		t.Fatalf("balance %v", b)
	}

	// deleted keeps the accounts with orig and term off
	e.must(200, e.admin, "PATCH", path("/v1/clients/{id}", c), map[string]any{"status": "deleted"})
	a := e.must(200, e.admin, "GET", path("/v1/accounts/{id}", acc), nil)
	if a["orig"] != false || a["term"] != false || a["status"] != "active" {
		t.Fatalf("account after client delete: %v", a)
	}
	if au := items(t, e.must(200, e.admin, "GET", path("/v1/audit?entity=account&entity_id={id}", acc), nil)); len(au) != 2 || au[0]["after"].(map[string]any)["orig"] != false {
		t.Fatalf("account audit %v", au)
	}
	// full delete refused: transactions
	e.must(409, e.admin, "DELETE", path("/v1/clients/{id}", c)+"?full=true", nil)

	// a clean client: refused while active, while it has xDRs, then gone
	d := e.create("/v1/clients", map[string]any{"name": "Customer D", "reseller_id": east, "currency": "USD"})
	e.must(409, e.admin, "DELETE", path("/v1/clients/{id}", d)+"?full=true", nil)
	e.must(200, e.admin, "DELETE", path("/v1/clients/{id}", d), nil)
	e.mu.Lock()
	e.xdrs[d] = 3
	e.mu.Unlock()
	e.must(409, e.admin, "DELETE", path("/v1/clients/{id}", d)+"?full=true", nil)
	e.mu.Lock()
	e.xdrs[d] = 0
	e.mu.Unlock()
	e.must(204, e.admin, "DELETE", path("/v1/clients/{id}", d)+"?full=true", nil)
	e.must(404, e.admin, "GET", path("/v1/clients/{id}", d), nil)

	// the audit log has who, what, before and after
	au := items(t, e.must(200, e.admin, "GET", path("/v1/audit?entity=client&entity_id={id}", c), nil))
	if len(au) != 2 || au[0]["action"] != "update" || au[1]["action"] != "create" {
		t.Fatalf("audit %v", au)
	}
	before, after := au[0]["before"].(map[string]any), au[0]["after"].(map[string]any)
	if before["status"] != "active" || after["status"] != "deleted" || au[0]["actor"] == "" {
		t.Fatalf("audit before/after %v", au[0])
	}
}
