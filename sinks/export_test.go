package sinks

import (
	"context"
	"log/slog"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tarifa/tarifa/schemas"
)

// Test hooks for package sinks_test.
var (
	MigratePostgresWith = migratePostgres
	// MigrateClickHouseClusterWith migrates with the given migrations, on a
	// cluster ("" for one server).
	MigrateClickHouseClusterWith = migrateClickHouse
)

// MigrateClickHouseWith migrates one server with the given migrations.
func MigrateClickHouseWith(ctx context.Context, conn driver.Conn, ms []schemas.Migration, log *slog.Logger) ([]int, error) {
	return migrateClickHouse(ctx, conn, ms, "", log)
}

// ClaimWithOnConflict has s claim new keys with ON CONFLICT DO NOTHING
// from the start, the path a batch takes after losing plainClaims races.
func ClaimWithOnConflict(s *Store) { s.plain = 0 }
