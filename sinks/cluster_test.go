package sinks_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/schemas"
	"github.com/tarifa/tarifa/sinks"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

// laterMigrations are migrations of the kinds other work adds after 0001
// (a rollup fed by a materialized view, a small names table, new columns
// on xdrs and cdrs_raw), written as single-server SQL like every
// migration: cluster mode must carry all of them.
var laterMigrations = []schemas.Migration{
	{Version: 901, Name: "rollup_and_names", SQL: `
-- A daily rollup, sharded by its sorting key, fed from the Distributed xdrs.
CREATE TABLE IF NOT EXISTS xdr_days (day Date, client_id UInt64, calls UInt64, cost Decimal(18, 6))
ENGINE = SummingMergeTree ORDER BY (day, client_id);
CREATE MATERIALIZED VIEW IF NOT EXISTS xdr_days_mv TO xdr_days AS
SELECT toDate(setup_time) AS day, orig_client_id AS client_id, count() AS calls, toDecimal64(sum(orig_cost), 6) AS cost
FROM xdrs GROUP BY day, client_id;
-- cluster: not sharded
CREATE TABLE IF NOT EXISTS client_names (id UInt64, name String, version UInt64)
ENGINE = ReplacingMergeTree(version) ORDER BY id;
`},
	{Version: 902, Name: "more_columns", SQL: `
ALTER TABLE xdrs ADD COLUMN IF NOT EXISTS orig_currency String DEFAULT '';
ALTER TABLE cdrs_raw ADD COLUMN IF NOT EXISTS source String DEFAULT '';
ALTER TABLE client_names ADD COLUMN IF NOT EXISTS kind String DEFAULT '';
`},
}

