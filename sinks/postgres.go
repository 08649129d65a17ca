package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tarifa/tarifa/schemas"
)

// ConnectTimeout bounds how long opening a connection to PostgreSQL or
// ClickHouse may take before the caller is told which server is unreachable.
const ConnectTimeout = 5 * time.Second

// OpenPostgres returns a pool for dsn after checking that the server answers.
func OpenPostgres(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	return OpenPostgresPool(ctx, dsn, 0)
}

// OpenPostgresPool is OpenPostgres with a pool of at most maxConns
// connections; 0 keeps pgxpool's default (the DSN's pool_max_conns, else
// the larger of 4 and the number of CPUs).
func OpenPostgresPool(ctx context.Context, dsn string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse postgres dsn %s: %w", Redact(dsn), err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.ConnectTimeout = ConnectTimeout
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres %s: %w", Redact(dsn), err)
	}
	pctx, cancel := context.WithTimeout(ctx, 2*ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres %s: %w", Redact(dsn), err)
	}
	return pool, nil
}

// EnsurePostgresDatabase creates the database named in dsn when it does not
// exist, connecting to the server's maintenance database "postgres".
func EnsurePostgresDatabase(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("parse postgres dsn %s: %w", Redact(dsn), err)
	}
	name := cfg.Database
	if name == "" || name == "postgres" {
		return nil
	}
	cfg.Database = "postgres"
	cfg.ConnectTimeout = ConnectTimeout
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to postgres %s: %w", Redact(dsn), err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile by someone else
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// MigratePostgres applies the pending PostgreSQL migrations of package
// schemas in order, each in one transaction together with its record in
// schema_migrations, so a migration that fails half-way leaves nothing behind
// and is retried by the next run. Concurrent runs serialise on an advisory
// lock. It returns the versions it applied.
func MigratePostgres(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) ([]int, error) {
	return migratePostgres(ctx, pool, schemas.Postgres(), log)
}

func migratePostgres(ctx context.Context, pool *pgxpool.Pool, migrations []schemas.Migration, log *slog.Logger) ([]int, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	const lockID = 0x7a71f1
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		return nil, fmt.Errorf("take migration lock: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", lockID) //nolint:errcheck // released with the session anyway
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	for _, v := range versions {
		applied[v] = true
	}
	var done []int
	for _, m := range migrations {
		if applied[m.Version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("postgres migration %04d_%s: %w", m.Version, m.Name, err)
		}
		log.Info("applied migration", "db", "postgres", "version", m.Version, "name", m.Name)
		done = append(done, m.Version)
	}
	return done, nil
}
