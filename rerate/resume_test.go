package rerate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// killAt returns a runner whose job dies after it wrote chunk n's xDRs and
// before their balances moved, every time.
func (w *world) killAt(n int) *Runner {
	r := w.runner(Config{Retries: -1})
	r.afterWrite = func(chunk int) error {
		if chunk == n {
			return errors.New("killed")
		}
		return nil
	}
	return r
}

// TestRerateResumeAfterCatalogChange: a job stopped half-way is not resumed
// against a catalog that changed since it started, unless the resume asks
// for it; then its remaining chunks are rated against the catalog now, the
// job says so, and every balance matches: the chunks done before at the
// first fix, the rest at the second.
func TestRerateResumeAfterCatalogChange(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	calls := traffic(240, 11, day)
	w.send(0, calls[:120])
	w.send(1, calls[120:])
	before := w.m.clone()
	w.exec(`UPDATE rates SET rate = 0.09 WHERE rate_table_id = 1 AND code = '447'`)
	first := before.clone()
	first.rates[1]["447"] = decimal.RequireFromString("0.09")

	sel := allOf(day, day.Add(24*time.Hour))
	if _, err := w.killAt(2).Run(ctx, Request{Selection: sel, Actor: "test"}); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the job did not stop where it was killed: %v", err)
	}
	started, err := Get(ctx, w.db.PG, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cut time.Time
	if err := w.db.PG.QueryRow(ctx, `SELECT from_time FROM rerate_chunks WHERE job_id = 1 AND chunk = 2`).Scan(&cut); err != nil {
		t.Fatal(err)
	}

	w.exec(`UPDATE rates SET rate = 0.10 WHERE rate_table_id = 1 AND code = '447'`)
	second := before.clone()
	second.rates[1]["447"] = decimal.RequireFromString("0.10")
	r := w.runner(Config{})
	var changed *CatalogChangedError
	if _, err := r.Resume(ctx, ResumeRequest{ID: 1}); !errors.As(err, &changed) || changed.Started != started.CatalogVersion ||
		!strings.Contains(err.Error(), "--with-current-catalog") {
		t.Fatalf("resumed against a changed catalog without asking: %v", err)
	}
	if _, err := r.Run(ctx, Request{Selection: sel, Actor: "test"}); !errors.As(err, &changed) {
		t.Fatalf("the same command again against a changed catalog: %v, want a CatalogChangedError", err)
	}
	// The API's janitor does not resume it either: it marks the job failed
	// with the reason.
	w.exec(`UPDATE rerate_jobs SET state = 'running' WHERE id = 1`)
	if _, err := r.ResumeAbandoned(ctx); !errors.As(err, &changed) {
		t.Fatalf("the janitor resumed a job whose catalog changed: %v", err)
	}
	if j, _ := Get(ctx, w.db.PG, 1, 0); j.State != StateFailed || !strings.Contains(j.Error, "catalog changed") {
		t.Fatalf("the janitor left the job %s (%q), want failed with the reason", j.State, j.Error)
	}

	done, err := r.Resume(ctx, ResumeRequest{ID: 1, CurrentCatalog: true})
	if err != nil {
		t.Fatal(err)
	}
	if done.State != StateDone || done.CatalogVersion != started.CatalogVersion || done.ResumedCatalogVersion <= started.CatalogVersion {
		t.Fatalf("resumed job: state %s, catalog %d, resumed with %d; want done, %d, a later version",
			done.State, done.CatalogVersion, done.ResumedCatalogVersion, started.CatalogVersion)
	}
	w.check(w.expected(first, second, func(c *testCall) bool { return !c.setup.Before(cut) }))
}

// lockHolder is the backend holding this database's rerating lock.
const lockHolder = `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND ((classid::bigint << 32) | objid::bigint) = $1`

// TestRerateLockLostThenResumedByTheJanitor: a job whose database session
// holding the lock dies stops at its next chunk without touching anything
// (another process may own the job by now) and stays running; the API's
// janitor, finding its lock free, finishes it, and every balance moved once.
func TestRerateLockLostThenResumedByTheJanitor(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	w.send(0, traffic(200, 12, day))
	before := w.m.clone()
	w.exec(`UPDATE rates SET rate = 0.004 WHERE rate_table_id = 2 AND code = '44'`)
	after := before.clone()
	after.rates[2]["44"] = decimal.RequireFromString("0.004")

	r := w.runner(Config{Retries: 3})
	janitor := w.runner(Config{})
	r.beforeLock = func(chunk int) {
		if chunk != 2 {
			return
		}
		// While the job holds its lock, the janitor finds nothing to do.
		if j, err := janitor.ResumeAbandoned(ctx); j != nil || err != nil {
			t.Errorf("the janitor took a job that was running: %v %v", j, err)
		}
		var pid int64
		if err := w.db.PG.QueryRow(ctx, lockHolder, int64(jobLock)).Scan(&pid); err != nil {
			t.Errorf("no backend holds the lock: %v", err)
			return
		}
		w.exec(`SELECT pg_terminate_backend(` + decimal.NewFromInt(pid).String() + `)`)
	}
	_, err := r.Run(ctx, Request{Selection: allOf(day, day.Add(24*time.Hour)), Actor: "test"})
	if !errors.Is(err, errLockLost) {
		t.Fatalf("a job that lost its lock: %v, want it stopped with errLockLost", err)
	}
	j, err := Get(ctx, w.db.PG, 1, 0)
	if err != nil || j.State != StateRunning {
		t.Fatalf("job after it lost its lock: %+v %v; want it left running", j, err)
	}
	var undone int
	if err := w.db.PG.QueryRow(ctx, `SELECT count(*) FROM rerate_chunks WHERE job_id = 1 AND done_at IS NULL`).Scan(&undone); err != nil || undone == 0 {
		t.Fatalf("%d chunks left (%v), want some", undone, err)
	}
	done, err := janitor.ResumeAbandoned(ctx)
	if err != nil || done == nil || done.State != StateDone {
		t.Fatalf("the janitor: %+v %v, want the job done", done, err)
	}
	w.check(w.expected(before, after, nil))
	if again, err := janitor.ResumeAbandoned(ctx); again != nil || err != nil {
		t.Fatalf("the janitor with nothing to do: %v %v", again, err)
	}
}

