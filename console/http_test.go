package console_test

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tarifa/tarifa/api"
	"github.com/tarifa/tarifa/console"
)

// visitor is a browser without a browser: a cookie jar that follows no
// redirects, so each answer can be looked at.
type visitor struct {
	t    *testing.T
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) visitor() *visitor {
	jar, _ := cookiejar.New(nil)
	return &visitor{t: e.t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// do sends a request and returns the status, the Location and the body;
// the CSRF token of a page it reads is kept for the next form.
func (v *visitor) do(req *http.Request) (int, string, string) {
	v.t.Helper()
	resp, err := v.c.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(b); m != nil {
		v.csrf = string(m[1])
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

func (v *visitor) get(path string) (int, string, string) {
	req, _ := http.NewRequest(http.MethodGet, v.e.srv.URL+path, nil)
	return v.do(req)
}

func (v *visitor) post(path string, form url.Values, header ...string) (int, string, string) {
	req, _ := http.NewRequest(http.MethodPost, v.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return v.do(req)
}

func (v *visitor) signIn(token string) {
	v.t.Helper()
	if code, loc, body := v.post("/signin", url.Values{"token": {token}, "next": {"/clients"}}); code != http.StatusSeeOther || loc != "/clients" {
		v.t.Fatalf("sign-in: %d to %q: %s", code, loc, body)
	}
	v.get("/clients") // a page, for its CSRF token
}

// TestSessionAndCSRF: pages need a session; the session cookie holds a
// random id, HttpOnly and SameSite=Strict; a form without the session's
// CSRF token, one from another site and one with a file it does not take
// change nothing; sign-in goes back only to this site; sign-out ends the
// session.
func TestSessionAndCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.visitor()
	if code, loc, _ := v.get("/clients?name=x"); code != http.StatusSeeOther || loc != "/signin?next=%2Fclients%3Fname%3Dx" {
		t.Fatalf("no session: %d to %q", code, loc)
	}
	if code, _, body := v.get("/metrics"); code != http.StatusNotFound || !strings.Contains(body, "no such page") {
		t.Fatalf("a path that is no page: %d", code)
	}
	if code, _, body := v.post("/resellers/new", url.Values{"name": {"X"}, "currency": {"USD"}}); code != http.StatusForbidden || !strings.Contains(body, "signed out") {
		t.Fatalf("a form without a session: %d %s", code, body)
	}
	if code, _, body := v.post("/signin", url.Values{"token": {"tarifa_nope"}}); code != http.StatusUnauthorized || !strings.Contains(body, "the API refused this token") {
		t.Fatalf("a bad token: %d %s", code, body)
	}
	if code, loc, _ := v.post("/signin", url.Values{"token": {e.admin}, "next": {"//evil.example/x"}}); code != http.StatusSeeOther || loc != "/" {
		t.Fatalf("sign-in with a foreign next: %d to %q, want /", code, loc)
	}
	u, _ := url.Parse(e.srv.URL)
	cookies := v.c.Jar.Cookies(u)
	if len(cookies) != 1 || strings.Contains(cookies[0].Value, e.admin) || len(cookies[0].Value) < 40 {
		t.Fatalf("cookies %v: want one random session id", cookies)
	}
	resp, err := v.c.Post(e.srv.URL+"/signin", "application/x-www-form-urlencoded", strings.NewReader(url.Values{"token": {e.admin}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"tarifa_console=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %s", sc, want)
		}
	}
	v.get("/resellers/new")
	form := url.Values{"name": {"Made"}, "_orig_name": {""}, "currency": {"USD"}, "_orig_currency": {""}}
	if code, _, body := v.post("/resellers/new", form); code != http.StatusForbidden || !strings.Contains(body, "CSRF") {
		t.Fatalf("no CSRF token: %d %s", code, body)
	}
	form.Set("csrf", v.csrf)
	if code, _, _ := v.post("/resellers/new", form, "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
		t.Fatalf("a form posted from another site: %d", code)
	}
	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	_ = w.WriteField("csrf", v.csrf)
	_ = w.WriteField("name", "Made")
	_ = w.Close()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/resellers/new", &mp)
	req.Header.Set("Content-Type", w.FormDataContentType())
	if code, _, _ := v.do(req); code != http.StatusUnsupportedMediaType {
		t.Fatalf("a multipart form where none is taken: %d", code)
	}
	if n := e.v1(200, e.admin, "GET", "/v1/resellers", nil)["total"]; fmt.Sprint(n) != "0" {
		t.Fatalf("refused forms created %v resellers", n)
	}
	if code, loc, _ := v.post("/resellers/new", form); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/resellers/") {
		t.Fatalf("the form with its token: %d to %q", code, loc)
	}
	if code, loc, _ := v.post("/signout", url.Values{"csrf": {v.csrf}}); code != http.StatusSeeOther || loc != "/signin" {
		t.Fatalf("sign-out: %d to %q", code, loc)
	}
	if code, _, _ := v.get("/clients"); code != http.StatusSeeOther {
		t.Fatalf("after sign-out a page answers %d", code)
	}
}

// TestMoneyAsTheAPIWritesIt: amounts reach the page as the API's exact
// text, whatever their size or scale — a float would print 1e+12 or lose
// the last digits.
func TestMoneyAsTheAPIWritesIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "EUR"})
	c := e.create("/v1/clients", map[string]any{"name": "Big", "reseller_id": r, "currency": "EUR", "credit_limit": "0.000001"})
	e.v1(201, e.admin, "POST", "/v1/transactions", map[string]any{"client_id": c, "kind": "payment", "amount": "999999999999.999999"})
	e.v1(201, e.admin, "POST", "/v1/transactions", map[string]any{"client_id": c, "kind": "adjustment", "amount": "-0.000007"})
	v := e.visitor()
	v.signIn(e.admin)
	_, _, list := v.get("/clients")
	for _, want := range []string{"999999999999.999993", "999999999999.999992"} {
		if !strings.Contains(list, want) {
			t.Errorf("the client list lacks %s", want)
		}
	}
	_, _, page := v.get(fmt.Sprintf("/clients/%d/transactions", c))
	for _, want := range []string{"999999999999.999999", `<span class="money neg">-0.000007</span>`, "0.000001"} {
		if !strings.Contains(page, want) {
			t.Errorf("the transactions page lacks %s", want)
		}
	}
}

