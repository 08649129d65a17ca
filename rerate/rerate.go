package rerate

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/sinks"
)

// Config configures a Runner.
type Config struct {
	// Topic is the workers' CDR topic: its stored offsets tell which raw
	// CDRs a worker has committed (default "cdrs").
	Topic string
	// ChunkSize is about how many CDRs a chunk holds (default 50000); a
	// setup minute is never split. A confirmed job holds the partitions'
	// offset locks while it writes one chunk, so smaller chunks pause the
	// workers for shorter moments.
	ChunkSize int
	// Progress, when set, is called after each chunk.
	Progress func(Progress)
	// Retries is how often a chunk that failed (a server unreachable) is
	// tried again before the job is marked failed (default 5).
	Retries int
	// Refresh, when set, is called once a confirmed job is done: the
	// report rollups of the hours it rewrote are recomputed then (the
	// wiring passes report.Reports.RefreshRollups), so that reports are
	// fast right after a job, not only once a worker's refresher comes by.
	// Reports are exact either way.
	Refresh func(ctx context.Context) error
}

// Validate fills defaults and checks bounds.
func (c *Config) Validate() error {
	if c.Topic == "" {
		c.Topic = "cdrs"
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = 50000
	}
	if c.Retries == 0 {
		c.Retries = 5
	}
	if c.ChunkSize < 1 || c.ChunkSize > 1_000_000 {
		return fmt.Errorf("chunk size %d: want 1 to 1000000", c.ChunkSize)
	}
	return nil
}

// Progress is where a running job is.
type Progress struct {
	Job     int64
	Done    int64 // CDRs read so far (this run)
	Planned int64 // CDRs the plan counted (this run's remaining chunks)
	Elapsed time.Duration
}

// Request asks for a job.
type Request struct {
	Selection Selection
	DryRun    bool
	Actor     string // who asked: a token's name, "cli"
	// Scope is the reseller of a reseller's request: its job touches only
	// the clients of that reseller's subtree. 0 for an admin.
	Scope int64
	// Started, when set, is called once the job is recorded (with its id),
	// before its first chunk: a server answers with it and lets the job
	// run on.
	Started func(*Job)
}

// Runner runs rerating jobs: it rates CDRs again from cdrs_raw with the
// worker's rater against the catalog as it is when the job starts, writes
// the new xDR versions with the worker's writer and moves each client's
// live balance by exactly its delta, once, with the worker's balance
// applier — whatever is killed and resumed, with workers running.
//
// How a confirmed job stays exactly-once, chunk by chunk (a setup-time
// range):
//
//  1. read the chunk's selected xDRs and their raw CDRs, and rate them;
//  2. in one PostgreSQL transaction, lock every partition's stored offset
//     (workers write ClickHouse only while they hold theirs), check the
//     chunk's rows did not change since step 1 (or read them again), and
//     take the job's version from the database clock;
//  3. leave alone each CDR a worker is still committing: its raw CDR comes
//     from a message past its partition's stored offset, or its xDR from
//     an attempt that never wrote its raw CDR, or it would become billable
//     but a message past its stored offset holds its dedupe claim;
//  4. claim the dedupe keys of the CDRs the job makes billable, as the
//     worker would, so that the switch re-sending one is a duplicate;
//  5. record the old xDRs it replaces in rerate_staged (ClickHouse keeps
//     only the newest version once parts merge), then write the new ones;
//  6. apply new − old to the balances, mark the rollup hours, record the
//     chunk done and the job's counts, and commit.
//
// A job killed before 6 commits moved nothing and claimed nothing; resumed,
// it redoes the chunk, taking the old xDR of every row that still holds its
// dead attempt's version from rerate_staged. Two confirmed jobs never run
// at once, and a job is refused while another is unfinished.
//
// A Runner is safe for concurrent use; each Run holds one connection of
// pg for its job's lock.
type Runner struct {
	cfg    Config
	pg     *pgxpool.Pool
	ch     driver.Conn
	w      *sinks.XDRWriter
	loader *sinks.CatalogLoader
	log    *slog.Logger

	// afterWrite, set by tests, runs after a chunk's xDRs are written and
	// before its balances move: an error there is a job killed at the
	// worst moment.
	afterWrite func(chunk int) error
}

