package rerate

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/sinks"
)

// rowKey identifies a CDR's row in ClickHouse — the sort key of xdrs and
// cdrs_raw, (setup_time, switch, cdr_id) — by its setup second and
// ClickHouse's cityHash64 of switch and id (keyHash): no string to copy
// out of every row or to hash in Go, and nothing for the collector to
// scan. Two CDRs of one setup second that collide in 64 bits would be
// taken for one; a job checks that rating a raw CDR again gives the
// switch and id of the row it replaces, and leaves it alone otherwise.
type rowKey struct {
	setup uint32
	h     uint64
}

// keyHash is the ClickHouse expression of rowKey.h.
const keyHash = "cityHash64(switch, cdr_id)"

// reasonCodes are the reasons an xDR may hold, as ClickHouse returns them
// (indexOf: 1 for the first), so that reading one copies no string.
var reasonCodes = []rater.Reason{rater.ReasonNone, rater.ReasonUnknownAccount, rater.ReasonInactiveClient,
	rater.ReasonUnknownDestination, rater.ReasonNoRate, rater.ReasonMalformed, rater.ReasonCostOutOfRange,
	rater.ReasonDuplicateConflict, rater.ReasonTermUnknownAccount, rater.ReasonTermUnknownDestination,
	rater.ReasonTermNoRate, rater.ReasonTermCostOutOfRange}

// reasonArray is reasonCodes as a ClickHouse array literal.
var reasonArray = func() string {
	q := make([]string, len(reasonCodes))
	for i, r := range reasonCodes {
		q[i] = "'" + string(r) + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}()

// reasonOf is the reason of a code from reasonArray.
func reasonOf(code uint64) (rater.Reason, error) {
	if code == 0 || code > uint64(len(reasonCodes)) {
		return "", fmt.Errorf("an xDR holds a reason this version of tarifa does not know")
	}
	return reasonCodes[code-1], nil
}

// candidate is one selected CDR: its current xDR (old, with the version it
// holds) and its current raw CDR.
type candidate struct {
	key        rowKey
	sw, id     string       // read for a confirmed job only (its checks and rerate_staged need them)
	old        rater.Rating // what the current xDR holds (only what balances and the result need)
	oldVersion uint64
	raw        []byte
	received   time.Time
	partition  int32
	offset     int64
	rawVersion uint64
	hasRaw     bool
}

// timeArgs are the bounds of a setup-time range as ClickHouse parameters.
func timeArgs(from, to time.Time) (uint32, uint32) { return uint32(from.Unix()), uint32(to.Unix()) }

// versionsCond is "version IN (…)" of versions, or a false condition.
func versionsCond(versions []uint64) string {
	if len(versions) == 0 {
		return "0"
	}
	parts := make([]string, len(versions))
	for i, v := range versions {
		parts[i] = strconv.FormatUint(v, 10)
	}
	return "version IN (" + strings.Join(parts, ", ") + ")"
}

// withLongFilter lets a query carry the selection's filter whatever its
// length: a reseller's job lists every client of its subtree (30,000 ids
// run past ClickHouse's default 256 KiB of query text and 50,000 syntax
// tree elements).
func withLongFilter(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"max_query_size": 64 << 20, "max_ast_elements": 10_000_000, "max_expanded_ast_elements": 10_000_000,
	}))
}

