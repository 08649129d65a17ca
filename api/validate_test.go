package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestValidation sends one bad value per typed field and checks the
// status and the field the error names.
func TestValidation(t *testing.T) {
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	child := e.create("/v1/resellers", map[string]any{"name": "R child", "currency": "USD", "parent_id": r})
	grandchild := e.create("/v1/resellers", map[string]any{"name": "R grandchild", "currency": "USD", "parent_id": child})
	eur := e.create("/v1/rate-tables", map[string]any{"name": "eur", "currency": "EUR"})
	usd := e.create("/v1/rate-tables", map[string]any{"name": "usd", "currency": "USD"})
	usd2 := e.create("/v1/rate-tables", map[string]any{"name": "usd2", "currency": "USD", "parent_id": usd})
	c := e.create("/v1/clients", map[string]any{"name": "C", "reseller_id": r, "currency": "USD"})
	acc := e.create(path("/v1/clients/{id}/accounts", c), map[string]any{"kind": "username", "ident": "trunk"})
	clientPath, resellerPath := path("/v1/clients/{id}", c), path("/v1/resellers/{id}", r)

	f := func(method, p string, body any, wantStatus int, wantField string) {
		t.Helper()
		got, out := e.call(e.admin, method, p, body)
		var ae apiError
		_ = json.Unmarshal(out, &ae)
		if got != wantStatus || ae.Field != wantField || ae.Msg == "" {
			t.Errorf("%s %s %v: %d %s, want %d naming %q", method, p, body, got, out, wantStatus, wantField)
		}
	}
	obj := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	newClient := func(kv ...any) map[string]any {
		m := obj("name", "New", "reseller_id", r, "currency", "USD")
		for k, v := range obj(kv...) {
			m[k] = v
		}
		return m
	}
	// names
	f("POST", "/v1/clients", newClient("name", "  "), 422, "name")
	f("POST", "/v1/resellers", obj("name", "", "currency", "USD"), 422, "name")
	f("POST", "/v1/clients", obj("reseller_id", r, "currency", "USD"), 422, "name")
	f("POST", "/v1/clients", newClient("name", "C"), 409, "name") // taken
	f("POST", "/v1/clients", newClient("name", 12), 400, "name")
	// currencies
	f("POST", "/v1/clients", newClient("currency", "XYZ"), 422, "currency")
	f("POST", "/v1/clients", newClient("currency", "usd"), 422, "currency")
	f("POST", "/v1/rate-tables", obj("name", "x", "currency", "DOLLARS"), 422, "currency")
	f("PATCH", clientPath, obj("currency", "EUR"), 422, "currency") // fixed after creation
	// decimals
	f("PATCH", clientPath, obj("credit_limit", "abc"), 400, "credit_limit")
	f("PATCH", clientPath, obj("credit_limit", 10.5), 400, "credit_limit") // a JSON number: floats are refused
	f("PATCH", clientPath, obj("credit_limit", "-1"), 422, "credit_limit")
	f("PATCH", clientPath, obj("credit_limit", "1.1234567"), 422, "credit_limit")
	f("PATCH", clientPath, obj("credit_limit", "1e3"), 400, "credit_limit")
	f("PATCH", clientPath, obj("low_balance_threshold", "x"), 400, "low_balance_threshold")
	f("PATCH", resellerPath, obj("credit_limit", "1,5"), 400, "credit_limit")
	// timezones
	f("PATCH", clientPath, obj("timezone", "Mars/Olympus"), 422, "timezone")
	f("PATCH", clientPath, obj("timezone", ""), 422, "timezone")
	f("PATCH", clientPath, obj("timezone", "Local"), 422, "timezone")
	// enums, ints, bools, dates, tags, emails, locale
	f("PATCH", clientPath, obj("status", "paused"), 422, "status")
	f("PATCH", clientPath, obj("bill_by", "answer"), 422, "bill_by")
	f("PATCH", clientPath, obj("hidden_digits", 21), 422, "hidden_digits")
	f("PATCH", clientPath, obj("hidden_digits", "3"), 400, "hidden_digits")
	f("PATCH", clientPath, obj("orig_capacity", -1), 422, "orig_capacity")
	f("PATCH", clientPath, obj("unlimited", "yes"), 400, "unlimited")
	f("PATCH", clientPath, obj("last_invoiced_at", "2024-02-30"), 422, "last_invoiced_at")
	f("PATCH", clientPath, obj("tags", []string{"ok", " "}), 422, "tags")
	f("PATCH", clientPath, obj("tags", "gold"), 400, "tags")
	f("PATCH", clientPath, obj("email_main", "not an email"), 422, "email_main")
	f("PATCH", clientPath, obj("email_billing", "Bob <bob@x.example>"), 422, "email_billing")
	f("PATCH", clientPath, obj("locale", "english!"), 422, "locale")
	f("PATCH", clientPath, obj("status", nil), 422, "status")
	f("PATCH", clientPath, obj("colour", "red"), 400, "colour")
	f("PATCH", clientPath, obj(), 400, "")
	f("PATCH", clientPath, "not json", 400, "")
	// references
	f("PATCH", clientPath, obj("reseller_id", 999999), 422, "reseller_id")
	f("PATCH", clientPath, obj("manager_id", 999999), 422, "manager_id")
	f("PATCH", clientPath, obj("payment_terms_id", 999999), 422, "payment_terms_id")
	f("PATCH", clientPath, obj("orig_rate_table_id", 999999), 422, "orig_rate_table_id")
	f("PATCH", clientPath, obj("orig_rate_table_id", eur), 422, "orig_rate_table_id") // currency differs
	f("PATCH", clientPath, obj("term_rate_table_id", "1"), 400, "term_rate_table_id")
	// reseller tree cycles
	f("PATCH", resellerPath, obj("parent_id", grandchild), 422, "parent_id")
	f("PATCH", resellerPath, obj("parent_id", r), 422, "parent_id")
	f("PATCH", resellerPath, obj("status", "deleted"), 409, "status") // still has clients
	f("PATCH", path("/v1/rate-tables/{id}", usd), obj("parent_id", usd2), 422, "parent_id")
	f("POST", "/v1/rate-tables", obj("name", "child", "currency", "EUR", "parent_id", usd), 422, "parent_id")
	// accounts: IPs, prefixes, ANIs
	accounts := path("/v1/clients/{id}/accounts", c)
	f("POST", accounts, obj("kind", "ip", "ident", "300.1.1.1"), 422, "ident")
	f("POST", accounts, obj("kind", "ip", "ident", "10.0.0.1/24"), 422, "ident")
	f("POST", accounts, obj("kind", "ip", "ident", "fe80::1%eth0"), 422, "ident")
	f("POST", accounts, obj("kind", "ip", "ident", ""), 422, "ident")
	f("POST", accounts, obj("kind", "sip", "ident", "x"), 422, "kind")
	f("POST", accounts, obj("kind", "ip", "ident", "192.0.2.9", "tech_prefix", "12a#"), 422, "tech_prefix")
	f("POST", accounts, obj("kind", "username", "ident", "u1", "tech_prefix", "12#"), 422, "tech_prefix")
	f("POST", accounts, obj("kind", "ani", "ident", "+44abc"), 422, "ident")
	f("POST", accounts, obj("kind", "username", "ident", "trunk"), 409, "ident") // taken
	f("POST", accounts, obj("kind", "username", "ident", "two words"), 422, "ident")
	f("PATCH", path("/v1/accounts/{id}", acc), obj("kind", "ip"), 422, "kind")
	f("PATCH", path("/v1/accounts/{id}", acc), obj("orig_rate_table_id", eur), 422, "orig_rate_table_id")
	// transactions
	txn := func(kv ...any) map[string]any {
		m := obj("client_id", c, "kind", "payment", "amount", "10")
		for k, v := range obj(kv...) {
			m[k] = v
		}
		return m
	}
	f("POST", "/v1/transactions", txn("amount", "-10"), 422, "amount")
	f("POST", "/v1/transactions", txn("amount", "0"), 422, "amount")
	f("POST", "/v1/transactions", txn("kind", "adjustment", "amount", "0.00"), 422, "amount")
	f("POST", "/v1/transactions", txn("amount", 10), 400, "amount")
	f("POST", "/v1/transactions", txn("amount", "ten"), 400, "amount")
	f("POST", "/v1/transactions", txn("kind", "refund"), 422, "kind")
	f("POST", "/v1/transactions", txn("currency", "EUR"), 422, "currency")
	f("POST", "/v1/transactions", txn("currency", "EURO"), 422, "currency")
	f("POST", "/v1/transactions", txn("client_id", 999999), 422, "client_id")
	f("POST", "/v1/transactions", txn("at", "yesterday"), 422, "at")
	f("POST", "/v1/transactions", txn("ref", ""), 422, "ref")
	// authorize
	f("POST", "/v1/authorize", obj("src_ip", "1.2.3", "dst", "44"), 422, "src_ip")
	f("POST", "/v1/authorize", obj("src_ip", "1.2.3.4"), 422, "dst")
	f("POST", "/v1/authorize", obj("dst", "44"), 422, "src_ip")
	f("POST", "/v1/authorize", obj("src_ip", "1.2.3.4", "dst", "44", "time", "noon"), 422, "time")
	f("POST", "/v1/authorize", obj("src_ip", "1.2.3.4", "dst", "44", "duration", 3), 400, "duration")
	// query parameters
	f("GET", "/v1/clients?limit=0", nil, 400, "limit")
	f("GET", "/v1/clients?status=gone", nil, 400, "status")
	f("GET", "/v1/resellers?archived=maybe", nil, 400, "archived")
	f("GET", "/v1/audit?from=soon", nil, 400, "from")
	f("GET", "/v1/clients/abc", nil, 404, "")
	// mass edit
	f("POST", "/v1/clients/last-invoiced", obj("client_ids", []int64{c, 999999}, "last_invoiced_at", "2024-01-31"), 422, "client_ids")
	f("POST", "/v1/clients/last-invoiced", obj("client_ids", []int64{c}, "last_invoiced_at", "31/01/2024"), 422, "last_invoiced_at")
}