// NewRunner returns a runner on the given servers; Close stops its writer.
func NewRunner(cfg Config, pg *pgxpool.Pool, ch driver.Conn, log *slog.Logger) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, pg: pg, ch: ch, w: sinks.NewXDRWriter(ch), loader: sinks.NewCatalogLoader(pg), log: log}, nil
}

// Close stops the runner's writer; call it after the last Run returned.
func (r *Runner) Close() { r.w.Close() }

// jobMark is what a version written by a rerating job ends in: workers'
// versions are the database clock in whole microseconds (multiples of
// 1000), a job's that clock plus one, so a row tells who wrote it.
const jobMark = 1

// Run runs the job req asks for and returns it finished: a dry run, which
// changes nothing, or a confirmed job — or, when an unfinished confirmed
// job has the same selection, that job resumed. A confirmed job is refused
// with *BusyError while another is unfinished.
func (r *Runner) Run(ctx context.Context, req Request) (*Job, error) {
	if err := req.Selection.Validate(); err != nil {
		return nil, err
	}
	if req.Actor == "" {
		req.Actor = "cli"
	}
	if req.DryRun {
		return r.run(ctx, req, 0)
	}
	release, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return r.run(ctx, req, 0)
}

// Resume finishes unfinished job id (killed, or failed). A reseller (scope
// > 0) resumes the jobs of its subtree only.
func (r *Runner) Resume(ctx context.Context, id, scope int64) (*Job, error) {
	return r.ResumeStarted(ctx, id, scope, nil)
}

// ResumeStarted is Resume, calling started (when not nil) as Request.Started.
func (r *Runner) ResumeStarted(ctx context.Context, id, scope int64, started func(*Job)) (*Job, error) {
	j, err := Get(ctx, r.pg, id, scope)
	if err != nil {
		return nil, err
	}
	if j.State != StateRunning && j.State != StateFailed {
		return nil, fmt.Errorf("job %d is %s: %w", id, j.State, ErrNotResumable)
	}
	release, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return r.run(ctx, Request{Selection: j.Selection, Actor: j.Actor, Scope: j.ResellerID, Started: started}, id)
}

