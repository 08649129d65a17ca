package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestHostileInput sends what an attacker or a broken script would, and
// checks the exact status and answer of each: nothing reaches PostgreSQL
// as a 500, nothing is silently changed, every refusal names its field.
func TestHostileInput(t *testing.T) {
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	c := e.create("/v1/clients", map[string]any{"name": "C", "reseller_id": r, "currency": "USD"})
	rt := e.create("/v1/rate-tables", map[string]any{"name": "T", "currency": "USD"})
	clientPath := path("/v1/clients/{id}", c)
	txn := func(extra string) string {
		return fmt.Sprintf(`{"client_id": %d, "kind": "payment", "amount": "1"%s}`, c, extra)
	}
	big := `{"company_name": "` + strings.Repeat("x", 1<<20) + `"}`

	f := func(method, p, body string, wantStatus int, want string) {
		t.Helper()
		req, err := http.NewRequest(method, e.srv.URL+p, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.TrimSpace(string(out)); resp.StatusCode != wantStatus || (want != "" && got != want) {
			t.Errorf("%s %s %.60q:\n got %d %s\nwant %d %s", method, p, body, resp.StatusCode, got, wantStatus, want)
		}
	}
	// NUL and bad bytes in bodies: the field is named
	f("POST", "/v1/transactions", txn(`, "notes": "paid\u0000"`), 422, `{"error":"must be valid UTF-8 text without NUL bytes","field":"notes"}`)
	f("POST", "/v1/transactions", txn(`, "ref": "wire-\u0000"`), 422, `{"error":"must be valid UTF-8 text without NUL bytes","field":"ref"}`)
	f("POST", "/v1/transactions", txn(`, "ref": "wire-`+"\xff"+`"`), 400, `{"error":"not valid UTF-8 text","field":"ref"}`)
	f("PATCH", clientPath, `{"tags": ["gold", "\u0000"]}`, 422, `{"error":"must be valid UTF-8 text without NUL bytes","field":"tags"}`)
	f("PATCH", clientPath, `{"company_name": "Acme `+"\xc3\x28"+` Ltd"}`, 400, `{"error":"not valid UTF-8 text","field":"company_name"}`)
	f("PATCH", clientPath, `{"company_name": "\ud800 lone"}`, 400, `{"error":"not valid UTF-8 text","field":"company_name"}`)
	f("PATCH", clientPath, `{"company_name": "\ud83d\ude00 fine"}`, 200, "") // a surrogate pair is fine
	f("PATCH", clientPath, `{"`+"\xff"+`": 1}`, 400, `{"error":"a field name is not valid UTF-8"}`)
	f("POST", "/v1/authorize", `{"src_user": "trunk\u0000", "dst": "44"}`, 422, `{"error":"must be valid UTF-8 text without NUL bytes","field":"src_user"}`)
	// duplicate keys: the last no longer silently wins
	f("PATCH", clientPath, `{"zip": "1000", "zip": "2000"}`, 400, `{"error":"given twice","field":"zip"}`)
	f("POST", "/v1/transactions", txn(`, "amount": "1000"`), 400, `{"error":"given twice","field":"amount"}`)
	f("PATCH", clientPath, `{"zip": "1"} {"zip": "2"}`, 400, `{"error":"body must be a JSON object"}`)
	// NUL and bad bytes in list filters
	f("GET", "/v1/clients?name=%00", "", 400, `{"error":"must be valid UTF-8 text without NUL bytes","field":"name"}`)
	f("GET", "/v1/clients?tag=%FF", "", 400, `{"error":"must be valid UTF-8 text without NUL bytes","field":"tag"}`)
	f("GET", "/v1/clients?email=a%00*", "", 400, `{"error":"must be valid UTF-8 text without NUL bytes","field":"email"}`)
	f("GET", "/v1/audit?entity=client%00", "", 400, `{"error":"must be valid UTF-8 text without NUL bytes","field":"entity"}`)
	f("GET", path("/v1/rate-tables/{id}/rates?code=44%00", rt), "", 400, `{"error":"must be valid UTF-8 text without NUL bytes","field":"code"}`)
	f("GET", "/v1/rate-tables?currency=%C0", "", 400, `{"error":"must be valid UTF-8 text without NUL bytes","field":"currency"}`)
	// a second account on the same ident answers which, once
	e.create(path("/v1/clients/{id}/accounts", c), map[string]any{"kind": "ip", "ident": "192.0.2.40"})
	f("POST", path("/v1/clients/{id}/accounts", c), `{"kind": "ip", "ident": "192.0.2.40"}`, 409,
		`{"error":"already exists: (kind, ident, tech_prefix)=(ip, 192.0.2.40, )","field":"ident"}`)
	// a query parameter given twice: the first no longer silently wins
	f("POST", path("/v1/rate-tables/{id}/rates?mode=merge&mode=replace", rt), "code,rate\n44,0.1\n", 400, `{"error":"given twice","field":"mode"}`)
	f("POST", path("/v1/rate-tables/{id}/rates?dry_run=true&dry_run=false", rt), "code,rate\n44,0.1\n", 400, `{"error":"given twice","field":"dry_run"}`)
	f("GET", "/v1/clients?limit=1&limit=1000", "", 400, `{"error":"given twice","field":"limit"}`)
	// caps on free text and bodies
	f("POST", "/v1/transactions", txn(`, "notes": "`+strings.Repeat("n", 4097)+`"`), 422, `{"error":"longer than 4096 bytes","field":"notes"}`)
	f("POST", "/v1/transactions", txn(`, "ref": "`+strings.Repeat("r", 201)+`"`), 422, `{"error":"longer than 200 bytes","field":"ref"}`)
	f("PATCH", clientPath, `{"company_name": "`+strings.Repeat("x", 1001)+`"}`, 422, `{"error":"longer than 1000 bytes","field":"company_name"}`)
	f("PATCH", clientPath, big, 413, `{"error":"request body above 1048576 bytes"}`)
	// amounts: bounded, named
	f("POST", "/v1/transactions", fmt.Sprintf(`{"client_id": %d, "kind": "payment", "amount": "1000000000000.000001"}`, c), 422,
		`{"error":"at most 1000000000000 in either sign, got 1000000000000.000001","field":"amount"}`)
	f("POST", "/v1/transactions", fmt.Sprintf(`{"client_id": %d, "kind": "adjustment", "amount": "-99999999999999.999999"}`, c), 422,
		`{"error":"at most 1000000000000 in either sign, got -99999999999999.999999","field":"amount"}`)
	f("POST", "/v1/transactions", fmt.Sprintf(`{"client_id": %d, "kind": "charge", "amount": "0.0000001"}`, c), 422,
		`{"error":"at most 6 decimal places, got 0.0000001","field":"amount"}`)
	f("POST", "/v1/transactions", fmt.Sprintf(`{"client_id": %d, "kind": "payment", "amount": 5}`, c), 400,
		`{"error":"must be a decimal string such as \"12.50\"","field":"amount"}`)
	f("PATCH", clientPath, `{"credit_limit": "1000000000000.5"}`, 422, `{"error":"at most 1000000000000 in either sign, got 1000000000000.5","field":"credit_limit"}`)
	f("PATCH", clientPath, `{"vendor_credit_limit": "-1"}`, 422, `{"error":"may not be negative, got -1","field":"vendor_credit_limit"}`)
	f("PATCH", clientPath, `{"low_balance_threshold": "1e15"}`, 400, `{"error":"\"1e15\" is not a plain decimal such as \"12.50\"","field":"low_balance_threshold"}`)
	f("PATCH", path("/v1/resellers/{id}", r), `{"credit_limit": "1000000000001"}`, 422, `{"error":"at most 1000000000000 in either sign, got 1000000000001","field":"credit_limit"}`)
	// transaction times: the range reports and invoices can hold
	f("POST", "/v1/transactions", txn(`, "at": "0001-01-01T00:00:00Z"`), 422,
		`{"error":"must lie in 1970-01-01 .. 2105-12-31, got 0001-01-01T00:00:00Z","field":"at"}`)
	f("POST", "/v1/transactions", txn(`, "at": "9999-12-31"`), 422,
		`{"error":"must lie in 1970-01-01 .. 2105-12-31, got 9999-12-31","field":"at"}`)
	// the largest amounts move balances exactly
	e.must(201, e.admin, "POST", "/v1/transactions", map[string]any{"client_id": c, "kind": "payment", "amount": "1000000000000"})
	e.must(201, e.admin, "POST", "/v1/transactions", map[string]any{"client_id": c, "kind": "adjustment", "amount": "-0.000001"})
	if b := e.must(200, e.admin, "GET", path("/v1/clients/{id}/balance", c), nil); b["live"] != "999999999999.999999" {
		t.Errorf("balance after the largest payment: %v", b)
	}
	// mass edit: a client listed three times is edited once
	before := len(items(t, e.must(200, e.admin, "GET", path("/v1/audit?entity=client&entity_id={id}", c), nil)))
	m := e.must(200, e.admin, "POST", "/v1/clients/last-invoiced", map[string]any{"client_ids": []int64{c, c, c}, "last_invoiced_at": "2024-01-31"})
	if fmt.Sprintf("%v %v", m["updated"], m["client_ids"]) != fmt.Sprintf("1 [%d]", c) {
		t.Errorf("mass edit of [c, c, c]: %v", m)
	}
	if after := len(items(t, e.must(200, e.admin, "GET", path("/v1/audit?entity=client&entity_id={id}", c), nil))); after != before+1 {
		t.Errorf("mass edit of [c, c, c] wrote %d audit rows, want 1", after-before)
	}
}

// TestHostileDecks: a deck's bad bytes, NULs and over-precise rates reject
// their own lines, by number, and the rest of the deck is imported.
func TestHostileDecks(t *testing.T) {
	e := newEnv(t)
	rt := e.create("/v1/rate-tables", map[string]any{"name": "T", "currency": "USD"})
	p := path("/v1/rate-tables/{id}/rates", rt)
	deck := "code,code_name,rate,setup_fee\n" +
		"44,United Kingdom,0.02,0\n" + // line 2
		"33,Fran\xe7e,0.03,0\n" + // line 3: Latin-1, not UTF-8
		"49,Germa\x00ny,0.04,0\n" + // line 4
		"39,Italy,0.0123456789,0\n" + // line 5
		"34,Spain,0.05,1000000000\n" + // line 6
		"\"351,352\",Portugal,0.06,0\n" // line 7
	m := e.must(200, e.admin, "POST", p, deck)
	rej, _ := json.Marshal(m["rejected"])
	want := `[{"line":3,"reason":"code_name: must be valid UTF-8 text without NUL bytes"},` +
		`{"line":4,"reason":"code_name: must be valid UTF-8 text without NUL bytes"},` +
		`{"line":5,"reason":"rate: at most 9 decimal places, got 0.0123456789"},` +
		`{"line":6,"reason":"setup_fee: at most 999999999, got 1000000000"}]`
	if string(rej) != want || num(t, m["added_count"]) != 3 {
		t.Errorf("import: added %v, rejected\n got %s\nwant %s", m["added_count"], rej, want)
	}
	// replace: every row or none, with the same report, and a 422
	got, out := e.call(e.admin, "POST", p+"?mode=replace", "code,code_name,rate\n44,UK,0.01\n33,Fran\xe7e,0.03\n")
	var ans map[string]any
	_ = json.Unmarshal(out, &ans)
	if got != 422 || ans["applied"] != false || ans["field"] != "body" || fmt.Sprint(ans["rejected_count"]) != "1" {
		t.Errorf("replace with a bad row: %d %s", got, out)
	}
	if n := num(t, e.must(200, e.admin, "GET", p, nil)["total"]); n != 3 {
		t.Errorf("a refused replace changed the table: %d rates", n)
	}
	// replace removes what the deck lacks; merge keeps it
	m = e.must(200, e.admin, "POST", p+"?mode=replace&dry_run=true", "code,code_name,rate\n44,United Kingdom,0.02\n")
	if fmt.Sprintf("%v %v %v", m["removed_count"], m["unchanged_count"], m["applied"]) != "2 1 false" {
		t.Errorf("replace dry run: %v", m)
	}
	m = e.must(200, e.admin, "POST", p+"?mode=replace", "code,code_name,rate\n44,United Kingdom,0.02\n")
	if fmt.Sprintf("%v %v", m["removed_count"], m["applied"]) != "2 true" || num(t, e.must(200, e.admin, "GET", p, nil)["total"]) != 1 {
		t.Errorf("replace: %v", m)
	}
	e.must(200, e.admin, "POST", p, "code,code_name,rate\n1,USA,0.01\n")
	if n := num(t, e.must(200, e.admin, "GET", p, nil)["total"]); n != 2 {
		t.Errorf("merge removed rates: %d left", n)
	}
	e.must(400, e.admin, "POST", p+"?mode=overwrite", "code,rate\n1,1\n")
}

// TestBearerSchemeAnyCase: RFC 7235 schemes are case-insensitive.
func TestBearerSchemeAnyCase(t *testing.T) {
	e := newEnv(t)
	for _, h := range []string{"Bearer ", "bearer ", "BEARER ", "  Bearer   "} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/resellers", nil)
		req.Header.Set("Authorization", h+e.admin)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("Authorization %q…: %d", h, resp.StatusCode)
		}
	}
	for _, h := range []string{"Basic " + e.admin, "Bearer" + e.admin, e.admin} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/resellers", nil)
		req.Header.Set("Authorization", h)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("Authorization %.12q…: %d, want 401", h, resp.StatusCode)
		}
	}
}

