package sinks

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/rater"
)

// DedupeWindow is how long a billed CDR's switch and id are remembered.
const DedupeWindow = 48 * time.Hour

// Store commits rated batches: xDRs and raw CDRs to ClickHouse, balance
// deltas, dedupe keys and the partition's next offset to PostgreSQL in one
// transaction. It implements rater.Store and is safe for concurrent use by
// the partition goroutines of a worker.
//
// The order inside Commit is what makes a batch exactly-once:
//
//  1. claim the dedupe keys of the batch's billable CDRs, each with the
//     Kafka message that carries it, in a short transaction of its own (so
//     that partitions sharing a duplicate wait milliseconds, not a whole
//     batch), learning which CDRs another message already billed; CDRs set
//     up before the window that cdr_keys cannot vouch for are looked up
//     among ClickHouse's billed xDRs (a switch re-sending old CDRs);
//  2. lock the partition's offset row and check it still holds the offset
//     this worker last saw (else rater.ErrFenced: another worker owns it);
//  3. write the xDRs of the others to ClickHouse (idempotent by key and
//     version, so a replay after a crash here replaces the same rows);
//  4. add the balance deltas, raise low-balance notifications, store the
//     next offset, and commit.
//
// A crash before 4 commits leaves balances and offset untouched and the
// batch is replayed from Kafka; its keys are found claimed by the very same
// messages, so the replay bills them. A crash after 4 finds the offset
// stored and skips.
type Store struct {
	pg     *pgxpool.Pool
	ch     *XDRWriter
	phases *prometheus.HistogramVec
	plain  int // plain claims before ON CONFLICT (plainClaims; tests set 0)
}