// lock takes the confirmed jobs' advisory lock on a connection of its own
// and returns its release, or reports the job that holds it.
func (r *Runner) lock(ctx context.Context) (func(), error) {
	conn, err := r.pg.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(jobLock)).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("take the rerating lock: %w", err)
	}
	if !ok {
		conn.Release()
		var id int64
		_ = r.pg.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM rerate_jobs WHERE state = 'running'`).Scan(&id)
		return nil, &BusyError{Job: id, Running: true}
	}
	return func() {
		// The lock goes with the session: a connection handed back to the
		// pool must not keep it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, int64(jobLock)); err != nil {
			conn.Conn().Close(ctx) //nolint:errcheck // closing the session frees its lock
		}
		conn.Release()
	}, nil
}

// run creates (resume == 0) or resumes a job and runs it to the end.
func (r *Runner) run(ctx context.Context, req Request, resume int64) (*Job, error) {
	cat, err := r.loader.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load the catalog: %w", err)
	}
	info, err := clientInfos(ctx, r.pg)
	if err != nil {
		return nil, err
	}
	var scope []int64
	if req.Scope > 0 {
		if scope, err = scopeClients(ctx, r.pg, req.Scope); err != nil {
			return nil, err
		}
	}
	sel := req.Selection
	filter := sel.filter(scope)
	j, chunks, err := r.open(ctx, req, resume, cat.Version, filter)
	if err != nil {
		return nil, err
	}
	if req.Started != nil {
		req.Started(j)
	}
	if j.State == StateDone {
		return j, nil
	}
	t := tallyOf(j)
	start := time.Now()
	var planned, done int64
	for _, c := range chunks {
		if !c.done {
			planned += c.planned
		}
	}
	inScope := func(id int64) bool {
		if scope == nil || id == 0 {
			return true
		}
		_, ok := slices.BinarySearch(scope, id)
		return ok
	}
	// Chunks are read (and rated) one ahead of the one being applied, so
	// that ClickHouse's reading and the job's work overlap.
	pctx, stopPrefetch := context.WithCancel(ctx)
	defer stopPrefetch()
	reads := make(chan readResult, 1)
	// Three chunk buffers go round: one being read, one waiting, one being
	// applied; their xDR slots keep their decode buffers from chunk to chunk.
	free := make(chan *chunkRead, 3)
	for range 3 {
		free <- &chunkRead{}
	}
	go func() {
		defer close(reads)
		raters := []*rater.Rater{rater.NewRater(), rater.NewRater()}
		for _, c := range chunks {
			if c.done {
				continue
			}
			var rd *chunkRead
			select {
			case rd = <-free:
			case <-pctx.Done():
				return
			}
			err := r.read(pctx, rd, j, c, filter, cat, raters)
			select {
			case reads <- readResult{rd, err}:
			case <-pctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	raters := []*rater.Rater{rater.NewRater(), rater.NewRater()}
	for _, c := range chunks {
		if c.done {
			continue
		}
		var rr readResult
		select {
		case rr = <-reads:
		case <-ctx.Done():
			return j, r.fail(j, ctx.Err())
		}
		rd, err := rr.rd, rr.err
		for attempt := 0; ; attempt++ {
			if err == nil {
				snapshot := t.clone()
				if err = r.apply(ctx, j, rd, filter, cat, raters[0], t, info, inScope); err == nil {
					break
				}
				t = snapshot
			}
			if ctx.Err() != nil || attempt >= r.cfg.Retries {
				return j, r.fail(j, err)
			}
			r.log.Warn("rerating chunk failed; trying it again", "job", j.ID, "chunk", c.n, "attempt", attempt+1, "err", err)
			select {
			case <-ctx.Done():
				return j, r.fail(j, ctx.Err())
			case <-time.After(time.Duration(attempt+1) * time.Second):
			}
			// What a failed attempt wrote is staged: read the chunk again.
			err = r.read(ctx, rd, j, c, filter, cat, raters)
		}
		done += int64(len(rd.cands))
		free <- rd
		if r.cfg.Progress != nil {
			r.cfg.Progress(Progress{Job: j.ID, Done: done, Planned: planned, Elapsed: time.Since(start)})
		}
	}
	return r.finish(ctx, j, t, info)
}

// open creates the job row and its plan, or loads the job to resume.
func (r *Runner) open(ctx context.Context, req Request, resume, catalogVersion int64, filter string) (*Job, []chunkPlan, error) {
	sel := req.Selection
	if req.DryRun {
		chunks, total, err := plan(ctx, r.ch, sel, filter, r.cfg.ChunkSize)
		if err != nil {
			return nil, nil, err
		}
		j, err := r.insertJob(ctx, nil, req, StateDryRun, catalogVersion, total)
		return j, chunks, err
	}
	tx, err := r.pg.Begin(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	if resume == 0 {
		other, key, err := unfinished(ctx, tx)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case other != nil && key == sel.Key() && other.ResellerID == req.Scope:
			resume = other.ID // the same command again: resume its job
			r.log.Info("resuming the unfinished job with the same selection", "job", resume)
		case other != nil:
			return nil, nil, &BusyError{Job: other.ID}
		}
	}
	if resume != 0 {
		if err := tx.Commit(ctx); err != nil {
			return nil, nil, err
		}
		j, err := Get(ctx, r.pg, resume, 0)
		if err != nil {
			return nil, nil, err
		}
		if j.CatalogVersion != catalogVersion {
			r.log.Warn("the catalog changed since the job started; the chunks left are rated against the catalog as it is now",
				"job", j.ID, "started_with", j.CatalogVersion, "now", catalogVersion)
			if _, err := r.pg.Exec(ctx, `UPDATE rerate_jobs SET catalog_version = $2 WHERE id = $1`, j.ID, catalogVersion); err != nil {
				return nil, nil, err
			}
		}
		chunks, err := loadChunks(ctx, r.pg, j.ID)
		return j, chunks, err
	}
	chunks, total, err := plan(ctx, r.ch, sel, filter, r.cfg.ChunkSize)
	if err != nil {
		return nil, nil, err
	}
	j, err := r.insertJob(ctx, tx, req, StateRunning, catalogVersion, total)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range chunks {
		if _, err := tx.Exec(ctx, `INSERT INTO rerate_chunks (job_id, chunk, from_time, to_time, planned) VALUES ($1, $2, $3, $4, $5)`,
			j.ID, c.n, c.from, c.to, c.planned); err != nil {
			return nil, nil, fmt.Errorf("store the plan: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, nil, fmt.Errorf("store the job: %w", err)
	}
	return j, chunks, nil
}

func (r *Runner) insertJob(ctx context.Context, tx pgx.Tx, req Request, state string, catalogVersion, planned int64) (*Job, error) {
	sel, err := json.Marshal(req.Selection)
	if err != nil {
		return nil, err
	}
	var scope *int64
	if req.Scope > 0 {
		scope = &req.Scope
	}
	q := `INSERT INTO rerate_jobs (state, dry_run, selection, selection_key, actor, reseller_id, topic, catalog_version, planned)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ` + jobColumns
	args := []any{state, req.DryRun, sel, req.Selection.Key(), req.Actor, scope, r.cfg.Topic, catalogVersion, planned}
	if tx != nil {
		return scanJob(tx.QueryRow(ctx, q, args...))
	}
	return scanJob(r.pg.QueryRow(ctx, q, args...))
}

// chunkRead is one chunk read and rated again: its candidates and their
// new xDRs, and what dead attempts of the job wrote into it.
type chunkRead struct {
	c     chunkPlan
	dead  []uint64
	st    staged
	cands []candidate
	news  []rater.XDR
}

type readResult struct {
	rd  *chunkRead
	err error
}

// read reads chunk c's candidates into rd and rates them (step 1).
func (r *Runner) read(ctx context.Context, rd *chunkRead, j *Job, c chunkPlan, filter string, cat *rater.Catalog, raters []*rater.Rater) error {
	rd.c, rd.dead, rd.st = c, nil, nil
	if !j.DryRun {
		var err error
		if rd.dead, rd.st, err = loadStaged(ctx, r.ch, j.ID, c.n); err != nil {
			return err
		}
	}
	clear(rd.cands) // let the last chunk's raw CDRs go
	cands, err := scan(ctx, r.ch, c, filter, rd.dead, rd.cands[:0])
	if err != nil {
		return err
	}
	rd.cands = cands
	rd.news = rateAll(cat, raters, rd.cands, rd.news)
	return nil
}

// apply counts a dry run's chunk, or commits a confirmed job's (steps 2–6).
func (r *Runner) apply(ctx context.Context, j *Job, rd *chunkRead, filter string, cat *rater.Catalog, rt *rater.Rater, t *tally,
	info map[int64]clientInfo, inScope func(int64) bool) error {
	if j.DryRun {
		for i := range rd.cands {
			if rd.cands[i].hasRaw {
				t.add(&rd.cands[i].old, &rd.news[i])
			} else {
				t.skipped++
			}
		}
		return r.record(ctx, nil, j, t, info)
	}
	return r.commit(ctx, j, rd.c, filter, cat, rt, t, info, inScope, rd.dead, rd.st, rd.cands, rd.news)
}

// rateAll rates each candidate's raw CDR as the worker would have, into
// news (its slots reused), sharing the work between the raters (one
// goroutine each).
func rateAll(cat *rater.Catalog, raters []*rater.Rater, cands []candidate, news []rater.XDR) []rater.XDR {
	for len(news) < len(cands) {
		news = append(news[:cap(news)], rater.XDR{})
	}
	news = news[:len(cands)]
	per := (len(cands) + len(raters) - 1) / len(raters)
	var wg sync.WaitGroup
	for k, rt := range raters {
		lo, hi := k*per, min((k+1)*per, len(cands))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				cd := &cands[i]
				if !cd.hasRaw {
					news[i] = rater.XDR{CDR: news[i].CDR}
					news[i].MarkDuplicate() // nothing to rate: nothing to write
					continue
				}
				m := ingest.Message{Partition: int(cd.partition), Offset: cd.offset, Time: cd.received, Value: cd.raw}
				rt.Rate(cat, &m, &news[i], 0)
			}
		}()
	}
	wg.Wait()
	return news
}

// commit is steps 2–6 of the Runner's doc for one chunk.
func (r *Runner) commit(ctx context.Context, j *Job, c chunkPlan, filter string, cat *rater.Catalog, rt *rater.Rater, t *tally,
	info map[int64]clientInfo, inScope func(int64) bool, dead []uint64, st staged, cands []candidate, news []rater.XDR) error {
	tx, err := r.pg.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	next, err := lockOffsets(ctx, tx, r.cfg.Topic)
	if err != nil {
		return err
	}
	same, err := unchanged(ctx, r.ch, c, filter, dead, cands)
	if err != nil {
		return err
	}
	if !same {
		// A worker wrote into the chunk since it was read: read it again,
		// now that no worker can.
		if cands, err = scan(ctx, r.ch, c, filter, dead, cands[:0]); err != nil {
			return err
		}
		news = rateAll(cat, []*rater.Rater{rt}, cands, news)
	}
	clock, err := sinks.Clock(ctx, tx)
	if err != nil {
		return err
	}
	version := clock + jobMark

	var write, claim []int
	for i := range cands {
		cd, nx := &cands[i], &news[i]
		deadWrite := slices.Contains(dead, cd.oldVersion)
		switch {
		case deadWrite:
			old, ok := st[cd.key]
			if !ok {
				return fmt.Errorf("BUG: job %d: %s holds a version the job wrote, but what it replaced was not staged", j.ID, cd.key.id)
			}
			cd.old.Rating = old.Rating
		case !cd.hasRaw || inFlight(cd, next):
			t.skipped++
			continue
		}
		if k := (rowKey{uint32(nx.CDR.SetupTime.Unix()), nx.CDR.Switch, nx.ID}); k != cd.key {
			// Rating again gives another row (a CDR the rules now read
			// differently): leave it rather than write a second row.
			r.log.Warn("a CDR rated again lands on another row; left alone", "job", j.ID, "cdr_id", cd.key.id)
			t.skipped++
			continue
		}
		if !inScope(cd.old.Rating.Orig.ClientID) || !inScope(cd.old.Rating.Term.ClientID) ||
			!inScope(nx.Rating.Orig.ClientID) || !inScope(nx.Rating.Term.ClientID) {
			t.skipped++ // it would move the balance of a client outside the caller's subtree
			continue
		}
		if nx.Moves() && !cd.old.Moves() {
			claim = append(claim, len(write))
		}
		write = append(write, i)
	}
	claimXs := make([]*rater.XDR, len(claim))
	for k, w := range claim {
		claimXs[k] = &news[write[w]]
	}
	holders, err := sinks.ClaimForJob(ctx, tx, j.ID, claimXs)
	if err != nil {
		return err
	}
	if len(holders) > 0 {
		drop := map[int]bool{}
		for k, h := range holders {
			if h.Topic == r.cfg.Topic && h.Offset >= next[int32(h.Partition)] {
				drop[claim[k]] = true // a worker is billing this very CDR right now
			}
		}
		kept := write[:0]
		for w, i := range write {
			if drop[w] {
				t.skipped++
				continue
			}
			kept = append(kept, i)
		}
		write = kept
	}
	if len(write) > 0 {
		if err := stage(ctx, r.ch, j.ID, c.n, version, cands, write); err != nil {
			return err
		}
		// The new xDRs are written in place: those left alone are marked
		// so that the writer skips them.
		writing := make([]bool, len(news))
		for _, i := range write {
			writing[i] = true
		}
		var d sinks.BalanceDeltas
		for i := range news {
			if !writing[i] {
				news[i].MarkDuplicate()
				continue
			}
			news[i].Version = version
			d.SubXDR(&cands[i].old)
			d.AddXDR(&news[i])
			t.add(&cands[i].old, &news[i])
		}
		if err := r.w.Write(ctx, news, false); err != nil {
			return fmt.Errorf("write the new xDRs: %w", err)
		}
		if r.afterWrite != nil {
			if err := r.afterWrite(c.n); err != nil {
				return err
			}
		}
		ns, err := sinks.ApplyBalanceDeltas(ctx, tx, &d)
		if err != nil {
			return err
		}
		for _, n := range ns {
			r.log.Warn("low balance", "client_id", n.ClientID, "client", n.ClientName,
				"available", n.Available.StringFixed(6), "threshold", n.Threshold.StringFixed(6))
		}
		if err := sinks.MarkRollupHours(ctx, tx, news); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE rerate_chunks SET done_at = now(), version = $3 WHERE job_id = $1 AND chunk = $2`,
		j.ID, c.n, int64(version)); err != nil {
		return fmt.Errorf("record the chunk: %w", err)
	}
	if err := r.record(ctx, tx, j, t, info); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit the chunk: %w", err)
	}
	return nil
}

