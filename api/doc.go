// Package api is the HTTP management server of Tarifa (`tarifa api`):
// operators and their scripts manage resellers, managers, clients, accounts,
// rate tables and rates, post payments, charges and adjustments, read
// balances and the audit log, ask for prepaid authorization of a call, read
// reports, rerate, and run bill runs and invoices, the way they would in a
// carrier billing UI.
//
// It is a package of its own because its job fits none of the pipeline
// stages: it is neither ingest nor rating nor a storage adapter, but a
// front door onto the PostgreSQL catalog that imports the rater (to answer
// authorize exactly as rating would charge) and the sinks (to load the
// catalog), which no pipeline stage may do.
//
// # Layout
//
//   - server.go: Config, New, the route table, the HTTP server's deadlines,
//     authentication, the role check and metrics.
//   - errors.go: error answers and the strict JSON body decoder.
//   - list.go: list queries, filters and pagination.
//   - resellers.go, clients.go, accounts.go, ratetables.go, money.go,
//     authorize.go, audit.go: the handlers. Every rule about what may be
//     written lives in package catalog, whose Writer makes every change and
//     its audit row: the catalog file goes through the same one.
//   - reports.go, rerate.go, billing.go: reports, rerating jobs, and
//     invoices, bill runs, the mail queue, payment terms and tax profiles,
//     served by packages report, rerate and billing (payment terms and
//     tax profiles are written through the catalog's Writer).
//   - tokens.go: bearer tokens (only their SHA-256 is stored) and scopes.
//   - openapi.json: the OpenAPI document served at /v1/openapi.json; a test
//     regenerates it from the route and field tables (-update) and fails
//     when it is out of date.
//
// # Conventions
//
// JSON field names are the PostgreSQL column names. Amounts are decimal
// strings, never JSON numbers, with at most 6 decimals and at most 10^12
// in either sign (rates: 9 decimals, ±999,999,999). POST answers 201 with
// the created object and its integer id (a replayed transaction with the
// same ref answers 200 with the original). A PATCH whose values equal the
// stored ones changes nothing and writes no audit row. Errors are
// {"error": "…", "field": "…"}: 400 for a request that is not well-formed
// (bad JSON, a field given twice, text that is not UTF-8, an unknown field,
// a wrong JSON type, a bad query parameter), 401 for a missing, bad,
// expired or revoked token (or one whose reseller is archived or client
// deleted), 403 for a role that may not use an endpoint at all, 404 for
// objects that do not exist or lie outside the caller's scope, 409 for a
// conflict with stored state (duplicate name, a full delete refused, a ref
// reused for another transaction), 413 for a body above its limit, 422
// for a well-formed value that breaks a rule (empty names, NUL bytes,
// unknown currencies or timezones, bad IPs, amounts out of bounds, parent
// cycles, references outside the caller's scope).
//
// Limits: a JSON body is at most 1 MiB (Config.MaxBody), a deck CSV at
// most 64 MiB (Config.MaxDeck); free text at most 1000 bytes, notes 4 KiB,
// a transaction ref 200 bytes. A request must arrive within 30 s (a deck
// within 10 min) and each answer, or each page of an export, be taken by
// the client within 30 s; the server holds a PostgreSQL connection only
// while a statement runs.
//
// Scope: an admin token sees everything; a reseller token its own reseller
// (read only) and its subtree (sub-resellers, their managers, clients,
// accounts and transactions, created or edited), and the rate tables that
// belong to its subtree or that its subtree uses; a client token reads its
// own client, balance and transactions, and the rate tables it is rated
// with on the orig side. Only admins change rate tables. In the audit log
// a reseller sees the actor of a change only when the token was one of its
// subtree's: others read as "upstream".
//
// Catalog changes reach running workers through the catalog_version
// triggers of the tables they touch; nothing else is signalled.
package api