// plan counts the selected CDRs per setup minute and groups the minutes
// into chunks of about size CDRs (a minute is never split). The count reads
// xdrs without FINAL — an estimate (a CDR whose versions are not merged yet
// counts more than once, one whose older version matched counts too), which
// is all a plan and a progress line need, at a fraction of FINAL's cost.
func plan(ctx context.Context, ch driver.Conn, sel Selection, filter string, size int) ([]chunkPlan, int64, error) {
	from, to := timeArgs(sel.From, sel.To)
	rows, err := ch.Query(withLongFilter(ctx), `SELECT toUInt32(toStartOfMinute(setup_time)) AS m, count() FROM xdrs
		WHERE setup_time >= toDateTime(?) AND setup_time < toDateTime(?) AND `+filter+` GROUP BY m ORDER BY m`, from, to)
	if err != nil {
		return nil, 0, fmt.Errorf("plan: count the selected CDRs: %w", err)
	}
	defer rows.Close()
	var chunks []chunkPlan
	var total int64
	var cur *chunkPlan
	for rows.Next() {
		var m uint32
		var n uint64
		if err := rows.Scan(&m, &n); err != nil {
			return nil, 0, err
		}
		at := time.Unix(int64(m), 0).UTC()
		if at.Before(sel.From) {
			at = sel.From
		}
		if cur == nil || cur.planned >= int64(size) {
			if cur != nil {
				cur.to = at
			}
			chunks = append(chunks, chunkPlan{n: len(chunks), from: at})
			cur = &chunks[len(chunks)-1]
		}
		cur.planned += int64(n)
		total += int64(n)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	if cur != nil {
		cur.to = sel.To
	}
	return chunks, total, nil
}

// scan reads the candidates of one chunk: the xdrs rows that match filter
// (or hold one of versions, a dead attempt's writes that must be settled
// whatever they say now), each with its current raw CDR, in no order.
// The xDRs are read with FINAL (the filter must see the current version);
// the raw CDRs without it, keeping the newest version of each in Go, which
// costs ClickHouse half as much. The two queries run at once.
func scan(ctx context.Context, ch driver.Conn, c chunkPlan, filter string, versions []uint64, names bool, cands []candidate) ([]candidate, error) {
	from, to := timeArgs(c.from, c.to)
	type rawsRead struct {
		rows []rawRow
		err  error
	}
	rawc := make(chan rawsRead, 1)
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		rows, err := scanRaws(qctx, ch, c, from, to)
		rawc <- rawsRead{rows, err}
	}()
	cands, err := scanXDRs(qctx, ch, c, filter, versions, names, from, to, cands)
	if err != nil {
		cancel()
		<-rawc
		return nil, err
	}
	rr := <-rawc
	if rr.err != nil {
		return nil, rr.err
	}
	if len(cands) == 0 {
		return nil, nil
	}
	at := make(map[rowKey]int, len(cands))
	for i := range cands {
		at[cands[i].key] = i
	}
	for k := range rr.rows {
		rw := &rr.rows[k]
		i, ok := at[rw.key]
		if !ok {
			continue
		}
		if cd := &cands[i]; !cd.hasRaw || rw.version > cd.rawVersion {
			cd.raw, cd.received, cd.partition, cd.offset, cd.rawVersion, cd.hasRaw =
				rw.raw, time.Unix(int64(rw.received), 0).UTC(), rw.partition, rw.offset, rw.version, true
		}
	}
	return cands, nil
}

// scanXDRs reads the selected xDRs of a chunk into cands (see scan), with
// their switch and id when names is set.
func scanXDRs(ctx context.Context, ch driver.Conn, c chunkPlan, filter string, versions []uint64, names bool, from, to uint32,
	cands []candidate) ([]candidate, error) {
	cols := "'', ''" // empty: nothing to copy
	if names {
		cols = "switch, cdr_id"
	}
	rows, err := ch.Query(withLongFilter(ctx), `SELECT toUInt32(setup_time), `+keyHash+`, `+cols+`, toUInt8(status = 'rated'), indexOf(`+reasonArray+`, reason),
			orig_client_id, toInt64(toDecimal128(orig_cost, 6) * 1000000), term_client_id, indexOf(`+reasonArray+`, term_reason),
			toInt64(toDecimal128(term_cost, 6) * 1000000), version
		FROM xdrs FINAL
		WHERE setup_time >= toDateTime(?) AND setup_time < toDateTime(?) AND ((`+filter+`) OR `+versionsCond(versions)+`)`, from, to)
	if err != nil {
		return nil, fmt.Errorf("read the xDRs of %s: %w", c, err)
	}
	defer rows.Close()
	if want := int(c.planned); cap(cands) < want {
		// Sized by the plan's count at once: growing a slice of candidates
		// row by row copied it over and over (7 % of a dry run's CPU).
		cands = make([]candidate, 0, want+want/8)
	}
	// One set of destinations for every row: the driver's Scan takes them
	// as interfaces, so a candidate declared in the loop escaped to the
	// heap, 400 bytes allocated per row.
	var (
		cd                                         candidate
		rated                                      uint8
		reason, termReason, origClient, termClient uint64
	)
	r := &cd.old
	dest := []any{&cd.key.setup, &cd.key.h, &cd.sw, &cd.id, &rated, &reason, &origClient, &r.Orig.CostMicro,
		&termClient, &termReason, &r.Term.CostMicro, &cd.oldVersion}
	for rows.Next() {
		cd = candidate{}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		r.Status = "mismatch"
		if rated == 1 {
			r.Status = "rated"
		}
		var err error
		if r.Reason, err = reasonOf(reason); err != nil {
			return nil, err
		}
		if r.Term.Reason, err = reasonOf(termReason); err != nil {
			return nil, err
		}
		r.Orig.ClientID, r.Term.ClientID = int64(origClient), int64(termClient)
		cands = append(cands, cd)
	}
	return cands, rows.Err()
}

