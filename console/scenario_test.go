package console_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tarifa/tarifa/api"
)

// deck has two good lines and two bad ones: a rate that is no number
// (line 4) and an interval below 1 (line 5).
const deck = `code,code_name,rate,interval
44,UK,0.02,1
447,UK Mobile,0.10,1
4420,UK London,abc,1
49,Germany,0.03,0
`

// TestConsoleInBrowser drives the console in a real headless Chromium, as
// an operator, a sub-reseller and a customer would: an admin signs in,
// creates a reseller, a sub-reseller, a rate table and a client, uploads a
// deck with bad lines and sees them rejected before applying it, adds an
// account and a payment and sees the balance, and rerates the client's
// calls (dry run, then the job); a sub-reseller sees only its subtree; a
// client sees only its own balance and traffic; a revoked token's session
// ends. Every figure checked is the one the API holds.
func TestConsoleInBrowser(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t, e.srv.URL)

	// Someone else's world, which the sub-reseller and the client must
	// never see.
	other := e.create("/v1/resellers", map[string]any{"name": "Other Carrier", "currency": "USD"})
	stranger := e.create("/v1/clients", map[string]any{"name": "Stranger Telecom", "reseller_id": other, "currency": "USD"})
	e.v1(201, e.admin, "POST", "/v1/transactions", map[string]any{"client_id": stranger, "kind": "payment", "amount": "777.77"})
	vendorTable := e.create("/v1/rate-tables", map[string]any{"name": "vendor-cost-usd", "currency": "USD"})
	e.v1(200, e.admin, "POST", fmt.Sprintf("/v1/rate-tables/%d/rates", vendorTable), "code,rate\n44,0.005\n")

	admin := b.person(t)
	var customer, acmeEast, acmeWholesale int64
	now := time.Now().UTC()
	at := now.Truncate(time.Minute).Add(-2 * time.Minute)
	if midnight := now.Truncate(24 * time.Hour); at.Before(midnight) {
		at = midnight
	}

	{
		t.Log("== admin signs in")
		admin.open("/")
		if !strings.HasPrefix(admin.location(), "/signin") {
			t.Fatalf("a browser without a session is at %s, want the sign-in page", admin.location())
		}
		admin.fill("#token", "tarifa_not-a-real-token")
		admin.click("form[action='/signin'] button")
		admin.see("the API refused this token")
		admin.signIn(e.admin)
		admin.see("Dashboard", "Clients", "Resellers", "Rate tables", "Reports", "Rerating", "Audit log", "admin")
		// The browser holds a session id it cannot read, never the token.
		ctx, cancel := context.WithTimeout(admin.ctx, step)
		defer cancel()
		cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
		if err != nil {
			t.Fatal(err)
		}
		if len(cookies.Cookies) != 1 {
			t.Fatalf("cookies: %+v, want the session cookie alone", cookies.Cookies)
		}
		c := cookies.Cookies[0]
		if c.Name != "tarifa_console" || !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || strings.Contains(c.Value, e.admin) || strings.HasPrefix(c.Value, "tarifa_") {
			t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, holding no token", c)
		}
		if js := admin.eval(`document.cookie`); js != "" {
			t.Errorf("page scripts read the cookie: %q", js)
		}
	}

	{
		t.Log("== admin creates a reseller and a sub-reseller")
		admin.open("/resellers")
		admin.click("a[href='/resellers/new']")
		admin.fill("#f-name", "Acme Wholesale")
		admin.fill("#f-currency", "USD")
		admin.fill("#f-credit_limit", "5000")
		admin.click("form.objform button[type=submit]")
		admin.see("Reseller Acme Wholesale created")
		acmeWholesale = e.idByName("/v1/resellers", "Acme Wholesale")
		admin.click("a[href='/resellers/new?parent_id=" + fmt.Sprint(acmeWholesale) + "']")
		if v := run(admin, chromedp.Value(chromedp.CSS("#f-parent_id"))); v != fmt.Sprint(acmeWholesale) {
			t.Fatalf("the sub-reseller form's parent is %q, want %d", v, acmeWholesale)
		}
		admin.fill("#f-name", "Acme East")
		admin.fill("#f-currency", "USD")
		admin.click("form.objform button[type=submit]")
		admin.see("Reseller Acme East created")
		acmeEast = e.idByName("/v1/resellers", "Acme East")
		admin.open("/resellers")
		admin.see("Acme Wholesale", "Acme East", "Other Carrier", "5000.000000")
		admin.shot("resellers")
	}

	{
		t.Log("== admin uploads a deck with bad lines and sees them rejected before applying")
		admin.open("/rate-tables/new")
		admin.fill("#f-name", "retail-usd")
		admin.fill("#f-currency", "USD")
		admin.click("form.objform button[type=submit]")
		admin.see("Rate table retail-usd created")
		file := filepath.Join(t.TempDir(), "retail.csv")
		if err := os.WriteFile(file, []byte(deck), 0o644); err != nil {
			t.Fatal(err)
		}
		admin.do(chromedp.SetUploadFiles(chromedp.CSS("#deck"), []string{file}))
		admin.click("form[enctype] button[type=submit]")
		admin.see("Dry run of the deck (merge)", "2 to add", "2 rejected", "Apply this deck")
		rejects := admin.text("table.rejects tbody")
		for _, line := range []string{"4\t", "5\t"} {
			if !strings.Contains(rejects, line) {
				t.Errorf("rejected lines %q lack line %s", rejects, strings.TrimSpace(line))
			}
		}
		if !strings.Contains(rejects, "rate") || !strings.Contains(rejects, "interval") {
			t.Errorf("rejections %q do not say why (rate, interval)", rejects)
		}
		table := e.idByName("/v1/rate-tables", "retail-usd")
		if n := e.v1(200, e.admin, "GET", fmt.Sprintf("/v1/rate-tables/%d/rates", table), nil)["total"]; fmt.Sprint(n) != "0" {
			t.Fatalf("the dry run wrote %v rates", n)
		}
		admin.shot("deck-check")
		admin.click("form[action$='/deck/apply'] button")
		admin.see("Deck retail.csv applied (merge): 2 added", "2 lines rejected and left out")
		admin.see("UK Mobile", "447")
		admin.fill("input[name=prefix]", "447")
		admin.click("form.filters button[type=submit]")
		admin.see("UK Mobile")
		admin.notSee("Germany")
	}

	{
		t.Log("== admin creates a client: the API's refusal shows, then it is created")
		admin.open("/clients")
		admin.click("a[href='/clients/new']")
		admin.fill("#f-name", "Customer A")
		admin.set("#f-reseller_id", fmt.Sprint(acmeEast))
		admin.fill("#f-credit_limit", "100")
		admin.click("form.objform button[type=submit]")
		admin.see("The API refused this", "currency") // no currency given
		if v := run(admin, chromedp.Value(chromedp.CSS("#f-name"))); v != "Customer A" {
			t.Errorf("the refused form lost what was typed: name %q", v)
		}
		admin.fill("#f-currency", "USD")
		admin.set("#f-orig_rate_table_id", fmt.Sprint(e.idByName("/v1/rate-tables", "retail-usd")))
		admin.fill("#f-tags", "gold, uk")
		admin.fill("#f-email_billing", "billing@customer-a.example")
		admin.click("form.objform button[type=submit]")
		admin.see("Client Customer A created")
		customer = e.idByName("/v1/clients", "Customer A")
		got := e.v1(200, e.admin, "GET", fmt.Sprintf("/v1/clients/%d", customer), nil)
		if got["credit_limit"] != "100.000000" || got["email_billing"] != "billing@customer-a.example" || fmt.Sprint(got["tags"]) != "[gold uk]" || num(t, got["reseller_id"]) != acmeEast {
			t.Errorf("the client the console created: %v", got)
		}
		admin.see("Acme East", "retail-usd")
	}

	{
		t.Log("== admin adds an account and a payment and sees the balance")
		admin.open(fmt.Sprintf("/clients/%d/accounts", customer))
		admin.fill("#f-ident", "203.0.113.10")
		admin.click("form.objform button[type=submit]")
		admin.see("Account ip 203.0.113.10 added")
		admin.open(fmt.Sprintf("/clients/%d/transactions", customer))
		admin.see("Add payment")
		admin.fill("#t-amount", "500")
		admin.click("form[action$='/transactions'] button[type=submit]")
		admin.see("Payment of 500.000000 USD recorded")
		bal := admin.text(".balances")
		for _, want := range []string{"Available 600.000000", "Live 500.000000", "Fixed 500.000000", "Credit 100.000000"} {
			if !strings.Contains(strings.Join(strings.Fields(bal), " "), want) {
				t.Errorf("balance %q lacks %q", bal, want)
			}
		}
		admin.see("500.000000")
		admin.shot("client-transactions")
	}

	{
		t.Log("== calls are rated and the dashboard and reports show them")
		e.commitCalls(
			call{id: "c1", src: "203.0.113.10", dst: "447700900123", at: at, seconds: 60},
			call{id: "c2", src: "203.0.113.10", dst: "447700900124", at: at, seconds: 60},
			call{id: "c3", src: "203.0.113.10", dst: "447700900125", at: at, seconds: 60},
		)
		admin.open("/")
		cards := strings.Join(strings.Fields(admin.text(".cards")), " ")
		if !strings.Contains(cards, "Calls 3") || !strings.Contains(cards, "Answered 3") || !strings.Contains(cards, "ASR 100.00") {
			t.Errorf("dashboard cards %q: want 3 calls, 3 answered, ASR 100.00", cards)
		}
		admin.see("Calls per hour", "0.300000") // revenue today, USD
		admin.open("/reports/summary?grouped=1&by=orig_client")
		admin.see("Customer A", "0.300000")
		admin.open(fmt.Sprintf("/clients/%d", customer))
		if bal := strings.Join(strings.Fields(admin.text(".balances")), " "); !strings.Contains(bal, "Live 499.700000") {
			t.Errorf("after 3 calls at 0.10/min the balance reads %q, want live 499.700000", bal)
		}
	}

	{
		t.Log("== admin rerates: dry run, then the job")
		// The rate was wrong: 447 costs 0.12.
		file := filepath.Join(t.TempDir(), "fix.csv")
		if err := os.WriteFile(file, []byte("code,code_name,rate\n447,UK Mobile,0.12\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		admin.open(fmt.Sprintf("/rate-tables/%d", e.idByName("/v1/rate-tables", "retail-usd")))
		admin.do(chromedp.SetUploadFiles(chromedp.CSS("#deck"), []string{file}))
		admin.click("form[enctype] button[type=submit]")
		admin.see("1 to change", "0 rejected")
		admin.click("form[action$='/deck/apply'] button")
		admin.see("1 changed")

		admin.open("/rerate")
		admin.eval(fmt.Sprintf(`document.querySelector('#r-clients option[value="%d"]').selected = true; ""`, customer))
		admin.set("#r-side", "orig")
		admin.click("form[action='/rerate'] button[type=submit]")
		admin.see("Dry run", "dry_run", "3 selected", "3 changed", "Customer A")
		row := strings.Join(strings.Fields(admin.text("table.list tbody tr")), " ")
		if want := "Customer A orig USD 3 0.3 0.36 0.06"; !strings.Contains(row, want) {
			t.Errorf("dry run row %q, want %q", row, want)
		}
		if bal := e.v1(200, e.admin, "GET", fmt.Sprintf("/v1/clients/%d/balance", customer), nil); bal["live"] != "499.700000" {
			t.Fatalf("the dry run moved the balance: %v", bal)
		}
		admin.shot("rerate-dry-run")
		admin.click("form[action$='/confirm'] button")
		admin.see("done: balances moved by the deltas below", "3 changed")
		if bal := e.v1(200, e.admin, "GET", fmt.Sprintf("/v1/clients/%d/balance", customer), nil); bal["live"] != "499.640000" {
			t.Fatalf("after the job the live balance is %v, want 499.640000", bal["live"])
		}
		admin.open(fmt.Sprintf("/clients/%d", customer))
		if bal := strings.Join(strings.Fields(admin.text(".balances")), " "); !strings.Contains(bal, "Available 599.640000") || !strings.Contains(bal, "Live 499.640000") {
			t.Errorf("after the job the page reads %q", bal)
		}
	}

	{
		t.Log("== admin searches, exports, mass-edits and deletes clients")
		temp := e.create("/v1/clients", map[string]any{"name": "Temp Client", "reseller_id": acmeEast, "currency": "USD"})
		acc := e.create(fmt.Sprintf("/v1/clients/%d/accounts", temp), map[string]any{"kind": "ip", "ident": "198.51.100.99"})
		admin.open("/clients")
		admin.see("Customer A", "Temp Client", "Stranger Telecom", "599.640000", "777.770000")
		admin.fill("input[name=name]", "cust")
		admin.click("form.filters button[type=submit]")
		admin.see("Customer A")
		admin.notSee("Temp Client", "Stranger Telecom")
		csv := admin.eval(`fetch(document.querySelector('a[download]').href).then(r => r.text())`)
		if !strings.HasPrefix(csv, "id,") || !strings.Contains(csv, "Customer A") || strings.Contains(csv, "Stranger") {
			t.Errorf("CSV export of the filtered list:\n%s", csv)
		}
		admin.do(chromedp.Click(chromedp.CSS(fmt.Sprintf("input[name=ids][value='%d']", customer))))
		admin.set("input[name=last_invoiced_at]", "2026-11-30")
		admin.click("form[action='/clients/last-invoiced'] button[type=submit]")
		admin.see("Last invoiced date set to 2026-11-30 on 1 of 1 clients")
		if got := e.v1(200, e.admin, "GET", fmt.Sprintf("/v1/clients/%d", customer), nil)["last_invoiced_at"]; got != "2026-11-30" {
			t.Errorf("last invoiced date %v", got)
		}
		admin.open(fmt.Sprintf("/clients/%d/delete", temp))
		admin.see("Delete Temp Client?", "Its accounts lose orig and term but stay.")
		admin.click("form[action$='/delete'] button")
		admin.see("Client deleted: its accounts lost orig and term but stay.", "deleted")
		a := e.v1(200, e.admin, "GET", fmt.Sprintf("/v1/accounts/%d", acc), nil)
		if a["orig"] != false || a["term"] != false || a["status"] != "active" {
			t.Errorf("the deleted client's account: %v, want kept with orig and term off", a)
		}
		admin.open("/clients?mode=archive")
		admin.see("Temp Client")
		admin.notSee("Customer A")
		admin.open(fmt.Sprintf("/clients/%d/audit", customer))
		admin.see("create", "client #", "last_invoiced_at", "2026-11-30")
	}

	{
		t.Log("== a sub-reseller sees only its subtree")
		parentClient := e.create("/v1/clients", map[string]any{"name": "Parent Client", "reseller_id": acmeWholesale, "currency": "USD"})
		r := b.person(t)
		r.signIn(e.token(api.RoleReseller, acmeEast, 0))
		r.see("reseller", "Acme East")
		r.open("/resellers")
		r.click("a[href='/resellers/new']")
		r.fill("#f-name", "Acme East Retail")
		r.fill("#f-currency", "USD")
		r.click("form.objform button[type=submit]")
		r.see("Reseller Acme East Retail created")
		r.open("/resellers")
		r.see("Acme East", "Acme East Retail")
		r.notSee("Acme Wholesale", "Other Carrier")
		r.open("/clients?status=all")
		r.see("Customer A", "599.640000")
		r.notSee("Stranger Telecom", "Parent Client", "777.770000")
		r.open(fmt.Sprintf("/clients/%d", stranger))
		r.see("client not found", "HTTP 404")
		r.open(fmt.Sprintf("/clients/%d", parentClient))
		r.see("client not found")
		r.open(fmt.Sprintf("/resellers/%d", acmeWholesale))
		r.see("reseller not found")
		r.open("/rate-tables")
		r.see("retail-usd")
		r.notSee("vendor-cost-usd", "New rate table")
		r.open("/audit")
		r.notSee("Stranger Telecom", "Other Carrier")
		r.open("/reports/summary?grouped=1&by=orig_client")
		r.see("Customer A")
		r.shot("reseller-clients")
	}

	{
		t.Log("== a client sees only its own balance and traffic")
		tok := e.token(api.RoleClient, 0, customer)
		c := b.person(t)
		c.signIn(tok)
		c.see("client", "Customer A", "Available", "599.640000", "Live balance", "499.640000")
		nav := c.text("nav.mainnav")
		for _, hidden := range []string{"Clients", "Resellers", "Audit log", "Rerating"} {
			if strings.Contains(nav, hidden) {
				t.Errorf("the customer portal's menu offers %q: %s", hidden, nav)
			}
		}
		if served := e.serves("/v1/invoices"); strings.Contains(nav, "Invoices") != served {
			t.Errorf("the API serves invoices: %v; the menu: %s", served, nav)
		}
		c.shot("portal")
		c.open("/clients")
		c.see("this token's role may not use this endpoint", "HTTP 403")
		c.open(fmt.Sprintf("/clients/%d", stranger))
		c.see("client not found")
		c.notSee("777.77")
		c.open(fmt.Sprintf("/clients/%d/transactions", customer))
		c.see("500.000000")
		c.notSee("Add payment")
		c.open("/rate-tables")
		c.see("retail-usd")
		c.notSee("vendor-cost-usd")
		c.open("/reports/summary?grouped=1&by=day")
		c.see("Customer", "0.360000") // the rerated revenue: what it pays
		c.notSee("Cost", "Profit", "Orig-term")

		// Revoked, the token opens nothing more: the session ends.
		if _, err := e.db.PG.Exec(t.Context(), "UPDATE api_tokens SET revoked_at = now() WHERE client_id = $1", customer); err != nil {
			t.Fatal(err)
		}
		c.open(fmt.Sprintf("/clients/%d", customer))
		c.see("Your session ended")
		if !strings.HasPrefix(c.location(), "/signin") {
			t.Errorf("a revoked token's session is at %s", c.location())
		}
		c.open("/")
		if !strings.HasPrefix(c.location(), "/signin") {
			t.Errorf("after the session ended, / is at %s", c.location())
		}
	}

	{
		t.Log("== keyboard and a narrow window")
		admin.open("/clients")
		admin.do(chromedp.KeyEvent("/"))
		if focused := admin.eval(`document.activeElement.name`); focused != "name" {
			t.Errorf("/ focused %q, want the name search", focused)
		}
		// Chromium's protocol types the "/" into the box it focused; a person's
		// keystroke is cancelled by the page.
		admin.set("input[name=name]", "Customer")
		enter := func() {
			ctx, cancel := context.WithTimeout(admin.ctx, step)
			defer cancel()
			if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.KeyEvent("\r"))); err != nil {
				t.Fatal(err)
			}
		}
		enter() // submits the search
		link := fmt.Sprintf("a[href='/clients/%d']", customer)
		admin.do(chromedp.WaitVisible(chromedp.CSS(link)), chromedp.Focus(chromedp.CSS(link)))
		enter() // follows the link
		admin.at(fmt.Sprintf("/clients/%d", customer))

		admin.do(chromedp.EmulateViewport(390, 844))
		for _, path := range []string{"/", "/clients", fmt.Sprintf("/clients/%d/transactions", customer), "/reports/summary", "/rerate"} {
			admin.open(path)
			if over := admin.eval(`String(document.documentElement.scrollWidth - window.innerWidth)`); over != "0" {
				t.Errorf("%s in a 390 px window is %s px wider than the window", path, over)
			}
		}
		admin.open(fmt.Sprintf("/clients/%d", customer))
		admin.shot("narrow")
		admin.do(chromedp.EmulateViewport(1280, 860))
	}

	{
		t.Log("== the README's pictures, after a day of traffic from another customer through a vendor")
		b2 := e.create("/v1/clients", map[string]any{"name": "Customer B", "reseller_id": acmeWholesale, "currency": "USD",
			"orig_rate_table_id": e.idByName("/v1/rate-tables", "retail-usd"), "unlimited": true, "tags": []string{"postpaid"}})
		e.create(fmt.Sprintf("/v1/clients/%d/accounts", b2), map[string]any{"kind": "ip", "ident": "203.0.113.20"})
		vendor := e.create("/v1/clients", map[string]any{"name": "Vendor X", "reseller_id": acmeWholesale, "currency": "USD", "term_rate_table_id": vendorTable})
		e.create(fmt.Sprintf("/v1/clients/%d/accounts", vendor), map[string]any{"kind": "ip", "ident": "198.51.100.7", "orig": false, "term": true})
		midnight, end := now.Truncate(24*time.Hour), now.Add(-time.Minute)
		var day []call
		for i := range 120 {
			t0 := midnight.Add(end.Sub(midnight) * time.Duration(i) / 120)
			day = append(day, call{id: fmt.Sprintf("b%d", i), src: "203.0.113.20", dst: fmt.Sprintf("44770090%04d", i), term: "198.51.100.7", at: t0, seconds: 30 + (i*37)%400})
		}
		e.commitCalls(day...)
		admin.open("/")
		admin.see("Calls per hour", "Revenue per hour (USD → USD)")
		admin.shot("dashboard")
		admin.open("/clients")
		admin.see("Customer B", "unlimited")
		admin.shot("clients")
		admin.open("/reports/summary?grouped=1&by=orig_client&by=term_client&metric=revenue")
		admin.see("Customer B", "Vendor X")
		admin.shot("report-summary")
	}

	{
		t.Log("== sign-out ends the session")
		admin.open("/")
		admin.click("form[action='/signout'] button")
		if !strings.HasPrefix(admin.location(), "/signin") {
			t.Fatalf("after sign-out at %s", admin.location())
		}
		admin.open("/clients")
		if !strings.HasPrefix(admin.location(), "/signin") {
			t.Fatalf("after sign-out /clients is at %s", admin.location())
		}
	}
}

