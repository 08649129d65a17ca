package sinks

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tarifa/tarifa/rater"
)

// keyRef is one CDR of a batch under its dedupe key.
type keyRef struct {
	hi, lo  uint64 // the key as two big-endian halves
	bucket  uint16 // a spread of the key's bits: the first term of the sort order
	i       int32  // index in the batch
	moves   bool   // the CDR changes a balance: its key is claimed
	claimed bool   // this message holds the claim
	owned   bool   // recorded for this very message by an earlier attempt
	expired bool   // a claim older than the window was found: the CDR was billed before
}

// dedupe marks the XDRs of CDRs already billed within the window by another
// message (or earlier in this batch) as duplicates, and claims the keys of
// the billable ones for their messages. It returns the indices of the CDRs
// it cannot vouch for: set up before the window, so that an original may
// have been billed before the window began (see billedBefore).
//
// Only CDRs that move a balance are claimed: a repeated zero-cost CDR lands
// on its own xDR row again and changes nothing. Their keys are still looked
// up, so that a zero-cost repeat of a billed CDR does not replace its row.
// A claim records the content hash of the message that billed the CDR: a
// later CDR with its switch and id and the same content is a duplicate
// (dropped), one with other content is a conflicting re-send
// (XDR.MarkConflict: kept under an id of its own, never dropped, never
// billed). Malformed CDRs that keep their id take part as zero-cost ones.
//
// The claim comes first and the look-up after, for what the claim could not
// take: in the usual batch nearly every billable key is new, and one
// INSERT … ON CONFLICT DO NOTHING both checks and records it.
func dedupe(ctx context.Context, pg *pgxpool.Pool, b *rater.Batch) ([]int, error) {
	refs := make([]keyRef, 0, len(b.XDRs))
	for i := range b.XDRs {
		// A duplicate or conflict marked by an earlier attempt at this
		// batch stays one (neither is Deduped any more).
		if x := &b.XDRs[i]; x.Deduped() {
			refs = append(refs, newRef(x.Key, int32(i), moves(x)))
		}
	}
	if len(refs) == 0 {
		return nil, nil
	}
	// Sorted keys take index locks in one global order.
	refs = sortRefs(refs)
	refs = withinBatch(b, refs)

	if err := claim(ctx, pg, b, refs, func(r *keyRef) bool { return r.moves }); err != nil {
		return nil, err
	}
	var unsure [][16]byte
	for _, r := range refs {
		if !r.claimed {
			unsure = append(unsure, r.key())
		}
	}
	if len(unsure) == 0 {
		return late(b, refs), nil
	}
	// The xDR of a CDR that moves no balance is written without a claim, so
	// nothing orders it against a billable copy in another partition that
	// claims the key after the look-up below has missed it. Its version is
	// therefore the database's clock from before the look-up: that copy
	// claims, then locks its partition and takes its version, later, and
	// its billed row outranks this one (moving xDRs get theirs in Commit).
	clock, err := Clock(ctx, pg)
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		if x := &b.XDRs[r.i]; !r.moves {
			x.Version = clock
			if x.Malformed && !x.Quarantined {
				// A malformed CDR that keeps its id ranks below every
				// valid version of its row: a broken re-send of a call
				// never replaces the call (billed or not), while a
				// corrected re-send replaces the broken one.
				x.Version = MalformedVersion(clock)
			}
		}
	}
	// One index probe per key, whatever the planner's statistics say: on a
	// young table (a new deployment, a test) they would have it scan the
	// whole table for every batch. LIMIT 1 keeps the subquery a subquery.
	rows, err := pg.Query(ctx, `SELECT c.key, c.topic, c."partition", c."offset", c.seen_at >= now() - make_interval(secs => $2), c.content
		FROM unnest($1::uuid[]) AS u(key)
		CROSS JOIN LATERAL (SELECT * FROM cdr_keys WHERE key = u.key LIMIT 1) AS c`, unsure, DedupeWindow.Seconds())
	if err != nil {
		return nil, pgErr("look up dedupe keys", err)
	}
	var expired [][16]byte
	var unclaim []int // CDRs this message claimed in an attempt that billed them, billing nothing now
	at := 0
	for rows.Next() {
		var k [16]byte
		var topic string
		var partition int
		var offset int64
		var live bool
		var content pgtype.Int8
		if err := rows.Scan(&k, &topic, &partition, &offset, &live, &content); err != nil {
			rows.Close()
			return nil, pgErr("look up dedupe keys", err)
		}
		at = find(refs, k, at) // rows come in the order of unsure, key order
		r := &refs[at]
		x := &b.XDRs[r.i]
		switch {
		case !live:
			r.expired = true // billed once, longer ago than the window: ClickHouse says whether it stands
			if r.moves {
				expired = append(expired, k)
			}
		case topic == b.Topic && partition == x.Partition && offset == x.Offset:
			r.claimed, r.owned = r.moves, true // this very message claimed it before a crash
			if !r.moves {
				unclaim = append(unclaim, int(r.i)) // rated again since, and now free
			}
		case content.Valid && uint64(content.Int64) != x.Content:
			x.MarkConflict(partition, offset) // another message billed this CDR, and said something else
		default:
			x.MarkDuplicate()
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, pgErr("look up dedupe keys", err)
	}
	if err := release(ctx, pg, b, unclaim); err != nil {
		return nil, err
	}
	// Claim again what expired, and what the first claim found taken but
	// the look-up no longer did (pruned in between): whatever this second
	// claim cannot take, another message took first.
	again := func(r *keyRef) bool {
		x := &b.XDRs[r.i]
		return r.moves && !r.claimed && !x.Duplicate() && !x.Conflict()
	}
	var todo []int
	for i := range refs {
		if again(&refs[i]) {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return late(b, refs), nil
	}
	if len(expired) > 0 {
		if _, err := pg.Exec(ctx, `DELETE FROM cdr_keys WHERE key = ANY($1::uuid[]) AND seen_at < now() - make_interval(secs => $2)`,
			expired, DedupeWindow.Seconds()); err != nil {
			return nil, pgErr("expire dedupe keys", err)
		}
	}
	if err := claim(ctx, pg, b, refs, again); err != nil {
		return nil, err
	}
	for _, i := range todo {
		if !refs[i].claimed {
			b.XDRs[refs[i].i].MarkDuplicate()
		}
	}
	return late(b, refs), nil
}

// late returns the indices of the CDRs of refs that are not duplicates nor
// conflicts, not recorded for their own message by an earlier attempt, and
// whose key may have expired from cdr_keys while an original's xDR still
// stands: set up before the dedupe window began, or dated in the future
// (a switch's clock ahead, local time written as UTC: its claim expires
// before its setup time says so), or found with a claim older than the
// window. The window is measured with an hour to spare, for the
// difference between this host's clock and the database's, which expires
// the keys.
func late(b *rater.Batch, refs []keyRef) []int {
	now := time.Now()
	past, future := now.Add(-DedupeWindow+time.Hour), now.Add(time.Hour)
	var out []int
	for _, r := range refs {
		x := &b.XDRs[r.i]
		if r.owned || x.Duplicate() || x.Conflict() {
			continue
		}
		if setup := x.CDR.SetupTime; r.expired || setup.Before(past) || setup.After(future) {
			out = append(out, int(r.i))
		}
	}
	return out
}

// claim records, for the refs that want one, the key with the message that
// carries it, and sets claimed on those it took; a key already recorded is
// left alone. refs are sorted by key.
func claim(ctx context.Context, pg *pgxpool.Pool, b *rater.Batch, refs []keyRef, want func(*keyRef) bool) error {
	var keys [][16]byte
	var partitions []int32
	var offsets, contents []int64
	for i := range refs {
		if r := &refs[i]; want(r) {
			x := &b.XDRs[r.i]
			keys, partitions, offsets = append(keys, r.key()), append(partitions, int32(x.Partition)), append(offsets, x.Offset)
			contents = append(contents, int64(x.Content))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	rows, err := pg.Query(ctx, `INSERT INTO cdr_keys (key, topic, "partition", "offset", content)
		SELECT key, $2, p, o, c FROM unnest($1::uuid[], $3::int[], $4::bigint[], $5::bigint[]) AS u(key, p, o, c)
		ON CONFLICT (key) DO NOTHING RETURNING key`, keys, b.Topic, partitions, offsets, contents)
	if err != nil {
		return pgErr("record dedupe keys", err)
	}
	// The rows come back in insertion order, which is key order: look
	// each up from the previous one on.
	var k [16]byte
	at := 0
	_, err = pgx.ForEachRow(rows, []any{&k}, func() error {
		i := find(refs, k, at)
		refs[i].claimed = true
		at = i + 1
		return nil
	})
	if err != nil {
		return pgErr("record dedupe keys", err)
	}
	return nil
}

// withinBatch settles the CDRs of one batch that share a key (refs sorted
// by key, batch order kept within a key) and returns one ref per key. The
// CDR that stands is the first that moves a balance, or else the last (a
// later zero-cost version replaces an earlier one, as it would across
// batches). Of the others, one with the standing CDR's content is a
// duplicate; one with other content that comes after a standing billable
// CDR is a conflicting re-send, kept as such; an earlier zero-cost version
// is superseded and dropped like a duplicate.
func withinBatch(b *rater.Batch, refs []keyRef) []keyRef {
	uniq := refs[:0]
	for lo := 0; lo < len(refs); {
		hi := lo + 1
		for hi < len(refs) && byKey(refs[lo], refs[hi]) == 0 {
			hi++
		}
		run := refs[lo:hi]
		win := len(run) - 1
		for k := range run {
			if run[k].moves {
				win = k
				break
			}
		}
		w := &b.XDRs[run[win].i]
		for k := range run {
			x := &b.XDRs[run[k].i]
			switch {
			case k == win:
			case x.Content != w.Content && k > win && run[win].moves:
				x.MarkConflict(w.Partition, w.Offset)
			default:
				x.MarkDuplicate()
			}
		}
		uniq = append(uniq, run[win])
		lo = hi
	}
	return uniq
}

func (r *keyRef) key() (k [16]byte) {
	binary.BigEndian.PutUint64(k[:8], r.hi)
	binary.BigEndian.PutUint64(k[8:], r.lo)
	return k
}

// Keys sort by (bucket, hi, lo): any order all workers share keeps their
// index locks in one global order, and this one sorts fast. The bucket is
// a mix of all the key's bits, because the leading bits of FNV hashes of
// similar ids (call-1, call-2, …) are far from evenly spread.
const bucketBits = 12

func newRef(key [16]byte, i int32, moves bool) keyRef {
	r := keyRef{hi: binary.BigEndian.Uint64(key[:8]), lo: binary.BigEndian.Uint64(key[8:]), i: i, moves: moves}
	x := r.hi ^ r.lo*0x9e3779b97f4a7c15 // splitmix64's finaliser
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	r.bucket = uint16((x ^ x>>31) >> (64 - bucketBits))
	return r
}

// sortRefs sorts refs (given in batch order) by key order, keeping batch
// order among equal keys: a counting pass on the buckets leaves a handful
// of refs per bucket to finish by insertion, several times faster than a
// comparison sort of the whole batch.
func sortRefs(refs []keyRef) []keyRef {
	if len(refs) < 1<<10 {
		slices.SortStableFunc(refs, byKey)
		return refs
	}
	var starts [1<<bucketBits + 1]int
	for _, r := range refs {
		starts[r.bucket+1]++
	}
	for b := 1; b < len(starts); b++ {
		starts[b] += starts[b-1]
	}
	out := make([]keyRef, len(refs))
	next := starts
	for _, r := range refs {
		out[next[r.bucket]] = r
		next[r.bucket]++
	}
	for b := 0; b < 1<<bucketBits; b++ {
		bucket := out[starts[b]:starts[b+1]]
		for i := 1; i < len(bucket); i++ {
			for j := i; j > 0 && byKey(bucket[j-1], bucket[j]) > 0; j-- {
				bucket[j-1], bucket[j] = bucket[j], bucket[j-1]
			}
		}
	}
	return out
}

// find returns the index of key k, which is in refs (in key order),
// searching forward from refs[from] first: results that come back in the
// order the keys were sent are matched in one pass.
func find(refs []keyRef, k [16]byte, from int) int {
	t := newRef(k, 0, false)
	for j := from; j < len(refs) && byKey(refs[j], t) <= 0; j++ {
		if byKey(refs[j], t) == 0 {
			return j
		}
	}
	i, _ := slices.BinarySearchFunc(refs, t, byKey)
	return i
}

// byKey is the key order.
func byKey(a, b keyRef) int {
	if c := cmp.Compare(a.bucket, b.bucket); c != 0 {
		return c
	}
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// moves reports whether an XDR changes a balance.
func moves(x *rater.XDR) bool {
	moved := false
	x.Deltas(func(int64, int64) { moved = true })
	return moved
}

// lateChunk bounds the ids of one look-up query (ClickHouse limits the size
// of a query's text).
const lateChunk = 4000

// billedBefore marks as duplicates the CDRs at indices late in b whose xDR
// ClickHouse already holds as billed: the same switch, id and setup time —
// or as conflicts, when the billed original said something else (its raw
// CDR's content differs).
// It catches a switch re-sending CDRs after the dedupe window (a day's
// file pushed again a week later), which cdr_keys no longer remembers.
// A committed original has both its rows, since a batch commits only after
// both inserts; a billed xDR whose cdrs_raw row is missing, or names this
// very message's partition and offset, comes from an attempt that never
// committed and is no original. Such CDRs are rare, so the look-up costs
// nothing in steady traffic.
func billedBefore(ctx context.Context, ch driver.Conn, pg *pgxpool.Pool, b *rater.Batch, late []int) error {
	slices.SortFunc(late, func(i, j int) int { return b.XDRs[i].CDR.SetupTime.Compare(b.XDRs[j].CDR.SetupTime) })
	// A duplicate found here gives back the claim dedupe just took for it:
	// the claim must stay with the message that billed the CDR, so that
	// message, should its own commit still be pending, bills it when it
	// comes back.
	var dups []int
	conflicts := map[int]place{}
	for len(late) > 0 {
		chunk := late[:min(lateChunk, len(late))]
		late = late[len(chunk):]
		ids := clickhouse.GroupSet{Value: make([]any, len(chunk))} // binds as ('a', 'b', …)
		for n, i := range chunk {
			ids.Value[n] = b.XDRs[i].ID
		}
		from, to := uint32(b.XDRs[chunk[0]].CDR.SetupTime.Unix()), uint32(b.XDRs[chunk[len(chunk)-1]].CDR.SetupTime.Unix())
		billed := map[string]bool{}
		if err := scanLate(ctx, ch, `SELECT switch, cdr_id, toUInt32(setup_time), toInt32(0), toInt64(0) FROM xdrs FINAL
			WHERE setup_time >= toDateTime(?) AND setup_time <= toDateTime(?) AND cdr_id IN ?
			  AND status = 'rated' AND (orig_cost != 0 OR (term_reason = '' AND term_client_id != 0 AND term_cost != 0))`,
			from, to, ids, func(key string, _ int32, _ int64) { billed[key] = true }); err != nil {
			return lateErr(err)
		}
		if len(billed) == 0 {
			continue
		}
		wrote, err := lateRaw(ctx, ch, from, to, ids)
		if err != nil {
			return lateErr(err)
		}
		for _, i := range chunk {
			x := &b.XDRs[i]
			key := lateKey(x.CDR.Switch, x.ID, x.CDR.SetupTime.Unix())
			at, ok := wrote[key]
			if !billed[key] || !ok || at.place == (place{int32(x.Partition), x.Offset}) {
				continue
			}
			if at.content != 0 && at.content != x.Content {
				conflicts[i] = at.place
			} else {
				dups = append(dups, i)
			}
		}
	}
	for i := range conflicts {
		dups = append(dups, i) // gives back its claim like a duplicate, then is kept as a conflict
	}
	if err := release(ctx, pg, b, dups); err != nil {
		return err
	}
	for _, i := range dups {
		if at, ok := conflicts[i]; ok {
			b.XDRs[i].MarkConflict(int(at.partition), at.offset)
			continue
		}
		b.XDRs[i].MarkDuplicate()
	}
	return nil
}

// place is a Kafka message: partition and offset.
type place struct {
	partition int32
	offset    int64
}

// rawOriginal is what cdrs_raw holds of a CDR billed before the window: the
// message it came from and the hash of what it said (0 when it cannot be
// read).
type rawOriginal struct {
	place
	content uint64
}

// lateRaw reads the raw CDRs of ids set up in [from, to] from cdrs_raw
// FINAL, by lateKey.
func lateRaw(ctx context.Context, ch driver.Conn, from, to uint32, ids clickhouse.GroupSet) (map[string]rawOriginal, error) {
	rows, err := ch.Query(ctx, `SELECT switch, cdr_id, toUInt32(setup_time), kafka_partition, kafka_offset, raw FROM cdrs_raw FINAL
		WHERE setup_time >= toDateTime(?) AND setup_time <= toDateTime(?) AND cdr_id IN ?`, from, to, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]rawOriginal{}
	for rows.Next() {
		var sw, id, raw string
		var setup uint32
		var o rawOriginal
		if err := rows.Scan(&sw, &id, &setup, &o.partition, &o.offset, &raw); err != nil {
			return nil, err
		}
		o.content = rater.ContentOf([]byte(raw))
		out[lateKey(sw, id, int64(setup))] = o
	}
	return out, rows.Err()
}

func lateErr(err error) error {
	return &rater.SinkError{Sink: "clickhouse", Err: fmt.Errorf("look up late CDRs: %w", err)}
}

// scanLate runs a look-up of late CDRs and calls fn with each row's key,
// partition and offset.
func scanLate(ctx context.Context, ch driver.Conn, query string, from, to uint32, ids clickhouse.GroupSet, fn func(key string, partition int32, offset int64)) error {
	rows, err := ch.Query(ctx, query, from, to, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var sw, id string
		var setup uint32
		var partition int32
		var offset int64
		if err := rows.Scan(&sw, &id, &setup, &partition, &offset); err != nil {
			return err
		}
		fn(lateKey(sw, id, int64(setup)), partition, offset)
	}
	return rows.Err()
}

func lateKey(sw, id string, setup int64) string {
	return sw + "\x00" + id + "\x00" + strconv.FormatInt(setup, 10)
}

// release deletes the dedupe claims that the messages of the XDRs at
// indices idx hold on their keys (a claim another message holds stays).
func release(ctx context.Context, pg *pgxpool.Pool, b *rater.Batch, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	keys := make([][16]byte, len(idx))
	partitions := make([]int32, len(idx))
	offsets := make([]int64, len(idx))
	for n, i := range idx {
		x := &b.XDRs[i]
		keys[n], partitions[n], offsets[n] = x.Key, int32(x.Partition), x.Offset
	}
	if _, err := pg.Exec(ctx, `DELETE FROM cdr_keys c USING unnest($1::uuid[], $2::int[], $3::bigint[]) AS u(key, p, o)
		WHERE c.key = u.key AND c.topic = $4 AND c."partition" = u.p AND c."offset" = u.o`, keys, partitions, offsets, b.Topic); err != nil {
		return pgErr("release dedupe keys", err)
	}
	return nil
}

// RerateTopic is the topic recorded with the dedupe claims of rerating jobs
// (partition 0, offset the job's id): no Kafka message ever matches it, so a
// re-send of a CDR a job made billable is always another message's copy.
const RerateTopic = "rerate"

// Holder is who holds a dedupe claim: the Kafka message that billed the
// CDR, or a rerating job (Topic RerateTopic, Offset the job's id).
type Holder struct {
	Topic     string
	Partition int
	Offset    int64
}

// ClaimForJob claims, inside tx, the dedupe keys of xs — CDRs a rerating
// job makes billable — for the job, with their content hashes, exactly as
// the worker claims the key of a CDR it bills: a later re-send of one of
// them within the window is a duplicate. It returns, by index in xs, the
// holder of each key another message or job holds already. Keys are taken
// in the global key order the workers use, so that the two never deadlock.
// The claims become visible when tx commits.
func ClaimForJob(ctx context.Context, tx pgx.Tx, job int64, xs []*rater.XDR) (map[int]Holder, error) {
	if len(xs) == 0 {
		return nil, nil
	}
	refs := make([]keyRef, len(xs))
	for i, x := range xs {
		refs[i] = newRef(x.Key, int32(i), true)
	}
	refs = sortRefs(refs)
	keys := make([][16]byte, len(refs))
	contents := make([]int64, len(refs))
	for n, r := range refs {
		keys[n], contents[n] = r.key(), int64(xs[r.i].Content)
	}
	rows, err := tx.Query(ctx, `INSERT INTO cdr_keys (key, topic, "partition", "offset", content)
		SELECT key, $2, 0, $3, c FROM unnest($1::uuid[], $4::bigint[]) WITH ORDINALITY AS u(key, c, n) ORDER BY n
		ON CONFLICT (key) DO NOTHING RETURNING key`, keys, RerateTopic, job, contents)
	if err != nil {
		return nil, pgErr("claim rerated keys", err)
	}
	claimed := map[[16]byte]bool{}
	var k [16]byte
	if _, err := pgx.ForEachRow(rows, []any{&k}, func() error { claimed[k] = true; return nil }); err != nil {
		return nil, pgErr("claim rerated keys", err)
	}
	if len(claimed) == len(refs) {
		return nil, nil
	}
	var taken [][16]byte
	for _, key := range keys {
		if !claimed[key] {
			taken = append(taken, key)
		}
	}
	byKey := map[[16]byte]int{}
	for _, r := range refs {
		byKey[r.key()] = int(r.i)
	}
	hrows, err := tx.Query(ctx, `SELECT c.key, c.topic, c."partition", c."offset"
		FROM unnest($1::uuid[]) AS u(key) CROSS JOIN LATERAL (SELECT * FROM cdr_keys WHERE key = u.key LIMIT 1) AS c`, taken)
	if err != nil {
		return nil, pgErr("look up rerated keys", err)
	}
	out := map[int]Holder{}
	var h Holder
	if _, err := pgx.ForEachRow(hrows, []any{&k, &h.Topic, &h.Partition, &h.Offset}, func() error {
		out[byKey[k]] = h
		return nil
	}); err != nil {
		return nil, pgErr("look up rerated keys", err)
	}
	return out, nil
}