// TestRevokedTokenEndsTheSession: the console asks the API with the
// session's token on every page, so a token revoked (or whose client is
// deleted) opens nothing more, and the session is gone.
func TestRevokedTokenEndsTheSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	c := e.create("/v1/clients", map[string]any{"name": "C", "reseller_id": r, "currency": "USD"})
	v := e.visitor()
	v.signIn(e.token(api.RoleClient, 0, c))
	if code, _, body := v.get(fmt.Sprintf("/clients/%d", c)); code != http.StatusOK || !strings.Contains(body, "C <span") {
		t.Fatalf("own client: %d", code)
	}
	e.v1(200, e.admin, "DELETE", fmt.Sprintf("/v1/clients/%d", c), nil) // a deleted client's token answers 401
	if code, loc, _ := v.get(fmt.Sprintf("/clients/%d", c)); code != http.StatusSeeOther || loc != "/signin?expired=1" {
		t.Fatalf("after the client was deleted: %d to %q", code, loc)
	}
	if code, loc, _ := v.get("/"); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/signin?next=") {
		t.Fatalf("the session outlived its token: %d to %q", code, loc)
	}
}

// TestDeckAppliedAsChecked: Apply applies the bytes the check saw, once; a
// newer check replaces the staged deck.
func TestDeckAppliedAsChecked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	table := e.create("/v1/rate-tables", map[string]any{"name": "T", "currency": "USD"})
	v := e.visitor()
	v.signIn(e.admin)
	check := func(deck string) string {
		t.Helper()
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		_ = w.WriteField("csrf", v.csrf)
		_ = w.WriteField("mode", "replace")
		fw, _ := w.CreateFormFile("deck", "deck.csv")
		_, _ = io.WriteString(fw, deck)
		_ = w.Close()
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/rate-tables/%d/deck", e.srv.URL, table), &b)
		req.Header.Set("Content-Type", w.FormDataContentType())
		code, _, body := v.do(req)
		if code != http.StatusOK && code != http.StatusUnprocessableEntity {
			t.Fatalf("check: %d %s", code, body)
		}
		m := regexp.MustCompile(`name="staged" value="([^"]+)"`).FindStringSubmatch(body)
		if m == nil {
			return ""
		}
		return m[1]
	}
	first := check("code,rate\n44,0.01\n")
	second := check("code,rate\n45,0.02\n46,0.03\n")
	if first == "" || second == "" || first == second {
		t.Fatalf("staged ids %q, %q", first, second)
	}
	apply := func(id string) (int, string) {
		code, loc, _ := v.post(fmt.Sprintf("/rate-tables/%d/deck/apply", table), url.Values{"csrf": {v.csrf}, "staged": {id}})
		_, _, page := v.get(loc)
		return code, page
	}
	if _, page := apply(first); !strings.Contains(page, "no longer waiting") {
		t.Errorf("the replaced check was applied: %s", page)
	}
	if _, page := apply(second); !strings.Contains(page, "applied (replace): 2 added") {
		t.Errorf("apply: %s", page)
	}
	if _, page := apply(second); !strings.Contains(page, "no longer waiting") {
		t.Errorf("a second apply of the same check was not refused")
	}
	rates := e.v1(200, e.admin, "GET", fmt.Sprintf("/v1/rate-tables/%d/rates", table), nil)
	if fmt.Sprint(rates["total"]) != "2" {
		t.Errorf("the table holds %v rates, want the 2 checked", rates["total"])
	}
	// A replace with a rejected line: the API would refuse it, so no Apply
	// is offered.
	if id := check("code,rate\n47,x\n"); id != "" {
		t.Errorf("a deck the API refuses was offered for apply")
	}
	_, _, page := v.get(fmt.Sprintf("/rate-tables/%d", table))
	if !strings.Contains(page, "46") {
		t.Errorf("the refused check changed the table")
	}
}

