package api

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestTokensLifecycle: a token stops working when it is revoked, when it
// expires, when its reseller is archived or its client deleted; ListTokens
// says which state each is in.
func TestTokensLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	gone := e.create("/v1/resellers", map[string]any{"name": "Gone", "currency": "USD"})
	c := e.create("/v1/clients", map[string]any{"name": "C", "reseller_id": r, "currency": "USD"})
	resTok, goneTok, cliTok := e.token(RoleReseller, r, 0), e.token(RoleReseller, gone, 0), e.token(RoleClient, 0, c)
	soon, err := NewToken(ctx, e.db.PG, TokenSpec{Role: RoleAdmin, Name: "ops", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	e.must(200, soon.Secret, "GET", "/v1/resellers", nil)
	e.must(200, goneTok, "GET", "/v1/resellers", nil)
	e.must(200, cliTok, "GET", path("/v1/clients/{id}", c), nil)

	e.must(200, e.admin, "DELETE", path("/v1/resellers/{id}", gone), nil) // archived
	e.must(401, goneTok, "GET", "/v1/resellers", nil)
	e.must(200, e.admin, "DELETE", path("/v1/clients/{id}", c), nil) // deleted
	e.must(401, cliTok, "GET", path("/v1/clients/{id}", c), nil)
	if _, err := e.db.PG.Exec(ctx, "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1", soon.ID); err != nil {
		t.Fatal(err)
	}
	e.must(401, soon.Secret, "GET", "/v1/resellers", nil)
	e.must(200, resTok, "GET", "/v1/resellers", nil)

	if _, err := NewToken(ctx, e.db.PG, TokenSpec{Role: RoleAdmin, Expires: time.Now().Add(-time.Minute)}); err == nil {
		t.Error("a token that expired already was created")
	}
	if _, err := NewToken(ctx, e.db.PG, TokenSpec{Role: RoleReseller, ResellerID: gone}); err == nil {
		t.Error("a token of an archived reseller was created")
	}
	list, err := ListTokens(ctx, e.db.PG)
	if err != nil {
		t.Fatal(err)
	}
	states := ""
	for _, tk := range list {
		states += fmt.Sprintf("%s:%s:%s ", tk.Role, tk.Owner, tk.State(time.Now()))
	}
	if want := "admin::active reseller:R:active reseller:Gone:active client:C:active admin::expired "; states != want {
		t.Errorf("tokens: %s, want %s", states, want)
	}
}

// TestAuditHidesUpwardActors: a sub-reseller reads the audit of its own
// clients, but not who above it made a change; its parent sees its
// sub-reseller's tokens by name.
func TestAuditHidesUpwardActors(t *testing.T) {
	e := newEnv(t)
	parent := e.create("/v1/resellers", map[string]any{"name": "Parent", "currency": "USD"})
	child := e.create("/v1/resellers", map[string]any{"name": "Child", "currency": "USD", "parent_id": parent})
	c := e.create("/v1/clients", map[string]any{"name": "C", "reseller_id": child, "currency": "USD"})
	pt, ct := e.token(RoleReseller, parent, 0), e.token(RoleReseller, child, 0)
	e.must(200, pt, "PATCH", path("/v1/clients/{id}", c), map[string]any{"zip": "1"})
	e.must(200, ct, "PATCH", path("/v1/clients/{id}", c), map[string]any{"zip": "2"})

	actors := func(tok string) string {
		var out string
		for _, it := range items(t, e.must(200, tok, "GET", path("/v1/audit?entity=client&entity_id={id}", c), nil)) {
			out += fmt.Sprintf("%v/%v; ", it["actor"], it["token_id"])
		}
		return out
	}
	adminTok, parentTok, childTok := "token 1 (admin-test)", "token 2 (reseller-test)", "token 3 (reseller-test)"
	if got, want := actors(ct), childTok+"/3; upstream (operator or a parent reseller)/<nil>; upstream (operator or a parent reseller)/<nil>; "; got != want {
		t.Errorf("child reads\n %s\nwant\n %s", got, want)
	}
	if got, want := actors(pt), childTok+"/3; "+parentTok+"/2; upstream (operator or a parent reseller)/<nil>; "; got != want {
		t.Errorf("parent reads\n %s\nwant\n %s", got, want)
	}
	if got, want := actors(e.admin), childTok+"/3; "+parentTok+"/2; "+adminTok+"/1; "; got != want {
		t.Errorf("admin reads\n %s\nwant\n %s", got, want)
	}
	// filtering by an upstream token finds nothing for the child
	if n := len(items(t, e.must(200, ct, "GET", "/v1/audit?token_id=2", nil))); n != 0 {
		t.Errorf("child finds %d rows of its parent's token", n)
	}
}
