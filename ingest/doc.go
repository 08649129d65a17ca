// Package ingest turns what switches send into CDRs: it decodes and
// validates the CDR message (DESIGN.md "CDR message") and, in the worker,
// consumes it from Kafka.
//
// Decode is a small hand-written scanner for the flat CDR object: it is
// called for every message, so it avoids reflection and allocates one string
// per message for all its text fields. It never panics on any input and runs
// in time linear in the message (fuzzed by FuzzDecode).
package ingest