// TestSQLLookingInputIsData stores and finds names that look like SQL.
func TestSQLLookingInputIsData(t *testing.T) {
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	evil := "x'); DROP TABLE clients; --"
	c := e.create("/v1/clients", map[string]any{"name": evil, "reseller_id": r, "currency": "USD", "tags": []string{"' OR 1=1 --"}})
	got := e.must(200, e.admin, "GET", path("/v1/clients/{id}", c), nil)
	if got["name"] != evil {
		t.Fatalf("name %q", got["name"])
	}
	for _, q := range []string{"name=x'%29%3B", "tag=%27+OR+1%3D1+--", "email=*%27*"} {
		m := e.must(200, e.admin, "GET", "/v1/clients?"+q, nil)
		_ = m
	}
	if n := len(items(t, e.must(200, e.admin, "GET", "/v1/clients?name=%25", nil))); n != 0 {
		t.Fatalf("name=%% matched %d clients: LIKE wildcards must be literal", n)
	}
	if n := len(items(t, e.must(200, e.admin, "GET", "/v1/clients?tag=%27+OR+1%3D1+--", nil))); n != 1 {
		t.Fatalf("tag filter found %d", n)
	}
}

func TestClientListFiltersAndCSV(t *testing.T) {
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	r2 := e.create("/v1/resellers", map[string]any{"name": "R2", "currency": "USD"})
	mk := func(name, email, status string, r int64, tags ...string) int64 {
		return e.create("/v1/clients", map[string]any{"name": name, "email_main": email, "status": status, "reseller_id": r, "currency": "USD", "tags": tags})
	}
	a := mk("Alpha Telecom", "noc@alpha.example", "active", r, "gold")
	mk("alpine voice", "ops@alpine.example", "active", r2, "silver")
	mk("Beta", "noc@beta.example", "stop", r, "gold")
	g := mk("Gamma", "gamma@x.example", "deleted", r)
	e.must(200, e.admin, "PATCH", path("/v1/clients/{id}", g), map[string]any{"company_name": "=cmd|' /C calc'!A0"})
	f := func(q string, want ...string) {
		t.Helper()
		var got []string
		for _, it := range items(t, e.must(200, e.admin, "GET", "/v1/clients"+q, nil)) {
			got = append(got, it["name"].(string))
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: %v, want %v", q, got, want)
		}
	}
	f("", "Alpha Telecom", "alpine voice")
	f("?status=all", "Alpha Telecom", "alpine voice", "Beta", "Gamma")
	f("?status=stop,deleted", "Beta", "Gamma")
	f("?name=alp", "Alpha Telecom", "alpine voice")
	f("?name=ALPHA", "Alpha Telecom")
	f("?email=noc@*&status=all", "Alpha Telecom", "Beta")
	f("?email=*@alpine.example", "alpine voice")
	f("?email=noc@alpha.example", "Alpha Telecom")
	f("?tag=gold&status=all", "Alpha Telecom", "Beta")
	f(path("?reseller_id={id}&status=all", r2), "alpine voice")
	f("?status=all&limit=2&offset=1", "alpine voice", "Beta")
	m := e.must(200, e.admin, "GET", "/v1/clients?limit=1", nil)
	if num(t, m["total"]) != 2 {
		t.Errorf("total %v", m["total"])
	}

	_, csv := e.call(e.admin, "GET", "/v1/clients.csv?status=all", nil)
	lines := strings.Split(strings.TrimSpace(string(csv)), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "id,reseller_id,manager_id,name,currency") {
		t.Fatalf("csv:\n%s", csv)
	}
	if !strings.Contains(string(csv), `'=cmd`) || !strings.Contains(lines[1], jsonInt(a)+",") || !strings.Contains(lines[1], "gold") {
		t.Errorf("csv rows:\n%s", csv)
	}

	// mass edit of the last invoiced date
	ids := []int64{a}
	e.must(200, e.admin, "POST", "/v1/clients/last-invoiced", map[string]any{"client_ids": ids, "last_invoiced_at": "2024-01-31"})
	if got := e.must(200, e.admin, "GET", path("/v1/clients/{id}", a), nil)["last_invoiced_at"]; got != "2024-01-31" {
		t.Errorf("last_invoiced_at %v", got)
	}
}

