package billing_test

import (
	"bytes"
	"encoding/csv"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tarifa/tarifa/billing"
	"github.com/tarifa/tarifa/rater"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// pdfText renders inv as a PDF and reads its text back with pdftotext
// (Debian's poppler-utils), each line's runs of spaces made one.
func pdfText(t *testing.T, inv *billing.Invoice) string {
	t.Helper()
	var b bytes.Buffer
	if err := billing.WritePDF(&b, inv); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b.Bytes(), []byte("%PDF-")) {
		t.Fatalf("not a PDF: %q", b.Bytes()[:min(20, b.Len())])
	}
	path := filepath.Join(t.TempDir(), "invoice.pdf")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-layout", "-enc", "UTF-8", path, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext (apt poppler-utils; make up installs it): %v\n%s", err, out)
	}
	spaces := regexp.MustCompile(`[ \t]+`)
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(spaces.ReplaceAllString(l, " ")); l != "" && l != "\f" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./billing -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./billing -run %s -update rewrites it):\n%s", name, t.Name(), got)
	}
}

// TestInvoicePDFReadBack: the PDF of an approved invoice, read back by
// pdftotext, shows the reseller's and the client's company data, the
// number, period, every line, charge and correction, the taxes, total and
// due date, in the fonts embedded in the binary (non-Latin-1 letters too).
func TestInvoicePDFReadBack(t *testing.T) {
	f := newFixture(t)
	f.rate(dstMarch...)
	f.rate(call{id: "l-apr", client: london, dst: "442071239999", end: "2024-04-10T10:00:00Z", seconds: 600})
	f.exec(`UPDATE resellers SET invoice_number_template = 'ACME-{n:5}', company_name = 'Acme Telecom Ltd'`)
	f.exec(`UPDATE clients SET company_name = 'Łódź & Zürich Telekom Sp. z o.o.', zip = '90-001',
		payment_terms_id = NULL WHERE id = 1`)
	f.exec(`INSERT INTO payment_terms (name, period, day, due_days) VALUES ('m30', 'monthly', 1, 30)`)
	f.exec(`INSERT INTO tax_profiles (name, mode, taxes) VALUES ('uk-vat', 'percent_of_total', '[{"name": "VAT", "percent": "20"}]')`)
	f.exec(`UPDATE clients SET payment_terms_id = 1, tax_profile_id = 1 WHERE id = 1`)
	f.exec(`INSERT INTO transactions (client_id, kind, amount, currency, ref, at) VALUES (1, 'charge', 25, 'USD', 'port-fee-04', '2024-04-05T00:00:00Z')`)
	march := f.approve(f.create(london, "2024-03-01", "2024-04-01").ID)
	f.rerate(func(x *rater.XDR) { x.Rating.Orig.CostMicro += 123456 }, "l-last")
	april := f.approve(f.create(london, "2024-04-01", "2024-05-01").ID)
	// Fixed issue times, so that the golden file holds still.
	f.exec(`UPDATE invoices SET issued_at = '2024-04-02T09:00:00Z' WHERE id = $1`, march.ID)
	f.exec(`UPDATE invoices SET issued_at = '2024-05-02T09:00:00Z' WHERE id = $1`, april.ID)
	inv, err := f.svc.Document(f.ctx, billing.Caller{}, april.ID)
	if err != nil {
		t.Fatal(err)
	}
	text := pdfText(t, inv)
	for _, want := range []string{"Invoice " + inv.Number, "Acme Telecom Ltd", "1 Carrier Way, London EC1A 1AA", "Tax ID: GB123456789",
		"Łódź & Zürich Telekom Sp. z o.o.", "90-001", "Tax ID: GB987654321", "2024-04-01 to 2024-04-30 (Europe/London)",
		"Due date 2024-05-31", "Issue date 2024-05-02", "UK Fixed", "port-fee-04", "UK Mobile — invoice " + march.Number,
		"VAT 20% " + inv.Taxes[0].Amount.StringFixed(2), "Total USD " + inv.Total.StringFixed(2)} {
		if !strings.Contains(text, want) {
			t.Errorf("the PDF's text lacks %q:\n%s", want, text)
		}
	}
	golden(t, "invoice_april.golden.txt", text)

	// A draft says it is one.
	f.rate(call{id: "l-may", client: london, dst: "442071239999", end: "2024-05-10T10:00:00Z", seconds: 60})
	draft, err := f.svc.Document(f.ctx, billing.Caller{}, f.create(london, "2024-05-01", "2024-06-01").ID)
	if err != nil {
		t.Fatal(err)
	}
	if text := pdfText(t, draft); !strings.Contains(text, "Invoice draft (to verify, not issued)") || !strings.Contains(text, "Invoice number —") {
		t.Errorf("draft PDF:\n%s", text)
	}
}

// TestInvoiceCSVs: the invoice's CSV lists its lines, charges, taxes and
// total, every row naming the invoice; its xDR CSV masks the client's
// hidden digits and sums to the lines.
func TestInvoiceCSVs(t *testing.T) {
	f := newFixture(t)
	f.rate(dstMarch...)
	inv := f.approve(f.create(london, "2024-03-01", "2024-04-01").ID)
	var b bytes.Buffer
	if err := inv.Table().Render(&b, "csv"); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range recs[1:] {
		if r[1] != inv.Number || r[2] != "London" || r[4] != "2024-03-01" {
			t.Errorf("row %v", r)
		}
		kinds = append(kinds, r[6]+":"+r[7]+":"+r[11])
	}
	want := "traffic:UK Fixed:" + inv.Lines[0].Amount.StringFixed(6) + " traffic:UK Mobile:" + inv.Lines[1].Amount.StringFixed(6) +
		" net:net:" + inv.Net.StringFixed(2) + " total:total:" + inv.Total.StringFixed(2)
	if strings.Join(kinds, " ") != want {
		t.Fatalf("invoice csv rows %v, want %s", kinds, want)
	}
	b.Reset()
	if err := f.svc.WriteCalls(f.ctx, &b, inv); err != nil {
		t.Fatal(err)
	}
	recs, err = csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	total := dec("0")
	for _, r := range recs[1:] {
		if !strings.HasSuffix(r[5], "XXX") || strings.Contains(r[5], "900002") {
			t.Errorf("number %q not masked (hidden digits 3)", r[5])
		}
		total = total.Add(dec(r[11]))
	}
	if len(recs)-1 != 6 || !total.Equal(sum(inv)) {
		t.Fatalf("%d xDRs summing %s, invoice lines %s", len(recs)-1, total, sum(inv))
	}
}

// TestInvoicePDFLongNames: a company name longer than its column wraps
// inside it; a single line ran past the page's edge and the rest of the
// client's legal name was not on its invoice.
func TestInvoicePDFLongNames(t *testing.T) {
	f := newFixture(t)
	f.rate(dstMarch...)
	long := "Zürich Wholesale Telecommunications Holding and Carrier Services Company Limited Partnership Omega"
	f.exec(`UPDATE resellers SET company_name = 'Acme Telecom International Wholesale Voice Carrier Services Group Alpha'`)
	f.exec(`UPDATE clients SET company_name = $1 WHERE id = 1`, long)
	inv, err := f.svc.Document(f.ctx, billing.Caller{}, f.approve(f.create(london, "2024-03-01", "2024-04-01").ID).ID)
	if err != nil {
		t.Fatal(err)
	}
	text := pdfText(t, inv)
	for _, want := range []string{"Partnership Omega", "Group Alpha"} {
		if !strings.Contains(text, want) {
			t.Errorf("the PDF's text lacks %q:\n%s", want, text)
		}
	}
}
