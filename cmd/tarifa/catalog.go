package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tarifa/tarifa/catalog"
	"github.com/tarifa/tarifa/sinks"
)

const catalogUsage = `Usage: tarifa catalog apply -f FILE [--dry-run] [--pg-dsn DSN]
       tarifa catalog check -f FILE

A catalog file (docs/DESIGN.md "Catalog file") declares time profiles, rate
tables with their deck CSVs, payment terms and tax profiles, resellers,
clients with their accounts and billing settings, and payments.

Subcommands:
  apply   make the database agree with FILE in one transaction, with the rules,
          messages and audit rows of the API: entries are upserted by name,
          applying the same file again changes nothing, and entries the file
          does not name are left alone
  check   check FILE and its decks with every rule that needs no database,
          and print what they hold

Run 'tarifa catalog apply --help' or 'tarifa catalog check --help' for their flags.
`

func runCatalog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, catalogUsage)
		return errUsage
	}
	switch args[0] {
	case "apply":
		return catalogApply(ctx, args[1:], stdout, stderr)
	case "check":
		return catalogCheck(args[1:], stdout, stderr)
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, catalogUsage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown catalog subcommand %q\n\n%s", args[0], catalogUsage)
	return errUsage
}

func catalogCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("catalog check", "catalog check -f FILE",
		"Checks a catalog file and every deck it names without a database, with the same rules\n"+
			"and messages as 'catalog apply' and the API: field values (currencies, time zones,\n"+
			"amounts, tech prefixes, bytes that are not UTF-8 or NUL), deck rows by line, references\n"+
			"between entries of the file and parent cycles among them. What needs the database is\n"+
			"left to apply: names only the database holds, time profiles defined only there, and\n"+
			"cycles through resellers or rate tables the file does not name. Exit status 1 lists\n"+
			"every problem found.", stderr)
	path := fs.String("f", "", "catalog YAML file (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		fmt.Fprintln(stderr, "-f is required")
		fs.Usage()
		return errUsage
	}
	f, err := catalog.Load(*path)
	if err != nil {
		return err
	}
	n := 0
	for _, t := range f.RateTables {
		n += t.RateCount()
	}
	fmt.Fprintf(stdout, "%s: ok (%d time profiles, %d rate tables with %d rates, %d payment terms, %d tax profiles, %d resellers, %d clients, %d payments)\n",
		*path, len(f.TimeProfiles), len(f.RateTables), n, len(f.PaymentTerms), len(f.TaxProfiles), len(f.Resellers), len(f.Clients), len(f.Payments))
	return nil
}

func catalogApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("catalog apply", "catalog apply -f FILE [--dry-run] [--pg-dsn DSN]",
		"Makes the database agree with a catalog file in one PostgreSQL transaction, through the\n"+
			"API's write path: the same rules and messages, and one audit row per change under the\n"+
			"actor \"catalog apply (FILE)\". Entries are matched by name (accounts by kind, ident and\n"+
			"tech prefix; payments by client and ref); a rate table's rates are replaced by its deck.\n"+
			"Nothing is written for an entry that already holds the file's values, so a second apply\n"+
			"of the same file changes nothing. Prints what changed.", stderr)
	path := fs.String("f", "", "catalog YAML file (required)")
	dry := fs.Bool("dry-run", false, "print what would change and write nothing")
	pgDSN := fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN (TARIFA_PG_DSN)")
	progress := fs.Bool("progress", isTerminal(stderr), "show the step being applied on stderr; default on when stderr is a terminal")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		fmt.Fprintln(stderr, "-f is required")
		fs.Usage()
		return errUsage
	}
	status := newStatusLine(stderr, *progress)
	status.Set("checking " + *path)
	f, err := catalog.Load(*path)
	status.Clear()
	if err != nil {
		return err
	}
	pool, err := sinks.OpenPostgres(ctx, *pgDSN)
	if err != nil {
		return err
	}
	defer pool.Close()
	began := time.Now()
	opts := catalog.Options{DryRun: *dry}
	if status != nil {
		opts.Progress = func(step string) {
			status.Set(fmt.Sprintf("applying %s (%s so far)", step, time.Since(began).Round(100*time.Millisecond)))
		}
	}
	rep, err := catalog.Apply(ctx, pool, f, opts)
	status.Clear()
	if err != nil {
		return err
	}
	return rep.Write(stdout)
}
