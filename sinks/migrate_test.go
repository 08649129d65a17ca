package sinks_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tarifa/tarifa/schemas"
	"github.com/tarifa/tarifa/sinks"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestMigrateTwiceIsNoop(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t) // migrated once already
	ctx := context.Background()
	pgDone, err := sinks.MigratePostgres(ctx, db.PG, quiet)
	if err != nil || len(pgDone) != 0 {
		t.Fatalf("second postgres migrate applied %v, err %v; want nothing", pgDone, err)
	}
	chDone, err := sinks.MigrateClickHouse(ctx, db.CH, quiet)
	if err != nil || len(chDone) != 0 {
		t.Fatalf("second clickhouse migrate applied %v, err %v; want nothing", chDone, err)
	}
	var n int
	if err := db.PG.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n != len(schemas.Postgres()) {
		t.Fatalf("schema_migrations has %d rows (err %v), want %d", n, err, len(schemas.Postgres()))
	}
}

func TestPostgresMigrationFailingHalfWayIsRetried(t *testing.T) {
	t.Parallel()
	dsn := sinktest.PostgresDSN(t)
	ctx := context.Background()
	if err := sinks.EnsurePostgresDatabase(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	pool, err := sinks.OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	broken := []schemas.Migration{
		{Version: 1, Name: "one", SQL: "CREATE TABLE one (id int);"},
		{Version: 2, Name: "two", SQL: "CREATE TABLE two (id int);\nSELECT 1/0;"},
	}
	done, err := sinks.MigratePostgresWith(ctx, pool, broken, quiet)
	if err == nil || !strings.Contains(err.Error(), "0002_two") {
		t.Fatalf("err = %v, want the failure of migration 0002_two", err)
	}
	if len(done) != 1 || done[0] != 1 {
		t.Fatalf("applied %v, want [1]", done)
	}
	if tableExists(t, pool, "two") {
		t.Fatal("table two exists: the failed migration was not rolled back")
	}
	if versions(t, pool) != "1" {
		t.Fatalf("recorded versions %q, want only 1", versions(t, pool))
	}

	fixed := []schemas.Migration{broken[0], {Version: 2, Name: "two", SQL: "CREATE TABLE two (id int);"}}
	done, err = sinks.MigratePostgresWith(ctx, pool, fixed, quiet)
	if err != nil || len(done) != 1 || done[0] != 2 {
		t.Fatalf("retry applied %v, err %v; want [2]", done, err)
	}
	if !tableExists(t, pool, "two") || versions(t, pool) != "1,2" {
		t.Fatalf("after retry: table two %v, versions %q", tableExists(t, pool, "two"), versions(t, pool))
	}
}

func TestClickHouseMigrationFailingHalfWayIsRetried(t *testing.T) {
	t.Parallel()
	dsn := sinktest.ClickHouseDSN(t)
	ctx := context.Background()
	if err := sinks.EnsureClickHouseDatabase(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	conn, err := sinks.OpenClickHouse(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	broken := []schemas.Migration{{Version: 1, Name: "one", SQL: "CREATE TABLE IF NOT EXISTS one (id UInt8) ENGINE = Memory;\nCREATE TABLE broken (id NoSuchType) ENGINE = Memory;"}}
	if _, err := sinks.MigrateClickHouseWith(ctx, conn, broken, quiet); err == nil {
		t.Fatal("broken clickhouse migration succeeded")
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM schema_migrations").Scan(&n); err != nil || n != 0 {
		t.Fatalf("schema_migrations has %d rows (err %v) after a failed migration, want 0", n, err)
	}
	fixed := []schemas.Migration{{Version: 1, Name: "one", SQL: "CREATE TABLE IF NOT EXISTS one (id UInt8) ENGINE = Memory;\nCREATE TABLE IF NOT EXISTS two (id UInt8) ENGINE = Memory;"}}
	done, err := sinks.MigrateClickHouseWith(ctx, conn, fixed, quiet)
	if err != nil || len(done) != 1 {
		t.Fatalf("retry applied %v, err %v; want [1]", done, err)
	}
}

func TestUnreachableServerFailsFastNamingIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := time.Now()
	// 192.0.2.0/24 is TEST-NET-1 and never routed, but we must not send traffic
	// off the machine: a closed loopback port gives the same answer quickly.
	_, err := sinks.OpenPostgres(ctx, "postgres://bob:hunter2@127.0.0.1:1/x?sslmode=disable")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v: want one that names 127.0.0.1:1 and hides the password", err)
	}
	_, err = sinks.OpenClickHouse(ctx, "clickhouse://bob:hunter2@127.0.0.1:1/x")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v: want one that names 127.0.0.1:1 and hides the password", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v to report unreachable servers, want under 10s", d)
	}
}

func tableExists(t *testing.T, pool *pgxpool.Pool, name string) bool {
	var ok bool
	if err := pool.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func versions(t *testing.T, pool *pgxpool.Pool) string {
	var s string
	if err := pool.QueryRow(context.Background(), "SELECT coalesce(string_agg(version::text, ',' ORDER BY version), '') FROM schema_migrations").Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}