// TestClusterMigrations migrates a database over a private two-shard
// ClickHouse 18.16 cluster with ZooKeeper: the real migrations and later
// ones of every kind. Inserts through the Distributed xdrs on one server
// are read back with FINAL on the other, every version of a CDR lands on
// one shard, the rollup's materialized view fires, a not-sharded table is
// whole on every server, a migration that half-failed on one shard is
// finished by the next run, and the single-server migrator refuses the
// database.
func TestClusterMigrations(t *testing.T) {
	t.Parallel()
	c := sinktest.StartClickHouseCluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dsn := []string{c.WithDatabase(t, 0, "tarifa"), c.WithDatabase(t, 1, "tarifa")}
	if err := sinks.EnsureClickHouseClusterDatabase(ctx, dsn[0], c.Name); err != nil {
		t.Fatal(err)
	}
	var conns []driver.Conn
	for _, d := range dsn {
		conn, err := sinks.OpenClickHouse(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	ms := append(schemas.ClickHouse(), laterMigrations...)
	done, err := sinks.MigrateClickHouseClusterWith(ctx, conns[0], ms, c.Name, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != len(ms) {
		t.Fatalf("applied %v, want all %d migrations", done, len(ms))
	}

	wantEngines := map[string]string{
		"xdrs": "Distributed", "xdrs_local": "ReplicatedReplacingMergeTree",
		"cdrs_raw": "Distributed", "cdrs_raw_local": "ReplicatedReplacingMergeTree",
		"xdr_days": "Distributed", "xdr_days_local": "ReplicatedSummingMergeTree", "xdr_days_mv": "MaterializedView",
		"client_names": "ReplicatedReplacingMergeTree", "schema_migrations": "ReplicatedMergeTree",
	}
	for i, conn := range conns {
		got := engines(t, conn)
		for table, want := range wantEngines {
			if got[table] != want {
				t.Errorf("server %d: table %s has engine %q, want %s", i+1, table, got[table], want)
			}
		}
		for _, col := range []string{"xdrs.orig_currency", "xdrs_local.orig_currency", "cdrs_raw.source", "cdrs_raw_local.source", "client_names.kind"} {
			if !hasColumn(t, conn, col) {
				t.Errorf("server %d: no column %s", i+1, col)
			}
		}
		if err := conn.Exec(ctx, "SYSTEM SYNC REPLICA schema_migrations"); err != nil {
			t.Fatal(err)
		}
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM schema_migrations").Scan(&n); err != nil || n != uint64(len(ms)) {
			t.Errorf("server %d: schema_migrations has %d rows (err %v), want %d on every server", i+1, n, err, len(ms))
		}
	}

	// Two versions of 300 CDRs through server 2's Distributed table;
	// server 1 reads the latest of each with FINAL.
	for version := 1; version <= 2; version++ {
		b, err := conns[1].PrepareBatch(ctx, "INSERT INTO xdrs (cdr_id, switch, setup_time, disconnect_time, status, orig_client_id, orig_cost, orig_currency, version)")
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
		for i := 0; i < 300; i++ {
			cost := decimal.NewFromInt(int64(version)).Div(decimal.NewFromInt(100))
			if err := b.Append(fmt.Sprintf("c%d", i), "sw1", at, at.Add(time.Minute), "rated", uint64(1+i%3), cost, "USD", uint64(version)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	var rows uint64
	var cost decimal.Decimal
	if err := conns[0].QueryRow(ctx, "SELECT count(), sum(orig_cost) FROM xdrs FINAL").Scan(&rows, &cost); err != nil {
		t.Fatal(err)
	}
	if rows != 300 || !cost.Equal(decimal.NewFromInt(6)) {
		t.Errorf("xdrs FINAL through the Distributed table: %d rows costing %s, want 300 costing 6 (the second version of each)", rows, cost)
	}
	// Raw CDRs for the same calls. A query of one Distributed table with an
	// IN subquery of another is refused on a cluster unless it says GLOBAL
	// IN (18.16's driver protocol cannot carry the string setting
	// distributed_product_mode), which one server accepts as well.
	rb, err := conns[1].PrepareBatch(ctx, "INSERT INTO cdrs_raw (cdr_id, switch, setup_time, disconnect_time, raw, received_at, version)")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		at := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
		if err := rb.Append(fmt.Sprintf("c%d", i), "sw1", at, at.Add(time.Minute), "{}", at, uint64(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := rb.Send(); err != nil {
		t.Fatal(err)
	}
	var in, joined uint64
	const sub = "SELECT count() FROM xdrs FINAL WHERE (switch, cdr_id) %s (SELECT switch, cdr_id FROM cdrs_raw WHERE cdr_id IN ('c1', 'c2', 'c3'))"
	if err := conns[0].QueryRow(ctx, fmt.Sprintf(sub, "IN")).Scan(&in); err == nil || !strings.Contains(err.Error(), "distributed_product_mode") {
		t.Errorf("xdrs with a plain IN subquery of cdrs_raw: err %v, want ClickHouse's refusal (write GLOBAL IN)", err)
	}
	if err := conns[0].QueryRow(ctx, fmt.Sprintf(sub, "GLOBAL IN")).Scan(&in); err != nil || in != 3 {
		t.Errorf("xdrs with a GLOBAL IN subquery of cdrs_raw: %d (err %v), want 3", in, err)
	}
	if err := conns[0].QueryRow(ctx, "SELECT count() FROM (SELECT switch, cdr_id FROM xdrs FINAL) ANY INNER JOIN (SELECT switch, cdr_id FROM cdrs_raw FINAL) USING (switch, cdr_id)").Scan(&joined); err != nil || joined != 300 {
		t.Errorf("xdrs joined with cdrs_raw: %d (err %v), want 300", joined, err)
	}

	ids := make([]map[string]bool, 2)
	for i, conn := range conns {
		ids[i] = map[string]bool{}
		r, err := conn.Query(ctx, "SELECT cdr_id FROM xdrs_local")
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			var id string
			if err := r.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids[i][id] = true
		}
		r.Close()
	}
	both := 0
	for id := range ids[0] {
		if ids[1][id] {
			both++
		}
	}
	if len(ids[0]) == 0 || len(ids[1]) == 0 || both > 0 || len(ids[0])+len(ids[1]) != 300 {
		t.Errorf("shards hold %d and %d CDRs, %d on both; want all 300 spread over both shards, each CDR on one", len(ids[0]), len(ids[1]), both)
	}
	var calls uint64
	if err := conns[0].QueryRow(ctx, "SELECT sum(calls) FROM xdr_days").Scan(&calls); err != nil || calls != 600 {
		t.Errorf("xdr_days counted %d inserted xDRs (err %v), want 600: the materialized view fires on the Distributed table", calls, err)
	}
	nb, err := conns[0].PrepareBatch(ctx, "INSERT INTO client_names (id, name, version, kind)")
	if err != nil {
		t.Fatal(err)
	}
	if err := nb.Append(uint64(1), "Customer A", uint64(1), "client"); err != nil {
		t.Fatal(err)
	}
	if err := nb.Send(); err != nil {
		t.Fatal(err)
	}
	if err := conns[1].Exec(ctx, "SYSTEM SYNC REPLICA client_names"); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := conns[1].QueryRow(ctx, "SELECT name FROM client_names FINAL WHERE id = 1").Scan(&name); err != nil || name != "Customer A" {
		t.Errorf("client_names on server 2: %q (err %v), want the row written on server 1", name, err)
	}

	// Up to date: nothing to apply, from either server.
	for i, conn := range conns {
		if done, err := sinks.MigrateClickHouseClusterWith(ctx, conn, ms, c.Name, quiet); err != nil || len(done) != 0 {
			t.Errorf("migrate again through server %d applied %v, err %v; want nothing", i+1, done, err)
		}
	}

	// A migration that added its column on shard 1 only before it failed:
	// the next run adds it on shard 2 and remakes the Distributed table.
	if err := conns[0].Exec(ctx, "ALTER TABLE xdrs_local ADD COLUMN half String DEFAULT ''"); err != nil {
		t.Fatal(err)
	}
	half := append(ms, schemas.Migration{Version: 903, Name: "half", SQL: "ALTER TABLE xdrs ADD COLUMN IF NOT EXISTS half String DEFAULT '';"})
	if done, err := sinks.MigrateClickHouseClusterWith(ctx, conns[1], half, c.Name, quiet); err != nil || len(done) != 1 {
		t.Fatalf("migration half-applied on one shard: applied %v, err %v; want [903]", done, err)
	}
	for i, conn := range conns {
		if !hasColumn(t, conn, "xdrs.half") || !hasColumn(t, conn, "xdrs_local.half") {
			t.Errorf("server %d lacks column half after the half-applied migration was finished", i+1)
		}
	}
	if err := conns[0].QueryRow(ctx, "SELECT count() FROM xdrs FINAL WHERE half = ''").Scan(&rows); err != nil || rows != 300 {
		t.Errorf("xdrs FINAL after the Distributed table was made again: %d rows (err %v), want 300", rows, err)
	}

	if _, err := sinks.MigrateClickHouse(ctx, conns[0], quiet); err == nil || !strings.Contains(err.Error(), "cluster mode") {
		t.Errorf("single-server migrate of a cluster database: err %v, want one that says it is in cluster mode", err)
	}
}

// TestClusterModeRefusesASingleServerDatabase: a database migrated on one
// server cannot be turned into a cluster database in place.
func TestClusterModeRefusesASingleServerDatabase(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	_, err := sinks.MigrateClickHouseCluster(context.Background(), db.CH, "tarifa", quiet)
	if err == nil || !strings.Contains(err.Error(), "single server") {
		t.Errorf("cluster migrate of a single-server database: err %v, want one that says it was migrated on a single server", err)
	}
}

func engines(t *testing.T, conn driver.Conn) map[string]string {
	t.Helper()
	r, err := conn.Query(context.Background(), "SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := map[string]string{}
	for r.Next() {
		var n, e string
		if err := r.Scan(&n, &e); err != nil {
			t.Fatal(err)
		}
		out[n] = e
	}
	return out
}

func hasColumn(t *testing.T, conn driver.Conn, tableDotColumn string) bool {
	t.Helper()
	table, col, _ := strings.Cut(tableDotColumn, ".")
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = ? AND name = ?", table, col).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}