// TestRerateProgressInBrowser: a confirmed job the API does not finish
// within its wait (202) is followed on its page, which refreshes itself
// until the job is done; the balance then moved by the job's delta.
func TestRerateProgressInBrowser(t *testing.T) {
	e := newEnvWith(t, func(c *api.Config) { c.RerateWait = time.Nanosecond })
	r := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	table := e.create("/v1/rate-tables", map[string]any{"name": "T", "currency": "USD"})
	e.v1(200, e.admin, "POST", fmt.Sprintf("/v1/rate-tables/%d/rates", table), "code,rate\n49,0.06\n")
	c := e.create("/v1/clients", map[string]any{"name": "Kunde", "reseller_id": r, "currency": "USD", "orig_rate_table_id": table})
	e.create(fmt.Sprintf("/v1/clients/%d/accounts", c), map[string]any{"kind": "ip", "ident": "192.0.2.8"})
	at := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	var calls []call
	for i := range 250 {
		calls = append(calls, call{id: fmt.Sprintf("k%d", i), src: "192.0.2.8", dst: "4930123456", at: at.Add(time.Duration(i) * time.Second), seconds: 60})
	}
	e.commitCalls(calls...)
	e.v1(200, e.admin, "POST", fmt.Sprintf("/v1/rate-tables/%d/rates?mode=replace", table), "code,rate\n49,0.12\n")

	p := newBrowser(t, e.srv.URL).person(t)
	p.signIn(e.admin)
	p.open("/rerate?from=2026-11-03&to=2026-11-04")
	p.click("form[action='/rerate'] button[type=submit]")
	// The dry run too is followed until it is done; only then is it
	// offered to run.
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("form[action$='/confirm'] button"))); err != nil {
		t.Fatalf("the dry run's page never offered to run it: %v\n%s", err, p.body())
	}
	p.see("250 selected", "250 changed", "Kunde")
	row := strings.Join(strings.Fields(p.text("table.list tbody tr")), " ")
	if want := "Kunde orig USD 250 15 30 15"; !strings.Contains(row, want) {
		t.Errorf("dry run row %q, want %q", row, want)
	}
	p.click("form[action$='/confirm'] button")
	p.see("is running; this page follows it")
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("h1 .state-done"))); err != nil {
		t.Fatalf("the job's page never showed it done: %v\n%s", err, p.body())
	}
	p.see("250 changed")
	if bal := e.v1(200, e.admin, "GET", fmt.Sprintf("/v1/clients/%d/balance", c), nil); bal["live"] != "-30.000000" {
		t.Errorf("after the job the live balance is %v, want -30.000000", bal["live"])
	}
}
