package main

import (
	"context"
	"fmt"
	"io"

	"github.com/tarifa/tarifa/catalog"
	"github.com/tarifa/tarifa/sinks"
)

const catalogSummary = `Apply a declarative catalog file (DESIGN.md "Catalog file"): time profiles,
rate tables with their deck CSVs, resellers, clients with their accounts, and
payments, upserted by name in one PostgreSQL transaction. Applying the same
file again changes nothing. Entries the file does not name are left alone.

Subcommands:
  apply -f FILE [--dry-run] [--pg-dsn DSN]   make the database agree with FILE
  check -f FILE                              parse and validate FILE and its decks only`

func runCatalog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "apply" && args[0] != "check") {
		fs := newFlagSet("catalog", "catalog apply|check -f FILE [flags]", catalogSummary, stderr)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help") {
			return parseFlags(fs, []string{"-h"})
		}
		fs.Usage()
		return errUsage
	}
	sub := args[0]
	fs := newFlagSet("catalog "+sub, "catalog "+sub+" -f FILE [--dry-run] [--pg-dsn DSN]", catalogSummary, stderr)
	path := fs.String("f", "", "catalog YAML file (required)")
	dry := fs.Bool("dry-run", false, "print what would change and write nothing")
	pgDSN := fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN (env TARIFA_PG_DSN)")
	if err := parseFlags(fs, args[1:]); err != nil {
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
	if sub == "check" {
		n := 0
		for _, t := range f.RateTables {
			n += t.RateCount()
		}
		fmt.Fprintf(stdout, "%s: ok (%d time profiles, %d rate tables with %d rates, %d resellers, %d clients, %d payments)\n",
			*path, len(f.TimeProfiles), len(f.RateTables), n, len(f.Resellers), len(f.Clients), len(f.Payments))
		return nil
	}
	pool, err := sinks.OpenPostgres(ctx, *pgDSN)
	if err != nil {
		return err
	}
	defer pool.Close()
	rep, err := catalog.Apply(ctx, pool, f, catalog.Options{DryRun: *dry})
	if err != nil {
		return err
	}
	return rep.Write(stdout)
}
