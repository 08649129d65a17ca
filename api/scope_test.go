package api

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarifa/tarifa/catalog"
)

// TestScopeMatrix calls every endpoint with every role on an object of the
// caller's own scope and on a foreign one. The reseller token belongs to
// R1; R1a is below it; R2 is a sideways reseller. The client token belongs
// to C1 (under R1a); C2 is under R2.
func TestScopeMatrix(t *testing.T) {
	e := newEnv(t)
	r1 := e.create("/v1/resellers", map[string]any{"name": "R1", "currency": "USD"})
	r1a := e.create("/v1/resellers", map[string]any{"name": "R1a", "currency": "USD", "parent_id": r1})
	r1b := e.create("/v1/resellers", map[string]any{"name": "R1b", "currency": "USD", "parent_id": r1})
	r2 := e.create("/v1/resellers", map[string]any{"name": "R2", "currency": "USD"})
	r3 := e.create("/v1/resellers", map[string]any{"name": "R3", "currency": "USD", "parent_id": r2})
	m1 := e.create("/v1/managers", map[string]any{"name": "M1", "reseller_id": r1a})
	m2 := e.create("/v1/managers", map[string]any{"name": "M2", "reseller_id": r2})
	rt := e.create("/v1/rate-tables", map[string]any{"name": "RT", "currency": "USD"})
	e.must(200, e.admin, "POST", path("/v1/rate-tables/{id}/rates", rt), "code,rate\n44,0.01\n")
	rt2 := e.create("/v1/rate-tables", map[string]any{"name": "RT2", "currency": "USD"})
	e.must(200, e.admin, "POST", path("/v1/rate-tables/{id}/rates", rt2), "code,rate\n44,0.02\n")
	c1 := e.create("/v1/clients", map[string]any{"name": "C1", "reseller_id": r1a, "currency": "USD", "orig_rate_table_id": rt, "credit_limit": "5", "email_billing": "c1@x.example"})
	c2 := e.create("/v1/clients", map[string]any{"name": "C2", "reseller_id": r2, "currency": "USD", "orig_rate_table_id": rt2, "credit_limit": "5", "email_billing": "c2@x.example"})
	a1 := e.create(path("/v1/clients/{id}/accounts", c1), map[string]any{"kind": "ip", "ident": "192.0.2.1"})
	a2 := e.create(path("/v1/clients/{id}/accounts", c2), map[string]any{"kind": "ip", "ident": "192.0.2.2"})
	t1 := num(t, e.must(201, e.admin, "POST", "/v1/transactions", map[string]any{"client_id": c1, "kind": "payment", "amount": "1"})["id"])
	t2 := num(t, e.must(201, e.admin, "POST", "/v1/transactions", map[string]any{"client_id": c2, "kind": "payment", "amount": "1"})["id"])

	tokens := map[string]string{
		"admin":    e.admin,
		"reseller": e.token(RoleReseller, r1, 0),
		"client":   e.token(RoleClient, 0, c1),
	}
	dry := map[string]any{"from": "2024-01-01", "to": "2024-01-02", "dry_run": true}
	job1 := num(t, e.must(201, tokens["reseller"], "POST", "/v1/rerate-jobs", dry)["job"])
	job2 := num(t, e.must(201, e.token(RoleReseller, r2, 0), "POST", "/v1/rerate-jobs", dry)["job"])
	seq := 0
	uniq := func(s string) string { seq++; return fmt.Sprintf("%s-%d", s, seq) }
	type ids struct{ own, foreign int64 }
	// want lists the statuses of admin, reseller and client, each on the
	// own object then the foreign one.
	type tc struct {
		method, path string
		id           ids
		body         func(id int64) any
		want         [3][2]int
	}
	const (
		ok, created, noContent = 200, 201, 204
		forbidden, missing     = 403, 404
		conflictS, invalidS    = 409, 422
	)
	all := func(s int) [3][2]int { return [3][2]int{{s, s}, {s, s}, {forbidden, forbidden}} }
	scoped := func(s int) [3][2]int { return [3][2]int{{s, s}, {s, missing}, {forbidden, forbidden}} }
	clientReads := [3][2]int{{ok, ok}, {ok, missing}, {ok, missing}}
	adminOnly := func(s int) [3][2]int { return [3][2]int{{s, s}, {forbidden, forbidden}, {forbidden, forbidden}} }
	refScoped := func(s int) [3][2]int { return [3][2]int{{s, s}, {s, invalidS}, {forbidden, forbidden}} }
	cases := []tc{
		{"GET", "/v1/me", ids{}, nil, [3][2]int{{ok, ok}, {ok, ok}, {ok, ok}}},
		{"GET", "/v1/resellers", ids{}, nil, all(ok)},
		{"POST", "/v1/resellers", ids{r1a, r2}, func(id int64) any {
			return map[string]any{"name": uniq("new"), "currency": "USD", "parent_id": id}
		}, refScoped(created)},
		{"GET", "/v1/resellers/{id}", ids{r1a, r2}, nil, scoped(ok)},
		{"PATCH", "/v1/resellers/{id}", ids{r1a, r2}, func(int64) any { return map[string]any{"company_name": "X Ltd"} }, scoped(ok)},
		{"DELETE", "/v1/resellers/{id}", ids{r1b, r3}, nil, scoped(ok)},

		{"GET", "/v1/managers", ids{}, nil, all(ok)},
		{"POST", "/v1/managers", ids{r1a, r2}, func(id int64) any { return map[string]any{"name": uniq("m"), "reseller_id": id} }, refScoped(created)},
		{"GET", "/v1/managers/{id}", ids{m1, m2}, nil, scoped(ok)},
		{"PATCH", "/v1/managers/{id}", ids{m1, m2}, func(int64) any { return map[string]any{"email": "m@x.example"} }, scoped(ok)},

		{"GET", "/v1/clients", ids{}, nil, all(ok)},
		{"GET", "/v1/clients.csv", ids{}, nil, all(ok)},
		{"POST", "/v1/clients", ids{r1a, r2}, func(id int64) any {
			return map[string]any{"name": uniq("c"), "currency": "USD", "reseller_id": id}
		}, refScoped(created)},
		{"POST", "/v1/clients/last-invoiced", ids{c1, c2}, func(id int64) any {
			return map[string]any{"client_ids": []int64{id}, "last_invoiced_at": "2024-01-31"}
		}, refScoped(ok)},
		{"GET", "/v1/clients/{id}", ids{c1, c2}, nil, clientReads},
		{"PATCH", "/v1/clients/{id}", ids{c1, c2}, func(int64) any { return map[string]any{"zip": "12345"} }, scoped(ok)},
		{"DELETE", "/v1/clients/{id}?full=true", ids{c1, c2}, nil, scoped(conflictS)},
		{"GET", "/v1/clients/{id}/accounts", ids{c1, c2}, nil, scoped(ok)},
		{"POST", "/v1/clients/{id}/accounts", ids{c1, c2}, func(int64) any { return map[string]any{"kind": "username", "ident": uniq("u")} }, scoped(created)},
		{"GET", "/v1/clients/{id}/transactions", ids{c1, c2}, nil, clientReads},
		{"GET", "/v1/clients/{id}/balance", ids{c1, c2}, nil, clientReads},

		{"GET", "/v1/accounts/{id}", ids{a1, a2}, nil, scoped(ok)},
		{"PATCH", "/v1/accounts/{id}", ids{a1, a2}, func(int64) any { return map[string]any{"term": true} }, scoped(ok)},

		// a rate table is seen by the resellers and clients that use it
		{"GET", "/v1/rate-tables", ids{}, nil, [3][2]int{{ok, ok}, {ok, ok}, {ok, ok}}},
		{"POST", "/v1/rate-tables", ids{}, func(int64) any { return map[string]any{"name": uniq("rt"), "currency": "USD"} }, adminOnly(created)},
		{"GET", "/v1/rate-tables/{id}", ids{rt, rt2}, nil, clientReads},
		{"PATCH", "/v1/rate-tables/{id}", ids{rt, rt2}, func(int64) any { return map[string]any{"notes": uniq("n")} }, adminOnly(ok)},
		{"GET", "/v1/rate-tables/{id}/rates", ids{rt, rt2}, nil, clientReads},
		{"POST", "/v1/rate-tables/{id}/rates", ids{rt, rt2}, func(int64) any { return "code,rate\n45,0.02\n" }, adminOnly(ok)},
		{"PATCH", "/v1/clients/{id}", ids{c1, c2}, func(id int64) any {
			return map[string]any{"term_rate_table_id": map[int64]int64{c1: rt2, c2: rt}[id]} // a table the reseller does not see
		}, [3][2]int{{ok, ok}, {invalidS, missing}, {forbidden, forbidden}}},

		{"POST", "/v1/transactions", ids{c1, c2}, func(id int64) any {
			return map[string]any{"client_id": id, "kind": "adjustment", "amount": "-0.5"}
		}, refScoped(created)},
		{"GET", "/v1/transactions/{id}", ids{t1, t2}, nil, clientReads},

		{"POST", "/v1/authorize", ids{}, func(int64) any { return map[string]any{"src_ip": "192.0.2.1", "dst": "4412"} }, all(ok)},
		{"GET", "/v1/audit", ids{}, nil, all(ok)},
		{"POST", "/v1/rerate-jobs", ids{c1, c2}, func(id int64) any {
			return map[string]any{"from": "2024-01-01", "to": "2024-01-02", "dry_run": true, "clients": []int64{id}}
		}, refScoped(created)},
		{"GET", "/v1/rerate-jobs", ids{}, nil, all(ok)},
		{"GET", "/v1/rerate-jobs/{id}", ids{job1, job2}, nil, scoped(ok)},
		{"POST", "/v1/rerate-jobs/{id}/resume", ids{job1, job2}, nil, [3][2]int{{conflictS, conflictS}, {conflictS, missing}, {forbidden, forbidden}}},
		{"GET", "/v1/reports/summary?from=2024-01-01&to=2024-02-01&by=orig_client&client={id}", ids{c1, c2}, nil, [3][2]int{{ok, ok}, {ok, ok}, {ok, ok}}},
		{"GET", "/v1/reports/origterm?from=2024-01-01&to=2024-02-01&client={id}", ids{c1, c2}, nil, all(ok)},
		{"GET", "/v1/reports/mismatches?from=2024-01-01&to=2024-02-01&client={id}", ids{c1, c2}, nil, [3][2]int{{ok, ok}, {ok, ok}, {ok, ok}}},
		{"GET", "/v1/reports/balance?from=2024-01-01&to=2024-01-03&client={id}", ids{c1, c2}, nil, [3][2]int{{ok, ok}, {ok, ok}, {ok, ok}}},
		// destructive ones last
		{"DELETE", "/v1/managers/{id}", ids{m1, m2}, nil, scoped(ok)},
		{"DELETE", "/v1/accounts/{id}", ids{a1, a2}, nil, scoped(ok)},
		{"DELETE", "/v1/rate-tables/{id}", ids{rt, rt2}, nil, adminOnly(ok)},
	}

	// The billing routes change what they act on (a draft is approved
	// once), so every role gets objects of its own: id makes a pair, own
	// and foreign, for each call.
	year := 2000
	period := func() map[string]any {
		year++
		return map[string]any{"period_from": fmt.Sprintf("%d-01-01", year), "period_to": fmt.Sprintf("%d-02-01", year)}
	}
	invoice := func(client int64, approve bool) int64 {
		body := period()
		body["client_id"] = client
		id := e.create("/v1/invoices", body)
		if approve {
			e.must(ok, e.admin, "POST", path("/v1/invoices/{id}/approve", id), nil)
		}
		return id
	}
	mail := func(client int64) int64 {
		return num(t, e.must(202, e.admin, "POST", path("/v1/invoices/{id}/send", invoice(client, true)), nil)["id"])
	}
	terms := e.create("/v1/payment-terms", map[string]any{"name": "weekly", "period": "weekly", "weekday": "mon"})
	tax := e.create("/v1/tax-profiles", map[string]any{"name": "none", "mode": "sum_of_items"})
	same := func(own, foreign int64) func() ids { return func() ids { return ids{own, foreign} } }
	drafts := func() ids { return ids{invoice(c1, false), invoice(c2, false)} }
	issued := func() ids { return ids{invoice(c1, true), invoice(c2, true)} }
	ar := [3][2]int{{ok, ok}, {ok, ok}, {forbidden, forbidden}}
	const accepted = 202 // sent to no SMTP server: queued
	fresh := []struct {
		method, path string
		id           func() ids
		body         func(id int64) any
		want         [3][2]int
	}{
		{"GET", "/v1/invoices", same(0, 0), nil, [3][2]int{{ok, ok}, {ok, ok}, {ok, ok}}},
		{"POST", "/v1/invoices", same(c1, c2), func(id int64) any {
			body := period()
			body["client_id"] = id
			return body
		}, refScoped(created)},
		{"GET", "/v1/invoices/{id}", drafts, nil, clientReads},
		{"GET", "/v1/invoices/{id}.pdf", drafts, nil, clientReads},
		{"GET", "/v1/invoices/{id}.csv", drafts, nil, clientReads},
		{"GET", "/v1/invoices/{id}/xdrs.csv", drafts, nil, clientReads},
		{"POST", "/v1/invoices/{id}/approve", drafts, nil, scoped(ok)},
		{"POST", "/v1/invoices/{id}/send", issued, nil, scoped(accepted)},
		{"POST", "/v1/invoices/{id}/pay", issued, nil, scoped(ok)},
		{"POST", "/v1/invoices/{id}/void", issued, nil, scoped(ok)},
		{"POST", "/v1/billruns", same(0, 0), func(int64) any { return map[string]any{"dry_run": true} }, ar},
		{"GET", "/v1/statements?client_id={id}&from=2020-01-01&to=2020-02-01", same(c1, c2), nil, scoped(ok)},
		{"GET", "/v1/mail", same(0, 0), nil, ar},
		{"POST", "/v1/mail/{id}/retry", func() ids { return ids{mail(c1), mail(c2)} }, nil, scoped(accepted)},
		// payment terms and tax profiles are shared, like time profiles:
		// resellers read them, only admins define them
		{"GET", "/v1/payment-terms", same(0, 0), nil, ar},
		{"POST", "/v1/payment-terms", same(0, 0), func(int64) any { return map[string]any{"name": uniq("m"), "period": "monthly", "day": 1} }, adminOnly(created)},
		{"GET", "/v1/payment-terms/{id}", same(terms, terms), nil, ar},
		{"PATCH", "/v1/payment-terms/{id}", same(terms, terms), func(int64) any { return map[string]any{"name": "weekly", "period": "weekly", "weekday": "tue"} }, adminOnly(ok)},
		{"GET", "/v1/tax-profiles", same(0, 0), nil, ar},
		{"POST", "/v1/tax-profiles", same(0, 0), func(int64) any { return map[string]any{"name": uniq("t"), "mode": "sum_of_items"} }, adminOnly(created)},
		{"GET", "/v1/tax-profiles/{id}", same(tax, tax), nil, ar},
		{"PATCH", "/v1/tax-profiles/{id}", same(tax, tax), func(int64) any { return map[string]any{"name": "none", "mode": "percent_of_total"} }, adminOnly(ok)},
	}

	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.method+" "+strings.Split(c.path, "?")[0]] = true
	}
	for _, c := range fresh {
		covered[c.method+" "+strings.Split(c.path, "?")[0]] = true
	}
	for _, rt := range e.api.routes() {
		if rt.roles&public == 0 && !covered[rt.method+" "+rt.path] {
			t.Errorf("route %s %s has no scope case", rt.method, rt.path)
		}
	}

	for _, c := range cases {
		for _, role := range []int{1, 2, 0} { // admin last: it may archive what the others need
			name := []string{"admin", "reseller", "client"}[role]
			for k, id := range []int64{c.id.own, c.id.foreign} {
				p := path(c.path, id)
				var body any
				if c.body != nil {
					body = c.body(id)
				}
				got, out := e.call(tokens[name], c.method, p, body)
				if want := c.want[role][k]; got != want {
					t.Errorf("%s %s as %s (%s): %d, want %d: %s", c.method, p, name, []string{"own", "foreign"}[k], got, want, out)
				}
			}
		}
		// no token or a bad one: 401 everywhere
		for _, tok := range []string{"", "tarifa_bogus", "Basic abc"} {
			if got, _ := e.call(tok, c.method, path(c.path, c.id.own), nil); got != 401 {
				t.Errorf("%s %s with token %q: %d, want 401", c.method, c.path, tok, got)
			}
		}
	}

	for _, c := range fresh {
		for role, name := range []string{"admin", "reseller", "client"} {
			id := c.id()
			for k, id := range []int64{id.own, id.foreign} {
				p := path(c.path, id)
				var body any
				if c.body != nil {
					body = c.body(id)
				}
				got, out := e.call(tokens[name], c.method, p, body)
				if want := c.want[role][k]; got != want {
					t.Errorf("%s %s as %s (%s): %d, want %d: %.200s", c.method, p, name, []string{"own", "foreign"}[k], got, want, out)
				}
			}
		}
		for _, tok := range []string{"", "tarifa_bogus", "Basic abc"} {
			if got, _ := e.call(tok, c.method, path(c.path, 1), nil); got != 401 {
				t.Errorf("%s %s with token %q: %d, want 401", c.method, c.path, tok, got)
			}
		}
	}
	// A reseller lists the invoices of its subtree only, a client its own.
	for _, it := range items(t, e.must(ok, tokens["reseller"], "GET", "/v1/invoices?limit=1000", nil)) {
		if it["client"] != "C1" {
			t.Errorf("the reseller lists an invoice of %v", it["client"])
		}
	}
	if got := items(t, e.must(ok, tokens["client"], "GET", path("/v1/invoices?client_id={id}", c2), nil)); len(got) != 0 {
		t.Errorf("a client lists another client's invoices: %v", got)
	}
}

