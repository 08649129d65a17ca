// Package console is the operator console that `tarifa api` serves at /:
// the Clients, Resellers, Rate tables, Reports, Rerating, Invoices and
// Audit pages a carrier's billing operator knows, and the customer portal
// a client token sees, rendered on the server as plain HTML.
//
// It is a package of its own because its job fits no other: it is not the
// API (it holds no rule and reads no database) but a client of it that
// turns /v1 into pages, with sessions, forms and charts the API has no
// business knowing about. It imports no storage adapter and no catalog
// code: every figure, list and refusal on a page is what the API answered
// for the signed-in token, called in process through the API's own
// http.Handler (authentication, scopes, validation, audit and metrics
// included). The console therefore shows exactly what that token may see,
// and what the API refuses it shows as the API's error.
//
// # Layout
//
//   - console.go: Config, New, the route table, the page wrapper (session,
//     CSRF, security headers, errors) and rendering.
//   - session.go: sign-in with an API token, the server-side session store
//     (the browser holds only a random session id in an HttpOnly,
//     SameSite=Strict cookie, never the token), per-session CSRF tokens,
//     sign-out.
//   - apicall.go: calling /v1 in process with the session's token, the
//     API's errors, JSON decoded with numbers and money kept as the exact
//     text the API wrote.
//   - forms.go: create and edit forms built from the API's own OpenAPI
//     document (types, enums, nullability), grouped for people; a form is
//     turned back into JSON and sent as typed, and the API decides.
//   - chart.go: small SVG bar charts, scaled with exact decimals.
//   - dashboard.go, clients.go, resellers.go, ratetables.go, reports.go,
//     rerate.go, invoices.go, audit.go: the pages.
//   - assets/: the templates, the style sheet and a little JavaScript,
//     embedded in the binary; nothing is fetched from the internet.
//
// # Money
//
// Amounts are the API's decimal strings, printed as they came. Nothing on
// a page is computed from money except the height of a chart's bars, which
// is scaled with decimal arithmetic too.
//
// # Concurrency
//
// A Console is an http.Handler, safe for concurrent use. Each request
// runs on its caller's goroutine and blocks only on the API calls it
// makes; the session store is guarded by a mutex and bounded by
// Config.MaxSessions (and per token by Config.MaxTokenSessions).
package console