func TestTransactionsIdempotentByRef(t *testing.T) {
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "GBP"})
	c := e.create("/v1/clients", map[string]any{"name": "C", "reseller_id": r, "currency": "GBP", "credit_limit": "5"})
	body := map[string]any{"client_id": c, "kind": "payment", "amount": "100.25", "ref": "wire-7", "at": "2024-01-02T03:04:05Z"}
	first := e.must(201, e.admin, "POST", "/v1/transactions", body)
	again := e.must(200, e.admin, "POST", "/v1/transactions", body)
	if first["id"] != again["id"] || first["amount"] != "100.250000" || first["currency"] != "GBP" || first["at"] != "2024-01-02T03:04:05Z" {
		t.Fatalf("first %v, again %v", first, again)
	}
	body["amount"] = "99"
	e.must(409, e.admin, "POST", "/v1/transactions", body)
	e.must(201, e.admin, "POST", "/v1/transactions", map[string]any{"client_id": c, "kind": "charge", "amount": "0.25"})
	e.must(201, e.admin, "POST", "/v1/transactions", map[string]any{"client_id": c, "kind": "adjustment", "amount": "-10"})
	b := e.must(200, e.admin, "GET", path("/v1/clients/{id}/balance", c), nil)
	// A charge moves the fixed balance through the invoice that bills it.
	if b["live"] != "90.000000" || b["fixed"] != "90.250000" || b["credit"] != "5.000000" || b["available"] != "95.000000" || b["unlimited"] != false {
		t.Fatalf("balance %v", b)
	}
	list := items(t, e.must(200, e.admin, "GET", path("/v1/clients/{id}/transactions", c), nil))
	if len(list) != 3 || list[2]["ref"] != "wire-7" {
		t.Fatalf("transactions %v", list)
	}
	if n := len(items(t, e.must(200, e.admin, "GET", path("/v1/clients/{id}/transactions?kind=charge", c), nil))); n != 1 {
		t.Fatalf("kind filter: %d", n)
	}
	if n := len(items(t, e.must(200, e.admin, "GET", path("/v1/clients/{id}/transactions?to=2024-01-03", c), nil))); n != 1 {
		t.Fatalf("to filter: %d", n)
	}
}

