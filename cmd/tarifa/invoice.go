package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tarifa/tarifa/billing"
	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/sinks"
)

const invoiceSummary = `Invoices (docs/DOMAIN.md "Bill run"): made as drafts (to_verify) from the client's rated calls of
a period in its timezone (xdrs FINAL, by code name; mismatched calls are never on one), its
charge transactions and the corrections of its earlier invoices that reratings changed;
approved (to_send: numbered from the reseller's template, frozen, the fixed balance lowered
by the total), sent by e-mail (sent), paid, or voided (the fixed balance given back, the
number kept). Dates are the client's; --to is exclusive.

Subcommands:
  create --client NAME|ID --from DATE --to DATE   make the draft of a period (again: regenerate it)
  list [--client C] [--state S] [--from D] [--to D] invoices, by period
  show ID [--format json|table|csv|pdf|xdrs] [--out FILE]
                                                  one invoice: JSON, for people, CSV, its PDF, or the
                                                  CSV of its xDRs (numbers masked)
  approve ID | send ID | pay ID | void ID         the state transitions
  statement --client NAME|ID --from DATE --to DATE [--format table|json|csv|pdf]
                                                  what we owe a vendor: its rated term side by code name

Run 'tarifa invoice SUBCOMMAND --help' for its flags.`

var invoiceUsages = map[string]string{
	"create":    "invoice create --client NAME|ID --from DATE --to DATE [--format table|json]",
	"list":      "invoice list [--client NAME|ID] [--state STATE] [--from DATE] [--to DATE] [--format table|csv|json]",
	"show":      "invoice show ID [--format json|table|csv|pdf|xdrs] [--out FILE]",
	"approve":   "invoice approve ID [--format table|json]",
	"send":      "invoice send ID [--format table|json]",
	"pay":       "invoice pay ID [--format table|json]",
	"void":      "invoice void ID [--format table|json]",
	"statement": "invoice statement --client NAME|ID --from DATE --to DATE [--format table|json|csv|pdf] [--out FILE]",
}

// billingFlags are the connection and SMTP settings every billing command
// takes.
type billingFlags struct {
	pgDSN, chDSN *string
	smtp         billing.SMTPConfig
	smtpAddr     *string
	smtpFrom     *string
	smtpTLS      *string
}

func addBillingFlags(fs *flag.FlagSet, withSMTP bool) *billingFlags {
	b := &billingFlags{
		pgDSN: fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN (env TARIFA_PG_DSN)"),
		chDSN: fs.String("clickhouse-dsn", env("TARIFA_CLICKHOUSE_DSN", defaultClickHouseDSN), "ClickHouse DSN, for invoice lines (env TARIFA_CLICKHOUSE_DSN)"),
	}
	if withSMTP {
		b.smtpAddr = fs.String("smtp-addr", env("TARIFA_SMTP_ADDR", ""), "SMTP server host:port (env TARIFA_SMTP_ADDR); empty: mail stays queued")
		b.smtpFrom = fs.String("smtp-from", env("TARIFA_SMTP_FROM", ""), "sender address (env TARIFA_SMTP_FROM)")
		b.smtpTLS = fs.String("smtp-tls", env("TARIFA_SMTP_TLS", billing.TLSAuto), "auto, starttls, tls or none (env TARIFA_SMTP_TLS)")
	}
	return b
}

// open connects to PostgreSQL, and to ClickHouse when ch is set (invoice
// lines, xDRs), and returns the billing service and a closer.
func (b *billingFlags) open(ctx context.Context, ch bool, stderr io.Writer) (*billing.Service, func(), error) {
	pg, err := sinks.OpenPostgres(ctx, *b.pgDSN)
	if err != nil {
		return nil, nil, err
	}
	closers := []func(){pg.Close}
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	var conn driver.Conn
	if ch {
		if conn, err = sinks.OpenClickHouse(ctx, *b.chDSN); err != nil {
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, func() { conn.Close() })
	}
	cfg := billing.Config{}
	if b.smtpAddr != nil {
		cfg.SMTP = billing.SMTPConfig{Addr: *b.smtpAddr, From: *b.smtpFrom, TLS: *b.smtpTLS,
			User: os.Getenv("TARIFA_SMTP_USER"), Password: os.Getenv("TARIFA_SMTP_PASSWORD")}
	}
	log := newLogger(stderr)
	svc, err := billing.New(cfg, pg, report.New(pg, conn, log), log)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return svc, closeAll, nil
}