// lockOffsets locks every stored offset of topic and returns them by
// partition: while they are held no worker writes ClickHouse or commits.
func lockOffsets(ctx context.Context, tx pgx.Tx, topic string) (map[int32]int64, error) {
	rows, err := tx.Query(ctx, `SELECT "partition", next_offset FROM consumed_offsets WHERE topic = $1 ORDER BY "partition" FOR UPDATE`, topic)
	if err != nil {
		return nil, fmt.Errorf("lock the partitions' offsets: %w", err)
	}
	next := map[int32]int64{}
	var p int32
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&p, &n}, func() error { next[p] = n; return nil }); err != nil {
		return nil, fmt.Errorf("lock the partitions' offsets: %w", err)
	}
	return next, nil
}

// inFlight reports whether a worker may still be committing cd: its raw
// CDR comes from a message at or past its partition's stored offset, or
// its xDR was written by a worker's attempt that did not write the raw CDR
// with it (a worker writes both with one version; a job writes xDRs alone,
// with a version ending in jobMark).
func inFlight(cd *candidate, next map[int32]int64) bool {
	n, ok := next[cd.partition]
	if !ok || cd.offset >= n {
		return true
	}
	return cd.oldVersion%1000 != jobMark && cd.oldVersion != cd.rawVersion
}

