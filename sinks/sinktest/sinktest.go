// Package sinktest gives integration tests a private, migrated PostgreSQL
// database and ClickHouse database on the local stack (deploy/local), dropped
// when the test ends, so that tests run in parallel and leave nothing behind.
//
// The servers come from TARIFA_PG_DSN and TARIFA_CLICKHOUSE_DSN, defaulting
// to the local stack's addresses. A server that does not answer fails the
// test: integration tests are never skipped.
package sinktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tarifa/tarifa/sinks"
)

const (
	defaultPG = "postgres://postgres@127.0.0.1:55432/tarifa?sslmode=disable"
	defaultCH = "clickhouse://127.0.0.1:19000/tarifa"
)

// DB is a test's private pair of databases.
type DB struct {
	PGDSN string // DSN of the private PostgreSQL database
	CHDSN string // DSN of the private ClickHouse database
	PG    *pgxpool.Pool
	CH    driver.Conn
	Name  string // the database name, the same on both servers
}

// New creates, migrates and returns a private database pair for t; both are
// dropped by t.Cleanup.
func New(t testing.TB) *DB {
	t.Helper()
	name := "t_" + randomHex(6)
	pgDSN := withDatabase(t, envOr("TARIFA_PG_DSN", defaultPG), name)
	chDSN := withDatabase(t, envOr("TARIFA_CLICKHOUSE_DSN", defaultCH), name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := quiet()

	if err := sinks.EnsurePostgresDatabase(ctx, pgDSN); err != nil {
		t.Fatalf("integration test needs the local stack (make up): %v", err)
	}
	t.Cleanup(func() { dropPostgres(t, pgDSN, name) })
	pg, err := sinks.OpenPostgres(ctx, pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	if _, err := sinks.MigratePostgres(ctx, pg, log); err != nil {
		t.Fatal(err)
	}

	if err := sinks.EnsureClickHouseDatabase(ctx, chDSN); err != nil {
		t.Fatalf("integration test needs the local stack (make up): %v", err)
	}
	ch, err := sinks.OpenClickHouse(ctx, chDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ch.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`")
		ch.Close()
	})
	if _, err := sinks.MigrateClickHouse(ctx, ch, log); err != nil {
		t.Fatal(err)
	}
	return &DB{PGDSN: pgDSN, CHDSN: chDSN, PG: pg, CH: ch, Name: name}
}

// PostgresDSN returns the DSN of a fresh, empty PostgreSQL database name on
// the local stack that does not exist yet, dropped (if created) at cleanup.
func PostgresDSN(t testing.TB) string {
	name := "t_" + randomHex(6)
	dsn := withDatabase(t, envOr("TARIFA_PG_DSN", defaultPG), name)
	t.Cleanup(func() { dropPostgres(t, dsn, name) })
	return dsn
}

// ClickHouseDSN returns the DSN of a ClickHouse database that does not exist
// yet, dropped (if created) at cleanup.
func ClickHouseDSN(t testing.TB) string {
	name := "t_" + randomHex(6)
	dsn := withDatabase(t, envOr("TARIFA_CLICKHOUSE_DSN", defaultCH), name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := sinks.OpenClickHouse(ctx, withDatabase(t, dsn, "default"))
		if err != nil {
			t.Logf("drop clickhouse database %s: %v", name, err)
			return
		}
		defer conn.Close()
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+name+"`")
	})
	return dsn
}

func dropPostgres(t testing.TB, dsn, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sinks.OpenPostgres(ctx, withDatabase(t, dsn, "postgres"))
	if err != nil {
		t.Logf("drop database %s: %v", name, err)
		return
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
		t.Logf("drop database %s: %v", name, err)
	}
}

func withDatabase(t testing.TB, dsn, name string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse dsn: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("BUG: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// RandomName returns a fresh name for a test's topic or database.
func RandomName() string { return "t_" + randomHex(6) }