// TestNothingFromElsewhere: the console's pages and assets name no other
// site, and every answer carries a policy that loads only from this one.
func TestNothingFromElsewhere(t *testing.T) {
	t.Parallel()
	err := fs.WalkDir(console.Assets(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(console.Assets(), path)
		if err != nil {
			return err
		}
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			if strings.Contains(string(b), bad) && !(bad == "http://" && strings.HasSuffix(path, ".svg") && strings.Contains(string(b), "http://www.w3.org/2000/svg")) {
				t.Errorf("%s refers to %q", path, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	for _, path := range []string{"/signin", "/static/console.css"} {
		resp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: Content-Security-Policy %q", path, csp)
		}
	}
}

// TestPaymentSentTwiceRecordedOnce: the payment form carries a reference
// made when it was shown, so the same form sent twice (a double click, a
// page sent again) records one payment, and says so.
func TestPaymentSentTwiceRecordedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	c := e.create("/v1/clients", map[string]any{"name": "C", "reseller_id": r, "currency": "USD"})
	v := e.visitor()
	v.signIn(e.admin)
	_, _, page := v.get(fmt.Sprintf("/clients/%d/transactions", c))
	ref := regexp.MustCompile(`id="t-ref" name="ref" autocomplete="off" value="([^"]+)"`).FindStringSubmatch(page)
	if ref == nil || !strings.HasPrefix(ref[1], "console-") {
		t.Fatalf("the payment form carries no reference:\n%s", page)
	}
	form := url.Values{"csrf": {v.csrf}, "kind": {"payment"}, "amount": {"125.50"}, "ref": {ref[1]}}
	var flashes []string
	for range 2 {
		code, loc, _ := v.post(fmt.Sprintf("/clients/%d/transactions", c), form)
		if code != http.StatusSeeOther {
			t.Fatalf("payment: %d", code)
		}
		_, _, after := v.get(loc)
		flashes = append(flashes, regexp.MustCompile(`class="flash flash-ok" role="status">([^<]+)<`).FindStringSubmatch(after)[1])
	}
	if !strings.HasPrefix(flashes[0], "Payment of 125.500000 USD recorded") || !strings.Contains(flashes[1], "was recorded already") {
		t.Errorf("messages %q", flashes)
	}
	if bal := e.v1(200, e.admin, "GET", fmt.Sprintf("/v1/clients/%d/balance", c), nil); bal["live"] != "125.500000" {
		t.Errorf("live balance %v after the same form twice, want 125.500000", bal["live"])
	}
	// The API's refusal is shown with what was typed.
	form.Set("amount", "12.1234567")
	form.Set("ref", "other-ref")
	code, _, body := v.post(fmt.Sprintf("/clients/%d/transactions", c), form)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "at most 6 decimal places") || !strings.Contains(body, `value="12.1234567"`) {
		t.Errorf("a refused payment: %d\n%s", code, body)
	}
}

// TestRerateDryRunOfAnotherScopeNotConfirmed: a reseller's dry run shows
// its subtree only (what its job would move); an admin reading it is not
// offered to run it, and posting the confirmation anyway starts no job —
// an admin's job would also move what the reseller's leaves alone.
func TestRerateDryRunOfAnotherScopeNotConfirmed(t *testing.T) {
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	rtok := e.token(api.RoleReseller, r, 0)
	sel := map[string]any{"from": "2026-11-01", "to": "2026-11-02", "dry_run": true}
	dry := num(t, e.v1(201, rtok, "POST", "/v1/rerate-jobs", sel)["job"])
	jobs := func() int { return len(e.v1(200, e.admin, "GET", "/v1/rerate-jobs", nil)["jobs"].([]any)) }
	before := jobs()

	admin := e.visitor()
	admin.signIn(e.admin)
	page := fmt.Sprintf("/rerate/%d", dry)
	if code, _, body := admin.get(page); code != http.StatusOK || strings.Contains(body, page+"/confirm") || !strings.Contains(body, "Not yours to confirm") {
		t.Fatalf("an admin reading a reseller's dry run: %d, offered to run it or not told why not:\n%s", code, body)
	}
	if code, loc, _ := admin.post(page+"/confirm", url.Values{"csrf": {admin.csrf}}); code != http.StatusSeeOther || loc != page {
		t.Fatalf("confirming another scope's dry run: %d to %q", code, loc)
	}
	if _, _, body := admin.get(page); !strings.Contains(body, "made for another scope") {
		t.Errorf("the refusal is not shown:\n%s", body)
	}
	if n := jobs(); n != before {
		t.Errorf("%d jobs after confirming another scope's dry run, want %d: a job was started", n, before)
	}

	reseller := e.visitor()
	reseller.signIn(rtok)
	if _, _, body := reseller.get(page); !strings.Contains(body, page+"/confirm") {
		t.Errorf("the reseller is not offered to run its own dry run:\n%s", body)
	}
	if code, loc, _ := reseller.post(page+"/confirm", url.Values{"csrf": {reseller.csrf}}); code != http.StatusSeeOther || loc == page {
		t.Errorf("the reseller confirming its own dry run: %d to %q, want its job's page", code, loc)
	}
	if n := jobs(); n != before+1 {
		t.Errorf("%d jobs after the reseller confirmed, want %d", n, before+1)
	}
}

// TestResellerOwnPageOffersNoEdit: a reseller's token may not edit or
// archive its own reseller (the API refuses), so its own page offers
// neither, while its sub-reseller's page offers both.
func TestResellerOwnPageOffersNoEdit(t *testing.T) {
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	sub := e.create("/v1/resellers", map[string]any{"name": "R sub", "currency": "USD", "parent_id": r})
	v := e.visitor()
	v.signIn(e.token(api.RoleReseller, r, 0))
	own := fmt.Sprintf("/resellers/%d", r)
	if code, _, body := v.get(own); code != http.StatusOK || strings.Contains(body, own+"/edit") || strings.Contains(body, own+"/archive") {
		t.Errorf("a reseller's own page: %d, offers what the API refuses it:\n%s", code, body)
	}
	child := fmt.Sprintf("/resellers/%d", sub)
	if _, _, body := v.get(child); !strings.Contains(body, child+"/edit") || !strings.Contains(body, child+"/archive") {
		t.Errorf("its sub-reseller's page offers no edit or archive:\n%s", body)
	}
}

// TestPortalReportOffersNoVendors: a client's summary report has no vendor
// side, so its grouping chooser does not offer the vendor (the API would
// refuse it), while an operator's does.
func TestPortalReportOffersNoVendors(t *testing.T) {
	e := newEnv(t)
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	cl := e.create("/v1/clients", map[string]any{"name": "C", "reseller_id": r, "currency": "USD"})
	vendor := `name="by" value="term_client"`
	portal := e.visitor()
	portal.signIn(e.token(api.RoleClient, 0, cl))
	if code, _, body := portal.get("/reports/summary"); code != http.StatusOK || strings.Contains(body, vendor) || !strings.Contains(body, `name="by" value="day"`) {
		t.Errorf("the portal's summary: %d, offers grouping by vendor or no grouping at all:\n%s", code, body)
	}
	admin := e.visitor()
	admin.signIn(e.admin)
	if _, _, body := admin.get("/reports/summary"); !strings.Contains(body, vendor) {
		t.Errorf("the operator's summary offers no grouping by vendor:\n%s", body)
	}
}
