package billing_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/tarifa/tarifa/billing"
)

// smtpServer is a real SMTP server (emersion/go-smtp) on a loopback port
// of the test, with PLAIN authentication, that keeps what it accepts.
type smtpServer struct {
	addr   string
	reject atomic.Bool // answer RCPT with a permanent error
	mu     sync.Mutex
	got    []received
}

type received struct {
	from string
	to   []string
	data []byte
}

func startSMTP(t *testing.T) *smtpServer {
	t.Helper()
	s := &smtpServer{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{srv: s}, nil }))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *smtpServer) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

type smtpSession struct {
	srv    *smtpServer
	authed bool
	from   string
	to     []string
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "billing" || pass != "s3cret" {
			return errors.New("bad credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.srv.reject.Load() {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable"}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	s.srv.got = append(s.srv.got, received{from: s.from, to: s.to, data: b})
	return nil
}

func (s *smtpSession) Reset()        { s.from, s.to = "", nil }
func (s *smtpSession) Logout() error { return nil }

func (f *fixture) withSMTP(cfg billing.SMTPConfig) *billing.Service {
	f.t.Helper()
	svc, err := billing.New(billing.Config{SMTP: cfg, MailAttempts: 3}, f.db.PG, f.reports, quiet)
	if err != nil {
		f.t.Fatal(err)
	}
	return svc
}

// attachmentText finds the PDF attached to a message and reads its text
// with pdftotext.
func attachmentText(t *testing.T, raw []byte) (subject, body, pdfText string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain"):
			body = string(data)
		case strings.HasPrefix(p.Header.Get("Content-Type"), "application/pdf"):
			dec, err := decodeBase64(data)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), p.FileName())
			if err := os.WriteFile(path, dec, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("pdftotext", "-enc", "UTF-8", path, "-").CombinedOutput()
			if err != nil {
				t.Fatalf("pdftotext: %v %s", err, out)
			}
			pdfText = string(out)
		}
	}
	return subject, body, pdfText
}

