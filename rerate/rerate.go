package rerate

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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
	// ChunkSize is about how many CDRs a chunk holds (default 25000); a
	// setup minute is never split. Memory is about two chunks. A confirmed
	// job holds the partitions' offset locks while it writes one chunk, so
	// smaller chunks pause the workers for shorter moments. A dry run, which
	// takes no lock, reads chunks four times as large, up to 100,000 CDRs
	// (see dryRunChunk).
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
		c.ChunkSize = 25000
	}
	if c.Retries == 0 {
		c.Retries = 5
	}
	if c.ChunkSize < 1 || c.ChunkSize > 1_000_000 {
		return fmt.Errorf("chunk size %d: want 1 to 1000000", c.ChunkSize)
	}
	return nil
}

// dryRunChunk is about how many CDRs a dry run's chunk holds: four of a
// confirmed job's, up to 100,000 (never fewer than one). A dry run takes no
// lock, so its chunks only bound its memory; and each chunk costs
// ClickHouse a FINAL read whose overhead is per query: on 1M CDRs, xdrs
// FINAL took 1.3 s of the server's time in 25,000-CDR ranges, 0.65 s in
// 100,000-CDR ones.
func (c *Config) dryRunChunk() int {
	return max(c.ChunkSize, min(4*c.ChunkSize, 100_000))
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
	// Scope is the reseller of a reseller's request: its job moves only
	// the balances of that reseller's subtree's clients. 0 for an admin.
	Scope int64
	// CurrentCatalog lets the request resume an unfinished job with the
	// same selection although the catalog changed since it started (see
	// CatalogChangedError).
	CurrentCatalog bool
	// Started, when set, is called once the job is recorded (with its id),
	// before its first chunk: a server answers with it and lets the job
	// run on.
	Started func(*Job)

	// lockPID is the backend of the session holding the jobs' lock for a
	// confirmed job: each chunk checks it still does.
	lockPID uint32
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
//     worker would — committed at once, before the job takes its version,
//     so that a worker's look-up either sees them or ranks below — and
//     the switch re-sending one is a duplicate;
//  5. record the old xDRs it replaces in rerate_staged (ClickHouse keeps
//     only the newest version once parts merge), then write the new ones;
//  6. apply new − old to the balances, mark the rollup hours, record the
//     chunk done and the job's counts, and commit.
//
// A job killed before 6 commits moved nothing (its claims stand, and are
// its own when it resumes); resumed, it redoes the chunk, taking the old
// xDR of every row that still holds its dead attempt's version from
// rerate_staged. Two confirmed jobs never run
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
	// worst moment. beforeLock runs after a chunk was read, before the
	// job takes the partitions' locks: a worker's write can land there.
	afterWrite func(chunk int) error
	beforeLock func(chunk int)
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
	release, pid, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	req.lockPID = pid
	return r.run(ctx, req, 0)
}

// ResumeRequest asks to finish an unfinished job.
type ResumeRequest struct {
	ID int64
	// Scope is the reseller asking (0: an admin): a reseller resumes the
	// jobs of its subtree only.
	Scope int64
	// CurrentCatalog resumes a job whose catalog changed since it started,
	// rating its remaining chunks against the catalog now; without it such
	// a job is refused with *CatalogChangedError.
	CurrentCatalog bool
	// Started is Request.Started.
	Started func(*Job)
}

// Resume finishes an unfinished job (killed, or failed).
func (r *Runner) Resume(ctx context.Context, req ResumeRequest) (*Job, error) {
	j, err := Get(ctx, r.pg, req.ID, req.Scope)
	if err != nil {
		return nil, err
	}
	if j.State != StateRunning && j.State != StateFailed {
		return nil, fmt.Errorf("job %d is %s: %w", req.ID, j.State, ErrNotResumable)
	}
	release, pid, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return r.run(ctx, Request{Selection: j.Selection, Actor: j.Actor, Scope: j.ResellerID, CurrentCatalog: req.CurrentCatalog,
		Started: req.Started, lockPID: pid}, req.ID)
}

