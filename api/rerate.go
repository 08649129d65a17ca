package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/rerate"
)

// Rerating jobs (DESIGN.md "Rerating"): POST /v1/rerate-jobs starts one
// ({"from", "to", "tz", "clients", "side", "status", "reasons", "codes",
// "dry_run", "current_catalog"}), GET reads them. A job runs in the server, not in the
// request: the answer waits up to Config.RerateWait for it to finish (201
// with the finished job) and otherwise answers 202 with the job so far,
// which GET /v1/rerate-jobs/{id} follows. A reseller rerates its subtree
// only (calls that would move a client outside it are left alone and
// counted as skipped); a client token may not rerate. A stopped server
// stops its jobs where a chunk ends or is rolled back; they are resumed
// with POST /v1/rerate-jobs/{id}/resume ({"current_catalog": true} when the
// catalog changed since the job started) or `tarifa rerate resume`. A job
// whose process died is resumed by the server itself (Server.ResumeAbandoned).

func (s *Server) rerateRoutes() []route {
	const ar = admin | reseller
	return []route{
		{"POST", "/v1/rerate-jobs", ar, "start a rerating job: {from, to, tz, clients, side, status, reasons, codes, dry_run}", s.startRerate},
		{"GET", "/v1/rerate-jobs", ar, "list rerating jobs, newest first (?limit)", s.listRerate},
		{"GET", "/v1/rerate-jobs/{id}", ar, "read a rerating job: state, counts, per-client deltas, transitions, invoices", s.getRerate},
		{"POST", "/v1/rerate-jobs/{id}/resume", ar, "finish a rerating job that was stopped ({current_catalog: true} when the catalog changed since it started)", s.resumeRerate},
	}
}

// jobs runs the server's rerating jobs in the background.
type jobs struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (s *Server) rerater() (*rerate.Runner, error) {
	if s.cfg.Rerate == nil {
		return nil, &apiError{Status: http.StatusServiceUnavailable, Msg: "rerating needs ClickHouse, which this server was started without"}
	}
	return s.cfg.Rerate, nil
}

// rerateScope is the reseller a job of p is scoped to (0: admin).
func rerateScope(p *principal) int64 {
	if p.role == RoleReseller {
		return p.resellerID
	}
	return 0
}

func (s *Server) startRerate(w http.ResponseWriter, r *http.Request, p *principal) error {
	runner, err := s.rerater()
	if err != nil {
		return err
	}
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	var in struct {
		From, To, TZ, Side, Status string
		Clients                    []json.RawMessage
		Reasons, Codes             []string
		DryRun                     *bool `json:"dry_run"`
		CurrentCatalog             bool  `json:"current_catalog"`
	}
	for name, raw := range body {
		var dst any
		switch name {
		case "from":
			dst = &in.From
		case "to":
			dst = &in.To
		case "tz":
			dst = &in.TZ
		case "side":
			dst = &in.Side
		case "status":
			dst = &in.Status
		case "clients":
			dst = &in.Clients
		case "reasons":
			dst = &in.Reasons
		case "codes":
			dst = &in.Codes
		case "dry_run":
			dst = &in.DryRun
		case "current_catalog":
			dst = &in.CurrentCatalog
		default:
			return invalid(name, "unknown field")
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return invalid(name, "wrong type")
		}
	}
	if in.DryRun == nil {
		return invalid("dry_run", "required: true for a dry run, false to run the job")
	}
	period, err := report.ParsePeriod(in.From, in.To, in.TZ)
	if err != nil {
		var pe *report.ParamError
		if errors.As(err, &pe) {
			return invalid(pe.Param, "%s", pe.Msg)
		}
		return invalid("from", "%v", err)
	}
	sel := rerate.Selection{From: period.From, To: period.To, TZ: period.Loc.String(), Side: rerate.Side(in.Side),
		Status: rerate.Status(in.Status), Reasons: in.Reasons, Codes: in.Codes}
	for _, c := range in.Clients {
		id, err := s.rerateClient(r.Context(), p, c)
		if err != nil {
			return err
		}
		sel.Clients = append(sel.Clients, id)
	}
	if err := sel.Validate(); err != nil {
		return invalid("", "%v", err)
	}
	req := rerate.Request{Selection: sel, DryRun: *in.DryRun, Actor: p.actor(), Scope: rerateScope(p), CurrentCatalog: in.CurrentCatalog}
	return s.runRerate(w, r, func(ctx context.Context, started func(*rerate.Job)) (*rerate.Job, error) {
		req.Started = started
		return runner.Run(ctx, req)
	})
}

func (s *Server) resumeRerate(w http.ResponseWriter, r *http.Request, p *principal) error {
	runner, err := s.rerater()
	if err != nil {
		return err
	}
	id, err := pathID(r, "id", "rerating job")
	if err != nil {
		return err
	}
	if _, err := rerate.Get(r.Context(), s.pool, id, rerateScope(p)); errors.Is(err, rerate.ErrNotFound) {
		return notFound("rerating job")
	} else if err != nil {
		return err
	}
	req := rerate.ResumeRequest{ID: id, Scope: rerateScope(p)}
	if r.ContentLength != 0 {
		body, err := decodeObject(r)
		if err != nil {
			return err
		}
		for name, raw := range body {
			if name != "current_catalog" {
				return invalid(name, "unknown field")
			}
			if err := json.Unmarshal(raw, &req.CurrentCatalog); err != nil {
				return invalid(name, "wrong type")
			}
		}
	}
	return s.runRerate(w, r, func(ctx context.Context, started func(*rerate.Job)) (*rerate.Job, error) {
		req.Started = started
		return runner.Resume(ctx, req)
	})
}