// TestSendInvoiceOverSMTP: invoice send hands the PDF to a real SMTP
// server (authenticated), records the mail as sent and the invoice as
// sent; a refused or unreachable server leaves the mail queued with its
// error and attempts, failed after the last one, and a retry delivers it.
func TestSendInvoiceOverSMTP(t *testing.T) {
	f := newFixture(t)
	f.rate(dstMarch...)
	srv := startSMTP(t)
	svc := f.withSMTP(billing.SMTPConfig{Addr: srv.addr, From: "Acme Billing <billing@acme.example>", User: "billing", Password: "s3cret"})
	draft := f.create(london, "2024-03-01", "2024-04-01")
	var ce *billing.ConflictError
	if _, err := svc.Send(f.ctx, billing.Caller{}, draft.ID); !errors.As(err, &ce) {
		t.Fatalf("sending a draft: %v", err)
	}
	inv := f.approve(draft.ID)
	m, err := svc.Send(f.ctx, billing.Caller{}, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != billing.MailSent || m.Attempts != 1 || m.SentAt == nil || strings.Join(m.Recipients, ",") != "ap@london.example" {
		t.Fatalf("mail %+v", m)
	}
	got := srv.messages()
	if len(got) != 1 || got[0].from != "billing@acme.example" || strings.Join(got[0].to, ",") != "ap@london.example" {
		t.Fatalf("the server got %+v", got)
	}
	subject, body, text := attachmentText(t, got[0].data)
	if subject != "Invoice 1 from Acme Telecom Ltd, 2024-03-01 to 2024-03-31" {
		t.Errorf("subject %q", subject)
	}
	if !strings.Contains(body, "Total: USD "+inv.Total.StringFixed(2)) || !strings.Contains(body, "Dear London Calling Ltd") {
		t.Errorf("body %q", body)
	}
	if !strings.Contains(text, "Invoice 1") || !strings.Contains(text, "London Calling Ltd") || !strings.Contains(text, inv.Total.StringFixed(2)) {
		t.Errorf("attached PDF reads:\n%s", text)
	}
	if sent, _ := f.svc.Get(f.ctx, billing.Caller{}, inv.ID); sent.State != billing.StateSent || sent.SentAt == nil {
		t.Fatalf("invoice after send: %+v", sent)
	}

	// The server refuses the recipient: queued, with the server's words.
	srv.reject.Store(true)
	m, err = svc.Send(f.ctx, billing.Caller{}, inv.ID)
	var de *billing.DeliveryError
	if !errors.As(err, &de) || m.State != billing.MailQueued || m.Attempts != 1 || !strings.Contains(m.LastError, "mailbox unavailable") {
		t.Fatalf("refused: %+v %v", m, err)
	}
	// Two more failed attempts and it is given up (MailAttempts 3).
	for i := 0; i < 2; i++ {
		if _, failed, err := svc.DeliverQueued(f.ctx); err != nil || len(failed) != 1 {
			t.Fatalf("deliver queued: %v %v", failed, err)
		}
	}
	list, err := svc.ListMail(f.ctx, billing.Caller{}, billing.MailFailed, 0)
	if err != nil || len(list) != 1 || list[0].ID != m.ID || list[0].Attempts != 3 {
		t.Fatalf("failed mails %+v %v", list, err)
	}
	if n, _, _ := svc.DeliverQueued(f.ctx); n != 0 {
		t.Fatal("a failed mail was tried again by itself")
	}
	srv.reject.Store(false)
	m, err = svc.RetryMail(f.ctx, billing.Caller{}, m.ID)
	if err != nil || m.State != billing.MailSent || m.Attempts != 4 || m.LastError != "" {
		t.Fatalf("retry: %+v %v", m, err)
	}
	if len(srv.messages()) != 2 {
		t.Fatalf("the server got %d messages", len(srv.messages()))
	}

	// No server at that address: queued, and the invoice stays to_send.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	down := f.withSMTP(billing.SMTPConfig{Addr: dead, From: "billing@acme.example"})
	f.rate(call{id: "ny-1", client: newYork, dst: "12125550001", end: "2024-03-10T10:00:00Z", seconds: 60})
	ny := f.approve(f.create(newYork, "2024-03-01", "2024-04-01").ID)
	m, err = down.Send(f.ctx, billing.Caller{}, ny.ID)
	if !errors.As(err, &de) || m.State != billing.MailQueued || !strings.Contains(m.LastError, "connect to smtp") {
		t.Fatalf("unreachable: %+v %v", m, err)
	}
	if again, _ := f.svc.Get(f.ctx, billing.Caller{}, ny.ID); again.State != billing.StateToSend {
		t.Fatalf("invoice of an undelivered mail: %s", again.State)
	}
	// The queue is worked off once a server answers.
	if n, failed, err := svc.DeliverQueued(f.ctx); err != nil || n != 1 || len(failed) != 0 {
		t.Fatalf("deliver queued: %d %v %v", n, failed, err)
	}
	if again, _ := f.svc.Get(f.ctx, billing.Caller{}, ny.ID); again.State != billing.StateSent {
		t.Fatalf("invoice after the queue delivered: %s", again.State)
	}
	// A client without an address cannot be sent to.
	f.exec(`UPDATE clients SET email_billing = '', email_main = '' WHERE id = $1`, plain)
	f.rate(call{id: "p-1", client: plain, dst: "12125550001", end: "2024-03-10T10:00:00Z", seconds: 60})
	p := f.approve(f.create(plain, "2024-03-01", "2024-04-01").ID)
	var fe *billing.FieldError
	if _, err := svc.Send(f.ctx, billing.Caller{}, p.ID); !errors.As(err, &fe) {
		t.Fatalf("sending to a client without e-mail: %v", err)
	}
}

func decodeBase64(b []byte) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(b)))
}