// TestDeckAboveItsLimit: a deck larger than Config.MaxDeck answers 413 and
// imports nothing; a JSON body is held to MaxBody, not to the deck's limit.
func TestDeckAboveItsLimit(t *testing.T) {
	e := newEnv(t)
	rt := e.create("/v1/rate-tables", map[string]any{"name": "T", "currency": "USD"})
	base := realServer(t, e, Config{MaxDeck: 4096, MaxBody: 2048})
	post := func(p, ct, body string) (int, string) {
		req, _ := http.NewRequest("POST", base+p, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.admin)
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(out))
	}
	var deck strings.Builder
	deck.WriteString("code,rate\n")
	for i := 0; deck.Len() < 5000; i++ {
		fmt.Fprintf(&deck, "%d,0.01\n", 1000+i)
	}
	if code, out := post(path("/v1/rate-tables/{id}/rates", rt), "text/csv", deck.String()); code != 413 || out != `{"error":"deck above 4096 bytes"}` {
		t.Errorf("deck above the limit: %d %s", code, out)
	}
	if n := num(t, e.must(200, e.admin, "GET", path("/v1/rate-tables/{id}/rates", rt), nil)["total"]); n != 0 {
		t.Errorf("%d rates imported from a deck above the limit", n)
	}
	if code, out := post("/v1/resellers", "application/json", `{"name": "`+strings.Repeat("r", 3000)+`"}`); code != 413 || out != `{"error":"request body above 2048 bytes"}` {
		t.Errorf("JSON above MaxBody: %d %s", code, out)
	}
}