// NewStore returns a store writing to pg and ch, with the time spent in each
// phase of a commit as tarifa_commit_phase_seconds{phase} on reg. The
// ClickHouse writes of concurrent commits are coalesced into shared inserts.
func NewStore(pg *pgxpool.Pool, ch driver.Conn, reg prometheus.Registerer) *Store {
	s := &Store{pg: pg, ch: NewXDRWriter(ch), plain: plainClaims, phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tarifa_commit_phase_seconds",
		Help:    "Time a batch commit spends per phase: lock (offset fence), dedupe, clickhouse, balances, commit.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	}, []string{"phase"})}
	reg.MustRegister(s.phases)
	return s
}

// Close stops the store's ClickHouse writer; call it after the last Commit
// returned.
func (s *Store) Close() { s.ch.Close() }

// errClosed is returned by a Commit after Close.
var errClosed = errors.New("store closed")

// NextOffset returns the next offset to process of a partition, or -1 when
// none was stored yet.
func (s *Store) NextOffset(ctx context.Context, topic string, partition int) (int64, error) {
	var next int64
	err := s.pg.QueryRow(ctx, `SELECT next_offset FROM consumed_offsets WHERE topic = $1 AND "partition" = $2`, topic, partition).Scan(&next)
	if errors.Is(err, pgx.ErrNoRows) {
		return -1, nil
	}
	if err != nil {
		return 0, &rater.SinkError{Sink: "postgres", Err: fmt.Errorf("read offset of partition %d: %w", partition, err)}
	}
	return next, nil
}

// Commit implements rater.Store.
func (s *Store) Commit(ctx context.Context, b *rater.Batch) (rater.CommitResult, error) {
	var res rater.CommitResult
	mark := time.Now()
	phase := func(name string) {
		now := time.Now()
		s.phases.WithLabelValues(name).Observe(now.Sub(mark).Seconds())
		mark = now
	}
	late, err := dedupe(ctx, s.pg, b, s.plain)
	if err != nil {
		return res, err
	}
	if len(late) > 0 {
		if err := billedBefore(ctx, s.ch.Conn(), s.pg, b, late); err != nil {
			return res, err
		}
	}
	for i := range b.XDRs {
		if b.XDRs[i].Duplicate() {
			res.Duplicates++ // counted here: a retried batch keeps its earlier marks
		}
	}
	phase("dedupe")
	tx, err := s.pg.Begin(ctx)
	if err != nil {
		return res, pgErr("begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	done, version, err := lockOffset(ctx, tx, b)
	if err != nil {
		return res, err
	}
	if done {
		// A previous attempt committed although its COMMIT reported an
		// error (a connection lost at the wrong moment): nothing to redo.
		return res, nil
	}
	// The version of xDRs that move a balance (and of malformed ones) is
	// PostgreSQL's clock once the partition's lock is held, not the rating
	// host's: an attempt that failed on a host whose clock runs ahead, or
	// that held the lock before, can never outrank the attempt that commits
	// after it. Zero-cost xDRs got theirs in dedupe, from before their
	// look-up (a billable copy claimed after it outranks them), and so did
	// malformed ones that keep their id (a tier below, MalformedVersion).
	for i := range b.XDRs {
		x := &b.XDRs[i]
		switch {
		case x.Quarantined, x.Duplicate(), x.Conflict(), x.Moves():
			x.Version = version
		case x.Malformed && !x.Deduped():
			x.Version = version // a synthetic id: no other row to rank against
		}
	}
	phase("lock")
	if err := s.ch.Write(ctx, b.XDRs, true); err != nil {
		return res, &rater.SinkError{Sink: "clickhouse", Err: err}
	}
	phase("clickhouse")
	if res.Notifications, err = applyBalances(ctx, tx, b); err != nil {
		return res, err
	}
	if err := MarkRollupHours(ctx, tx, b.XDRs); err != nil {
		return res, err
	}
	if _, err := tx.Exec(ctx, `UPDATE consumed_offsets SET next_offset = $3, updated_at = now() WHERE topic = $1 AND "partition" = $2`,
		b.Topic, b.Partition, b.Next); err != nil {
		return res, pgErr("store offset", err)
	}
	phase("balances")
	if err := tx.Commit(ctx); err != nil {
		return res, pgErr("commit", err)
	}
	phase("commit")
	return res, nil
}

func pgErr(what string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" { // foreign_key_violation: a client the batch bills is gone
		return fmt.Errorf("%s: %w: %w", what, rater.ErrStale, err)
	}
	if postgresRefusal(err) {
		err = refused(err)
	}
	return &rater.SinkError{Sink: "postgres", Err: fmt.Errorf("%s: %w", what, err)}
}

// lockOffset locks the partition's offset row and checks this worker still
// owns the partition. done reports that the batch itself is already
// committed; version is the database's clock in nanoseconds, for the xDRs.
func lockOffset(ctx context.Context, tx pgx.Tx, b *rater.Batch) (done bool, version uint64, err error) {
	if b.Stored < 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO consumed_offsets (topic, "partition", next_offset) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			b.Topic, b.Partition, b.First); err != nil {
			return false, 0, pgErr("create offset", err)
		}
	}
	var stored int64
	if err := tx.QueryRow(ctx, `SELECT next_offset FROM consumed_offsets WHERE topic = $1 AND "partition" = $2 FOR UPDATE`,
		b.Topic, b.Partition).Scan(&stored); err != nil {
		return false, 0, pgErr("lock offset", err)
	}
	// Read apart from the locking statement, which may have evaluated its
	// output before it waited for the lock.
	if version, err = Clock(ctx, tx); err != nil {
		return false, 0, err
	}
	switch {
	case b.Stored < 0 && stored == b.First, stored == b.Stored:
		return false, version, nil
	case stored == b.Next && b.Next > b.First:
		return true, version, nil
	}
	return false, 0, fmt.Errorf("partition %d: stored offset %d, this worker expected %d: %w", b.Partition, stored, b.Stored, rater.ErrFenced)
}

