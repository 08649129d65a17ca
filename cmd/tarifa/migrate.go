package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/sinks"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", "migrate [--pg-dsn DSN] [--clickhouse-dsn DSN] [--clickhouse-cluster NAME]",
		"Creates the PostgreSQL and ClickHouse databases named in the DSNs when they are missing,\n"+
			"then applies the pending migrations of each in order and records them, brings xDRs\n"+
			"written before them up to date (term currency, rollup hours) and copies the catalog's\n"+
			"names into ClickHouse for analysts. Running it again applies nothing.\n\n"+
			"With --clickhouse-cluster the ClickHouse database spans that cluster (remote_servers of the\n"+
			"servers' config, with ZooKeeper and the macros {shard} and {replica}): each table becomes\n"+
			"Replicated local tables on the shards plus a Distributed table under its own name, sharded by\n"+
			"a hash of (switch, cdr_id), so reports, workers and analysts use the same names as on one\n"+
			"server. The DSN may name any server of the cluster; a database keeps the mode it was created in.", stderr)
	pgDSN := fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN (TARIFA_PG_DSN)")
	chDSN := fs.String("clickhouse-dsn", env("TARIFA_CLICKHOUSE_DSN", defaultClickHouseDSN), "ClickHouse DSN (TARIFA_CLICKHOUSE_DSN)")
	cluster := fs.String("clickhouse-cluster", env("TARIFA_CLICKHOUSE_CLUSTER", ""), "ClickHouse cluster to spread the database over, empty for one server (TARIFA_CLICKHOUSE_CLUSTER)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	log := newLogger(stderr)

	if err := sinks.EnsurePostgresDatabase(ctx, *pgDSN); err != nil {
		return err
	}
	pool, err := sinks.OpenPostgres(ctx, *pgDSN)
	if err != nil {
		return err
	}
	defer pool.Close()
	pgDone, err := sinks.MigratePostgres(ctx, pool, log)
	if err != nil {
		return err
	}

	ensure := sinks.EnsureClickHouseDatabase
	if *cluster != "" {
		ensure = func(ctx context.Context, dsn string) error {
			return sinks.EnsureClickHouseClusterDatabase(ctx, dsn, *cluster)
		}
	}
	if err := ensure(ctx, *chDSN); err != nil {
		return err
	}
	ch, err := sinks.OpenClickHouse(ctx, *chDSN)
	if err != nil {
		return err
	}
	defer ch.Close()
	var chDone []int
	where := sinks.Redact(*chDSN)
	if *cluster != "" {
		chDone, err = sinks.MigrateClickHouseCluster(ctx, ch, *cluster, log)
		where += " (cluster " + *cluster + ")"
	} else {
		chDone, err = sinks.MigrateClickHouse(ctx, ch, log)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "postgres %s: %s\nclickhouse %s: %s\n",
		sinks.Redact(*pgDSN), appliedText(pgDone), where, appliedText(chDone))
	filled, err := sinks.Backfill(ctx, pool, ch)
	if err != nil {
		return err
	}
	if filled.TermCurrency > 0 || filled.Hours > 0 {
		fmt.Fprintf(stdout, "xdrs: filled the term currency of %d row(s), marked %d setup hour(s) for their first rollup\n",
			filled.TermCurrency, filled.Hours)
	}
	if _, err := report.New(pool, ch, log).SyncNames(ctx, 0); err != nil {
		return err
	}
	return nil
}

func appliedText(versions []int) string {
	if len(versions) == 0 {
		return "up to date"
	}
	return fmt.Sprintf("applied %d migration(s) %v", len(versions), versions)
}