func TestRatesImport(t *testing.T) {
	e := newEnv(t)
	rt := e.create("/v1/rate-tables", map[string]any{"name": "T", "currency": "USD"})
	p := path("/v1/rate-tables/{id}/rates", rt)
	deck := "code,code_name,rate,effective_from,end_date,min_volume,interval,time_profile\n" +
		"44,UK,0.02,2024-01-01,,1,1,\n" + // line 2
		"447,UK Mobile,0.10,2024-01-01,,60,60,\n" + // line 3
		"447,UK Mobile,0.12,2024-03-01,,60,60,\n" + // line 4
		"44x,Bad,0.1,,,1,1,\n" + // line 5
		"33,FR,0.05,,,0,1,\n" + // line 6
		"34,ES,0.05,,,1,1,business\n" // line 7: no such profile
	m := e.must(200, e.admin, "POST", p, deck)
	if num(t, m["added_count"]) != 3 || num(t, m["rejected_count"]) != 3 {
		t.Fatalf("first import %v", m)
	}
	rej := m["rejected"].([]any)
	for i, line := range []string{"5", "6", "7"} {
		if rr := rej[i].(map[string]any); rr["line"].(json.Number).String() != line || rr["reason"] == "" {
			t.Fatalf("rejected %v", rej)
		}
	}
	// again with one change and one new row: a dry run first
	deck2 := "code,rate,code_name,effective_from,min_volume,interval\n44,0.02,UK,2024-01-01,1,1\n447,0.11,UK Mobile,2024-01-01,60,60\n4420,0.01,London,2024-01-01,1,1\n"
	d := e.must(200, e.admin, "POST", p+"?dry_run=true", deck2)
	if num(t, d["added_count"]) != 1 || num(t, d["changed_count"]) != 1 || num(t, d["unchanged_count"]) != 1 {
		t.Fatalf("dry run %v", d)
	}
	if n := num(t, e.must(200, e.admin, "GET", p, nil)["total"]); n != 3 {
		t.Fatalf("dry run wrote: %d rates", n)
	}
	m = e.must(200, e.admin, "POST", p, deck2)
	ch := m["changed"].([]any)[0].(map[string]any)
	if num(t, m["changed_count"]) != 1 || ch["code"] != "447" || ch["line"].(json.Number).String() != "3" {
		t.Fatalf("second import %v", m)
	}
	// by code and by time
	f := func(q string, want ...string) {
		t.Helper()
		var got []string
		for _, it := range items(t, e.must(200, e.admin, "GET", p+q, nil)) {
			got = append(got, it["code"].(string)+"@"+it["rate"].(string))
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: %v, want %v", q, got, want)
		}
	}
	f("?code=447", "447@0.110000000", "447@0.120000000")
	f("?prefix=442", "4420@0.010000000")
	f("?at=2024-02-15", "44@0.020000000", "4420@0.010000000", "447@0.110000000")
	f("?at=2024-03-01T00:00:00Z", "44@0.020000000", "4420@0.010000000", "447@0.120000000")
	f("?at=2023-12-31")
	// a file that is no deck at all
	e.must(422, e.admin, "POST", p, "name,price\nx,1\n")
	got, _ := e.call(e.admin, "POST", p+"?dry_run=maybe", "code,rate\n1,1\n")
	if got != 400 {
		t.Errorf("dry_run=maybe: %d", got)
	}
	// one audit row per import
	au := items(t, e.must(200, e.admin, "GET", "/v1/audit?action=import_rates", nil))
	if len(au) != 2 {
		t.Errorf("import audit rows: %d", len(au))
	}
}
