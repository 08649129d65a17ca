package rerate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned for a job id that does not exist (or that the
// caller's scope does not reach).
var ErrNotFound = errors.New("no such rerating job")

// ErrNotResumable is returned for a job that is not unfinished: a dry run,
// or a job that is done.
var ErrNotResumable = errors.New("only a running or failed job is resumed")

// BusyError refuses a confirmed job while another job is unfinished: two
// jobs never interleave (DOMAIN.md "Rerating"). Running tells whether the
// other job is being worked on right now, or was stopped and waits to be
// resumed.
type BusyError struct {
	Job     int64
	Running bool
}

func (e *BusyError) Error() string {
	switch {
	case e.Running && e.Job == 0:
		return "another rerating job is running; wait for it to finish"
	case e.Running:
		return fmt.Sprintf("rerating job %d is running; wait for it to finish", e.Job)
	}
	return fmt.Sprintf("rerating job %d was stopped before it finished; finish it first "+
		"(`tarifa rerate resume %d`, or POST /v1/rerate-jobs/%d/resume)", e.Job, e.Job, e.Job)
}

// CatalogChangedError refuses to resume a job whose catalog changed since
// it started: the chunks it did were rated against the catalog of then, and
// rating the rest against another would leave one job with two tariffs. A
// resume that asks for it (ResumeRequest.CurrentCatalog, `tarifa rerate
// resume --with-current-catalog`) rates the rest against the catalog now,
// and the job records that version as the one it resumed with.
type CatalogChangedError struct {
	Job        int64
	Started    int64 // the catalog version the job started with
	Now        int64
	ResumedYet bool // the job was already resumed with another version once
}

func (e *CatalogChangedError) Error() string {
	return fmt.Sprintf("the catalog changed since rerating job %d started (version %d, now %d): the chunks it did were rated "+
		"against version %d; resume it with --with-current-catalog (the API's \"current_catalog\": true) to rate the rest against the catalog as it is now",
		e.Job, e.Started, e.Now, e.Started)
}

// jobLock is the advisory lock a confirmed job holds while it runs: a job
// whose process died releases it with its session.
const jobLock = 0x7a72e7a7e

// chunkPlan is one setup-time range of a job, planned when it starts.
type chunkPlan struct {
	n        int
	from, to time.Time
	planned  int64
	done     bool
}

const jobColumns = `id, state, dry_run, selection, actor, coalesce(reseller_id, 0), topic, catalog_version,
	coalesce(resumed_catalog_version, 0), created_at, finished_at, planned, selected, changed, skipped, result, error`

func scanJob(row pgx.Row) (*Job, error) {
	var j Job
	var sel, result []byte
	if err := row.Scan(&j.ID, &j.State, &j.DryRun, &sel, &j.Actor, &j.ResellerID, &j.Topic, &j.CatalogVersion, &j.ResumedCatalogVersion,
		&j.CreatedAt, &j.FinishedAt, &j.Planned, &j.Selected, &j.Changed, &j.Skipped, &result, &j.Error); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	if err := json.Unmarshal(sel, &j.Selection); err != nil {
		return nil, fmt.Errorf("job %d: selection: %w", j.ID, err)
	}
	var r struct {
		Clients     []ClientDelta `json:"clients"`
		Transitions []Transition  `json:"transitions"`
		Invoices    []Invoice     `json:"invoices"`
	}
	if len(result) > 2 {
		if err := json.Unmarshal(result, &r); err != nil {
			return nil, fmt.Errorf("job %d: result: %w", j.ID, err)
		}
	}
	j.Clients, j.Transitions, j.Invoices = r.Clients, r.Transitions, r.Invoices
	if j.Clients == nil {
		j.Clients = []ClientDelta{}
	}
	if j.Transitions == nil {
		j.Transitions = []Transition{}
	}
	if j.Invoices == nil {
		j.Invoices = []Invoice{}
	}
	return &j, nil
}

// Get returns job id. A reseller (scope > 0) reaches the jobs of its
// subtree's resellers only.
func Get(ctx context.Context, pg *pgxpool.Pool, id, scope int64) (*Job, error) {
	j, err := scanJob(pg.QueryRow(ctx, `SELECT `+jobColumns+` FROM rerate_jobs WHERE id = $1`, id))
	if err != nil {
		return nil, err
	}
	if scope > 0 {
		ok, err := inSubtree(ctx, pg, scope, j.ResellerID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrNotFound
		}
	}
	return j, nil
}

// List returns the jobs, newest first, at most limit; a reseller (scope >
// 0) sees those of its subtree's resellers.
func List(ctx context.Context, pg *pgxpool.Pool, scope int64, limit int) ([]*Job, error) {
	q := `SELECT ` + jobColumns + ` FROM rerate_jobs ORDER BY id DESC LIMIT $1`
	args := []any{limit}
	if scope > 0 {
		q = `WITH RECURSIVE tree AS (SELECT id FROM resellers WHERE id = $2 UNION ALL SELECT r.id FROM resellers r JOIN tree t ON r.parent_id = t.id)
			SELECT ` + jobColumns + ` FROM rerate_jobs WHERE reseller_id IN (SELECT id FROM tree) ORDER BY id DESC LIMIT $1`
		args = append(args, scope)
	}
	rows, err := pg.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list rerating jobs: %w", err)
	}
	defer rows.Close()
	var out []*Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// inSubtree reports whether reseller is root or below it.
func inSubtree(ctx context.Context, pg *pgxpool.Pool, root, reseller int64) (bool, error) {
	var ok bool
	err := pg.QueryRow(ctx, `WITH RECURSIVE up AS (SELECT id, parent_id FROM resellers WHERE id = $2
		UNION ALL SELECT r.id, r.parent_id FROM resellers r JOIN up ON r.id = up.parent_id)
		SELECT EXISTS (SELECT 1 FROM up WHERE id = $1)`, root, reseller).Scan(&ok)
	return ok, err
}

// unfinished returns the unfinished confirmed job, if any (there is at
// most one: a job is refused while another is unfinished).
func unfinished(ctx context.Context, q pgx.Tx) (*Job, string, error) {
	var id int64
	var key string
	err := q.QueryRow(ctx, `SELECT id, selection_key FROM rerate_jobs WHERE state IN ('running', 'failed') ORDER BY id LIMIT 1`).Scan(&id, &key)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	j, err := scanJob(q.QueryRow(ctx, `SELECT `+jobColumns+` FROM rerate_jobs WHERE id = $1`, id))
	return j, key, err
}

// loadChunks returns a job's plan.
func loadChunks(ctx context.Context, pg *pgxpool.Pool, job int64) ([]chunkPlan, error) {
	rows, err := pg.Query(ctx, `SELECT chunk, from_time, to_time, planned, done_at IS NOT NULL FROM rerate_chunks WHERE job_id = $1 ORDER BY chunk`, job)
	if err != nil {
		return nil, fmt.Errorf("load the plan of job %d: %w", job, err)
	}
	defer rows.Close()
	var out []chunkPlan
	for rows.Next() {
		var c chunkPlan
		if err := rows.Scan(&c.n, &c.from, &c.to, &c.planned, &c.done); err != nil {
			return nil, err
		}
		c.from, c.to = c.from.UTC(), c.to.UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// resultJSON is what the jobs table's result column holds.
func resultJSON(j *Job) []byte {
	b, err := json.Marshal(struct {
		Clients     []ClientDelta `json:"clients"`
		Transitions []Transition  `json:"transitions"`
		Invoices    []Invoice     `json:"invoices"`
	}{j.Clients, j.Transitions, j.Invoices})
	if err != nil {
		panic("BUG: job result does not marshal: " + err.Error())
	}
	return b
}
