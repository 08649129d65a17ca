package billing

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The TLS modes of an SMTP server.
const (
	TLSAuto     = "auto"     // STARTTLS when the server offers it (the default)
	TLSStartTLS = "starttls" // STARTTLS, refused when the server does not offer it
	TLSImplicit = "tls"      // TLS from the first byte (port 465)
	TLSNone     = "none"     // plain text (a relay on the same host or network)
)

// SMTPConfig is the server invoices are e-mailed through (TARIFA_SMTP_*).
type SMTPConfig struct {
	Addr     string // host:port; "" sends nothing (mails stay queued with the reason)
	From     string // the sender address, required with Addr
	User     string // PLAIN authentication when set (over TLS, or to localhost only)
	Password string
	TLS      string        // auto (default) | starttls | tls | none
	Timeout  time.Duration // one delivery, connection to QUIT; default 30s
	// TLSConfig, when set, is the TLS configuration of the connection (a
	// private relay's CA, tests); nil trusts the system's CAs.
	TLSConfig *tls.Config
}

// Validate fills defaults and checks the settings.
func (c *SMTPConfig) Validate() error {
	if c.TLS == "" {
		c.TLS = TLSAuto
	}
	switch c.TLS {
	case TLSAuto, TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return fmt.Errorf("smtp tls %q: want auto, starttls, tls or none", c.TLS)
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("smtp addr %q: want host:port", c.Addr)
	}
	if c.From == "" {
		return errors.New("smtp: a sender address (TARIFA_SMTP_FROM) is required with a server")
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return fmt.Errorf("smtp from %q: %w", c.From, err)
	}
	return nil
}

// The states of a mail in the queue.
const (
	MailQueued = "queued" // waiting, or to be tried again
	MailSent   = "sent"   // the SMTP server accepted it
	MailFailed = "failed" // given up after the last attempt; Retry queues it again
)

