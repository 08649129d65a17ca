// Package rerate runs rerating jobs: the operator's way to fix the past
// (DOMAIN.md "Rerating"). A job selects the CDRs set up in a period whose
// current xDR matches its filters, rates each again from its cdrs_raw row
// against the catalog as it is when the job starts — both legs, account
// matching included, so a call may change client or go from mismatch to
// rated — and, confirmed, writes the new xDR versions and moves each
// client's live balance by exactly its delta, once, whatever is killed and
// resumed, with the workers running (see Runner). A dry run changes
// nothing and says what a confirmed job would do: per client, side and
// currency the calls, the old and new sums and the delta; the reason
// transitions; the invoices whose period the selection touches.
//
// It is a package of its own because it is a stage of its own — a batch
// job over history beside the streaming worker — that reuses the live
// parts rather than copying them: rater.Rater rates, sinks.XDRWriter
// writes, sinks.ApplyBalanceDeltas moves balances, sinks.Clock versions
// the rows and sinks.ClaimForJob takes dedupe claims, exactly as the
// worker does (the shape of VictoriaMetrics' vmalert replay and
// Prometheus' promtool backfill). Its own state lives in PostgreSQL
// (rerate_jobs, rerate_chunks) and ClickHouse (rerate_staged).
package rerate
