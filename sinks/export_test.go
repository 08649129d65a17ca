package sinks

// Test hooks for package sinks_test.
var (
	MigratePostgresWith   = migratePostgres
	MigrateClickHouseWith = migrateClickHouse
)