// runRerate runs a job in the background and answers when it is done (201)
// or after Config.RerateWait (202, the job so far).
func (s *Server) runRerate(w http.ResponseWriter, r *http.Request, run func(context.Context, func(*rerate.Job)) (*rerate.Job, error)) error {
	type outcome struct {
		j   *rerate.Job
		err error
	}
	started := make(chan *rerate.Job, 1)
	finished := make(chan outcome, 1)
	s.jobs.wg.Add(1)
	go func() {
		defer s.jobs.wg.Done()
		j, err := run(s.jobs.ctx, func(j *rerate.Job) { started <- j })
		if err != nil && j != nil {
			s.log.Error("rerating job stopped", "job", j.ID, "err", err)
		}
		finished <- outcome{j, err}
	}()
	timeout := time.NewTimer(s.cfg.RerateWait)
	defer timeout.Stop()
	var job *rerate.Job
	expired := false
	accepted := func() error {
		cur, err := rerate.Get(r.Context(), s.pool, job.ID, 0)
		if err != nil {
			return err
		}
		w.Header().Set("Location", "/v1/rerate-jobs/"+strconv.FormatInt(job.ID, 10))
		writeJSON(w, http.StatusAccepted, cur)
		return nil
	}
	for {
		select {
		case o := <-finished:
			if o.err != nil {
				var busy *rerate.BusyError
				var changed *rerate.CatalogChangedError
				var topic *rerate.TopicError
				switch {
				case errors.As(o.err, &topic):
					return conflict("", "%v", topic)
				case errors.As(o.err, &busy):
					return conflict("", "%v", busy)
				case errors.As(o.err, &changed):
					return conflict("current_catalog", "%v", changed)
				case errors.Is(o.err, rerate.ErrNotResumable):
					return conflict("", "%v", o.err)
				}
				return o.err
			}
			writeJSON(w, http.StatusCreated, o.j)
			return nil
		case job = <-started:
			if expired {
				return accepted()
			}
		case <-timeout.C:
			if job == nil {
				expired = true // not even recorded yet: answer once it is
				continue
			}
			return accepted()
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}
}

// rerateClient reads a client given by id (a number) or name (a string),
// in p's scope.
func (s *Server) rerateClient(ctx context.Context, p *principal, raw json.RawMessage) (int64, error) {
	var id, reseller int64
	var name string
	var err error
	switch {
	case json.Unmarshal(raw, &id) == nil:
		err = s.pool.QueryRow(ctx, `SELECT id, reseller_id FROM clients WHERE id = $1`, id).Scan(&id, &reseller)
	case json.Unmarshal(raw, &name) == nil:
		err = s.pool.QueryRow(ctx, `SELECT id, reseller_id FROM clients WHERE name = $1`, name).Scan(&id, &reseller)
	default:
		return 0, invalid("clients", "each client is an id or a name")
	}
	if err != nil {
		return 0, invalid("clients", "no client %s", raw)
	}
	if p.role == RoleReseller && !p.inSubtree(reseller) {
		return 0, invalid("clients", "no client %s", raw)
	}
	return id, nil
}

func (s *Server) listRerate(w http.ResponseWriter, r *http.Request, p *principal) error {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return invalid("limit", "want 1 to 1000")
		}
		limit = n
	}
	list, err := rerate.List(r.Context(), s.pool, rerateScope(p), limit)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*rerate.Job{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": list})
	return nil
}

func (s *Server) getRerate(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "id", "rerating job")
	if err != nil {
		return err
	}
	j, err := rerate.Get(r.Context(), s.pool, id, rerateScope(p))
	if errors.Is(err, rerate.ErrNotFound) {
		return notFound("rerating job")
	}
	if err != nil {
		return fmt.Errorf("read rerating job %d: %w", id, err)
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

// ResumeAbandoned finishes, in the background, a rerating job whose process
// died (see rerate.Runner.ResumeAbandoned) now and every interval until
// the server is closed; tarifa api calls it at start.
func (s *Server) ResumeAbandoned(interval time.Duration) {
	if s.cfg.Rerate == nil {
		return
	}
	s.jobs.wg.Add(1)
	go func() {
		defer s.jobs.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			j, err := s.cfg.Rerate.ResumeAbandoned(s.jobs.ctx)
			switch {
			case err != nil && s.jobs.ctx.Err() == nil:
				s.log.Error("a rerating job whose process stopped could not be finished", "err", err)
			case j != nil && err == nil:
				s.log.Info("finished a rerating job whose process stopped", "job", j.ID, "state", j.State)
			}
			select {
			case <-s.jobs.ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops the server's rerating jobs (each where its chunk ends or is
// rolled back, resumable) and waits for them.
func (s *Server) Close() {
	s.jobs.cancel()
	s.jobs.wg.Wait()
}
