// Package schemas owns Tarifa's storage schemas: the versioned PostgreSQL and
// ClickHouse migrations (embedded, applied in order by `tarifa migrate`) and
// the JSON Schema of the CDR message switches send.
//
// A migration is a file NNNN_name.sql; its version is NNNN. Files are never
// edited once released: a change is a new file.
package schemas
