// Package billing turns rated traffic into invoices (DOMAIN.md "Bill run",
// DESIGN.md "Invoices and bill runs", invariant 7): payment terms and the
// periods they give in each client's timezone, tax profiles, the two
// roundings, the resellers' gapless numbering, the invoice states and what
// each does to the fixed balance, bill runs that never invoice a client and
// period twice, the PDF and CSV documents, and e-mail through a mail queue.
//
// It is a package of its own (DESIGN.md allows a billing ledger at the top
// level) because its job fits none of the pipeline stages: it reads the
// rated calls through package report (the one place their sums are made,
// so that invoice lines are the summary's figures and equal xdrs FINAL to
// the last decimal), keeps its own state in PostgreSQL (invoices, their
// frozen lines, the mail queue), and serves two front doors, the CLI and
// the API, which share every rule through it.
//
// # Layout
//
//   - date.go, terms.go: calendar dates of a timezone, payment terms and
//     their periods (monthly on day D, weekly on a weekday, every N days
//     from an anchor), DST included because periods are days, not hours.
//   - money.go, tax.go, number.go: Round (half away from zero, the one
//     rounding), currency precision, tax profiles and ComputeTotals,
//     numbering templates. Pure; unit-tested with DOMAIN.md's worked
//     example.
//   - settings.go: the one store path of payment terms and tax profiles;
//     package catalog's Writer calls it and audits the change, for the API
//     and the catalog file alike.
//   - service.go, client.go, store.go: the Service, its callers' scope and
//     audit rows, reading clients and invoices.
//   - create.go: generating an invoice (lines from report.Statement, charges,
//     corrections of earlier approved invoices) and storing or regenerating
//     a draft.
//   - transitions.go: approve, void, pay, sent.
//   - billrun.go: bill runs and their dry runs.
//   - document.go, statement.go, render.go: the PDF (go-pdf/fpdf and the Go
//     fonts, nothing installed or fetched), CSVs and tables of invoices,
//     vendor statements, bill runs and the mail queue.
//   - mail.go: the mail queue and SMTP delivery.
//
// # Concurrency and exactly once
//
// Every change to a client's invoices runs in one PostgreSQL transaction
// holding the client's row lock (FOR NO KEY UPDATE: rating never takes
// it, foreign keys do not wait on it), so creates, regenerations, bill runs
// and transitions of one client are serial, across processes. An approval
// takes the next number of the reseller under the reseller's row lock, in
// the transaction that moves the fixed balance: a number is used by exactly
// one approved invoice, and an approval that fails gives it back. Unique
// indexes (one invoice per client and period that is not void, one number
// per reseller) and triggers (the lines and figures of an approved invoice
// are frozen, invoices are never deleted, "Last No" never goes back over an
// issued number) hold the same rules in the database.
package billing
