package report

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The rollups (ClickHouse xdrs_rollup, PostgreSQL rollup_hours and
// rollup_dirty; see their migrations) make the summary, orig-term and
// balance reports read a few rows per hour instead of every xDR, and stay
// exact:
//
//   - an hour is a setup hour (UTC). Setup time never changes for a CDR, so
//     a rerated or replayed xDR and the row it replaces share their hour;
//   - every commit that writes xDRs marks their setup hours dirty in the
//     transaction that moves the balances (sinks.MarkRollupHours), so no
//     committed change can miss its mark;
//   - RefreshRollups recomputes a dirty hour whole from xdrs FINAL under a
//     new generation, and clears only the marks it had seen before it read;
//   - a report reads the hours that are clean (a generation, no pending
//     one, no mark) from the rollup and every other hour from xdrs FINAL,
//     and checks that the state did not move while it read.

// hourGen is a clean hour and the generation of its rollup rows.
type hourGen struct {
	hour time.Time
	gen  int64
}

// rollupState is what a report needs to know of the rollups for a period:
// the clean hours that may hold its calls and the hours to read raw.
type rollupState struct {
	gens  []hourGen
	dirty []time.Time
}

func (s rollupState) equal(o rollupState) bool {
	return slices.Equal(s.gens, o.gens) && slices.EqualFunc(s.dirty, o.dirty, time.Time.Equal)
}

// readRollupState reads, in one snapshot, the clean setup hours before the
// period's end whose calls reach into it and every hour before the end
// that is not clean (dirty, pending, or never computed). Setup hours after
// the end cannot hold calls of the period: an event is never before setup.
func readRollupState(ctx context.Context, pg pgxBeginner, p Period) (rollupState, error) {
	var st rollupState
	tx, err := pg.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return st, fmt.Errorf("read rollup state: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read only
	rows, err := tx.Query(ctx, `SELECT hour, gen FROM rollup_hours h
		WHERE hour < $1 AND gen IS NOT NULL AND pending IS NULL AND max_event >= $2
		  AND NOT EXISTS (SELECT 1 FROM rollup_dirty d WHERE d.hour = h.hour)
		ORDER BY hour`, p.To, p.From.Truncate(time.Hour))
	if err != nil {
		return st, fmt.Errorf("read rollup state: %w", err)
	}
	var hg hourGen
	if _, err := pgx.ForEachRow(rows, []any{&hg.hour, &hg.gen}, func() error {
		st.gens = append(st.gens, hourGen{hour: hg.hour.UTC(), gen: hg.gen})
		return nil
	}); err != nil {
		return st, fmt.Errorf("read rollup state: %w", err)
	}
	rows, err = tx.Query(ctx, `SELECT hour FROM rollup_dirty WHERE hour < $1
		UNION SELECT hour FROM rollup_hours WHERE hour < $1 AND (gen IS NULL OR pending IS NOT NULL)
		ORDER BY 1`, p.To)
	if err != nil {
		return st, fmt.Errorf("read rollup state: %w", err)
	}
	var h time.Time
	if _, err := pgx.ForEachRow(rows, []any{&h}, func() error {
		st.dirty = append(st.dirty, h.UTC())
		return nil
	}); err != nil {
		return st, fmt.Errorf("read rollup state: %w", err)
	}
	return st, nil
}

type pgxBeginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// rollupLock is the PostgreSQL advisory lock key that lets one refresher
// run at a time across every worker and command.
const rollupLock = 7_246_175_001

// refreshChunk bounds the hours recomputed by one ClickHouse statement.
const refreshChunk = 24

// RefreshResult says what RefreshRollups did.
type RefreshResult struct {
	Hours int  // setup hours recomputed
	Busy  bool // another refresher was running: nothing was done
}

// RefreshRollups recomputes the rollups of the dirty setup hours that have
// settled: the hour ended at least settle ago and no batch marked it in the
// last settle (0 refreshes every dirty hour). Until an hour is recomputed,
// reports read it from xdrs FINAL, so settle trades refresh work for the
// share of a report read raw, never exactness. Only one refresher runs at a
// time across all processes (an advisory lock); another call returns Busy.
// It blocks on PostgreSQL and on ClickHouse's INSERT … SELECT of each
// chunk of hours.
func (r *Reports) RefreshRollups(ctx context.Context, settle time.Duration) (RefreshResult, error) {
	var res RefreshResult
	conn, err := r.pg.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("refresh rollups: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(rollupLock)).Scan(&locked); err != nil {
		return res, fmt.Errorf("refresh rollups: lock: %w", err)
	}
	if !locked {
		return RefreshResult{Busy: true}, nil
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(rollupLock))
	}()
	// Many batches mark the same hour; only the newest mark of each hour
	// matters to anyone (a refresher clears the marks up to the one it saw).
	if _, err := conn.Exec(ctx, `DELETE FROM rollup_dirty d USING (SELECT hour, max(id) AS top FROM rollup_dirty GROUP BY hour) x
		WHERE d.hour = x.hour AND d.id < x.top`); err != nil {
		return res, fmt.Errorf("refresh rollups: compact marks: %w", err)
	}
	secs := settle.Seconds()
	rows, err := conn.Query(ctx, `
		SELECT hour, max(id) FROM rollup_dirty GROUP BY hour
		HAVING max(marked_at) <= now() - make_interval(secs => $1) AND hour + interval '1 hour' <= now() - make_interval(secs => $1)
		UNION ALL
		SELECT hour, 0 FROM rollup_hours h WHERE pending IS NOT NULL AND NOT EXISTS (SELECT 1 FROM rollup_dirty d WHERE d.hour = h.hour)
		ORDER BY 1`, secs)
	if err != nil {
		return res, fmt.Errorf("refresh rollups: read dirty hours: %w", err)
	}
	var hours []time.Time
	var seen []int64
	var h time.Time
	var id int64
	if _, err := pgx.ForEachRow(rows, []any{&h, &id}, func() error {
		hours, seen = append(hours, h.UTC()), append(seen, id)
		return nil
	}); err != nil {
		return res, fmt.Errorf("refresh rollups: read dirty hours: %w", err)
	}
	for i := 0; i < len(hours); i += refreshChunk {
		j := min(i+refreshChunk, len(hours))
		if err := r.refreshHours(ctx, hours[i:j], seen[i:j]); err != nil {
			return res, err
		}
		res.Hours += j - i
	}
	return res, nil
}

// refreshHours recomputes the rollup of hours (sorted) under new
// generations and then clears each hour's marks up to seen.
func (r *Reports) refreshHours(ctx context.Context, hours []time.Time, seen []int64) error {
	// 1. New generations, recorded as pending before any row of theirs
	// exists: a report that reads while they are written treats the hours
	// as not clean.
	rows, err := r.pg.Query(ctx, `
		INSERT INTO rollup_hours AS h (hour, pending)
		SELECT u.h, nextval('rollup_gen') FROM unnest($1::timestamptz[]) AS u(h) ORDER BY u.h
		ON CONFLICT (hour) DO UPDATE SET pending = excluded.pending
		RETURNING hour, pending`, hours)
	if err != nil {
		return fmt.Errorf("refresh rollups: new generations: %w", err)
	}
	gens := map[int64]int64{} // unix hour → gen
	var h time.Time
	var g int64
	if _, err := pgx.ForEachRow(rows, []any{&h, &g}, func() error { gens[h.Unix()] = g; return nil }); err != nil {
		return fmt.Errorf("refresh rollups: new generations: %w", err)
	}
	keys := make([]string, 0, len(hours))
	vals := make([]string, 0, len(hours))
	genList := make([]string, 0, len(hours))
	for _, h := range hours {
		keys = append(keys, strconv.FormatInt(h.Unix(), 10))
		vals = append(vals, strconv.FormatInt(gens[h.Unix()], 10))
		genList = append(genList, strconv.FormatInt(gens[h.Unix()], 10))
	}
	// 2. The hours' rated calls from xdrs FINAL, summed per rollup key.
	if err := r.ch.Exec(ctx, `INSERT INTO xdrs_rollup (setup_hour, event_hour, reseller_id, orig_client_id, orig_account_id,
			term_client_id, orig_code_name, orig_currency, term_currency, calls, answered, answered_ms, orig_billed_seconds,
			orig_cost, term_calls, term_billed_seconds, term_cost, gen)
		SELECT toStartOfHour(setup_time) AS sh, toStartOfHour(event_time) AS eh, reseller_id, orig_client_id, orig_account_id,
			term_client_id, orig_code_name, orig_currency, `+costCurrency+` AS cost_currency,
			count(), countIf(`+answered+`), sumIf(duration_ms, `+answered+`), sum(toUInt64(orig_billed_seconds)),
			sum(orig_cost), countIf(`+termRated+`), sumIf(toUInt64(term_billed_seconds), `+termRated+`), sum(term_cost),
			transform(toUInt32(sh), [`+strings.Join(keys, ",")+`], [`+strings.Join(vals, ",")+`], 0)
		FROM xdrs FINAL
		WHERE status = 'rated' AND `+hourRanges("setup_time", hours)+`
		GROUP BY sh, eh, reseller_id, orig_client_id, orig_account_id, term_client_id, orig_code_name, orig_currency, cost_currency`); err != nil {
		return fmt.Errorf("refresh rollups: compute: %w", err)
	}
	if err := r.ch.Exec(ctx, `INSERT INTO xdrs_rollup_clients (setup_hour, event_hour, reseller_id, orig_client_id, term_client_id,
			orig_currency, term_currency, calls, answered, answered_ms, orig_billed_seconds, orig_cost, term_calls,
			term_billed_seconds, term_cost, gen)
		SELECT setup_hour, event_hour, reseller_id, orig_client_id, term_client_id, orig_currency, term_currency,
			sum(calls), sum(answered), sum(answered_ms), sum(orig_billed_seconds), sum(orig_cost), sum(term_calls),
			sum(term_billed_seconds), sum(term_cost), gen
		FROM xdrs_rollup WHERE gen IN (`+strings.Join(genList, ",")+`)
		GROUP BY setup_hour, event_hour, reseller_id, orig_client_id, term_client_id, orig_currency, term_currency, gen`); err != nil {
		return fmt.Errorf("refresh rollups: compute per client: %w", err)
	}
	maxEvent := map[int64]time.Time{}
	crows, err := r.ch.Query(ctx, `SELECT setup_hour, max(event_hour) FROM xdrs_rollup WHERE gen IN (`+strings.Join(genList, ",")+`) GROUP BY setup_hour`)
	if err != nil {
		return fmt.Errorf("refresh rollups: read back: %w", err)
	}
	for crows.Next() {
		var sh, eh time.Time
		if err := crows.Scan(&sh, &eh); err != nil {
			crows.Close()
			return fmt.Errorf("refresh rollups: read back: %w", err)
		}
		maxEvent[sh.Unix()] = eh.UTC()
	}
	crows.Close()
	if err := crows.Err(); err != nil {
		return fmt.Errorf("refresh rollups: read back: %w", err)
	}
	// 3. The new generations become current, and the marks they cover go.
	events := make([]*time.Time, len(hours))
	genArr := make([]int64, len(hours))
	for i, h := range hours {
		if e, ok := maxEvent[h.Unix()]; ok {
			events[i] = &e
		}
		genArr[i] = gens[h.Unix()]
	}
	tx, err := r.pg.Begin(ctx)
	if err != nil {
		return fmt.Errorf("refresh rollups: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	if _, err := tx.Exec(ctx, `UPDATE rollup_hours h SET gen = u.g, pending = NULL, max_event = u.e, computed_at = now()
		FROM unnest($1::timestamptz[], $2::bigint[], $3::timestamptz[]) AS u(h, g, e)
		WHERE h.hour = u.h AND h.pending = u.g`, hours, genArr, events); err != nil {
		return fmt.Errorf("refresh rollups: publish: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM rollup_dirty d USING unnest($1::timestamptz[], $2::bigint[]) AS u(h, top)
		WHERE d.hour = u.h AND d.id <= u.top`, hours, seen); err != nil {
		return fmt.Errorf("refresh rollups: clear marks: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("refresh rollups: %w", err)
	}
	return nil
}
