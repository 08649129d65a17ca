package console_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tarifa/tarifa/api"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

// startTarifaAPI builds the real binary and runs `tarifa api` on db,
// wired as it is in production (the console at /, /v1 with every
// capability the binary has); it returns the base URL.
func startTarifaAPI(t *testing.T, db *sinktest.DB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tarifa")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/tarifa").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "api", "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "TARIFA_PG_DSN="+db.PGDSN, "TARIFA_CLICKHOUSE_DSN="+db.CHDSN)
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	addr := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`msg="api listening" addr=(\S+)`)
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	select {
	case a := <-addr:
		return "http://" + a
	case err := <-done:
		t.Fatalf("tarifa api exited: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("tarifa api did not start listening")
	}
	return ""
}

// TestInvoicesInBrowser runs the real binary. When it serves /v1/invoices
// (DESIGN.md "Invoices and bill runs"), an admin approves and pays a
// client's invoice and downloads its PDF, the client sees its own invoice
// only, and the admin voids it; when it does not, the console offers no
// invoices at all.
func TestInvoicesInBrowser(t *testing.T) {
	db := sinktest.New(t)
	base := startTarifaAPI(t, db)
	e := &env{t: t, db: db}
	tok, err := api.CreateToken(context.Background(), db.PG, api.RoleAdmin, 0, 0, "admin-console")
	if err != nil {
		t.Fatal(err)
	}
	e.admin = tok.Secret
	e.base = base
	b := newBrowser(t, base)
	admin := b.person(t)
	admin.signIn(e.admin)

	if !e.serves("/v1/invoices") {
		t.Log("this binary's API has no /v1/invoices: the console must offer none")
		if nav := admin.text("nav.mainnav"); strings.Contains(nav, "Invoices") {
			t.Errorf("the menu offers invoices: %s", nav)
		}
		admin.open("/invoices")
		admin.see("this API does not serve invoices yet", "HTTP 404")
		return
	}

	r := e.create("/v1/resellers", map[string]any{"name": "Acme", "currency": "USD", "invoice_number_template": "ACME-{n:4}"})
	table := e.create("/v1/rate-tables", map[string]any{"name": "retail", "currency": "USD"})
	e.v1(200, e.admin, "POST", fmt.Sprintf("/v1/rate-tables/%d/rates", table), "code,code_name,rate\n447,UK Mobile,0.10\n")
	c := e.create("/v1/clients", map[string]any{"name": "Customer A", "reseller_id": r, "currency": "USD", "orig_rate_table_id": table})
	e.create(fmt.Sprintf("/v1/clients/%d/accounts", c), map[string]any{"kind": "ip", "ident": "203.0.113.10"})
	other := e.create("/v1/clients", map[string]any{"name": "Other", "reseller_id": r, "currency": "USD", "orig_rate_table_id": table})
	e.create(fmt.Sprintf("/v1/clients/%d/accounts", other), map[string]any{"kind": "ip", "ident": "203.0.113.11"})
	e.v1(201, e.admin, "POST", "/v1/transactions", map[string]any{"client_id": c, "kind": "payment", "amount": "50"})
	at := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
	commitCalls(t, db,
		call{id: "i1", src: "203.0.113.10", dst: "447700900001", at: at, seconds: 60},
		call{id: "i2", src: "203.0.113.10", dst: "447700900002", at: at.Add(time.Hour), seconds: 120},
		call{id: "i3", src: "203.0.113.11", dst: "447700900003", at: at, seconds: 60},
	)
	inv := num(t, e.v1(201, e.admin, "POST", "/v1/invoices", map[string]any{"client_id": c, "period_from": "2026-11-01", "period_to": "2026-12-01"})["id"])
	foreign := num(t, e.v1(201, e.admin, "POST", "/v1/invoices", map[string]any{"client_id": other, "period_from": "2026-11-01", "period_to": "2026-12-01"})["id"])

	admin.open("/")
	if nav := admin.text("nav.mainnav"); !strings.Contains(nav, "Invoices") {
		t.Fatalf("the menu lacks Invoices: %s", nav)
	}
	admin.open("/invoices?state=to_verify")
	admin.see("Customer A", "Other", "to_verify", "2026-11-01", "2026-12-01", "0.30")
	admin.shot("invoices")
	admin.click(fmt.Sprintf("form[action='/invoices/%d/approve'] button", inv))
	admin.see("approved; it is now to_send")
	got := e.v1(200, e.admin, "GET", fmt.Sprintf("/v1/invoices/%d", inv), nil)
	if got["state"] != "to_send" || got["number"] != "ACME-0001" {
		t.Fatalf("after approve: %v", got)
	}
	admin.open(fmt.Sprintf("/invoices/%d", inv))
	admin.see("Invoice ACME-0001", "UK Mobile", "Net", "Total", "0.30")
	pdf := admin.eval(fmt.Sprintf(`fetch("/invoices/%d/pdf").then(r => r.headers.get("content-type") + " " + r.headers.get("content-disposition") + " " + r.status).then(h => fetch("/invoices/%d/pdf").then(r => r.text()).then(b => h + " " + b.slice(0, 5)))`, inv, inv))
	if !strings.HasPrefix(pdf, "application/pdf") || !strings.Contains(pdf, "attachment") || !strings.HasSuffix(pdf, "200 %PDF-") {
		t.Errorf("the PDF download answered %q", pdf)
	}
	admin.click(fmt.Sprintf("form[action='/invoices/%d/pay'] button", inv))
	admin.see("marked paid; it is now paid")

	client := b.person(t)
	client.signIn(e.token(api.RoleClient, 0, c))
	if nav := client.text("nav.mainnav"); !strings.Contains(nav, "Invoices") {
		t.Errorf("the portal's menu lacks Invoices: %s", nav)
	}
	client.open("/invoices")
	client.see("ACME-0001", "paid")
	client.notSee("Other")
	if n := run(client, chromedp.Evaluate[int](`document.querySelectorAll("form[action^='/invoices/']").length`)); n != 0 {
		t.Errorf("the portal offers %d invoice actions", n)
	}
	client.open(fmt.Sprintf("/invoices/%d", foreign))
	client.see("invoice not found")
	client.open(fmt.Sprintf("/clients/%d/invoices", c))
	client.see("ACME-0001")
	if pdf := client.eval(fmt.Sprintf(`fetch("/invoices/%d/pdf").then(r => r.text()).then(b => b.slice(0, 5))`, inv)); pdf != "%PDF-" {
		t.Errorf("the client's PDF download: %q", pdf)
	}
	client.shot("portal-invoices")

	admin.open(fmt.Sprintf("/invoices/%d", inv))
	admin.click(fmt.Sprintf("form[action='/invoices/%d/void'] button", inv))
	admin.see("voided; it is now void")
	if got := e.v1(200, e.admin, "GET", fmt.Sprintf("/v1/invoices/%d", inv), nil); got["state"] != "void" || got["number"] != "ACME-0001" {
		t.Errorf("after void: %v", got)
	}
}