// TestResellerSeesOnlyItsSubtree checks lists, exports, authorize and the
// audit log of a reseller token.
func TestResellerSeesOnlyItsSubtree(t *testing.T) {
	e := newEnv(t)
	r1 := e.create("/v1/resellers", map[string]any{"name": "R1", "currency": "USD"})
	r1a := e.create("/v1/resellers", map[string]any{"name": "R1a", "currency": "USD", "parent_id": r1})
	r2 := e.create("/v1/resellers", map[string]any{"name": "R2", "currency": "USD"})
	rt := e.create("/v1/rate-tables", map[string]any{"name": "RT", "currency": "USD"})
	e.must(200, e.admin, "POST", path("/v1/rate-tables/{id}/rates", rt), "code,rate\n44,0.01\n")
	c1 := e.create("/v1/clients", map[string]any{"name": "Own client", "reseller_id": r1a, "currency": "USD", "orig_rate_table_id": rt, "credit_limit": "1"})
	c2 := e.create("/v1/clients", map[string]any{"name": "Foreign client", "reseller_id": r2, "currency": "USD", "orig_rate_table_id": rt, "credit_limit": "1"})
	e.create(path("/v1/clients/{id}/accounts", c1), map[string]any{"kind": "ip", "ident": "192.0.2.1"})
	e.create(path("/v1/clients/{id}/accounts", c2), map[string]any{"kind": "ip", "ident": "192.0.2.2"})
	tok := e.token(RoleReseller, r1, 0)

	names := func(p string) []string {
		var out []string
		for _, it := range items(t, e.must(200, tok, "GET", p, nil)) {
			out = append(out, fmt.Sprint(it["name"]))
		}
		return out
	}
	if got := fmt.Sprint(names("/v1/resellers")); got != "[R1 R1a]" {
		t.Errorf("resellers: %s", got)
	}
	if got := fmt.Sprint(names("/v1/clients")); got != "[Own client]" {
		t.Errorf("clients: %s", got)
	}
	if got := fmt.Sprint(names(path("/v1/clients?reseller_id={id}", r2))); got != "[]" {
		t.Errorf("clients of a foreign reseller: %s", got)
	}
	_, csv := e.call(tok, "GET", "/v1/clients.csv?status=all", nil)
	if !strings.Contains(string(csv), "Own client") || strings.Contains(string(csv), "Foreign client") {
		t.Errorf("csv: %s", csv)
	}
	a := e.must(200, tok, "POST", "/v1/authorize", map[string]any{"src_ip": "192.0.2.2", "dst": "4412"})
	if a["reason"] != "unknown_account" {
		t.Errorf("foreign account authorized: %v", a)
	}
	a = e.must(200, tok, "POST", "/v1/authorize", map[string]any{"src_ip": "192.0.2.1", "dst": "4412"})
	if a["allowed"] != true {
		t.Errorf("own account refused: %v", a)
	}
	// a reseller cannot take another tree's traffic: 192.0.2.2 + tech
	// prefix 44 would match the foreign client's calls to 44…
	foreignIP := map[string]any{"kind": "ip", "ident": "192.0.2.2", "tech_prefix": "44"}
	if m := e.must(409, tok, "POST", path("/v1/clients/{id}/accounts", c1), foreignIP); m["error"] != "ip 192.0.2.2 is an account of a client outside this reseller's tree: only the operator can share it" || m["field"] != "ident" {
		t.Errorf("account on a foreign client's IP: %v", m)
	}
	own := e.create(path("/v1/clients/{id}/accounts", c1), map[string]any{"kind": "ip", "ident": "192.0.2.1", "tech_prefix": "44"})
	e.must(409, tok, "PATCH", path("/v1/accounts/{id}", own), map[string]any{"ident": "192.0.2.2"})
	e.must(201, tok, "POST", path("/v1/clients/{id}/accounts", c1), map[string]any{"kind": "ip", "ident": "192.0.2.1", "tech_prefix": "45"})
	a = e.must(200, tok, "POST", "/v1/authorize", map[string]any{"src_ip": "192.0.2.2", "dst": "4412"})
	if a["reason"] != "unknown_account" {
		t.Errorf("foreign account authorized after the attempts: %v", a)
	}
	e.must(201, e.admin, "POST", path("/v1/clients/{id}/accounts", c1), foreignIP) // the operator sees both
	for _, it := range items(t, e.must(200, tok, "GET", "/v1/audit?limit=1000", nil)) {
		if it["entity"] == "rate table" || fmt.Sprint(it["reseller_id"]) == jsonInt(r2) || it["entity_id"] == jsonInt(c2) {
			t.Errorf("reseller reads a foreign audit row: %v", it)
		}
	}
	// a reseller cannot lift itself: its own reseller is read-only, and a
	// sub-reseller cannot be moved out of the tree
	e.must(403, tok, "PATCH", path("/v1/resellers/{id}", r1), map[string]any{"name": "R1 renamed"})
	e.must(422, tok, "PATCH", path("/v1/resellers/{id}", r1a), map[string]any{"parent_id": r2})
	e.must(422, tok, "PATCH", path("/v1/resellers/{id}", r1a), map[string]any{"parent_id": nil})
	e.must(422, tok, "PATCH", path("/v1/clients/{id}", c1), map[string]any{"reseller_id": r2})
	// a client token reads its own client only
	ct := e.token(RoleClient, 0, c1)
	e.must(403, ct, "GET", "/v1/clients", nil)
	e.must(403, ct, "PATCH", path("/v1/clients/{id}", c1), map[string]any{"zip": "1"})
	e.must(403, ct, "POST", "/v1/transactions", map[string]any{"client_id": c1, "kind": "payment", "amount": "1"})
}

