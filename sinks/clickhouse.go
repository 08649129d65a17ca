package sinks

import (
	"context"
	"database/sql"
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
	if opts.Settings == nil {
		opts.Settings = clickhouse.Settings{}
	}
	if _, ok := opts.Settings["insert_distributed_sync"]; !ok {
		// On a cluster, an insert into a Distributed table returns only
		// once every shard has its rows: the xDRs of a batch are durable
		// before PostgreSQL commits its balances, as on one server. (It
		// changes nothing for other tables; a DSN may still set it.)
		opts.Settings["insert_distributed_sync"] = 1
	}
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

// EnsureClickHouseClusterDatabase creates the database named in dsn when
// missing, on every server of the cluster (ON CLUSTER).
func EnsureClickHouseClusterDatabase(ctx context.Context, dsn, cluster string) error {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("parse clickhouse dsn %s: %w", Redact(dsn), err)
	}
	name := opts.Auth.Database
	if name == "" || name == "default" {
		return nil
	}
	if strings.ContainsAny(name+cluster, "`\\") {
		return fmt.Errorf("clickhouse database %q or cluster %q: backquote and backslash are not allowed", name, cluster)
	}
	opts.Auth.Database = "default"
	conn, err := openClickHouse(ctx, opts, dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+name+"` ON CLUSTER `"+cluster+"`"); err != nil {
		return fmt.Errorf("create clickhouse database %q on cluster %s: %w", name, cluster, err)
	}
	return nil
}

// MigrateClickHouse applies the pending ClickHouse migrations in order and
// records each in schema_migrations once all its statements succeeded.
// ClickHouse DDL is not transactional, so every statement is written to be
// repeatable (IF NOT EXISTS; ADD and DROP COLUMN are checked against the
// table's columns): a migration that failed half-way is not recorded and
// the next run applies it again from its first statement.
func MigrateClickHouse(ctx context.Context, conn driver.Conn, log *slog.Logger) ([]int, error) {
	return migrateClickHouse(ctx, conn, schemas.ClickHouse(), "", log)
}

// MigrateClickHouseCluster is MigrateClickHouse for a database spread over
// the ClickHouse cluster named cluster (remote_servers of the servers'
// config, internal_replication on, macros {shard} and {replica}, and
// ZooKeeper): every table of a MergeTree engine becomes Replicated local
// tables on the shards plus a Distributed table under the table's own name,
// and every other statement runs ON CLUSTER (the translation is described
// in the schemas package doc). conn is a connection to any server of the
// cluster, in the database to migrate.
func MigrateClickHouseCluster(ctx context.Context, conn driver.Conn, cluster string, log *slog.Logger) ([]int, error) {
	if cluster == "" {
		return nil, fmt.Errorf("clickhouse cluster: empty name")
	}
	return migrateClickHouse(ctx, conn, schemas.ClickHouse(), cluster, log)
}

