package sinks

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tarifa/tarifa/rater"
)

// keyRef is one CDR of a batch under its dedupe key.
type keyRef struct {
	hi, lo  uint64 // the key as two big-endian halves: uuid order is (hi, lo)
	i       int32  // index in the batch
	moves   bool   // the CDR changes a balance: its key is claimed
	claimed bool   // this message holds the claim
	owned   bool   // recorded for this very message by an earlier attempt
	settled bool   // the look-up decided what the CDR is; it is not looked up again
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
// Every key is looked up first (one index probe each, in key order), and
// the billable keys no claim holds are then claimed by a plain INSERT: an
// INSERT … ON CONFLICT DO NOTHING pays for a speculative insertion on every
// key (a look-up of its own, a second WAL record, a lock), which measured
// twice a probe's cost. A key another message claims between the look-up
// and the INSERT fails the INSERT with a unique violation, which changes
// nothing: the keys are looked up again and claimed again, up to plain
// times (see plainClaims), and then with ON CONFLICT DO NOTHING.
func dedupe(ctx context.Context, pg *pgxpool.Pool, b *rater.Batch, plain int) ([]int, error) {
	refs := make([]keyRef, 0, len(b.XDRs))
	zeroCost := false
	for i := range b.XDRs {
		// A duplicate or conflict marked by an earlier attempt at this
		// batch stays one (neither is Deduped any more).
		if x := &b.XDRs[i]; x.Deduped() {
			m := x.Moves()
			refs = append(refs, newRef(x.Key, int32(i), m))
			zeroCost = zeroCost || !m
		}
	}
	if len(refs) == 0 {
		return nil, nil
	}
	// Sorted keys take index locks in one global order, and visit the
	// index's leaves in order.
	refs = sortRefs(refs)
	refs = withinBatch(b, refs)

	if zeroCost {
		// The xDR of a CDR that moves no balance is written without a
		// claim, so nothing orders it against a billable copy in another
		// partition that claims the key after the look-up below has missed
		// it. Its version is therefore the database's clock from before the
		// look-up: that copy claims, then locks its partition and takes its
		// version, later, and its billed row outranks this one (moving xDRs
		// get theirs in Commit).
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
	}
	for round := 0; ; round++ {
		todo, err := lookUp(ctx, pg, b, refs)
		if err != nil {
			return nil, err
		}
		if len(todo) == 0 {
			return late(b, refs), nil
		}
		if round < plain {
			err := claimNew(ctx, pg, b, refs, todo)
			if err == nil {
				return late(b, refs), nil
			}
			if !uniqueViolation(err) {
				return nil, pgErr("record dedupe keys", err)
			}
			// Another message claimed one of these keys since the look-up
			// (a copy of one of its CDRs, committing at the same moment in
			// another partition): the INSERT waited for that claim, so a
			// look-up now finds it.
			continue
		}
		// Still racing: take what is still free, and look up the others
		// again, now that their claims are committed.
		if err := claim(ctx, pg, b, refs, todo); err != nil {
			return nil, err
		}
	}
}

// plainClaims is how many times dedupe claims a batch's new keys with a
// plain INSERT, looking them up again after each race it lost, before it
// claims with ON CONFLICT DO NOTHING, which cannot lose one. Copies of one
// CDR reaching several partitions at once make races common (one batch in
// three in make bench-e2e); a look-up costs a fraction of a claim.
const plainClaims = 3

// lookUp reads the claims of the refs not yet settled, settles each CDR
// whose key a claim holds — this very message's claim from an earlier
// attempt, another message's (a duplicate, or a conflicting re-send), or
// one that expired — and returns the indices in refs of the billable CDRs
// left to claim. The claims of an earlier attempt that no longer bill are
// given back.
func lookUp(ctx context.Context, pg *pgxpool.Pool, b *rater.Batch, refs []keyRef) ([]int, error) {
	keys := make([][16]byte, 0, len(refs))
	for _, r := range refs {
		if !r.settled {
			keys = append(keys, r.key())
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	var args binArgs
	args.uuids(keys)
	args.float8(DedupeWindow.Seconds())
	var expired [][16]byte
	var unclaim []int // CDRs this message claimed in an attempt that billed them, billing nothing now
	_, err := execBinary(ctx, pg, `SELECT key, topic, "partition", "offset", live, content FROM cdr_keys_lookup($1, $2)`, &args,
		func(v [][]byte) error {
			if len(v) != 6 {
				return fmt.Errorf("%d columns, want 6", len(v))
			}
			k, err := binUUID(v[0])
			if err != nil {
				return err
			}
			partition, err := binInt4(v[2])
			if err != nil {
				return err
			}
			offset, err := binInt8(v[3])
			if err != nil {
				return err
			}
			live, err := binBool(v[4])
			if err != nil {
				return err
			}
			content, hasContent := int64(0), v[5] != nil
			if hasContent {
				if content, err = binInt8(v[5]); err != nil {
					return err
				}
			}
			r := &refs[locate(refs, k)]
			x := &b.XDRs[r.i]
			switch {
			case !live:
				r.expired = true // billed once, longer ago than the window: ClickHouse says whether it stands
				if r.moves {
					expired = append(expired, k)
				}
			case string(v[1]) == b.Topic && int(partition) == x.Partition && offset == x.Offset:
				r.claimed, r.owned, r.settled = r.moves, true, true // this very message claimed it before a crash
				if !r.moves {
					unclaim = append(unclaim, int(r.i)) // rated again since, and now free
				}
			case hasContent && uint64(content) != x.Content:
				x.MarkConflict(int(partition), offset) // another message billed this CDR, and said something else
				r.settled = true
			default:
				x.MarkDuplicate()
				r.settled = true
			}
			return nil
		})
	if err != nil {
		return nil, pgErr("look up dedupe keys", err)
	}
	if err := release(ctx, pg, b, unclaim); err != nil {
		return nil, err
	}
	if len(expired) > 0 {
		if _, err := pg.Exec(ctx, `DELETE FROM cdr_keys WHERE key = ANY($1::uuid[]) AND seen_at < now() - make_interval(secs => $2)`,
			expired, DedupeWindow.Seconds()); err != nil {
			return nil, pgErr("expire dedupe keys", err)
		}
	}
	var todo []int
	for i := range refs {
		if r := &refs[i]; !r.settled {
			if r.moves {
				todo = append(todo, i)
			} else {
				r.settled = true // zero-cost and no claim: written with its own version
			}
		}
	}
	return todo, nil
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

// claimArgs is the parameters of a claim of the refs at indices todo:
// their keys, the topic, and each one's partition, offset and content hash.
func claimArgs(b *rater.Batch, refs []keyRef, todo []int) *binArgs {
	keys, partitions := make([][16]byte, len(todo)), make([]int32, len(todo))
	offsets, contents := make([]int64, len(todo)), make([]int64, len(todo))
	for n, i := range todo {
		r := &refs[i]
		x := &b.XDRs[r.i]
		keys[n], partitions[n], offsets[n], contents[n] = r.key(), int32(x.Partition), x.Offset, int64(x.Content)
	}
	var a binArgs
	a.uuids(keys)
	a.text(b.Topic)
	a.int4s(partitions)
	a.int8s(offsets)
	a.int8s(contents)
	return &a
}

// claimNew records the keys of refs at indices todo, which the look-up
// found free, each with the message that carries it, in key order. It
// fails, recording nothing, when another message claimed one of them since
// (a unique violation, see uniqueViolation).
func claimNew(ctx context.Context, pg *pgxpool.Pool, b *rater.Batch, refs []keyRef, todo []int) error {
	if _, err := execBinary(ctx, pg, `INSERT INTO cdr_keys (key, topic, "partition", "offset", content)
		SELECT key, $2, p, o, c FROM unnest($1::uuid[], $3::int[], $4::bigint[], $5::bigint[]) AS u(key, p, o, c)`,
		claimArgs(b, refs, todo), nil); err != nil {
		return err
	}
	for _, i := range todo {
		refs[i].claimed, refs[i].settled = true, true
	}
	return nil
}

// uniqueViolation reports whether err is PostgreSQL's unique_violation: a
// plain claim met a key that another message claimed after the look-up.
// It is a race, not the batch's fault (a refusal): the claim is retried.
func uniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// claim records, for the refs at indices todo, the key with the message that
// carries it, and settles those it took; a key already recorded is left
// alone (and looked up again by the caller). refs are sorted by key.
func claim(ctx context.Context, pg *pgxpool.Pool, b *rater.Batch, refs []keyRef, todo []int) error {
	_, err := execBinary(ctx, pg, `INSERT INTO cdr_keys (key, topic, "partition", "offset", content)
		SELECT key, $2, p, o, c FROM unnest($1::uuid[], $3::int[], $4::bigint[], $5::bigint[]) AS u(key, p, o, c)
		ON CONFLICT (key) DO NOTHING RETURNING key`, claimArgs(b, refs, todo), func(v [][]byte) error {
		k, err := binUUID(v[0])
		if err != nil {
			return err
		}
		r := &refs[locate(refs, k)]
		r.claimed, r.settled = true, true
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

func newRef(key [16]byte, i int32, moves bool) keyRef {
	return keyRef{hi: binary.BigEndian.Uint64(key[:8]), lo: binary.BigEndian.Uint64(key[8:]), i: i, moves: moves}
}

// sortRefs sorts refs (given in batch order) by key in PostgreSQL's uuid
// order, keeping batch order among equal keys. Any order all workers share
// keeps their index locks in one global order; this one also has each
// statement visit the index's leaves in order, which made the claims and
// look-ups of a batch measurably cheaper than keys in a hash order. The
// leading bits of FNV hashes of similar ids (call-1, call-2, …) are far
// from evenly spread, so a radix sort on all of the first half does the
// work (stable: equal keys keep batch order), and refs whose first halves
// are equal and whose keys differ — all but never — are put in order after.
func sortRefs(refs []keyRef) []keyRef {
	if len(refs) < 256 {
		slices.SortStableFunc(refs, byKey)
		return refs
	}
	src, dst := refs, make([]keyRef, len(refs))
	for shift := 0; shift < 64; shift += 8 {
		var starts [257]int
		for i := range src {
			starts[int(byte(src[i].hi>>shift))+1]++
		}
		if starts[int(byte(src[0].hi>>shift))+1] == len(src) {
			continue // every ref has this byte: nothing to move
		}
		for d := 1; d < len(starts); d++ {
			starts[d] += starts[d-1]
		}
		for i := range src {
			d := byte(src[i].hi >> shift)
			dst[starts[d]] = src[i]
			starts[d]++
		}
		src, dst = dst, src
	}
	for lo := 0; lo < len(src); {
		hi := lo + 1
		for hi < len(src) && src[hi].hi == src[lo].hi {
			hi++
		}
		if hi-lo > 1 {
			slices.SortStableFunc(src[lo:hi], byKey)
		}
		lo = hi
	}
	return src
}

// locate returns the index of the first ref of key k, which is in refs (in
// key order).
func locate(refs []keyRef, k [16]byte) int {
	i, _ := slices.BinarySearchFunc(refs, newRef(k, 0, false), byKey)
	return i
}

// byKey is the key order: PostgreSQL's order of uuids (bytewise).
func byKey(a, b keyRef) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
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
	// Most keys a job claims are free (the calls it makes billable were
	// mismatches: nobody claimed them), so it claims them all with a plain
	// INSERT first, under a savepoint: 12 ms per 1,700 keys where ON
	// CONFLICT DO NOTHING took 17–22 (a speculative insertion per key). A
	// key held already (another CDR's, or this job's from an attempt that
	// died) is a unique violation: back to the savepoint, and claim with ON
	// CONFLICT, which tells the holders.
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, pgErr("claim rerated keys", err)
	}
	_, err = sp.Exec(ctx, `INSERT INTO cdr_keys (key, topic, "partition", "offset", content)
		SELECT key, $2, 0, $3, c FROM unnest($1::uuid[], $4::bigint[]) WITH ORDINALITY AS u(key, c, n) ORDER BY n`,
		keys, RerateTopic, job, contents)
	if err == nil {
		if err := sp.Commit(ctx); err != nil {
			return nil, pgErr("claim rerated keys", err)
		}
		return nil, nil
	}
	if rerr := sp.Rollback(ctx); rerr != nil || !uniqueViolation(err) {
		return nil, pgErr("claim rerated keys", err)
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
