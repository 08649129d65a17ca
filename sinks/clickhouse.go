package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tarifa/tarifa/schemas"
)

// OpenClickHouse returns a native-protocol connection pool for dsn
// (clickhouse://host:port/database) after checking that the server answers.
func OpenClickHouse(ctx context.Context, dsn string) (driver.Conn, error) {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse clickhouse dsn %s: %w", Redact(dsn), err)
	}
	return openClickHouse(ctx, opts, dsn)
}

func openClickHouse(ctx context.Context, opts *clickhouse.Options, dsn string) (driver.Conn, error) {
	opts.DialTimeout = ConnectTimeout
	if opts.MaxOpenConns == 0 {
		// Every partition a worker serves inserts into two tables at once.
		opts.MaxOpenConns = 64
		opts.MaxIdleConns = 16
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to clickhouse %s: %w", Redact(dsn), err)
	}
	pctx, cancel := context.WithTimeout(ctx, 2*ConnectTimeout)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect to clickhouse %s: %w", Redact(dsn), err)
	}
	return conn, nil
}

// EnsureClickHouseDatabase creates the database named in dsn when missing.
func EnsureClickHouseDatabase(ctx context.Context, dsn string) error {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("parse clickhouse dsn %s: %w", Redact(dsn), err)
	}
	name := opts.Auth.Database
	if name == "" || name == "default" {
		return nil
	}
	if strings.ContainsAny(name, "`\\") {
		return fmt.Errorf("clickhouse database name %q: backquote and backslash are not allowed", name)
	}
	opts.Auth.Database = "default"
	conn, err := openClickHouse(ctx, opts, dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+name+"`"); err != nil {
		return fmt.Errorf("create clickhouse database %q: %w", name, err)
	}
	return nil
}

// MigrateClickHouse applies the pending ClickHouse migrations in order and
// records each in schema_migrations once all its statements succeeded.
// ClickHouse DDL is not transactional, so every statement is written to be
// repeatable (IF NOT EXISTS): a migration that failed half-way is not recorded
// and the next run applies it again from its first statement.
func MigrateClickHouse(ctx context.Context, conn driver.Conn, log *slog.Logger) ([]int, error) {
	return migrateClickHouse(ctx, conn, schemas.ClickHouse(), log)
}

func migrateClickHouse(ctx context.Context, conn driver.Conn, migrations []schemas.Migration, log *slog.Logger) ([]int, error) {
	if err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version UInt32, name String, applied_at DateTime DEFAULT now()
	) ENGINE = MergeTree ORDER BY version`); err != nil {
		return nil, fmt.Errorf("create clickhouse schema_migrations: %w", err)
	}
	rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read clickhouse schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read clickhouse schema_migrations: %w", err)
		}
		applied[int(v)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read clickhouse schema_migrations: %w", err)
	}
	var done []int
	for _, m := range migrations {
		if applied[m.Version] {
			continue
		}
		for i, stmt := range schemas.Statements(m.SQL) {
			if err := conn.Exec(ctx, stmt); err != nil && !addedBefore(stmt, err) {
				return done, fmt.Errorf("clickhouse migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := recordClickHouseMigration(ctx, conn, m); err != nil {
			return done, fmt.Errorf("record clickhouse migration %04d: %w", m.Version, err)
		}
		log.Info("applied migration", "db", "clickhouse", "version", m.Version, "name", m.Name)
		done = append(done, m.Version)
	}
	return done, nil
}

// addedBefore reports whether err is ClickHouse refusing an ALTER TABLE …
// ADD COLUMN because the column exists: 18.16 has no ADD COLUMN IF NOT
// EXISTS, and a migration's ALTER adds all its columns at once or none, so
// an existing column means a run that stopped before recording the
// migration applied it.
func addedBefore(stmt string, err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && ex.Code == 44 && strings.Contains(stmt, "ADD COLUMN") &&
		strings.HasPrefix(strings.TrimSpace(stmt), "ALTER TABLE")
}

// recordClickHouseMigration inserts through a batch: ClickHouse 18.16 does not
// answer an INSERT with bound parameters sent as a plain query.
func recordClickHouseMigration(ctx context.Context, conn driver.Conn, m schemas.Migration) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, applied_at)")
	if err != nil {
		return err
	}
	if err := b.Append(uint32(m.Version), m.Name, time.Now()); err != nil {
		return err
	}
	return b.Send()
}
