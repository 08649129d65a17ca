// Package schemas owns Tarifa's storage schemas: the versioned PostgreSQL and
// ClickHouse migrations (embedded, applied in order by `tarifa migrate`) and
// the JSON Schema of the CDR message switches send.
//
// A migration is a file NNNN_name.sql; its version is NNNN. Files are never
// edited once released: a change is a new file.
//
// # ClickHouse migrations: one file, two modes
//
// A ClickHouse migration runs on one server (`tarifa migrate`) or over a
// cluster (`tarifa migrate --clickhouse-cluster NAME`); sinks translates each
// statement for the cluster. Write it once, as plain single-server SQL that
// ClickHouse 18.16 and current releases both accept, by these rules:
//
//   - One statement per query, each ending with a semicolon at the end of a
//     line. Make every statement repeatable — a migration that failed half
//     way runs again from its first statement: CREATE … IF NOT EXISTS, DROP
//     … IF EXISTS. ADD COLUMN and DROP COLUMN may carry IF NOT EXISTS / IF
//     EXISTS (18.16 cannot parse them; the migrator checks the columns itself
//     and strips them), and are skipped when already done either way.
//   - No ON CLUSTER, no Replicated engines, no Distributed tables, no
//     database names: cluster mode adds them. A table of a *MergeTree engine
//     becomes <name>_local (Replicated<Engine>, ZooKeeper path
//     /clickhouse/tables/{shard}/<database>/<name>_local) on every shard plus
//     the Distributed table <name> that everyone queries and inserts into.
//   - Sharding: a table with columns switch and cdr_id is sharded by
//     cityHash64(switch, cdr_id) (every row of one CDR on one shard, so FINAL
//     and per-CDR joins work shard by shard); any other by cityHash64 of its
//     ORDER BY key (rows that merge together share a shard). A comment line
//     right above the CREATE TABLE changes that:
//     "-- cluster: shard by <expression>" picks the key, and
//     "-- cluster: not sharded" keeps a full replica of a small table on every
//     server (names, lookups that queries of sharded tables join), with the
//     path /clickhouse/tables/all/<database>/<name> — {replica} must then be
//     unique in the whole cluster.
//   - Materialized views write TO a table the migrations create (an inner
//     ENGINE cannot be sharded). A view over xdrs fires on the Distributed
//     xdrs, on the server that takes the worker's insert, exactly as on one
//     server. Cast aggregates to the target's column types
//     (toDecimal64(sum(cost), 6)): 18.16 converts nothing on either path.
//   - Name only tables the migrations created in FROM, JOIN, TO and AS; the
//     translator qualifies those with the database (a statement ON CLUSTER
//     runs in the default database of the other servers).
//   - ALTER TABLE of a sharded table goes to the local tables ON CLUSTER, and
//     the Distributed table is then dropped and made again over them (18.16
//     refuses ALTER ON CLUSTER of a Distributed table when shards replicate),
//     which leaves it missing for well under a second: workers retry their
//     insert, and an upgrade runs migrations before new workers start anyway.
//   - CREATE, ALTER and DROP of tables and views, OPTIMIZE and INSERT …
//     SELECT are translated; any other statement (RENAME, TRUNCATE, CREATE
//     TABLE … AS SELECT) fails in cluster mode, and a test
//     (sinks.TestEveryMigrationHasAClusterTranslation) says so before release.
package schemas