// rawRow is one version of a raw CDR of a chunk.
type rawRow struct {
	key       rowKey
	raw       []byte
	received  uint32
	partition int32
	offset    int64
	version   uint64
}

// scanRaws reads every version of the raw CDRs of a chunk (see scan).
func scanRaws(ctx context.Context, ch driver.Conn, c chunkPlan, from, to uint32) ([]rawRow, error) {
	raws, err := ch.Query(ctx, `SELECT toUInt32(setup_time), `+keyHash+`, raw, toUInt32(received_at), kafka_partition, kafka_offset, version
		FROM cdrs_raw WHERE setup_time >= toDateTime(?) AND setup_time < toDateTime(?)`, from, to)
	if err != nil {
		return nil, fmt.Errorf("read the raw CDRs of %s: %w", c, err)
	}
	defer raws.Close()
	out := make([]rawRow, 0, c.planned)
	var (
		rw  rawRow
		raw string
	)
	dest := []any{&rw.key.setup, &rw.key.h, &raw, &rw.received, &rw.partition, &rw.offset, &rw.version} // see scanXDRs
	for raws.Next() {
		if err := raws.Scan(dest...); err != nil {
			return nil, err
		}
		// The driver allocated the string for this row alone: share it.
		rw.raw = unsafe.Slice(unsafe.StringData(raw), len(raw))
		out = append(out, rw)
	}
	return out, raws.Err()
}