// TestCycleThroughTheFileHoldsScope is issue 10's attack end to end: with
// Acme East below Acme Wholesale, a catalog file that makes Wholesale a
// child of East is refused, and East's token still cannot read upward,
// read a sibling's client or move its balance.
func TestCycleThroughTheFileHoldsScope(t *testing.T) {
	e := newEnv(t)
	whole := e.create("/v1/resellers", map[string]any{"name": "Acme Wholesale", "currency": "USD"})
	east := e.create("/v1/resellers", map[string]any{"name": "Acme East", "currency": "USD", "parent_id": whole})
	west := e.create("/v1/resellers", map[string]any{"name": "Acme West", "currency": "USD", "parent_id": whole})
	sibling := e.create("/v1/clients", map[string]any{"name": "West client", "reseller_id": west, "currency": "USD"})
	top := e.create("/v1/clients", map[string]any{"name": "Wholesale client", "reseller_id": whole, "currency": "USD"})

	file := filepath.Join(t.TempDir(), "cycle.yaml")
	if err := os.WriteFile(file, []byte("resellers: [{name: Acme Wholesale, parent: Acme East, currency: USD}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := catalog.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		if _, err := catalog.Apply(context.Background(), e.db.PG, f, catalog.Options{DryRun: dry}); err == nil || !strings.Contains(err.Error(), "that would make a cycle") {
			t.Fatalf("apply (dry %v) of a cycle: %v", dry, err)
		}
	}
	tok := e.token(RoleReseller, east, 0)
	e.must(404, tok, "GET", path("/v1/resellers/{id}", whole), nil)
	e.must(404, tok, "GET", path("/v1/clients/{id}", top), nil)
	e.must(404, tok, "GET", path("/v1/clients/{id}/balance", sibling), nil)
	e.must(422, tok, "POST", "/v1/transactions", map[string]any{"client_id": sibling, "kind": "adjustment", "amount": "5"})
	if got := fmt.Sprint(len(items(t, e.must(200, tok, "GET", "/v1/resellers", nil)))); got != "1" {
		t.Errorf("East's token lists %s resellers, want its own only", got)
	}
}