func runInvoice(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || invoiceUsages[args[0]] == "" {
		help := len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help")
		w := stderr
		if help {
			w = stdout
		}
		fmt.Fprintf(w, "Usage: tarifa invoice SUBCOMMAND [flags]\n\n%s\n", invoiceSummary)
		if help {
			return flag.ErrHelp
		}
		if len(args) > 0 {
			fmt.Fprintf(stderr, "\nunknown subcommand %q\n", args[0])
		}
		return errUsage
	}
	sub := args[0]
	fs := newFlagSet("invoice "+sub, invoiceUsages[sub], invoiceSummary, stderr)
	bf := addBillingFlags(fs, sub == "send")
	var clientRef, from, to, state *string
	formats := map[string][]string{"create": {"table", "json"}, "list": {"table", "csv", "json"}, "show": {"json", "table", "csv", "pdf", "xdrs"},
		"statement": {"table", "json", "csv", "pdf"}}[sub]
	if formats == nil {
		formats = []string{"table", "json"}
	}
	format := fs.String("format", formats[0], strings.Join(formats, ", "))
	var out *string
	switch sub {
	case "create", "statement":
		clientRef = fs.String("client", "", "client name or id (required)")
		from = fs.String("from", "", "first day of the period, YYYY-MM-DD in the client's timezone (required)")
		to = fs.String("to", "", "day after the period, YYYY-MM-DD, exclusive (required)")
	case "list":
		clientRef = fs.String("client", "", "only this client (name or id)")
		state = fs.String("state", "", "only this state: "+strings.Join(billing.States, ", "))
		from = fs.String("from", "", "only periods ending after this day")
		to = fs.String("to", "", "only periods starting before this day")
	}
	if sub == "show" || sub == "statement" {
		out = fs.String("out", "", "write to this file instead of stdout (a PDF needs one or a redirect)")
	}
	id, rest, err := splitID(sub, args[1:])
	if wantsHelp(args[1:]) {
		id, rest, err = 0, args[1:], nil
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return errUsage
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	usage := func(err error) error {
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return errUsage
	}
	if !contains(formats, *format) {
		return usage(fmt.Errorf("--format must be %s", strings.Join(formats, ", ")))
	}
	var fromD, toD billing.Date
	if from != nil {
		if *from != "" {
			if fromD, err = billing.ParseDate(*from); err != nil {
				return usage(fmt.Errorf("--from: %w", err))
			}
		}
		if *to != "" {
			if toD, err = billing.ParseDate(*to); err != nil {
				return usage(fmt.Errorf("--to: %w", err))
			}
		}
		if sub == "create" || sub == "statement" {
			if *clientRef == "" || *from == "" || *to == "" {
				return usage(errors.New("--client, --from and --to are required"))
			}
		}
	}
	needCH := sub == "create" || sub == "statement" || (sub == "show" && *format == "xdrs")
	svc, closeAll, err := bf.open(ctx, needCH, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	w, done, err := output(stdout, out)
	if err != nil {
		return err
	}
	defer done()
	c := billing.Caller{}
	err = func() error {
		switch sub {
		case "create":
			inv, err := svc.Create(ctx, c, *clientRef, fromD, toD)
			if err != nil {
				return err
			}
			return writeInvoice(w, inv, *format)
		case "list":
			invs, total, err := svc.List(ctx, c, billing.ListQuery{Client: *clientRef, State: *state, From: fromD, To: toD})
			if err != nil {
				return err
			}
			if *format == "json" {
				if invs == nil {
					invs = []*billing.Invoice{}
				}
				return writeJSONTo(w, invs)
			}
			return billing.ListTable(invs, total).Render(w, *format)
		case "show":
			return showInvoice(ctx, svc, w, id, *format)
		case "approve":
			inv, err := svc.Approve(ctx, c, id)
			if err != nil {
				return err
			}
			return writeTransition(w, inv, *format, fmt.Sprintf("invoice %d approved: number %s, total %s %s; the fixed balance is lowered by it",
				inv.ID, inv.Number, inv.Total.StringFixed(int32(inv.Precision)), inv.Currency))
		case "pay":
			inv, err := svc.Pay(ctx, c, id)
			if err != nil {
				return err
			}
			return writeTransition(w, inv, *format, fmt.Sprintf("invoice %d (%s) marked paid", inv.ID, inv.Number))
		case "void":
			inv, err := svc.Void(ctx, c, id)
			if err != nil {
				return err
			}
			msg := fmt.Sprintf("invoice %d voided (a draft: discarded)", inv.ID)
			if inv.Number != "" {
				msg = fmt.Sprintf("invoice %d (%s) voided: its total %s %s is given back to the fixed balance; the number stays used",
					inv.ID, inv.Number, inv.Total.StringFixed(int32(inv.Precision)), inv.Currency)
			}
			return writeTransition(w, inv, *format, msg)
		case "send":
			m, err := svc.Send(ctx, c, id)
			var de *billing.DeliveryError
			if errors.As(err, &de) {
				if *format == "json" {
					_ = writeJSONTo(w, m)
				}
				return fmt.Errorf("%w; it stays in the mail queue (state %s, attempt %d): tarifa mail send retries the queue", err, m.State, m.Attempts)
			}
			if err != nil {
				return err
			}
			if *format == "json" {
				return writeJSONTo(w, m)
			}
			_, err = fmt.Fprintf(w, "invoice %d sent to %s (mail %d)\n", id, strings.Join(m.Recipients, ", "), m.ID)
			return err
		case "statement":
			st, err := svc.Statement(ctx, c, *clientRef, fromD, toD)
			if err != nil {
				return err
			}
			switch *format {
			case "json":
				return writeJSONTo(w, st)
			case "pdf":
				return billing.WriteStatementPDF(w, st)
			}
			return st.Table().Render(w, *format)
		}
		return nil
	}()
	return billingErr(err, usage)
}

// splitID takes the ID of the subcommands that act on one invoice, before
// or after the flags.
func splitID(sub string, args []string) (int64, []string, error) {
	switch sub {
	case "show", "approve", "send", "pay", "void":
	default:
		return 0, args, nil
	}
	pos := -1
	for i, a := range args {
		if !strings.HasPrefix(a, "-") && (i == 0 || !flagTakesValue(args[i-1])) {
			pos = i
			break
		}
	}
	if pos < 0 {
		return 0, nil, errors.New("the invoice ID is required")
	}
	id, err := strconv.ParseInt(args[pos], 10, 64)
	if err != nil || id <= 0 {
		return 0, nil, fmt.Errorf("invoice ID %q: want a positive integer", args[pos])
	}
	rest := append(append([]string(nil), args[:pos]...), args[pos+1:]...)
	return id, rest, nil
}

func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			return true
		}
	}
	return false
}

