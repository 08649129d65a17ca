package sinks

import (
	"strings"
	"testing"

	"github.com/tarifa/tarifa/schemas"
)

// TestClusterTranslation translates statements of the kinds migrations
// hold, in the order a migration history would, and checks the SQL each
// becomes on the cluster "c" for database "db".
func TestClusterTranslation(t *testing.T) {
	d := newCHDDL("c", "db")
	f := func(directive, sql string, want ...string) {
		t.Helper()
		steps, err := d.translate(schemas.Statement{SQL: sql, Cluster: directive}, nil)
		if err != nil {
			t.Fatalf("translate %q: %v", sql, err)
		}
		var got []string
		for _, s := range steps {
			got = append(got, s.sql)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("translate %q:\n got: %s\nwant: %s", sql, strings.Join(got, "\n      "), strings.Join(want, "\n      "))
		}
	}
	// A CDR table: sharded by switch and id, whatever its sorting key.
	f("", "CREATE TABLE IF NOT EXISTS xdrs (cdr_id String, switch String, setup_time DateTime, version UInt64) ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(setup_time) ORDER BY (setup_time, switch, cdr_id)",
		"CREATE TABLE IF NOT EXISTS `db`.`xdrs_local` ON CLUSTER `c` (cdr_id String, switch String, setup_time DateTime, version UInt64) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/xdrs_local', '{replica}', version) PARTITION BY toYYYYMM(setup_time) ORDER BY (setup_time, switch, cdr_id)",
		"CREATE TABLE IF NOT EXISTS `db`.`xdrs` ON CLUSTER `c` AS `db`.`xdrs_local` ENGINE = Distributed('c', 'db', 'xdrs_local', cityHash64(switch, cdr_id))")
	// Another table: sharded by its sorting key; IF NOT EXISTS added.
	f("", "CREATE TABLE rollup (day Date, client_id UInt64, cost Decimal(18, 6)) ENGINE = SummingMergeTree ORDER BY (day, client_id) SETTINGS index_granularity = 1024",
		"CREATE TABLE IF NOT EXISTS `db`.`rollup_local` ON CLUSTER `c` (day Date, client_id UInt64, cost Decimal(18, 6)) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/db/rollup_local', '{replica}') ORDER BY (day, client_id) SETTINGS index_granularity = 1024",
		"CREATE TABLE IF NOT EXISTS `db`.`rollup` ON CLUSTER `c` AS `db`.`rollup_local` ENGINE = Distributed('c', 'db', 'rollup_local', cityHash64(day, client_id))")
	// A key of the author's choice.
	f("shard by cityHash64(client_id)", "CREATE TABLE IF NOT EXISTS by_client (client_id UInt64, v UInt64) ENGINE = ReplacingMergeTree(v) ORDER BY client_id",
		"CREATE TABLE IF NOT EXISTS `db`.`by_client_local` ON CLUSTER `c` (client_id UInt64, v UInt64) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/by_client_local', '{replica}', v) ORDER BY client_id",
		"CREATE TABLE IF NOT EXISTS `db`.`by_client` ON CLUSTER `c` AS `db`.`by_client_local` ENGINE = Distributed('c', 'db', 'by_client_local', cityHash64(client_id))")
	// A small table every server holds whole, for joins inside shards.
	f("not sharded", "CREATE TABLE IF NOT EXISTS names (id UInt64, name String, version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY id",
		"CREATE TABLE IF NOT EXISTS `db`.`names` ON CLUSTER `c` (id UInt64, name String, version UInt64) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/db/names', '{replica}', version) ORDER BY id")
	// A materialized view over the Distributed table, into another: it fires
	// on the server that takes the insert, as on one server.
	f("", "CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_mv TO rollup AS SELECT toDate(setup_time) AS day, orig_client_id AS client_id, sum(orig_cost) AS cost FROM xdrs LEFT JOIN names ON id = orig_client_id GROUP BY day, client_id",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS `db`.`rollup_mv` ON CLUSTER `c` TO `db`.`rollup` AS SELECT toDate(setup_time) AS day, orig_client_id AS client_id, sum(orig_cost) AS cost FROM `db`.`xdrs` LEFT JOIN `db`.`names` ON id = orig_client_id GROUP BY day, client_id")
	// ALTER of a sharded table: the local tables ON CLUSTER, then the
	// Distributed table made again over them; IF NOT EXISTS is checked by
	// the migrator (18.16 does not parse it).
	f("", "ALTER TABLE xdrs ADD COLUMN IF NOT EXISTS orig_currency String DEFAULT '', MODIFY COLUMN dst String",
		"ALTER TABLE `db`.`xdrs_local` ON CLUSTER `c` ADD COLUMN orig_currency String DEFAULT '', MODIFY COLUMN dst String",
		"DROP TABLE IF EXISTS `db`.`xdrs` ON CLUSTER `c`",
		"CREATE TABLE IF NOT EXISTS `db`.`xdrs` ON CLUSTER `c` AS `db`.`xdrs_local` ENGINE = Distributed('c', 'db', 'xdrs_local', cityHash64(switch, cdr_id))")
	// A mutation leaves the Distributed table alone.
	f("", "ALTER TABLE xdrs DELETE WHERE cdr_id = 'x'",
		"ALTER TABLE `db`.`xdrs_local` ON CLUSTER `c` DELETE WHERE cdr_id = 'x'")
	// A table every server holds whole is altered once: ZooKeeper carries it.
	f("", "ALTER TABLE names ADD COLUMN kind String",
		"ALTER TABLE `db`.`names` ADD COLUMN kind String")
	f("", "OPTIMIZE TABLE xdrs FINAL", "OPTIMIZE TABLE `db`.`xdrs_local` ON CLUSTER `c` FINAL")
	f("", "INSERT INTO rollup SELECT toDate(setup_time), orig_client_id, sum(orig_cost) FROM xdrs GROUP BY 1, 2",
		"INSERT INTO rollup SELECT toDate(setup_time), orig_client_id, sum(orig_cost) FROM xdrs GROUP BY 1, 2")
	f("", "DROP TABLE rollup_mv", "DROP TABLE IF EXISTS `db`.`rollup_mv` ON CLUSTER `c`")
	f("", "DROP TABLE IF EXISTS rollup",
		"DROP TABLE IF EXISTS `db`.`rollup` ON CLUSTER `c`",
		"DROP TABLE IF EXISTS `db`.`rollup_local` ON CLUSTER `c`")
	// Strings and comments are never rewritten.
	f("", "CREATE VIEW v AS SELECT 'FROM xdrs' AS s /* FROM xdrs */ FROM xdrs",
		"CREATE VIEW IF NOT EXISTS `db`.`v` ON CLUSTER `c` AS SELECT 'FROM xdrs' AS s /* FROM xdrs */ FROM `db`.`xdrs`")
	f("", "CREATE TABLE IF NOT EXISTS sink (x UInt8) ENGINE = Null",
		"CREATE TABLE IF NOT EXISTS `db`.`sink` ON CLUSTER `c` (x UInt8) ENGINE = Null")

	bad := func(directive, sql, wantErr string) {
		t.Helper()
		_, err := newCHDDL("c", "db").translate(schemas.Statement{SQL: sql, Cluster: directive}, nil)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("translate %q: err %v, want one saying %q", sql, err, wantErr)
		}
	}
	bad("", "CREATE MATERIALIZED VIEW mv ENGINE = SummingMergeTree ORDER BY day AS SELECT toDate(setup_time) AS day, count() AS n FROM xdrs GROUP BY day", "write it TO a table")
	bad("", "CREATE TABLE t (x UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY x", "write the single-server engine")
	bad("", "CREATE TABLE t ON CLUSTER c (x UInt8) ENGINE = MergeTree ORDER BY x", "without ON CLUSTER")
	bad("", "CREATE TABLE t (x UInt8)", "no ENGINE")
	bad("sharded please", "CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x", `want "shard by EXPR" or "not sharded"`)
	bad("", "ALTER TABLE t ON CLUSTER c ADD COLUMN y UInt8", "without ON CLUSTER")
	bad("", "RENAME TABLE a TO b", "no translation")
	bad("", "CREATE TABLE t ENGINE = MergeTree ORDER BY x AS SELECT 1 AS x", "INSERT … SELECT")
}