// applyBalances adds the batch's per-client deltas to live balances and
// raises the low-balance notifications they cause.
func applyBalances(ctx context.Context, tx pgx.Tx, b *rater.Batch) ([]rater.Notification, error) {
	var d BalanceDeltas
	for i := range b.XDRs {
		if x := &b.XDRs[i]; !x.Duplicate() {
			d.AddXDR(x)
		}
	}
	return ApplyBalanceDeltas(ctx, tx, &d)
}

// BalanceDeltas accumulates per-client movements of live balances, exactly:
// int64 millionths while they fit (always, for real traffic), a decimal
// beyond. Per-call costs are bounded (rater.MaxCallCostMicro) but a batch
// of them is not, and a wrapped sum would bill a client a fortune. The zero
// value is empty and ready; it is not safe for concurrent use.
type BalanceDeltas struct {
	m map[int64]*MicroSum
}

// Add moves client's live balance by micro millionths.
func (d *BalanceDeltas) Add(client, micro int64) {
	if micro == 0 {
		return
	}
	if d.m == nil {
		d.m = map[int64]*MicroSum{}
	}
	s := d.m[client]
	if s == nil {
		s = &MicroSum{}
		d.m[client] = s
	}
	s.add(micro)
}

// AddXDR adds the movements x causes (rater.XDR.Deltas).
func (d *BalanceDeltas) AddXDR(x *rater.XDR) { x.Deltas(d.Add) }

// SubXDR takes back the movements x caused: what a rerating job does for
// the xDR version it replaces.
func (d *BalanceDeltas) SubXDR(x *rater.XDR) {
	x.Deltas(func(client, micro int64) { d.Add(client, -micro) })
}

// Len is the number of clients whose balance moves.
func (d *BalanceDeltas) Len() int { return len(d.m) }

