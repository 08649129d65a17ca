package sinks

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tarifa/tarifa/rater"
)

// MarkRollupHours records, in tx, the setup hours (UTC) that the xDRs of a
// batch are written into, so that the summary's rollups of those hours are
// recomputed (package report) and, until they are, read from xdrs FINAL.
// Store.Commit calls it in the transaction that moves the balances, after
// the xDRs are in ClickHouse: a batch whose balances committed has its
// hours marked, one that did not commit is replayed and marks them then.
// Setup time never changes for a CDR, so the hour of a rerated or replayed
// xDR is also the hour of the row it replaces.
func MarkRollupHours(ctx context.Context, tx pgx.Tx, xs []rater.XDR) error {
	hours := rollupHours(xs)
	if len(hours) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rollup_dirty (hour) SELECT unnest($1::timestamptz[]) ORDER BY 1`, hours); err != nil {
		return pgErr("mark rollup hours", err)
	}
	return nil
}

// rollupHours returns the distinct setup hours of the xDRs that are
// written (duplicates are not), sorted.
func rollupHours(xs []rater.XDR) []time.Time {
	var hours []time.Time
	var last time.Time
	for i := range xs {
		x := &xs[i]
		if x.Duplicate() {
			continue
		}
		// A malformed xDR is in no rollup, but it may replace a row that
		// was (a zero-cost rated call re-sent broken, a rerated call): its
		// hour is recomputed too.
		h := x.CDR.SetupTime.UTC().Truncate(time.Hour)
		if h.Equal(last) && len(hours) > 0 {
			continue // a batch is mostly one or two hours, in order
		}
		last = h
		if !slices.ContainsFunc(hours, h.Equal) {
			hours = append(hours, h)
		}
	}
	slices.SortFunc(hours, time.Time.Compare)
	return hours
}