// TestSingleServerAlterIsRepeatable: on one server the translation only
// makes ADD and DROP COLUMN repeatable.
func TestSingleServerAlterIsRepeatable(t *testing.T) {
	d := newCHDDL("", "db")
	cols := func(table string) (map[string]bool, map[string]bool, error) {
		have := map[string]bool{"a": true, "b": true}
		return have, have, nil
	}
	f := func(sql string, want ...string) {
		t.Helper()
		steps, err := d.translate(schemas.Statement{SQL: sql}, cols)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range steps {
			got = append(got, s.sql)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("translate %q: got %q, want %q", sql, got, want)
		}
	}
	f("CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = MergeTree ORDER BY a", "CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = MergeTree ORDER BY a")
	f("ALTER TABLE t ADD COLUMN a UInt8, ADD COLUMN IF NOT EXISTS c String, DROP COLUMN IF EXISTS b, DROP COLUMN z",
		"ALTER TABLE t ADD COLUMN c String, DROP COLUMN b")
	f("ALTER TABLE t ADD COLUMN IF NOT EXISTS a UInt8") // nothing left to do
}

// TestEveryMigrationHasAClusterTranslation: a migration cluster mode
// cannot translate fails here, not on an operator's cluster.
func TestEveryMigrationHasAClusterTranslation(t *testing.T) {
	d := newCHDDL("tarifa", "tarifa")
	for _, m := range schemas.ClickHouse() {
		for i, st := range schemas.Parse(m.SQL) {
			if _, err := d.translate(st, nil); err != nil {
				t.Errorf("clickhouse migration %04d_%s statement %d: %v", m.Version, m.Name, i+1, err)
			}
		}
	}
}
