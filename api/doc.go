// Package api is the HTTP management server of Tarifa (`tarifa api`):
// operators and their scripts manage resellers, managers, clients, accounts,
// rate tables and rates, post payments, charges and adjustments, read
// balances and the audit log, and ask for prepaid authorization of a call,
// the way they would in a carrier billing UI.
//
// It is a package of its own because its job fits none of the pipeline
// stages: it is neither ingest nor rating nor a storage adapter, but a
// front door onto the PostgreSQL catalog that imports the rater (to answer
// authorize exactly as rating would charge) and the sinks (to load the
// catalog), which no pipeline stage may do.
//
// # Layout
//
//   - server.go: Config, New, the route table, authentication and metrics.
//   - fields.go, store.go: typed field tables per entity, input
//     validation and the generic create / read / update / list code that
//     writes an audit row in the same transaction as every change.
//   - resellers.go, clients.go, accounts.go, ratetables.go, money.go,
//     authorize.go, audit.go: the entity-specific rules.
//   - tokens.go: bearer tokens (only their SHA-256 is stored) and scopes.
//   - openapi.json: the OpenAPI document served at /v1/openapi.json; a test
//     regenerates it from the route and field tables (-update) and fails
//     when it is out of date.
//
// # Conventions
//
// JSON field names are the PostgreSQL column names. Amounts are decimal
// strings, never JSON numbers. POST answers 201 with the created object and
// its integer id (a replayed transaction with the same ref answers 200 with
// the original). Errors are {"error": "…", "field": "…"}: 400 for a request
// that is not well-formed (bad JSON, unknown field, wrong JSON type, bad
// query parameter), 401 for a missing or bad token, 403 for a role that may
// not use an endpoint at all, 404 for objects that do not exist or lie
// outside the caller's scope, 409 for a conflict with stored state
// (duplicate name, a full delete refused, a ref reused for another
// transaction), 422 for a well-formed value that breaks a rule (empty
// names, unknown currencies or timezones, bad IPs, parent cycles,
// references outside the caller's scope).
//
// Scope: an admin token sees everything; a reseller token its own reseller
// (read only) and its subtree (sub-resellers, their managers, clients,
// accounts and transactions, created or edited); a client token reads its
// own client, balance and transactions. Rate tables are shared by all
// resellers: resellers read them, only admins change them.
//
// Catalog changes reach running workers through the catalog_version
// triggers of the tables they touch; nothing else is signalled.
package api
