// Package sinks holds Tarifa's storage adapters: PostgreSQL (catalog,
// balances, consumed offsets, dedupe keys) and ClickHouse (raw CDRs, xDRs,
// report queries), and the migration runner for both.
//
// Sinks store the domain types of the packages that produce them (ingest.CDR,
// rater.XDR); those packages never import sinks.
package sinks