// ResumeAbandoned finishes a confirmed job whose process died (its state
// still says running, but nobody holds the jobs' lock), so that one killed
// process does not leave every later job refused; the API server calls it
// when it starts and every minute. It returns nil and no error when there
// is no such job or another job holds the lock. A job it may not resume
// because the catalog changed since it started is marked failed with that
// reason: an operator resumes it, with the flag, or leaves it.
func (r *Runner) ResumeAbandoned(ctx context.Context) (*Job, error) {
	release, pid, err := r.lock(ctx)
	var busy *BusyError
	if errors.As(err, &busy) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer release()
	var id int64
	err = r.pg.QueryRow(ctx, `SELECT id FROM rerate_jobs WHERE state = 'running' AND NOT dry_run ORDER BY id LIMIT 1`).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look for an abandoned rerating job: %w", err)
	}
	j, err := Get(ctx, r.pg, id, 0)
	if err != nil {
		return nil, err
	}
	r.log.Info("resuming a rerating job whose process stopped", "job", id)
	done, err := r.run(ctx, Request{Selection: j.Selection, Actor: j.Actor, Scope: j.ResellerID, lockPID: pid}, id)
	var changed *CatalogChangedError
	if errors.As(err, &changed) {
		return j, r.fail(j, err)
	}
	return done, err
}

// lock takes the confirmed jobs' advisory lock on a connection of its own
// and returns its release and the backend holding it, or reports the job
// that holds it.
func (r *Runner) lock(ctx context.Context) (func(), uint32, error) {
	conn, err := r.pg.Acquire(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(jobLock)).Scan(&ok); err != nil {
		conn.Release()
		return nil, 0, fmt.Errorf("take the rerating lock: %w", err)
	}
	if !ok {
		conn.Release()
		var id int64 // 0 when the holder has not recorded its job yet: the message says so
		_ = r.pg.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM rerate_jobs WHERE state = 'running'`).Scan(&id)
		return nil, 0, &BusyError{Job: id, Running: true}
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
	}, conn.Conn().PgConn().PID(), nil
}

// ownChunk checks, at the start of a chunk's transaction, that this
// process still runs the job: its lock session holds the jobs' lock, and
// the chunk is not done — and locks the chunk's row. A process whose lock
// session was lost (another may have resumed the job since) stops before
// it writes anything; of two processes on one chunk, the second waits on
// the row and finds it done.
func ownChunk(ctx context.Context, tx pgx.Tx, j *Job, chunk int) error {
	var held bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1
		AND ((classid::bigint << 32) | objid::bigint) = $2)`, int64(j.lockPID), int64(jobLock)).Scan(&held); err != nil {
		return fmt.Errorf("check the rerating lock: %w", err)
	}
	if !held {
		return errLockLost
	}
	var done bool
	if err := tx.QueryRow(ctx, `SELECT done_at IS NOT NULL FROM rerate_chunks WHERE job_id = $1 AND chunk = $2 FOR UPDATE`,
		j.ID, chunk).Scan(&done); err != nil {
		return fmt.Errorf("lock the chunk: %w", err)
	}
	if done {
		return errLockLost
	}
	return nil
}

