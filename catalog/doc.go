// Package catalog is the declarative catalog file (DESIGN.md "Catalog
// file"): parse, validate, plan and apply it to PostgreSQL as idempotent
// upserts by name.
//
// A catalog file names time profiles, rate tables (each with a deck CSV),
// payment terms and tax profiles, resellers, clients with their accounts,
// and payments. The billing settings (billing.go) are checked and stored
// by package billing's functions, the ones the API calls. Apply makes the
// database agree with the file for every entry the file names, in one
// transaction:
//
//   - An entry is matched by its name (accounts by kind + ident +
//     tech_prefix, payments by client + ref). A missing entry is created; an
//     existing one whose fields differ is updated; an identical one is not
//     written at all, so the catalog version (and with it every worker's
//     reload) moves only when something changed.
//   - The file is the truth for the fields it may carry: a field left out
//     takes its documented default. Entries the file does not name are left
//     alone (the file never deletes a client or an account).
//   - A rate table's rates are replaced by its deck: rows no longer in the
//     deck are removed, changed rows updated, unchanged rows left untouched.
//     The deck goes in with COPY into a temporary table and set-based
//     statements, so a 20k-code deck applies in well under a second.
//   - Payments are transactions of kind payment, recorded once per client
//     and ref; applying the file again does not pay twice.
//
// A dry run performs the same work inside a transaction that is rolled back,
// so what it reports is exactly what a real apply would do.
package catalog