// TestSendDeliveredWhenServerHangsUpOnQuit: a server that takes the
// message (250 after the data) and drops the connection instead of
// answering QUIT, as servers under load do, has the mail: it is recorded
// sent, the invoice is sent, and the queue never mails it again.
func TestSendDeliveredWhenServerHangsUpOnQuit(t *testing.T) {
	f := newFixture(t)
	f.rate(dstMarch...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				r := bufio.NewReader(c)
				_, _ = io.WriteString(c, "220 busy ESMTP\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch strings.ToUpper(line[:min(4, len(line))]) {
					case "EHLO", "HELO":
						_, _ = io.WriteString(c, "250 busy\r\n")
					case "MAIL", "RCPT":
						_, _ = io.WriteString(c, "250 ok\r\n")
					case "DATA":
						_, _ = io.WriteString(c, "354 go on\r\n")
						for {
							l, err := r.ReadString('\n')
							if err != nil || l == ".\r\n" {
								break
							}
						}
						accepted.Add(1)
						_, _ = io.WriteString(c, "250 queued\r\n")
						return // hangs up before QUIT
					default:
						_, _ = io.WriteString(c, "500 what\r\n")
					}
				}
			}(c)
		}
	}()
	svc := f.withSMTP(billing.SMTPConfig{Addr: ln.Addr().String(), From: "billing@acme.example"})
	inv := f.approve(f.create(london, "2024-03-01", "2024-04-01").ID)
	m, err := svc.Send(f.ctx, billing.Caller{}, inv.ID)
	if err != nil || m.State != billing.MailSent || m.Attempts != 1 {
		t.Fatalf("send to a server that hangs up on QUIT: %+v %v", m, err)
	}
	if n, failed, err := svc.DeliverQueued(f.ctx); err != nil || n != 0 || len(failed) != 0 {
		t.Fatalf("the queue delivered again: %d %v %v", n, failed, err)
	}
	if got := accepted.Load(); got != 1 {
		t.Fatalf("the server took the invoice %d times", got)
	}
	if sent, _ := f.svc.Get(f.ctx, billing.Caller{}, inv.ID); sent.State != billing.StateSent {
		t.Fatalf("invoice after send: %s", sent.State)
	}
}

// TestSendAgainReusesTheQueuedMail: an operator who sends an invoice again
// while its mail waits in the queue (the server refused it a moment ago)
// tries that mail again; a second mail would reach the client as well
// when the queue is worked off, and the client would get the invoice twice.
func TestSendAgainReusesTheQueuedMail(t *testing.T) {
	f := newFixture(t)
	f.rate(dstMarch...)
	srv := startSMTP(t)
	svc := f.withSMTP(billing.SMTPConfig{Addr: srv.addr, From: "billing@acme.example", User: "billing", Password: "s3cret"})
	inv := f.approve(f.create(london, "2024-03-01", "2024-04-01").ID)
	srv.reject.Store(true)
	first, err := svc.Send(f.ctx, billing.Caller{}, inv.ID)
	var de *billing.DeliveryError
	if !errors.As(err, &de) || first.State != billing.MailQueued {
		t.Fatalf("refused: %+v %v", first, err)
	}
	srv.reject.Store(false)
	again, err := svc.Send(f.ctx, billing.Caller{}, inv.ID)
	if err != nil || again.ID != first.ID || again.State != billing.MailSent || again.Attempts != 2 {
		t.Fatalf("sent again: %+v %v; want mail %d sent at its second attempt", again, err, first.ID)
	}
	if n, failed, err := svc.DeliverQueued(f.ctx); err != nil || n != 0 || len(failed) != 0 {
		t.Fatalf("the queue delivered %d more (%v %v)", n, failed, err)
	}
	if got := len(srv.messages()); got != 1 {
		t.Fatalf("the client got the invoice %d times", got)
	}
	// Sent, a send is a new mail: the client asked for it again.
	third, err := svc.Send(f.ctx, billing.Caller{}, inv.ID)
	if err != nil || third.ID == first.ID || third.State != billing.MailSent {
		t.Fatalf("a resend: %+v %v", third, err)
	}
	if got := len(srv.messages()); got != 2 {
		t.Fatalf("the server got %d messages, want 2", got)
	}
}