// errLockLost stops a process that no longer runs its job: its lock
// session was lost, or another process did the chunk. It leaves the job's
// state alone (it may be another process's by now).
var errLockLost = errors.New("this process no longer holds the rerating lock (its database session was lost), " +
	"or another process did the chunk: it stops here, and the job carries on where it is resumed")

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
	var sc scope
	if req.Scope > 0 {
		if sc, err = scopeClients(ctx, r.pg, req.Scope); err != nil {
			return nil, err
		}
	}
	sel := req.Selection
	filter := sel.filter(sc)
	j, chunks, err := r.open(ctx, req, resume, cat.Version, filter)
	if err != nil {
		return nil, err
	}
	j.lockPID = req.lockPID
	if req.Started != nil {
		req.Started(j)
	}
	if j.State == StateDone {
		return j, nil
	}
	t := tallyOf(j, sc)
	start := time.Now()
	var planned, done int64
	for _, c := range chunks {
		if !c.done {
			planned += c.planned
		}
	}
	// Chunks are read (and rated) one ahead of the one being applied, so
	// that ClickHouse's reading and the job's work overlap.
	pctx, stopPrefetch := context.WithCancel(ctx)
	defer stopPrefetch()
	reads := make(chan readResult, 1)
	// Two chunk buffers go round: one being read, one being applied; their
	// xDR slots keep their decode buffers from chunk to chunk.
	free := make(chan *chunkRead, 2)
	for range 2 {
		free <- &chunkRead{}
	}
	go func() {
		defer close(reads)
		// A confirmed job's chunks are rated here too, so that rating the
		// next chunk overlaps committing this one (its commit waits on the
		// servers); a dry run's are rated by the applier, which has nothing
		// else to do.
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
			began := time.Now()
			err := r.read(pctx, rd, j, c, filter)
			took := time.Since(began)
			var rated time.Duration
			if err == nil && !j.DryRun {
				rd.news, rd.rated = rateAll(cat, raters, rd.cands, rd.news), true
				rated = time.Since(began) - took
			}
			select {
			case reads <- readResult{rd, err, took, rated}:
			case <-pctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	p := &pass{j: j, filter: filter, cat: cat, raters: []*rater.Rater{rater.NewRater(), rater.NewRater()}, info: info, sc: sc}
	for _, c := range chunks {
		if c.done {
			continue
		}
		var rr readResult
		waited := time.Now()
		select {
		case rr = <-reads:
		case <-ctx.Done():
			return j, r.fail(j, ctx.Err())
		}
		p.ph.WaitRead += time.Since(waited)
		p.ph.Read += rr.took
		p.ph.Rate += rr.rated
		rd, err := rr.rd, rr.err
		for attempt := 0; ; attempt++ {
			if err == nil {
				snapshot := t.clone()
				p.t = t
				if err = r.apply(ctx, p, rd); err == nil {
					break
				}
				t = snapshot
			}
			if ctx.Err() != nil || attempt >= r.cfg.Retries || errors.Is(err, errLockLost) {
				return j, r.fail(j, err)
			}
			r.log.Warn("rerating chunk failed; trying it again", "job", j.ID, "chunk", c.n, "attempt", attempt+1, "err", err)
			select {
			case <-ctx.Done():
				return j, r.fail(j, ctx.Err())
			case <-time.After(time.Duration(attempt+1) * time.Second):
			}
			// What a failed attempt wrote is staged: read the chunk again.
			err = r.read(ctx, rd, j, c, filter)
		}
		done += int64(len(rd.cands))
		free <- rd
		if r.cfg.Progress != nil {
			r.cfg.Progress(Progress{Job: j.ID, Done: done, Planned: planned, Elapsed: time.Since(start)})
		}
	}
	finishing := time.Now()
	j, err = r.finish(ctx, j, t, info)
	p.ph.Finish = time.Since(finishing)
	if err == nil {
		r.log.Info("rerating job finished: where its time went (read runs one chunk ahead of the rest)", "job", j.ID, "state", j.State,
			"cdrs", done, "took", time.Since(start).Round(time.Millisecond), p.ph.attrs())
	}
	return j, err
}

// Phases is where a job's time went in this process, summed over its
// chunks: reading runs one chunk ahead of the rest (WaitRead is how long
// the rest waited for it); the others follow one another.
type Phases struct {
	Read     time.Duration // reading chunks from ClickHouse
	WaitRead time.Duration // waiting for the next chunk to be read
	Rate     time.Duration // rating them again
	Lock     time.Duration // taking the partitions' offsets (waiting for the workers' commits in progress)
	Check    time.Duration // checking, or reading again, what workers changed since the chunk was read
	Claim    time.Duration // claiming the dedupe keys of the calls made billable
	Stage    time.Duration // recording the old xDRs in rerate_staged
	Write    time.Duration // writing the new xDRs
	Balances time.Duration // moving the balances, marking rollup hours, recording the chunk and committing
	Finish   time.Duration // once: the invoices touched, dropping what was staged, refreshing the report rollups (Config.Refresh)
}

func (ph *Phases) attrs() slog.Attr {
	r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	return slog.Group("phases", "read", r(ph.Read), "wait_read", r(ph.WaitRead), "rate", r(ph.Rate), "lock", r(ph.Lock),
		"check", r(ph.Check), "claim", r(ph.Claim), "stage", r(ph.Stage), "write", r(ph.Write), "balances", r(ph.Balances), "finish", r(ph.Finish))
}

// pass is one run of a job in this process: what its chunks share.
type pass struct {
	j      *Job
	filter string
	cat    *rater.Catalog
	raters []*rater.Rater
	t      *tally
	info   map[int64]clientInfo
	sc     scope
	ph     Phases
	keys   map[[16]byte]bool // a dry run's: the dedupe keys of the calls its last chunk with any would make billable
}

// open creates the job row and its plan, or loads the job to resume.
func (r *Runner) open(ctx context.Context, req Request, resume, catalogVersion int64, filter string) (*Job, []chunkPlan, error) {
	sel := req.Selection
	var topic string
	if resume == 0 {
		var err error
		if topic, err = r.topic(ctx); err != nil {
			return nil, nil, err
		}
	}
	if req.DryRun {
		chunks, total, err := plan(ctx, r.ch, sel, filter, r.cfg.dryRunChunk())
		if err != nil {
			return nil, nil, err
		}
		j, err := r.insertJob(ctx, nil, req, StateDryRun, topic, catalogVersion, total)
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
		rated := j.CatalogVersion
		if j.ResumedCatalogVersion != 0 {
			rated = j.ResumedCatalogVersion
		}
		if rated != catalogVersion {
			if !req.CurrentCatalog {
				return nil, nil, &CatalogChangedError{Job: j.ID, Started: rated, Now: catalogVersion}
			}
			r.log.Warn("the catalog changed since the job started; the chunks left are rated against the catalog as it is now, as asked",
				"job", j.ID, "started_with", j.CatalogVersion, "rated_with", rated, "now", catalogVersion)
			if _, err := r.pg.Exec(ctx, `UPDATE rerate_jobs SET resumed_catalog_version = $2 WHERE id = $1`, j.ID, catalogVersion); err != nil {
				return nil, nil, err
			}
			j.ResumedCatalogVersion = catalogVersion
		}
		chunks, err := loadChunks(ctx, r.pg, j.ID)
		return j, chunks, err
	}
	chunks, total, err := plan(ctx, r.ch, sel, filter, r.cfg.ChunkSize)
	if err != nil {
		return nil, nil, err
	}
	j, err := r.insertJob(ctx, tx, req, StateRunning, topic, catalogVersion, total)
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

func (r *Runner) insertJob(ctx context.Context, tx pgx.Tx, req Request, state, topic string, catalogVersion, planned int64) (*Job, error) {
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
	args := []any{state, req.DryRun, sel, req.Selection.Key(), req.Actor, scope, topic, catalogVersion, planned}
	if tx != nil {
		return scanJob(tx.QueryRow(ctx, q, args...))
	}
	return scanJob(r.pg.QueryRow(ctx, q, args...))
}

// chunkRead is one chunk read and rated again: its candidates and their
// new xDRs (a dry run keeps only their tally), and what dead attempts of
// the job wrote into it.
type chunkRead struct {
	c       chunkPlan
	dead    []uint64
	st      staged
	offsets map[int32]int64 // the stored offsets before the chunk was read
	cands   []candidate
	news    []rater.XDR
	rated   bool // news holds the rating of cands
}

type readResult struct {
	rd          *chunkRead
	err         error
	took, rated time.Duration // reading it, rating it
}

// read reads chunk c's candidates into rd (step 1); apply rates them, so
// that reading the next chunk overlaps rating this one.
func (r *Runner) read(ctx context.Context, rd *chunkRead, j *Job, c chunkPlan, filter string) error {
	rd.c, rd.dead, rd.st, rd.offsets, rd.rated = c, nil, nil, nil, false
	if !j.DryRun {
		var err error
		if rd.dead, rd.st, err = loadStaged(ctx, r.ch, j.ID, c.n); err != nil {
			return err
		}
		if rd.offsets, err = readOffsets(ctx, r.pg, j.Topic); err != nil {
			return err
		}
	}
	clear(rd.cands) // let the last chunk's raw CDRs go
	cands, err := scan(ctx, r.ch, c, filter, rd.dead, !j.DryRun, rd.cands[:0])
	if err != nil {
		return err
	}
	rd.cands = cands
	return nil
}

// apply counts a dry run's chunk, or commits a confirmed job's (steps 2–6).
func (r *Runner) apply(ctx context.Context, p *pass, rd *chunkRead) error {
	began := time.Now()
	if p.j.DryRun {
		t, billable := tallyAll(p.cat, p.raters, rd.cands, p.sc)
		p.ph.Rate += time.Since(began)
		if err := r.tallyBillable(ctx, p, t, rd.cands, billable); err != nil {
			return err
		}
		p.t.merge(t)
		return r.record(ctx, nil, p.j, p.t, p.info)
	}
	if !rd.rated { // read again after a failed attempt
		rd.news, rd.rated = rateAll(p.cat, p.raters, rd.cands, rd.news), true
		p.ph.Rate += time.Since(began)
	}
	return r.commit(ctx, p, rd)
}

// madeBillable is a call a dry run would make billable: whether the job
// bills it depends on the dedupe claims of its switch and id (see
// tallyBillable).
type madeBillable struct {
	i       int // in the chunk's candidates
	key     [16]byte
	content uint64
	rating  rater.Rating // without its texts, which the rater's buffers hold
}

// tallyAll rates each candidate's raw CDR as the worker would have and
// counts what it would change, sharing the work between the raters (one
// goroutine each, each with a tally of its own and one xDR it reuses): a
// dry run keeps no rated xDR. A call that would move the balance of a
// client outside sc is counted skipped, as the confirmed job leaves it.
// The calls it would make billable are returned to be counted by
// tallyBillable.
func tallyAll(cat *rater.Catalog, raters []*rater.Rater, cands []candidate, sc scope) (*tally, []madeBillable) {
	per := (len(cands) + len(raters) - 1) / len(raters)
	parts := make([]*tally, len(raters))
	billable := make([][]madeBillable, len(raters))
	var wg sync.WaitGroup
	for k, rt := range raters {
		parts[k] = newTally(sc)
		lo, hi := k*per, min((k+1)*per, len(cands))
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func(t *tally) {
			defer wg.Done()
			var x rater.XDR
			for i := lo; i < hi; i++ {
				cd := &cands[i]
				if !cd.hasRaw {
					t.skipped++
					continue
				}
				m := ingest.Message{Partition: int(cd.partition), Offset: cd.offset, Time: cd.received, Value: cd.raw}
				rt.Rate(cat, &m, &x, 0)
				if sc.movedOutside(&cd.old, &x.Rating) {
					t.skipped++
					continue
				}
				if x.Moves() && !(&rater.XDR{Rating: cd.old}).Moves() {
					rating := x.Rating
					rating.Detail, rating.Number = "", ""
					billable[k] = append(billable[k], madeBillable{i: i, key: x.Key, content: x.Content, rating: rating})
					continue
				}
				t.add(&cd.old, &x.Rating)
			}
		}(parts[k])
	}
	wg.Wait()
	for _, p := range parts[1:] {
		parts[0].merge(p)
	}
	return parts[0], slices.Concat(billable...)
}

// tallyBillable counts into t the calls of a dry run's chunk that it would
// make billable, as the confirmed job bills them: each switch and id once
// (in this chunk and the one before), and none whose dedupe key another
// CDR holds (see otherCDRs); the others are counted skipped.
func (r *Runner) tallyBillable(ctx context.Context, p *pass, t *tally, cands []candidate, bs []madeBillable) error {
	if len(bs) == 0 {
		return nil
	}
	// The keys of the chunk before are kept, not all the run's: memory stays
	// bounded by chunks, and two CDRs of one id are set up close together.
	prev, cur := p.keys, make(map[[16]byte]bool, len(bs))
	defer func() { p.keys = cur }()
	slices.SortStableFunc(bs, func(a, b madeBillable) int { return byArrival(&cands[a.i], &cands[b.i]) })
	keys := make([][16]byte, len(bs))
	for k, b := range bs {
		keys[k] = b.key
	}
	held, err := readClaims(ctx, r.pg, keys)
	if err != nil {
		return err
	}
	for _, b := range bs {
		cd := &cands[b.i]
		if prev[b.key] || cur[b.key] || held[b.key].otherCDR(b.content, cd.received) {
			t.skipped++
			continue
		}
		cur[b.key] = true
		t.add(&cd.old, &b.rating)
	}
	return nil
}

// rateAll rates each candidate's raw CDR as the worker would have, into
// news (its slots reused), sharing the work between the raters (one
// goroutine each).
func rateAll(cat *rater.Catalog, raters []*rater.Rater, cands []candidate, news []rater.XDR) []rater.XDR {
	if n := len(cands); cap(news) < n {
		// Every slot up to the capacity keeps its decode buffers; grow once,
		// by what is missing (appending to news[:cap] slot by slot doubled
		// the capacity at every chunk a little larger than the last).
		news = append(news[:cap(news)], make([]rater.XDR, n-cap(news))...)
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
func (r *Runner) commit(ctx context.Context, p *pass, rd *chunkRead) error {
	j, c, t, sc, dead, st, cands, news := p.j, rd.c, p.t, p.sc, rd.dead, rd.st, rd.cands, rd.news
	if r.beforeLock != nil {
		r.beforeLock(c.n)
	}
	ph := &p.ph
	mark := time.Now()
	lap := func(d *time.Duration) {
		now := time.Now()
		*d += now.Sub(mark)
		mark = now
	}
	tx, err := r.pg.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	if err := ownChunk(ctx, tx, j, c.n); err != nil {
		return err
	}
	next, err := lockOffsets(ctx, tx, j.Topic)
	if err != nil {
		return err
	}
	lap(&ph.Lock)
	// No worker committed since the chunk was read (no stored offset
	// moved): what it read is what balances hold — a worker's attempt that
	// wrote since and failed is in flight, and its retry meets the job's
	// dedupe claims (see inFlight). Otherwise check row by row.
	same := offsetsEqual(rd.offsets, next)
	if !same {
		if same, err = unchanged(ctx, r.ch, c, p.filter, dead, cands); err != nil {
			return err
		}
	}
	if !same {
		// A worker wrote into the chunk since it was read: read it again,
		// now that no worker can.
		if cands, err = scan(ctx, r.ch, c, p.filter, dead, true, cands[:0]); err != nil {
			return err
		}
		news = rateAll(p.cat, p.raters, cands, news)
		rd.cands, rd.news = cands, news
	}
	lap(&ph.Check)
	var write, claim []int
	for i := range cands {
		cd, nx := &cands[i], &news[i]
		deadWrite := slices.Contains(dead, cd.oldVersion)
		switch {
		case deadWrite:
			// A dead attempt's write; what it replaced is staged, unless it
			// billed the same as what it wrote (then the row says it).
			if old, ok := st[cd.key]; ok {
				cd.old = old
			}
		case !cd.hasRaw || inFlight(cd, next):
			t.skipped++
			continue
		}
		if uint32(nx.CDR.SetupTime.Unix()) != cd.key.setup || nx.CDR.Switch != cd.sw || nx.ID != cd.id {
			// Rating again gives another row (a CDR the rules now read
			// differently, or two keys of one second that collide in 64
			// bits): leave it rather than write a second row.
			r.log.Warn("a CDR rated again lands on another row; left alone", "job", j.ID, "cdr_id", cd.id)
			t.skipped++
			continue
		}
		if sc.movedOutside(&cd.old, &nx.Rating) {
			t.skipped++ // it would move the balance of a client outside the caller's subtree
			continue
		}
		if nx.Moves() && !(&rater.XDR{Rating: cd.old}).Moves() {
			claim = append(claim, len(write))
		}
		write = append(write, i)
	}
	// Two CDRs of one switch and id that the job makes billable in this
	// chunk are billed once: the first to arrive claims, the other is left
	// alone (a worker marks the second a conflict). Arrival order is the
	// same at every attempt, so a resumed chunk picks the CDR its dead
	// attempt claimed for.
	slices.SortStableFunc(claim, func(a, b int) int { return byArrival(&cands[write[a]], &cands[write[b]]) })
	drop := map[int]bool{}
	keyed := map[[16]byte]bool{}
	claimed := claim[:0:0]
	for _, w := range claim {
		if k := news[write[w]].Key; keyed[k] {
			drop[w] = true
			continue
		}
		keyed[news[write[w]].Key] = true
		claimed = append(claimed, w)
	}
	claim = claimed
	claimXs := make([]*rater.XDR, len(claim))
	for k, w := range claim {
		claimXs[k] = &news[write[w]]
	}
	holders, err := r.claim(ctx, j.ID, claimXs)
	if err != nil {
		return err
	}
	lap(&ph.Claim)
	if len(holders) > 0 {
		others, err := otherCDRs(ctx, tx, holders, claimXs, cands, write, claim)
		if err != nil {
			return err
		}
		for k, h := range holders {
			switch {
			case h.Topic == j.Topic && h.Offset >= next[int32(h.Partition)]:
				drop[claim[k]] = true // a worker is billing this very CDR right now
			case others[k]:
				// Another CDR with this switch and id, saying something else,
				// was billed within the dedupe window (by a worker, or by this
				// job in an earlier chunk): billing this one too would bill
				// the switch and id twice. The worker marks such a CDR a
				// conflict; the job leaves it as it is.
				r.log.Warn("a CDR made billable shares its switch and id with another CDR billed within the dedupe window; left alone",
					"job", j.ID, "cdr_id", news[write[claim[k]]].ID)
				drop[claim[k]] = true
			case h.Topic == sinks.RerateTopic && h.Offset == j.ID:
				// This job's own claim, from an attempt that died: it stands.
			}
		}
	}
	if len(drop) > 0 {
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
	// The version comes after the claims are visible: a worker whose
	// look-up missed them took its own clock before they committed, so the
	// job's rows outrank its (and one that looks later finds them).
	clock, err := sinks.Clock(ctx, tx)
	if err != nil {
		return err
	}
	version := clock + jobMark
	if len(write) > 0 {
		// Stage what a dead attempt could not read back from the rows it
		// wrote: the old billing of the calls whose billing changes.
		var changed []int
		for _, i := range write {
			if billingDiffers(&cands[i].old, &news[i].Rating) {
				changed = append(changed, i)
			}
		}
		lap(&ph.Claim) // the clock and the choice belong with the claims
		if err := stage(ctx, r.ch, j.ID, c.n, version, cands, changed); err != nil {
			return err
		}
		lap(&ph.Stage)
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
			d.SubXDR(&rater.XDR{Rating: cands[i].old})
			d.AddXDR(&news[i])
			t.add(&cands[i].old, &news[i].Rating)
		}
		if err := r.w.Write(ctx, news, false); err != nil {
			return fmt.Errorf("write the new xDRs: %w", err)
		}
		lap(&ph.Write)
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
	if err := r.record(ctx, tx, j, t, p.info); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit the chunk: %w", err)
	}
	lap(&ph.Balances)
	return nil
}

// claimsOf reads the dedupe claims (key, content, seen_at) of the keys $1
// with one index probe per key, whatever the planner's statistics say: as
// a plain key = ANY($1), a few thousand keys look dearer than reading the
// whole of cdr_keys.
const claimsOf = `SELECT c.key, c.content, c.seen_at FROM unnest($1::uuid[]) AS u(key)
	CROSS JOIN LATERAL (SELECT * FROM cdr_keys WHERE key = u.key LIMIT 1) AS c`

// byArrival orders candidates as their raw CDRs arrived: received, then
// partition and offset.
func byArrival(a, b *candidate) int {
	if c := a.received.Compare(b.received); c != 0 {
		return c
	}
	if c := cmp.Compare(a.partition, b.partition); c != 0 {
		return c
	}
	return cmp.Compare(a.offset, b.offset)
}

// otherCDRs reports, by index in xs, the claims of holders that another
// CDR holds: a claim recording other content than xs[k]'s, made within the
// dedupe window of xs[k]'s arrival (the worker's test for a conflicting
// re-send). A claim with the same content is this very CDR's (its message
// billed it before the catalog changed, or this job did in an attempt that
// died), and one without content is taken for it, as the worker takes it.
func otherCDRs(ctx context.Context, tx pgx.Tx, holders map[int]sinks.Holder, xs []*rater.XDR,
	cands []candidate, write, claim []int) (map[int]bool, error) {
	keys := make([][16]byte, 0, len(holders))
	for k := range holders {
		keys = append(keys, xs[k].Key)
	}
	held, err := readClaims(ctx, tx, keys)
	if err != nil {
		return nil, err
	}
	out := map[int]bool{}
	for k := range holders {
		if held[xs[k].Key].otherCDR(xs[k].Content, cands[write[claim[k]]].received) {
			out[k] = true
		}
	}
	return out, nil
}

// heldClaim is a dedupe claim as a job weighs it: the content hash of the
// CDR that claimed the key (nil when unknown) and when it was claimed.
type heldClaim struct {
	content *int64
	seen    time.Time
}

// otherCDR reports whether the claim was made for another CDR with the
// same switch and id — other content — within the dedupe window of a CDR
// that arrived at received: billing that CDR too would bill the switch and
// id twice. The zero heldClaim (no claim) is no other CDR.
func (h heldClaim) otherCDR(content uint64, received time.Time) bool {
	return h.content != nil && uint64(*h.content) != content && h.seen.Sub(received).Abs() < sinks.DedupeWindow
}

// readClaims reads the dedupe claims of keys, by key.
func readClaims(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, keys [][16]byte) (map[[16]byte]heldClaim, error) {
	rows, err := q.Query(ctx, claimsOf, keys)
	if err != nil {
		return nil, fmt.Errorf("read the dedupe claims: %w", err)
	}
	held := map[[16]byte]heldClaim{}
	var (
		key [16]byte
		h   heldClaim
	)
	if _, err := pgx.ForEachRow(rows, []any{&key, &h.content, &h.seen}, func() error { held[key] = h; return nil }); err != nil {
		return nil, fmt.Errorf("read the dedupe claims: %w", err)
	}
	return held, nil
}

// claim takes the dedupe claims of xs for job in a transaction of its own,
// committed at once — as a worker claims before it takes its version — and
// returns the keys another holder has. A job that dies later leaves its
// claims; resumed, it finds them its own.
func (r *Runner) claim(ctx context.Context, job int64, xs []*rater.XDR) (map[int]sinks.Holder, error) {
	if len(xs) == 0 {
		return nil, nil
	}
	tx, err := r.pg.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	holders, err := sinks.ClaimForJob(ctx, tx, job, xs)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit the dedupe claims: %w", err)
	}
	return holders, nil
}

// topic is the CDR topic a new job checks the workers' stored offsets of:
// the configured one when workers committed on it; else, when workers
// committed on exactly one other topic, that one (a job checking a topic no
// worker reads would take every CDR for in flight and change nothing); none
// at all, the configured one (no worker billed anything yet).
func (r *Runner) topic(ctx context.Context) (string, error) {
	rows, err := r.pg.Query(ctx, `SELECT DISTINCT topic FROM consumed_offsets ORDER BY topic`)
	if err != nil {
		return "", fmt.Errorf("read the workers' topics: %w", err)
	}
	topics, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("read the workers' topics: %w", err)
	}
	switch {
	case len(topics) == 0 || slices.Contains(topics, r.cfg.Topic):
		return r.cfg.Topic, nil
	case len(topics) == 1:
		r.log.Warn("no worker committed on the configured topic; the job checks the one topic workers committed on",
			"configured", r.cfg.Topic, "topic", topics[0])
		return topics[0], nil
	}
	return "", &TopicError{Configured: r.cfg.Topic, Topics: topics}
}

// TopicError is a job refused because no worker committed on the
// configured CDR topic while workers committed on several others: which
// one the job must check is the operator's to say. The API answers it 409.
type TopicError struct {
	Configured string
	Topics     []string // the topics workers committed on
}

func (e *TopicError) Error() string {
	return fmt.Sprintf("no worker committed on topic %q (TARIFA_KAFKA_TOPIC, --topic); workers committed on %s: name the workers' topic",
		e.Configured, strings.Join(e.Topics, ", "))
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

// readOffsets reads every stored offset of topic, without locking them.
func readOffsets(ctx context.Context, pg *pgxpool.Pool, topic string) (map[int32]int64, error) {
	rows, err := pg.Query(ctx, `SELECT "partition", next_offset FROM consumed_offsets WHERE topic = $1`, topic)
	if err != nil {
		return nil, fmt.Errorf("read the partitions' offsets: %w", err)
	}
	next := map[int32]int64{}
	var p int32
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&p, &n}, func() error { next[p] = n; return nil }); err != nil {
		return nil, fmt.Errorf("read the partitions' offsets: %w", err)
	}
	return next, nil
}

func offsetsEqual(a, b map[int32]int64) bool {
	if a == nil || len(a) != len(b) {
		return false
	}
	for p, n := range a {
		if m, ok := b[p]; !ok || m != n {
			return false
		}
	}
	return true
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
	if !j.DryRun && !errors.Is(err, errLockLost) { // without the lock, the job may be another process's by now
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
	c := newTally(t.scope)
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

// scope is the clients whose balances a reseller's job may move (sorted);
// nil for an admin's job: every client.
type scope []int64

// has reports whether client id is in the scope (0, no client, always is).
func (sc scope) has(id int64) bool {
	if sc == nil || id == 0 {
		return true
	}
	_, ok := slices.BinarySearch(sc, id)
	return ok
}

// movedOutside reports whether rating a call new instead of old moves the
// balance of a client outside the scope: a reseller's job leaves such a
// call alone. A call of the reseller's client carried by someone else's
// vendor is rerated as long as the vendor's side stays as it was.
func (sc scope) movedOutside(old, new *rater.Rating) bool {
	if sc == nil {
		return false
	}
	var ids, micros [4]int64
	n := 0
	add := func(client, micro int64) {
		for k := range n {
			if ids[k] == client {
				micros[k] += micro
				return
			}
		}
		ids[n], micros[n] = client, micro
		n++
	}
	(&rater.XDR{Rating: *old}).Deltas(func(client, micro int64) { add(client, -micro) })
	(&rater.XDR{Rating: *new}).Deltas(add)
	for k := range n {
		if micros[k] != 0 && !sc.has(ids[k]) {
			return true
		}
	}
	return false
}

// scopeClients returns the ids of the clients of reseller's subtree, sorted.
func scopeClients(ctx context.Context, pg *pgxpool.Pool, reseller int64) (scope, error) {
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
	return scope(ids), nil
}

// touchedInvoices lists the invoices of the job's clients whose period
// (the client's dates, in the timezone the invoice was made in) overlaps
// the selection. The job never changes them: package billing puts the
// difference on the client's next invoice as a correction line.
func touchedInvoices(ctx context.Context, pg *pgxpool.Pool, j *Job) ([]Invoice, error) {
	out := []Invoice{}
	if len(j.Clients) == 0 {
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
