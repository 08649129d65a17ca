// Package catalog owns the catalog's rules and its one write path:
// resellers, managers, clients, accounts, rate tables and their rates,
// time profiles, payment terms and tax profiles, and transactions, as the
// management API (package api) and the declarative catalog file (`tarifa
// catalog apply`, DESIGN.md "Catalog file") both write them. The two front
// ends share every rule and message: what the API answers 422 for, the
// file is refused for, in the same words.
//
// # Layout
//
//   - fields.go, entity.go: typed fields (Kind, Field) and the entities
//     (Entity) built from them; Entity.FromJSON and Entity.Validate check
//     values without the database, the same way for JSON and YAML.
//   - resellers.go, clients.go, accounts.go, ratetables.go,
//     transactions.go, profiles.go: each entity's rules beyond single
//     fields, its scope (what an Actor may see) and its statuses as types.
//   - actor.go: Actor, who writes and what it may see (DOMAIN.md: a parent
//     reseller sees its subtree; nobody sees upward or sideways).
//   - write.go: Writer, the write path. Every create, update, transaction,
//     deck import and full delete goes through it, checked against the
//     database inside the writing transaction, with one audit row per
//     change in that same transaction.
//   - billing.go: payment terms and tax profiles, whose rules and SQL are
//     package billing's (the Writer calls them and audits the change), and
//     the catalog file's billing settings; the client and reseller fields
//     that refer to them (payment_terms_id, tax_profile_id,
//     invoice_rounding, invoice_precision, invoice_number_template) are
//     ordinary entity fields.
//   - deck.go: the one deck importer (Writer.ImportRates), merge or
//     replace, COPY into a staging table and set-based statements.
//   - file.go, apply.go, report.go: the catalog file: Load checks it with
//     every rule that needs no database (so `tarifa catalog check` catches
//     them), Apply writes it through a Writer as the actor
//     "catalog apply (PATH)", Report prints what changed.
//   - errors.go: FieldError, the refusal every rule returns.
//
// # Writes
//
// An update writes only what differs from the stored row; when nothing
// differs it writes nothing at all (no audit row, no catalog version bump),
// so applying the same file twice, or sending back a row read a moment ago,
// moves no worker to reload. Money is decimal text bounded by MaxAmount
// with at most 6 decimals; rates are bounded by codedeck.CheckAmounts with
// at most 9. Catalog changes reach running workers through the
// catalog_version triggers of the tables they touch.
//
// The package is not a storage adapter (package sinks): it decides what
// may be written, by whom, and records who did.
package catalog