const schemaMigrationsDDL = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version UInt32, name String, applied_at DateTime DEFAULT now()
	) ENGINE = MergeTree ORDER BY version`

func migrateClickHouse(ctx context.Context, conn driver.Conn, migrations []schemas.Migration, cluster string, log *slog.Logger) ([]int, error) {
	var db string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&db); err != nil {
		return nil, fmt.Errorf("read clickhouse database: %w", err)
	}
	if err := checkClickHouseMode(ctx, conn, db, cluster); err != nil {
		return nil, err
	}
	ddl := newCHDDL(cluster, db)
	cols := func(table string) (every, some map[string]bool, err error) {
		return clickHouseColumns(ctx, conn, cluster, db, table)
	}
	// In cluster mode the record of migrations is itself a table with a
	// copy on every server, so any server can be asked what is applied.
	if err := runCHStatement(ctx, conn, ddl, schemas.Statement{SQL: schemaMigrationsDDL, Cluster: "not sharded"}, cols); err != nil {
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
		stmts := schemas.Parse(m.SQL)
		if applied[m.Version] {
			// Translate without running: the translator learns which
			// tables exist and how (sharded, not sharded, plain).
			for i, st := range stmts {
				if _, err := ddl.translate(st, nil); err != nil {
					return done, fmt.Errorf("clickhouse migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
				}
			}
			continue
		}
		for i, st := range stmts {
			if err := runCHStatement(ctx, conn, ddl, st, cols); err != nil {
				return done, fmt.Errorf("clickhouse migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := recordClickHouseMigration(ctx, conn, m); err != nil {
			return done, fmt.Errorf("record clickhouse migration %04d: %w", m.Version, err)
		}
		if cluster != "" {
			log.Info("applied migration", "db", "clickhouse", "version", m.Version, "name", m.Name, "cluster", cluster)
		} else {
			log.Info("applied migration", "db", "clickhouse", "version", m.Version, "name", m.Name)
		}
		done = append(done, m.Version)
	}
	return done, nil
}

// runCHStatement translates st for the mode and runs its steps.
func runCHStatement(ctx context.Context, conn driver.Conn, ddl *chDDL, st schemas.Statement, cols columnsFunc) error {
	steps, err := ddl.translate(st, cols)
	if err != nil {
		return err
	}
	for _, step := range steps {
		err := conn.Exec(ctx, step.sql)
		if err == nil {
			continue
		}
		if step.alter != "" {
			// Forgiven when nothing is left to do: the columns are as the
			// statement wants them on every shard.
			again, terr := ddl.translate(st, cols)
			if terr == nil && !hasAlter(again) {
				continue
			}
		}
		return fmt.Errorf("%s: %w", oneLine(step.sql), err)
	}
	return nil
}

func hasAlter(steps []chStep) bool {
	for _, s := range steps {
		if s.alter != "" {
			return true
		}
	}
	return false
}

// oneLine shortens a statement for an error message.
func oneLine(sql string) string {
	s := strings.Join(strings.Fields(sql), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// clickHouseColumns reads a table's columns: on one server, or on one
// replica of every shard of the cluster.
func clickHouseColumns(ctx context.Context, conn driver.Conn, cluster, db, table string) (every, some map[string]bool, err error) {
	every, some = map[string]bool{}, map[string]bool{}
	shards := uint64(1)
	query := "SELECT name, toUInt64(1) FROM system.columns WHERE database = ? AND table = ?"
	args := []any{db, table}
	if cluster != "" {
		if err := conn.QueryRow(ctx, "SELECT toUInt64(uniqExact(shard_num)) FROM system.clusters WHERE cluster = ?", cluster).Scan(&shards); err != nil {
			return nil, nil, fmt.Errorf("read shards of cluster %s: %w", cluster, err)
		}
		query = "SELECT name, toUInt64(count()) FROM cluster(?, system.columns) WHERE database = ? AND table = ? GROUP BY name"
		args = []any{cluster, db, table}
	}
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("read columns of %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n uint64
		if err := rows.Scan(&name, &n); err != nil {
			return nil, nil, fmt.Errorf("read columns of %s: %w", table, err)
		}
		some[name] = true
		every[name] = n >= shards
	}
	return every, some, rows.Err()
}

// checkClickHouseMode refuses to migrate a database in the other mode than
// it was created in, and checks what cluster mode needs of the servers.
func checkClickHouseMode(ctx context.Context, conn driver.Conn, db, cluster string) error {
	var engine string
	err := conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'schema_migrations'", db).Scan(&engine)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read clickhouse schema_migrations: %w", err)
	}
	replicated := strings.HasPrefix(engine, "Replicated")
	switch {
	case engine != "" && replicated && cluster == "":
		return fmt.Errorf("clickhouse database %s was migrated in cluster mode: run tarifa migrate with --clickhouse-cluster", db)
	case engine != "" && !replicated && cluster != "":
		return fmt.Errorf("clickhouse database %s was migrated on a single server; cluster mode needs a database of its own (copy the data over with INSERT … SELECT)", db)
	case cluster == "":
		return nil
	}
	var shards, macros, hosts uint64
	if err := conn.QueryRow(ctx, "SELECT toUInt64(uniqExact(shard_num)), toUInt64(count()) FROM system.clusters WHERE cluster = ?", cluster).Scan(&shards, &hosts); err != nil {
		return fmt.Errorf("read clickhouse cluster %s: %w", cluster, err)
	}
	if shards == 0 {
		return fmt.Errorf("clickhouse cluster %q is not in this server's system.clusters (remote_servers)", cluster)
	}
	if err := conn.QueryRow(ctx, "SELECT toUInt64(count()) FROM cluster(?, system.macros) WHERE macro IN ('shard', 'replica')", cluster).Scan(&macros); err != nil {
		return fmt.Errorf("clickhouse cluster %s: read macros: %w", cluster, err)
	}
	if macros != 2*shards {
		return fmt.Errorf("clickhouse cluster %s: every server needs the macros {shard} and {replica} (found %d of %d)", cluster, macros, 2*shards)
	}
	var zk uint64
	if err := conn.QueryRow(ctx, "SELECT toUInt64(count()) FROM system.zookeeper WHERE path = '/'").Scan(&zk); err != nil {
		return fmt.Errorf("clickhouse cluster %s needs ZooKeeper for Replicated tables and ON CLUSTER DDL: %w", cluster, err)
	}
	return nil
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