// Mail is one e-mail of the mail queue.
type Mail struct {
	ID         int64      `json:"id"`
	Kind       string     `json:"kind"`
	InvoiceID  *int64     `json:"invoice_id"`
	ClientID   *int64     `json:"client_id"`
	Recipients []string   `json:"recipients"`
	Subject    string     `json:"subject"`
	State      string     `json:"state"`
	Attempts   int        `json:"attempts"`
	LastError  string     `json:"last_error"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	SentAt     *time.Time `json:"sent_at"`
}

const mailCols = `m.id, m.kind, m.invoice_id, m.client_id, m.recipients, m.subject, m.state, m.attempts, m.last_error,
	m.created_at, m.updated_at, m.sent_at`

func scanMail(row pgx.Row) (*Mail, error) {
	m := &Mail{}
	err := row.Scan(&m.ID, &m.Kind, &m.InvoiceID, &m.ClientID, &m.Recipients, &m.Subject, &m.State, &m.Attempts, &m.LastError,
		&m.CreatedAt, &m.UpdatedAt, &m.SentAt)
	return m, err
}

// Send e-mails an approved invoice's PDF to the client's billing address
// (its main one when it has none): it records the mail in the queue, in
// the transaction that checks the invoice (a mail of it still queued is
// the one tried again, never a second), and tries it at once. Delivered,
// the mail is sent and a to_send invoice becomes sent; a failed attempt
// stays queued with its error for the next DeliverQueued (or failed, after
// the last attempt) — Send returns the mail either way, and the attempt's
// error. A draft or a void invoice is a *ConflictError; a client without
// an e-mail address a *FieldError.
func (s *Service) Send(ctx context.Context, c Caller, id int64) (*Mail, error) {
	var mailID int64
	_, err := s.transition(ctx, c, id, "send", func(tx pgx.Tx, inv *Invoice, cl *client) error {
		if !approved(inv.State) {
			return conflictErr("invoice %d is %s: only an approved invoice is sent", id, inv.State)
		}
		if len(cl.Emails) == 0 {
			return fieldErr("email_billing", "client %s has no billing or main e-mail address", cl.Name)
		}
		from, err := issuer(ctx, tx, inv.ResellerID)
		if err != nil {
			return err
		}
		subject := fmt.Sprintf("%s from %s, %s to %s", inv.Title(), partyName(from), inv.PeriodFrom, inv.LastDay())
		// A mail of this invoice still queued is tried again (to the
		// current addresses) rather than joined by another: the queue would
		// deliver both, and the client would get the invoice twice.
		err = tx.QueryRow(ctx, `UPDATE mail_queue SET recipients = $2, subject = $3, updated_at = now()
			WHERE id = (SELECT min(id) FROM mail_queue WHERE kind = 'invoice' AND invoice_id = $1 AND state = 'queued')
			RETURNING id`, id, cl.Emails, subject).Scan(&mailID)
		if !errors.Is(err, pgx.ErrNoRows) {
			if err != nil {
				return fmt.Errorf("queue the mail of invoice %d: %w", id, err)
			}
			return nil
		}
		return tx.QueryRow(ctx, `INSERT INTO mail_queue (kind, invoice_id, client_id, reseller_id, recipients, subject)
			VALUES ('invoice', $1, $2, $3, $4, $5) RETURNING id`, id, inv.ClientID, inv.ResellerID, cl.Emails, subject).Scan(&mailID)
	})
	if err != nil {
		return nil, err
	}
	m, derr := s.deliver(ctx, mailID)
	if m == nil {
		return nil, derr
	}
	return m, derr
}

// DeliveryError is a delivery attempt that failed; the mail stays in the
// queue (Mail.State says whether it will be tried again).
type DeliveryError struct {
	MailID int64
	Err    error
}

// Error says which mail and why.
func (e *DeliveryError) Error() string {
	return fmt.Sprintf("mail %d not delivered: %v", e.MailID, e.Err)
}

// Unwrap is the attempt's error.
func (e *DeliveryError) Unwrap() error { return e.Err }

// DeliverQueued tries every queued mail once, oldest first, and returns how
// many were sent and the mails that failed this time. Mails another
// process is delivering are skipped.
func (s *Service) DeliverQueued(ctx context.Context) (sent int, failed []*Mail, err error) {
	rows, err := s.pg.Query(ctx, `SELECT id FROM mail_queue WHERE state = 'queued' ORDER BY id`)
	if err != nil {
		return 0, nil, fmt.Errorf("read the mail queue: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, nil, fmt.Errorf("read the mail queue: %w", err)
	}
	for _, id := range ids {
		m, err := s.deliver(ctx, id)
		var de *DeliveryError
		switch {
		case errors.As(err, &de):
			failed = append(failed, m)
		case err != nil:
			return sent, failed, err
		case m != nil && m.State == MailSent:
			sent++
		}
	}
	return sent, failed, nil
}

// RetryMail queues a mail again (a failed one after its last attempt, or a
// queued one) and tries it at once.
func (s *Service) RetryMail(ctx context.Context, c Caller, id int64) (*Mail, error) {
	args := []any{id}
	tag, err := s.pg.Exec(ctx, `UPDATE mail_queue m SET state = 'queued', updated_at = now()
		WHERE id = $1 AND state IN ('queued', 'failed') AND `+c.scopeCond("m.client_id", &args), args...)
	if err != nil {
		return nil, fmt.Errorf("retry mail %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		m, err := s.GetMail(ctx, c, id)
		if err != nil {
			return nil, err
		}
		return nil, conflictErr("mail %d is %s already", id, m.State)
	}
	return s.deliver(ctx, id)
}

// GetMail reads one mail of c's scope.
func (s *Service) GetMail(ctx context.Context, c Caller, id int64) (*Mail, error) {
	args := []any{id}
	m, err := scanMail(s.pg.QueryRow(ctx, `SELECT `+mailCols+` FROM mail_queue m WHERE m.id = $1 AND `+c.scopeCond("m.client_id", &args), args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("mail %d", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read mail %d: %w", id, err)
	}
	return m, nil
}

// ListMail reads the mail queue of c's scope, newest first: state "" for
// every state; at most limit (default 100).
func (s *Service) ListMail(ctx context.Context, c Caller, state string, limit int) ([]*Mail, error) {
	args := []any{}
	cond := c.scopeCond("m.client_id", &args)
	if state != "" {
		if state != MailQueued && state != MailSent && state != MailFailed {
			return nil, fieldErr("state", "must be queued, sent or failed, got %q", state)
		}
		args = append(args, state)
		cond += " AND m.state = $" + strconv.Itoa(len(args))
	}
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pg.Query(ctx, `SELECT `+mailCols+` FROM mail_queue m WHERE `+cond+` ORDER BY m.id DESC LIMIT `+strconv.Itoa(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list mail: %w", err)
	}
	defer rows.Close()
	var out []*Mail
	for rows.Next() {
		m, err := scanMail(rows)
		if err != nil {
			return nil, fmt.Errorf("list mail: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// deliver makes one attempt at a queued mail: it builds the message, then,
// holding the mail's row (other deliverers skip it), hands it to the SMTP
// server and records the outcome with the invoice's move to sent. A crash
// between the server's acceptance and the commit sends it again on the
// next attempt: at least once, never lost.
func (s *Service) deliver(ctx context.Context, id int64) (*Mail, error) {
	m, err := s.GetMail(ctx, Caller{}, id)
	if err != nil || m.State != MailQueued {
		return m, err
	}
	msg, buildErr := s.message(ctx, m)
	var out *Mail
	var sendErr error
	err = pgx.BeginFunc(ctx, s.pg, func(tx pgx.Tx) error {
		locked, err := scanMail(tx.QueryRow(ctx, `SELECT `+mailCols+` FROM mail_queue m WHERE m.id = $1 AND m.state = 'queued'
			FOR UPDATE SKIP LOCKED`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // sent or being sent by someone else
		}
		if err != nil {
			return fmt.Errorf("lock mail %d: %w", id, err)
		}
		sendErr = buildErr
		if sendErr == nil {
			sendErr = s.cfg.SMTP.send(ctx, locked.Recipients, msg)
		}
		if sendErr == nil {
			if _, err := tx.Exec(ctx, `UPDATE mail_queue SET state = 'sent', attempts = attempts + 1, last_error = '',
				sent_at = clock_timestamp(), updated_at = now() WHERE id = $1`, id); err != nil {
				return fmt.Errorf("record mail %d sent: %w", id, err)
			}
			if locked.InvoiceID != nil {
				return markSent(ctx, tx, *locked.InvoiceID)
			}
			return nil
		}
		state := MailQueued
		if locked.Attempts+1 >= s.cfg.MailAttempts {
			state = MailFailed
		}
		msg := sendErr.Error()
		if len(msg) > 2000 {
			msg = msg[:2000]
		}
		_, err = tx.Exec(ctx, `UPDATE mail_queue SET state = $2, attempts = attempts + 1, last_error = $3, updated_at = now()
			WHERE id = $1`, id, state, msg)
		if err != nil {
			return fmt.Errorf("record mail %d attempt: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out, err = s.GetMail(ctx, Caller{}, id); err != nil {
		return nil, err
	}
	if sendErr != nil {
		s.log.Warn("mail not delivered", "mail_id", id, "attempts", out.Attempts, "state", out.State, "err", sendErr)
		return out, &DeliveryError{MailID: id, Err: sendErr}
	}
	return out, nil
}

// message builds the MIME message of a mail: for an invoice, a short text
// and its PDF attached.
func (s *Service) message(ctx context.Context, m *Mail) ([]byte, error) {
	if s.cfg.SMTP.Addr == "" {
		return nil, errors.New("no SMTP server is configured (TARIFA_SMTP_ADDR)")
	}
	if m.InvoiceID == nil {
		return nil, fmt.Errorf("BUG: mail %d of kind %s has no invoice", m.ID, m.Kind)
	}
	inv, err := s.Document(ctx, Caller{}, *m.InvoiceID)
	if err != nil {
		return nil, err
	}
	var pdf bytes.Buffer
	if err := WritePDF(&pdf, inv); err != nil {
		return nil, err
	}
	text := fmt.Sprintf("Dear %s,\n\nplease find attached %s for the period %s to %s (%s).\n\nTotal: %s %s\nDue date: %s\n\n%s\n",
		partyName(inv.Customer), strings.ToLower(inv.Title()[:1])+inv.Title()[1:], inv.PeriodFrom, inv.LastDay(), inv.Timezone,
		inv.Currency, money(inv.Total, inv.Precision), inv.DueAt, partyName(inv.Issuer))
	file := fileName(inv.Number, inv.ID) + ".pdf"
	return buildMessage(s.cfg.SMTP.From, m.Recipients, m.Subject, fmt.Sprintf("<mail-%d.invoice-%d@tarifa>", m.ID, inv.ID), text,
		attachment{name: file, contentType: "application/pdf", data: pdf.Bytes()})
}

var unsafeFile = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// fileName is an attachment's name made of the invoice number.
func fileName(number string, id int64) string {
	if number == "" {
		return "invoice-draft-" + strconv.FormatInt(id, 10)
	}
	return "invoice-" + strings.Trim(unsafeFile.ReplaceAllString(number, "_"), "_")
}

type attachment struct {
	name, contentType string
	data              []byte
}

// buildMessage writes an RFC 5322 message: headers (the subject encoded
// for any script), a text/plain part in quoted-printable and attachments in
// base64.
func buildMessage(from string, to []string, subject, msgID, text string, atts ...attachment) ([]byte, error) {
	var b bytes.Buffer
	boundary := randomHex(12)
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", from)
	header("To", strings.Join(to, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", subject))
	header("Date", time.Now().UTC().Format(time.RFC1123Z))
	header("Message-ID", msgID)
	header("MIME-Version", "1.0")
	header("Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary)
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(text, "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	b.WriteString("\r\n")
	for _, a := range atts {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s; name=%q\r\nContent-Disposition: attachment; filename=%q\r\nContent-Transfer-Encoding: base64\r\n\r\n",
			boundary, a.contentType, a.name, a.name)
		enc := base64.StdEncoding.EncodeToString(a.data)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("BUG: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// send hands msg to the SMTP server for to, in one session bounded by the
// timeout.
func (c *SMTPConfig) send(ctx context.Context, to []string, msg []byte) error {
	host, _, _ := net.SplitHostPort(c.Addr)
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	tlsConf := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if c.TLSConfig != nil {
		tlsConf = c.TLSConfig.Clone()
		if tlsConf.ServerName == "" {
			tlsConf.ServerName = host
		}
	}
	var conn net.Conn
	var err error
	d := &net.Dialer{}
	if c.TLS == TLSImplicit {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tlsConf}).DialContext(ctx, "tcp", c.Addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", c.Addr)
	}
	if err != nil {
		return fmt.Errorf("connect to smtp %s: %w", c.Addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	cl, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", c.Addr, err)
	}
	defer cl.Close()
	if err := cl.Hello("tarifa"); err != nil {
		return fmt.Errorf("smtp %s: hello: %w", c.Addr, err)
	}
	if c.TLS == TLSAuto || c.TLS == TLSStartTLS {
		if ok, _ := cl.Extension("STARTTLS"); ok {
			if err := cl.StartTLS(tlsConf); err != nil {
				return fmt.Errorf("smtp %s: starttls: %w", c.Addr, err)
			}
		} else if c.TLS == TLSStartTLS {
			return fmt.Errorf("smtp %s does not offer STARTTLS (TARIFA_SMTP_TLS=starttls)", c.Addr)
		}
	}
	if c.User != "" {
		if err := cl.Auth(smtp.PlainAuth("", c.User, c.Password, host)); err != nil {
			return fmt.Errorf("smtp %s: auth: %w", c.Addr, err)
		}
	}
	sender, err := mail.ParseAddress(c.From)
	if err != nil {
		return fmt.Errorf("smtp from %q: %w", c.From, err)
	}
	if err := cl.Mail(sender.Address); err != nil {
		return fmt.Errorf("smtp %s: mail from: %w", c.Addr, err)
	}
	for _, r := range to {
		if err := cl.Rcpt(r); err != nil {
			return fmt.Errorf("smtp %s: rcpt to %s: %w", c.Addr, r, err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: data: %w", c.Addr, err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp %s: data: %w", c.Addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp %s: data: %w", c.Addr, err)
	}
	// The server's 250 after the data took the message: it is delivered,
	// whatever becomes of QUIT (a busy server may hang up instead of
	// answering it), and sending it again would mail the client twice.
	_ = cl.Quit()
	return nil
}