// ApplyBalanceDeltas adds d to live balances in tx (in client id order, so
// concurrent transactions lock rows in one order) and raises the
// low-balance notifications they cause (rows of notifications, published
// by the outbox). It is the one place a balance moves with traffic: the
// worker's commits and rerating jobs both call it.
func ApplyBalanceDeltas(ctx context.Context, tx pgx.Tx, d *BalanceDeltas) ([]rater.Notification, error) {
	deltas := d.m
	ids := make([]int64, 0, len(deltas))
	for id, s := range deltas {
		if !s.IsZero() {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	amounts := make([]string, len(ids))
	for i, id := range ids {
		amounts[i] = deltas[id].String()
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO balances AS b (client_id, live)
		SELECT id, delta::numeric FROM unnest($1::bigint[], $2::text[]) AS d(id, delta) ORDER BY id
		ON CONFLICT (client_id) DO UPDATE SET live = b.live + excluded.live, updated_at = now()`, ids, amounts); err != nil {
		return nil, pgErr("apply balances", err)
	}
	// Re-arm clients whose term credits lifted them back above the threshold.
	if _, err := tx.Exec(ctx, `
		UPDATE balances b SET low_balance_notified = false FROM clients c
		WHERE b.client_id = ANY($1) AND c.id = b.client_id AND b.low_balance_notified
		  AND (c.low_balance_threshold IS NULL OR b.live + c.credit_limit >= c.low_balance_threshold)`, ids); err != nil {
		return nil, pgErr("re-arm low balance", err)
	}
	rows, err := tx.Query(ctx, `
		WITH hit AS (
			UPDATE balances b SET low_balance_notified = true FROM clients c
			WHERE b.client_id = ANY($1) AND c.id = b.client_id AND NOT b.low_balance_notified AND NOT c.unlimited
			  AND c.low_balance_threshold IS NOT NULL AND b.live + c.credit_limit < c.low_balance_threshold
			RETURNING b.client_id, c.name, b.live + c.credit_limit AS available, c.low_balance_threshold AS threshold)
		INSERT INTO notifications (client_id, kind, message, available, threshold)
		SELECT client_id, 'low_balance', 'available balance ' || available::text || ' fell below the threshold ' || threshold::text,
		       available, threshold FROM hit
		RETURNING client_id, (SELECT name FROM clients WHERE id = client_id), available::text, threshold::text`, ids)
	if err != nil {
		return nil, pgErr("low balance notifications", err)
	}
	defer rows.Close()
	var out []rater.Notification
	for rows.Next() {
		var n rater.Notification
		var avail, thr string
		if err := rows.Scan(&n.ClientID, &n.ClientName, &avail, &thr); err != nil {
			return nil, pgErr("low balance notifications", err)
		}
		n.Available, n.Threshold = decimal.RequireFromString(avail), decimal.RequireFromString(thr)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, pgErr("low balance notifications", err)
	}
	return out, nil
}

// MalformedVersion is the version of a malformed xDR that keeps its CDR's
// id, written at database clock clock: half of it, below every version a
// valid xDR gets in the same era, so that ReplacingMergeTree keeps a valid
// row over a malformed re-send of it whichever came last.
func MalformedVersion(clock uint64) uint64 { return clock / 2 }

// Querier is what Clock needs of a pool, a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Clock returns PostgreSQL's clock in nanoseconds, at microsecond
// precision (a multiple of 1000): the version of the xDRs a commit writes.
// Versions come from the database, not the rating host, so that an attempt
// on a host whose clock runs ahead never outranks the one that commits
// after it; taken after the locks that order writers, they order the
// writes the same way.
func Clock(ctx context.Context, q Querier) (uint64, error) {
	var micros int64
	if err := q.QueryRow(ctx, `SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint`).Scan(&micros); err != nil {
		return 0, pgErr("read the clock", err)
	}
	return uint64(micros) * 1000, nil
}

// MicroSum is an exact sum of amounts in millionths (per-call costs, balance
// movements): int64 while it fits, a decimal beyond, so it never wraps. The
// zero value is 0; it is not safe for concurrent use.
type MicroSum struct {
	micro int64
	big   *decimal.Decimal // set once the sum left int64
}

// Add adds micro millionths.
func (d *MicroSum) Add(micro int64) { d.add(micro) }

// Decimal returns the sum.
func (d *MicroSum) Decimal() decimal.Decimal {
	if d.big != nil {
		return *d.big
	}
	return Decimal(d.micro)
}

// AddDecimal adds an amount given as a decimal (of at most 6 decimals).
func (d *MicroSum) AddDecimal(v decimal.Decimal) {
	if v.IsZero() {
		return
	}
	if m := v.Shift(6); m.IsInteger() && m.Abs().LessThan(maxInt64Dec) {
		d.add(m.IntPart())
		return
	}
	sum := d.Decimal().Add(v)
	d.big = &sum
}

var maxInt64Dec = decimal.NewFromInt(1 << 62)

func (d *MicroSum) add(micro int64) {
	if d.big == nil {
		if s, ok := addInt64(d.micro, micro); ok {
			d.micro = s
			return
		}
		v := Decimal(d.micro)
		d.big = &v
	}
	v := d.big.Add(Decimal(micro))
	d.big = &v
}

// IsZero reports whether the sum is 0.
func (d *MicroSum) IsZero() bool {
	return d.big == nil && d.micro == 0 || d.big != nil && d.big.IsZero()
}

// String is the sum with 6 decimals.
func (d *MicroSum) String() string {
	if d.big != nil {
		return d.big.StringFixed(6)
	}
	return Decimal(d.micro).StringFixed(6)
}

// addInt64 is a + b, and whether it did not overflow.
func addInt64(a, b int64) (int64, bool) {
	s := a + b
	return s, (b >= 0) == (s >= a)
}

// PruneDedupeKeys deletes dedupe keys older than the window; run it now and
// then (the worker does every 10 minutes).
func (s *Store) PruneDedupeKeys(ctx context.Context) (int64, error) {
	tag, err := s.pg.Exec(ctx, `DELETE FROM cdr_keys WHERE seen_at < now() - make_interval(secs => $1)`, DedupeWindow.Seconds())
	if err != nil {
		return 0, pgErr("prune dedupe keys", err)
	}
	return tag.RowsAffected(), nil
}