// TestRerateScopeLeavesOutsideVendorsAsTheyWere: a reseller rerates its own
// customers' calls although another reseller's vendor carried them, as
// long as the vendor's side stays as it was; its dry run and its job show
// no row of that vendor. A fix that would move the vendor's balance leaves
// those calls alone.
func TestRerateScopeLeavesOutsideVendorsAsTheyWere(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	w.exec(`UPDATE clients SET reseller_id = 2 WHERE id = 10`) // V is the other reseller's vendor
	w.send(0, traffic(150, 13, day))
	before := w.m.clone()
	w.exec(`UPDATE rates SET rate = 0.09 WHERE rate_table_id = 1 AND code = '447'`)
	after := before.clone()
	after.rates[1]["447"] = decimal.RequireFromString("0.09")

	sel := allOf(day, day.Add(24*time.Hour))
	r := w.runner(Config{})
	dry, err := r.Run(ctx, Request{Selection: sel, Actor: "test", Scope: 1, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	j, err := r.Run(ctx, Request{Selection: sel, Actor: "test", Scope: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, job := range []*Job{dry, j} {
		if job.Changed == 0 {
			t.Errorf("job %d (dry run %v) changed nothing", job.ID, job.DryRun)
		}
		for _, c := range job.Clients {
			if c.ClientID == 10 {
				t.Errorf("job %d (dry run %v) shows the other reseller's vendor: %+v", job.ID, job.DryRun, c)
			}
		}
	}
	if dry.Changed != j.Changed || dry.Selected != j.Selected {
		t.Errorf("dry run changed %d of %d, the job %d of %d", dry.Changed, dry.Selected, j.Changed, j.Selected)
	}
	w.check(w.expected(before, after, nil))

	// The vendor's rate changes: the reseller may not move its balance.
	w.exec(`UPDATE rates SET rate = 0.004 WHERE rate_table_id = 2 AND code = '44'`)
	j, err = r.Run(ctx, Request{Selection: sel, Actor: "test", Scope: 1})
	if err != nil {
		t.Fatal(err)
	}
	if j.Skipped == 0 || j.Changed != 0 {
		t.Errorf("the vendor's fix: %d changed, %d left alone; want none changed, some left alone", j.Changed, j.Skipped)
	}
	w.check(w.expected(before, after, nil))
}

// TestRerateFindsTheWorkersTopic: a job configured with a topic no worker
// committed on checks the one topic workers did (rather than taking every
// CDR for in flight and changing nothing), and refuses, naming them, when
// there are several.
func TestRerateFindsTheWorkersTopic(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	w.send(0, traffic(60, 14, day))
	before := w.m.clone()
	w.exec(`UPDATE rates SET rate = 0.09 WHERE rate_table_id = 1 AND code = '447'`)
	after := before.clone()
	after.rates[1]["447"] = decimal.RequireFromString("0.09")

	sel := allOf(day, day.Add(24*time.Hour))
	j, err := w.runner(Config{Topic: "cdrs-typo"}).Run(ctx, Request{Selection: sel, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if j.Topic != "cdrs" || j.Changed == 0 {
		t.Fatalf("job on topic %q changed %d; want it on the workers' topic cdrs, changing calls", j.Topic, j.Changed)
	}
	w.check(w.expected(before, after, nil))

	w.exec(`INSERT INTO consumed_offsets (topic, "partition", next_offset) VALUES ('cdrs-eu', 0, 7)`)
	_, err = w.runner(Config{Topic: "cdrs-typo"}).Run(ctx, Request{Selection: sel, Actor: "test", DryRun: true})
	var te *TopicError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), `"cdrs-typo"`) || !strings.Contains(err.Error(), "cdrs, cdrs-eu") {
		t.Fatalf("a topic no worker committed on, with two that did: %v", err)
	}
}

func TestBusyErrorAndZoneMessages(t *testing.T) {
	if msg := (&BusyError{Running: true}).Error(); strings.Contains(msg, "job 0") || !strings.Contains(msg, "another rerating job is running") {
		t.Errorf("busy, job not recorded yet: %q", msg)
	}
	if msg := (&BusyError{Job: 7}).Error(); !strings.Contains(msg, "tarifa rerate resume 7") || !strings.Contains(msg, "/v1/rerate-jobs/7/resume") {
		t.Errorf("busy, job stopped: %q", msg)
	}
	s := Selection{From: day, To: day.Add(time.Hour), TZ: "Local"}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "Local") {
		t.Errorf("tz Local: %v, want it refused", err)
	}
}
