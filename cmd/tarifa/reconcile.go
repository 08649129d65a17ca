package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/sinks"
)

// errDrift makes reconcile exit 1 after it printed the drifts.
var errDrift = errors.New("balances drift from their transactions and xDRs")

func runReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reconcile", "reconcile [--client NAME|ID]... [--format table|csv|json]",
		"Checks invariant 1 for every client (or those named): its live balance against its payments\n"+
			"and adjustments, minus charges and the orig costs of its calls, plus the term costs of the\n"+
			"calls it carried, in xdrs FINAL. Prints each drift and exits 1 on any; silent and 0 when\n"+
			"the books agree. A balance that moves while it is checked (a worker committing) is\n"+
			"checked again. The worker exports the same check as tarifa_balance_drift_clients.", stderr)
	var clients listFlag
	fs.Var(&clients, "client", "only this client (name or id; repeat for several)")
	format := fs.String("format", "table", "table, csv or json (printed only when something drifts)")
	chDSN := fs.String("clickhouse-dsn", env("TARIFA_CLICKHOUSE_DSN", defaultClickHouseDSN), "ClickHouse DSN (env TARIFA_CLICKHOUSE_DSN)")
	pgDSN := fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN (env TARIFA_PG_DSN)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	pg, err := sinks.OpenPostgres(ctx, *pgDSN)
	if err != nil {
		return err
	}
	defer pg.Close()
	ch, err := sinks.OpenClickHouse(ctx, *chDSN)
	if err != nil {
		return err
	}
	defer ch.Close()
	drifts, checked, err := report.New(pg, ch, newLogger(stderr)).Reconcile(ctx, clients)
	var pe *report.ParamError
	if errors.As(err, &pe) {
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return errUsage
	}
	if err != nil {
		return err
	}
	if len(drifts) == 0 {
		return nil
	}
	if err := report.DriftTable(drifts, checked).Render(stdout, *format); err != nil {
		return err
	}
	return errDrift
}