// record stores the job's counts and result (in tx when not nil).
func (r *Runner) record(ctx context.Context, tx pgx.Tx, j *Job, t *tally, info map[int64]clientInfo) error {
	t.result(j, info)
	q := `UPDATE rerate_jobs SET selected = $2, changed = $3, skipped = $4, result = $5, updated_at = now() WHERE id = $1`
	args := []any{j.ID, j.Selected, j.Changed, j.Skipped, resultJSON(j)}
	var err error
	if tx != nil {
		_, err = tx.Exec(ctx, q, args...)
	} else {
		_, err = r.pg.Exec(ctx, q, args...)
	}
	if err != nil {
		return fmt.Errorf("record the job's progress: %w", err)
	}
	return nil
}

// finish marks j done (a dry run stays dry_run), with the invoices its
// clients have over the selected period, and drops what it staged.
func (r *Runner) finish(ctx context.Context, j *Job, t *tally, info map[int64]clientInfo) (*Job, error) {
	t.result(j, info)
	invs, err := touchedInvoices(ctx, r.pg, j)
	if err != nil {
		return j, r.fail(j, err)
	}
	j.Invoices = invs
	state := StateDone
	if j.DryRun {
		state = StateDryRun
	}
	if _, err := r.pg.Exec(ctx, `UPDATE rerate_jobs SET state = $2, result = $3, selected = $4, changed = $5, skipped = $6,
		finished_at = now(), updated_at = now(), error = '' WHERE id = $1`, j.ID, state, resultJSON(j), j.Selected, j.Changed, j.Skipped); err != nil {
		return j, fmt.Errorf("finish job %d: %w", j.ID, err)
	}
	if !j.DryRun {
		if err := dropStaged(ctx, r.ch, j.ID); err != nil {
			r.log.Warn("rerating job done, but what it staged was not dropped", "job", j.ID, "err", err)
		}
		if r.cfg.Refresh != nil {
			if err := r.cfg.Refresh(ctx); err != nil {
				r.log.Warn("rerating job done, but the report rollups were not refreshed (a worker's refresher will)", "job", j.ID, "err", err)
			}
		}
	}
	return Get(ctx, r.pg, j.ID, 0)
}