// unchanged reports whether the chunk's rows are still those cands were
// read from: the same selected xDRs at the same versions, over the same raw
// CDR versions. It reads keys and versions only, so that the check a job
// makes while it holds the partitions' locks stays short.
func unchanged(ctx context.Context, ch driver.Conn, c chunkPlan, filter string, versions []uint64, cands []candidate) (bool, error) {
	from, to := timeArgs(c.from, c.to)
	at := make(map[rowKey]int, len(cands))
	for i := range cands {
		at[cands[i].key] = i
	}
	rows, err := ch.Query(withLongFilter(ctx), `SELECT toUInt32(setup_time), `+keyHash+`, version FROM xdrs FINAL
		WHERE setup_time >= toDateTime(?) AND setup_time < toDateTime(?) AND ((`+filter+`) OR `+versionsCond(versions)+`)`, from, to)
	if err != nil {
		return false, fmt.Errorf("check the xDRs of %s: %w", c, err)
	}
	n := 0
	same := true
	for rows.Next() {
		var k rowKey
		var v uint64
		if err := rows.Scan(&k.setup, &k.h, &v); err != nil {
			rows.Close()
			return false, err
		}
		if i, ok := at[k]; !ok || cands[i].oldVersion != v {
			same = false
		}
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	if !same || n != len(cands) {
		return false, nil
	}
	raws, err := ch.Query(ctx, `SELECT toUInt32(setup_time), `+keyHash+` AS h, max(version) FROM cdrs_raw
		WHERE setup_time >= toDateTime(?) AND setup_time < toDateTime(?) GROUP BY setup_time, h`, from, to)
	if err != nil {
		return false, fmt.Errorf("check the raw CDRs of %s: %w", c, err)
	}
	defer raws.Close()
	for raws.Next() {
		var k rowKey
		var v uint64
		if err := raws.Scan(&k.setup, &k.h, &v); err != nil {
			return false, err
		}
		if i, ok := at[k]; ok && (!cands[i].hasRaw || cands[i].rawVersion != v) {
			same = false
		}
	}
	return same, raws.Err()
}

// staged is the old xDR a dead attempt of the job replaced, keyed by row.
type staged map[rowKey]rater.Rating

// stage records, durably, the old xDRs of cands[i] for each i in write,
// before the job writes their new versions with version: a job killed
// between that write and moving the balances finds them here (merges keep
// only the newest version of an xDR). The rows go as whole columns, as the
// xDR writer sends its blocks: appended row by row, each of the 13 values
// went through the driver's conversion of an interface (0.37 s of CPU for
// the benchmark's 300k staged rows; 0.23 s as columns).
func stage(ctx context.Context, ch driver.Conn, job int64, chunk int, version uint64, cands []candidate, write []int) error {
	n := len(write)
	jobs, chunks, versions := make([]uint64, n), make([]uint32, n), make([]uint64, n)
	setups := make([]time.Time, n)
	switches, ids, statuses, reasons, termReasons := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	origClients, termClients := make([]uint64, n), make([]uint64, n)
	origCosts, termCosts := make([]decimal.Decimal, n), make([]decimal.Decimal, n)
	for k, i := range write {
		cd := &cands[i]
		r := &cd.old
		jobs[k], chunks[k], versions[k] = uint64(job), uint32(chunk), version
		setups[k] = time.Unix(int64(cd.key.setup), 0).UTC()
		switches[k], ids[k], statuses[k], reasons[k], termReasons[k] = cd.sw, cd.id, r.Status, string(r.Reason), string(r.Term.Reason)
		origClients[k], termClients[k] = uint64(r.Orig.ClientID), uint64(r.Term.ClientID)
		origCosts[k], termCosts[k] = sinks.Decimal(r.Orig.CostMicro), sinks.Decimal(r.Term.CostMicro)
	}
	b, err := ch.PrepareBatch(ctx, `INSERT INTO rerate_staged (job, chunk, version, setup_time, switch, cdr_id, old_status, old_reason,
		old_orig_client_id, old_orig_cost, old_term_client_id, old_term_reason, old_term_cost)`)
	if err != nil {
		return fmt.Errorf("stage the old xDRs: %w", err)
	}
	defer b.Abort() //nolint:errcheck // a no-op after Send
	for c, col := range []any{jobs, chunks, versions, setups, switches, ids, statuses, reasons,
		origClients, origCosts, termClients, termReasons, termCosts} {
		if err := b.Column(c).Append(col); err != nil {
			return fmt.Errorf("stage the old xDRs: column %d: %w", c, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("stage the old xDRs: %w", err)
	}
	return nil
}

// loadStaged returns the versions a job's dead attempts wrote in chunk and
// the old xDRs they replaced.
func loadStaged(ctx context.Context, ch driver.Conn, job int64, chunk int) ([]uint64, staged, error) {
	rows, err := ch.Query(ctx, `SELECT version, toUInt32(setup_time), `+keyHash+`, old_status, old_reason, old_orig_client_id,
			toInt64(toDecimal128(old_orig_cost, 6) * 1000000), old_term_client_id, old_term_reason, toInt64(toDecimal128(old_term_cost, 6) * 1000000)
		FROM rerate_staged WHERE job = ? AND chunk = ? ORDER BY version`, uint64(job), uint32(chunk))
	if err != nil {
		return nil, nil, fmt.Errorf("read what job %d staged: %w", job, err)
	}
	defer rows.Close()
	var versions []uint64
	st := staged{}
	for rows.Next() {
		var v uint64
		var k rowKey
		var status, reason, termReason string
		var origClient, termClient uint64
		var x rater.Rating
		r := &x
		if err := rows.Scan(&v, &k.setup, &k.h, &status, &reason, &origClient, &r.Orig.CostMicro, &termClient, &termReason, &r.Term.CostMicro); err != nil {
			return nil, nil, err
		}
		r.Status, r.Reason, r.Term.Reason = status, rater.Reason(reason), rater.Reason(termReason)
		r.Orig.ClientID, r.Term.ClientID = int64(origClient), int64(termClient)
		if len(versions) == 0 || versions[len(versions)-1] != v {
			versions = append(versions, v)
		}
		// A CDR staged by two dead attempts: the first one's old xDR is the
		// one balances hold (the second read the first's write).
		if _, seen := st[k]; !seen {
			st[k] = x
		}
	}
	return versions, st, rows.Err()
}

// dropStaged removes what a finished job staged.
func dropStaged(ctx context.Context, ch driver.Conn, job int64) error {
	var n uint64
	if err := ch.QueryRow(ctx, `SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'rerate_staged' AND active AND partition = ?`,
		strconv.FormatInt(job, 10)).Scan(&n); err != nil {
		return fmt.Errorf("find what job %d staged: %w", job, err)
	}
	if n == 0 {
		return nil
	}
	if err := ch.Exec(ctx, `ALTER TABLE rerate_staged DROP PARTITION `+strconv.FormatInt(job, 10)); err != nil {
		return fmt.Errorf("drop what job %d staged: %w", job, err)
	}
	return nil
}

func (c chunkPlan) String() string {
	return fmt.Sprintf("chunk %d [%s, %s)", c.n, c.from.Format(time.RFC3339), c.to.Format(time.RFC3339))
}