// flagTakesValue reports whether a flag given as "--name" (no "=") takes
// the next argument as its value: every flag of these commands does.
func flagTakesValue(a string) bool {
	return strings.HasPrefix(a, "-") && !strings.Contains(a, "=")
}

// output is stdout, or the file named by out.
func output(stdout io.Writer, out *string) (io.Writer, func(), error) {
	if out == nil || *out == "" || *out == "-" {
		return stdout, func() {}, nil
	}
	f, err := os.Create(*out)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

func showInvoice(ctx context.Context, svc *billing.Service, w io.Writer, id int64, format string) error {
	inv, err := svc.Document(ctx, billing.Caller{}, id)
	if err != nil {
		return err
	}
	switch format {
	case "json":
		return writeJSONTo(w, inv)
	case "table":
		return inv.ShowTable().Render(w, "table")
	case "csv":
		err = inv.Table().Render(w, "csv")
	case "pdf":
		err = billing.WritePDF(w, inv)
	case "xdrs":
		return svc.WriteCalls(ctx, w, inv)
	}
	if err != nil {
		return err
	}
	// The document of an approved invoice was taken to be sent by hand.
	_, err = svc.MarkDownloaded(ctx, billing.Caller{}, id)
	return err
}

func writeInvoice(w io.Writer, inv *billing.Invoice, format string) error {
	if format == "json" {
		return writeJSONTo(w, inv)
	}
	return inv.ShowTable().Render(w, "table")
}

func writeTransition(w io.Writer, inv *billing.Invoice, format, msg string) error {
	if format == "json" {
		return writeJSONTo(w, inv)
	}
	_, err := fmt.Fprintln(w, msg)
	return err
}

func writeJSONTo(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// billingErr turns the billing package's errors into the CLI's: a field
// error is a usage error, the others are printed as they are.
func billingErr(err error, usage func(error) error) error {
	var fe *billing.FieldError
	if errors.As(err, &fe) {
		return usage(err)
	}
	return err
}

func runBillrun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("billrun", "billrun [--at TIME] [--dry-run] [--format table|json]",
		"Creates, for every client with autoinvoicing on and payment terms, the invoice (a draft,\n"+
			"to_verify) of each period of its terms that has closed by --at in its own timezone and starts\n"+
			"after its last invoiced date, and moves that date. Never two invoices for one client and\n"+
			"period, however often or concurrently it runs; a period with nothing to bill gets none.\n"+
			"Lists first the mismatched calls of those periods, which are on no invoice until fixed and\n"+
			"rerated, and the calls that matched no client. --dry-run runs the same and rolls it back:\n"+
			"it lists exactly what the run would make. Exit 1 when a client could not be invoiced.", stderr)
	bf := addBillingFlags(fs, false)
	atFlag := fs.String("at", "", "RFC 3339 time or YYYY-MM-DD (midnight UTC) the periods must have closed by (default now)")
	dry := fs.Bool("dry-run", false, "list what the run would create and write nothing")
	format := fs.String("format", "table", "table or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	at := time.Now()
	if *atFlag != "" {
		var err error
		if at, err = time.Parse(time.RFC3339Nano, *atFlag); err != nil {
			if at, err = time.Parse(time.DateOnly, *atFlag); err != nil {
				fmt.Fprintf(stderr, "--at %q: want an RFC 3339 time or YYYY-MM-DD\n", *atFlag)
				fs.Usage()
				return errUsage
			}
		}
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintln(stderr, "--format must be table or json")
		fs.Usage()
		return errUsage
	}
	svc, closeAll, err := bf.open(ctx, true, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	run, err := svc.BillRun(ctx, billing.Caller{}, at, *dry)
	if err != nil {
		return err
	}
	if *format == "json" {
		err = writeJSONTo(stdout, run)
	} else {
		for _, t := range run.Tables() {
			if err := t.Render(stdout, "table"); err != nil {
				return err
			}
			fmt.Fprintln(stdout)
		}
		_, err = fmt.Fprintln(stdout, run.Summary())
	}
	if err != nil {
		return err
	}
	if len(run.Errors) > 0 {
		return fmt.Errorf("%d client(s) not invoiced (listed above)", len(run.Errors))
	}
	return nil
}

const mailUsage = `Usage: tarifa mail list [--state queued|sent|failed] [--limit 100] [--format table|json]
       tarifa mail send [--id ID]

The mail queue: every e-mail Tarifa sends (invoices), its state (queued, sent, failed),
attempts and last error.

Subcommands:
  list   the queue, newest first
  send   try the queued mails again (a failed one after its last attempt only with --id)

Run 'tarifa mail list --help' or 'tarifa mail send --help' for their flags.
`

func runMail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const summary = "The mail queue: every e-mail Tarifa sends (invoices), its state (queued, sent, failed),\n" +
		"attempts and last error. 'list' shows it; 'send' tries the queued mails again (failed ones\n" +
		"after their last attempt only with --id)."
	if len(args) == 0 {
		fmt.Fprint(stderr, mailUsage)
		return errUsage
	}
	switch args[0] {
	case "list", "send":
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, mailUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown mail subcommand %q\n\n%s", args[0], mailUsage)
		return errUsage
	}
	sub := args[0]
	fs := newFlagSet("mail "+sub, map[string]string{"list": "mail list [--state queued|sent|failed] [--limit 100] [--format table|json]",
		"send": "mail send [--id ID]"}[sub], summary, stderr)
	bf := addBillingFlags(fs, sub == "send")
	state, limit, format, id := new(string), new(int), new(string), new(int64)
	if sub == "list" {
		state = fs.String("state", "", "only this state: queued, sent or failed")
		limit = fs.Int("limit", 100, "at most this many, newest first")
		format = fs.String("format", "table", "table or json")
	} else {
		id = fs.Int64("id", 0, "retry this mail only (a failed one too)")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	svc, closeAll, err := bf.open(ctx, false, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	if sub == "list" {
		ms, err := svc.ListMail(ctx, billing.Caller{}, *state, *limit)
		if err != nil {
			return billingErr(err, func(err error) error { fmt.Fprintln(stderr, err); fs.Usage(); return errUsage })
		}
		if *format == "json" {
			if ms == nil {
				ms = []*billing.Mail{}
			}
			return writeJSONTo(stdout, ms)
		}
		return billing.MailTable(ms).Render(stdout, "table")
	}
	if *id != 0 {
		m, err := svc.RetryMail(ctx, billing.Caller{}, *id)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "mail %d %s\n", m.ID, m.State)
		return err
	}
	sent, failed, err := svc.DeliverQueued(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d mail(s) sent, %d failed this time\n", sent, len(failed))
	for _, m := range failed {
		fmt.Fprintf(stdout, "  mail %d (%s, attempt %d): %s\n", m.ID, m.State, m.Attempts, m.LastError)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d mail(s) not delivered", len(failed))
	}
	return nil
}