// fail marks a confirmed job failed (resumable) and returns err; a dry run
// is left as it got.
func (r *Runner) fail(j *Job, err error) error {
	if !j.DryRun {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, uerr := r.pg.Exec(ctx, `UPDATE rerate_jobs SET state = 'failed', error = $2, updated_at = now() WHERE id = $1`,
			j.ID, err.Error()); uerr != nil {
			r.log.Error("could not mark the job failed", "job", j.ID, "err", uerr)
		}
	}
	return fmt.Errorf("rerating job %d: %w", j.ID, err)
}

func (t *tally) clone() *tally {
	c := newTally()
	c.selected, c.changed, c.skipped = t.selected, t.changed, t.skipped
	for k, s := range t.clients {
		cp := *s // a MicroSum's decimal is never changed in place: sharing it is safe
		c.clients[k] = &cp
	}
	for k, n := range t.transitions {
		c.transitions[k] = n
	}
	return c
}

// clientInfos loads every client's name, currency and reseller.
func clientInfos(ctx context.Context, pg *pgxpool.Pool) (map[int64]clientInfo, error) {
	rows, err := pg.Query(ctx, `SELECT id, name, currency, reseller_id FROM clients`)
	if err != nil {
		return nil, fmt.Errorf("load the clients: %w", err)
	}
	out := map[int64]clientInfo{}
	var id, reseller int64
	var name, currency string
	if _, err := pgx.ForEachRow(rows, []any{&id, &name, &currency, &reseller}, func() error {
		out[id] = clientInfo{name: name, currency: currency, resellerID: reseller}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("load the clients: %w", err)
	}
	return out, nil
}

// scopeClients returns the ids of the clients of reseller's subtree, sorted.
func scopeClients(ctx context.Context, pg *pgxpool.Pool, reseller int64) ([]int64, error) {
	rows, err := pg.Query(ctx, `WITH RECURSIVE tree AS (SELECT id FROM resellers WHERE id = $1 UNION ALL
		SELECT r.id FROM resellers r JOIN tree t ON r.parent_id = t.id)
		SELECT id FROM clients WHERE reseller_id IN (SELECT id FROM tree) ORDER BY id`, reseller)
	if err != nil {
		return nil, fmt.Errorf("load the scope's clients: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("load the scope's clients: %w", err)
	}
	if ids == nil {
		ids = []int64{}
	}
	return ids, nil
}

// touchedInvoices lists the invoices of the job's clients whose period
// overlaps the selection (none before bill runs exist).
func touchedInvoices(ctx context.Context, pg *pgxpool.Pool, j *Job) ([]Invoice, error) {
	var exists bool
	if err := pg.QueryRow(ctx, `SELECT to_regclass('invoices') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look for invoices: %w", err)
	}
	out := []Invoice{}
	if !exists || len(j.Clients) == 0 {
		return out, nil
	}
	ids := make([]int64, 0, len(j.Clients))
	for _, c := range j.Clients {
		ids = append(ids, c.ClientID)
	}
	rows, err := pg.Query(ctx, `SELECT i.id, i.number, c.name, i.state FROM invoices i JOIN clients c ON c.id = i.client_id
		WHERE i.client_id = ANY($1)
		  AND (i.period_from::timestamp AT TIME ZONE i.timezone) < $3
		  AND (i.period_to::timestamp AT TIME ZONE i.timezone) > $2
		ORDER BY i.id`, ids, j.Selection.From, j.Selection.To)
	if err != nil {
		return nil, fmt.Errorf("look for invoices: %w", err)
	}
	var inv Invoice
	if _, err := pgx.ForEachRow(rows, []any{&inv.InvoiceID, &inv.Number, &inv.Client, &inv.State}, func() error {
		out = append(out, inv)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("look for invoices: %w", err)
	}
	return out, nil
}
