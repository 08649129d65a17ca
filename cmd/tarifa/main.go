// Command tarifa is the one binary of Tarifa: the rating worker, the offline
// rater, the catalog and migration tools and the reports, as subcommands.
//
// Configuration comes from TARIFA_* environment variables; a flag of the same
// meaning overrides its variable. Every subcommand answers --help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// command is one subcommand: its one-line summary and its entry point. run
// parses its own flags from args and writes its output to stdout.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists every subcommand; main dispatches on the first argument.
func commands() map[string]command {
	return map[string]command{
		"api":       {"serve the management HTTP API (clients, accounts, rate tables, transactions, balances, authorize, reports, rerating, invoices)", runAPI},
		"billrun":   {"create the invoices of every period closed under the clients' payment terms (--dry-run lists them)", runBillrun},
		"catalog":   {"apply or check a declarative catalog file (time profiles, rate tables, payment terms, tax profiles, resellers, clients, accounts, payments)", runCatalog},
		"gen":       {"generate realistic CDRs from the catalog to Kafka or a file", runGen},
		"invoice":   {"invoices: create, list, show (JSON, CSV, PDF, xDRs), approve, send, pay, void; vendor statements", runInvoice},
		"mail":      {"the mail queue: list it, send what is queued", runMail},
		"migrate":   {"create the databases if missing and apply pending PostgreSQL and ClickHouse migrations", runMigrate},
		"reconcile": {"check every live balance against its transactions and xDRs (invariant 1); exit 1 on a drift", runReconcile},
		"report":    {"print reports: summary, origterm, mismatches, balance (table, CSV, JSON)", runReport},
		"token":     {"create, list and revoke API bearer tokens (admin, reseller, client; optional expiry)", runToken},
		"worker":    {"consume CDRs from Kafka, rate both legs, write xDRs to ClickHouse and balances to PostgreSQL", runWorker},
		"rerate":    {"rate past CDRs again after a catalog fix: dry run with per-client deltas, then exactly-once balance moves", runRerate},
		"rate":      {"price CDR JSON lines against a deck CSV alone (no servers), one JSON line out per CDR", runRate},
		"quote":     {"price one call against a deck and explain the price (code, rate row, billed seconds)", runQuote},
		"version":   {"print the version of this binary", runVersion},
	}
}

// errUsage marks a command-line mistake: the command has already printed its
// usage, and main exits with status 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		return run([]string{"version"}, stdout, stderr)
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		usage(stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tarifa: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	if _, _, err := logSettings(); err != nil {
		fmt.Fprintf(stderr, "tarifa %s: %v\n", args[0], err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cmd.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		if _, json, _ := logSettings(); json {
			// A log pipeline that parses JSON gets the reason a command
			// failed as a record like the others.
			newLogger(stderr).Error("command failed", "command", args[0], "err", err.Error())
		} else {
			fmt.Fprintf(stderr, "tarifa %s: %v\n", args[0], err)
		}
		return 1
	}
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintf(w, "tarifa — CDR rating and billing for wholesale VoIP carriers\n\nUsage: tarifa COMMAND [flags]\n\nCommands:\n")
	names := make([]string, 0, len(cmds))
	for name := range cmds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, cmds[name].summary)
	}
	fmt.Fprintf(w, "\nRun 'tarifa COMMAND --help' for the flags of a command, 'tarifa --version' for the version.\n"+
		"Flags default to the TARIFA_* environment (TARIFA_PG_DSN, TARIFA_CLICKHOUSE_DSN,\n"+
		"TARIFA_KAFKA_BROKERS, TARIFA_KAFKA_TOPIC, TARIFA_KAFKA_GROUP, ...); a flag overrides its\n"+
		"variable. TARIFA_LOG_LEVEL (debug, info, warn, error; default info) sets what the log on\n"+
		"stderr shows, as text or as JSON lines with TARIFA_LOG_FORMAT=json. The contracts (CDR\n"+
		"message, deck CSV, catalog file) are in docs/DESIGN.md.\n")
}

func runVersion(_ context.Context, args []string, stdout, _ io.Writer) error {
	fmt.Fprintf(stdout, "tarifa %s\n", version)
	return nil
}

// newFlagSet returns a flag set for a subcommand whose --help prints the
// summary, the usage line and every flag with its default.
func newFlagSet(name, usageLine, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: tarifa %s\n\n%s\n\nFlags:\n", usageLine, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, mapping a parse failure to errUsage (the flag
// package has already printed the problem and the usage).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return errUsage
	}
	return nil
}

// env returns the TARIFA_ variable name, or def when it is unset or empty.
func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