// TestRateTableScope: a reseller lists the tables its subtree owns or uses
// (vendor cost decks of its own vendors included), not a sideways
// reseller's; a client lists only the orig tables it is rated with.
func TestRateTableScope(t *testing.T) {
	e := newEnv(t)
	r1 := e.create("/v1/resellers", map[string]any{"name": "R1", "currency": "USD"})
	r1a := e.create("/v1/resellers", map[string]any{"name": "R1a", "currency": "USD", "parent_id": r1})
	r2 := e.create("/v1/resellers", map[string]any{"name": "R2", "currency": "USD"})
	table := func(name string, owner int64) int64 {
		body := map[string]any{"name": name, "currency": "USD"}
		if owner != 0 {
			body["reseller_id"] = owner
		}
		return e.create("/v1/rate-tables", body)
	}
	retail, override, vendor1 := table("retail", 0), table("override", 0), table("vendor-1 cost", 0)
	owned, vendor2 := table("R1a own", r1a), table("vendor-2 cost", 0)
	table("R2 own", r2)
	table("unused", 0)
	c1 := e.create("/v1/clients", map[string]any{"name": "C1", "reseller_id": r1a, "currency": "USD", "orig_rate_table_id": retail})
	e.create(path("/v1/clients/{id}/accounts", c1), map[string]any{"kind": "ip", "ident": "192.0.2.1", "orig_rate_table_id": override})
	e.create("/v1/clients", map[string]any{"name": "V1", "reseller_id": r1, "currency": "USD", "term_rate_table_id": vendor1})
	e.create("/v1/clients", map[string]any{"name": "V2", "reseller_id": r2, "currency": "USD", "term_rate_table_id": vendor2})

	names := func(tok string) string {
		var out []string
		for _, it := range items(t, e.must(200, tok, "GET", "/v1/rate-tables", nil)) {
			out = append(out, it["name"].(string))
		}
		return strings.Join(out, ", ")
	}
	if got, want := names(e.token(RoleReseller, r1, 0)), "override, R1a own, retail, vendor-1 cost"; got != want {
		t.Errorf("R1 sees %s, want %s", got, want)
	}
	if got, want := names(e.token(RoleReseller, r1a, 0)), "override, R1a own, retail"; got != want {
		t.Errorf("R1a sees %s, want %s", got, want)
	}
	ct := e.token(RoleClient, 0, c1)
	if got, want := names(ct), "override, retail"; got != want {
		t.Errorf("C1 sees %s, want %s", got, want)
	}
	e.must(404, ct, "GET", path("/v1/rate-tables/{id}/rates", vendor1), nil)
	e.must(404, e.token(RoleReseller, r1a, 0), "GET", path("/v1/rate-tables/{id}", vendor2), nil)
	// a reseller assigns only what it sees
	rt := e.token(RoleReseller, r1, 0)
	e.must(200, rt, "PATCH", path("/v1/clients/{id}", c1), map[string]any{"orig_rate_table_id": owned})
	e.must(422, rt, "PATCH", path("/v1/clients/{id}", c1), map[string]any{"orig_rate_table_id": vendor2})
}
