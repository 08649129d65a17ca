package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tarifa/tarifa/billing"
	"github.com/tarifa/tarifa/catalog"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/rerate"
	"github.com/tarifa/tarifa/sinks"
)

// Config holds the server's settings.
type Config struct {
	// MaxCall is the longest call authorize allows: the answer for
	// unlimited (postpaid) clients and the cap for prepaid ones. Default 4h.
	MaxCall time.Duration
	// MaxBody bounds a JSON request body. Default 1 MiB: the largest
	// object (a client) is a few KiB, and free text is capped (notes at
	// 4 KiB), so nothing legitimate comes near it.
	MaxBody int64
	// Reports serves /v1/reports/…; nil answers them 503 (no ClickHouse).
	Reports *report.Reports
	// Rerate runs /v1/rerate-jobs; nil answers them 503 (no ClickHouse).
	Rerate *rerate.Runner
	// Billing serves /v1/invoices, /v1/billruns, /v1/statements and
	// /v1/mail; nil answers them 503 (no ClickHouse).
	Billing *billing.Service
	// RerateWait is how long POST /v1/rerate-jobs waits for its job to
	// finish before it answers 202 with the job so far. Default 20s.
	RerateWait time.Duration
	// MaxDeck bounds a rate deck CSV body (POST /v1/rate-tables/{id}/rates),
	// the one body allowed to be large. Default 64 MiB (about a million
	// codes).
	MaxDeck int64
	// ReadTimeout bounds reading a whole request, body included, so that a
	// body dripped a byte at a time holds no connection. Default 30s.
	ReadTimeout time.Duration
	// DeckReadTimeout replaces ReadTimeout for a deck upload. Default 10m.
	DeckReadTimeout time.Duration
	// WriteTimeout bounds writing an answer. An export of clients gets it
	// afresh for every page, so a long export to a reader that keeps up is
	// not cut, while one that stops reading is. Default 30s.
	WriteTimeout time.Duration
	// IdleTimeout bounds a keep-alive connection between requests.
	// Default 2m.
	IdleTimeout time.Duration
}

// Validate fills defaults and checks the settings.
func (c *Config) Validate() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.MaxCall, 4*time.Hour)
	def(&c.ReadTimeout, 30*time.Second)
	def(&c.DeckReadTimeout, 10*time.Minute)
	def(&c.WriteTimeout, 30*time.Second)
	def(&c.IdleTimeout, 2*time.Minute)
	def(&c.RerateWait, 20*time.Second)
	if c.MaxBody == 0 {
		c.MaxBody = 1 << 20
	}
	if c.MaxDeck == 0 {
		c.MaxDeck = 64 << 20
	}
	switch {
	case c.MaxCall < time.Second:
		return fmt.Errorf("max call %s: want at least 1s", c.MaxCall)
	case c.MaxBody < 1024 || c.MaxDeck < 1024:
		return fmt.Errorf("max body %d, max deck %d: want at least 1024 bytes", c.MaxBody, c.MaxDeck)
	case c.ReadTimeout < 0 || c.DeckReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0:
		return errors.New("timeouts may not be negative")
	}
	return nil
}

// XDRCounter counts the rated records (xDRs) of a client, orig or term
// side; a full delete of a client is refused while it has any. The xDRs
// live in ClickHouse, which this package does not reach itself.
type XDRCounter func(ctx context.Context, clientID int64) (int64, error)

// Server is the management HTTP API. It is an http.Handler, safe for
// concurrent use; every request runs on the caller's goroutine and blocks
// on PostgreSQL only, holding a pooled connection only while a statement
// runs (never while a client reads an answer).
type Server struct {
	cfg    Config
	pool   *pgxpool.Pool
	xdrs   XDRCounter
	log    *slog.Logger
	mux    *http.ServeMux
	loader *sinks.CatalogLoader

	cat   atomic.Pointer[rater.Catalog] // last loaded, for authorize
	catMu sync.Mutex                    // serialises reloads

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	reloads  prometheus.Counter

	jobs jobs // rerating jobs running in the background
}

// New returns a server on pool. xdrs may be nil: a full delete of a client
// is then always refused, as its xDRs cannot be counted. Size the pool for
// the requests to be served at once: each holds a connection per statement.
func New(cfg Config, pool *pgxpool.Pool, xdrs XDRCounter, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("api config: %w", err)
	}
	s := &Server{
		cfg: cfg, pool: pool, xdrs: xdrs, log: log,
		mux:    http.NewServeMux(),
		loader: sinks.NewCatalogLoader(pool),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tarifa_api_requests_total", Help: "API requests by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tarifa_api_request_duration_seconds", Help: "API request latency by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"route"}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tarifa_api_catalog_reloads_total", Help: "Catalog loads made for authorize.",
		}),
	}
	for _, c := range []prometheus.Collector{s.requests, s.duration, s.reloads} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register api metrics: %w", err)
		}
	}
	s.jobs.ctx, s.jobs.cancel = context.WithCancel(context.Background())
	for _, rt := range s.routes() {
		s.mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
	return s, nil
}

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// HTTPServer returns an http.Server serving h (the Server itself, or a mux
// around it) with the Config's deadlines, so that clients that send or
// read slowly cannot hold connections.
func (s *Server) HTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(10*time.Second, s.cfg.ReadTimeout),
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// AdminOnly serves h to requests with an admin token only (401 without a
// valid token, 403 with another role), such as the API's /metrics when it
// has no address of its own.
func (s *Server) AdminOnly(h http.Handler) http.Handler {
	rt := route{method: "GET", path: "/metrics", roles: admin, h: func(w http.ResponseWriter, r *http.Request, _ *principal) error {
		h.ServeHTTP(w, r)
		return nil
	}}
	return s.wrap(rt)
}

// roles is the set of token roles that may call a route.
type roles uint8

const (
	admin roles = 1 << iota
	reseller
	client
	public // no token needed
)

// route is one endpoint; the route table drives the mux, the role checks
// and (through a test) the OpenAPI document.
type route struct {
	method, path string
	roles        roles
	summary      string
	h            func(w http.ResponseWriter, r *http.Request, p *principal) error
}

// deckRoute is the one route whose body is a deck CSV: Config.MaxDeck and
// DeckReadTimeout apply to it instead of MaxBody and ReadTimeout.
const deckRoute = "POST /v1/rate-tables/{id}/rates"

func (s *Server) routes() []route {
	const ar, arc = admin | reseller, admin | reseller | client
	return append([]route{
		{"GET", "/healthz", public, "liveness: the server answers and PostgreSQL is reachable", s.healthz},
		{"GET", "/v1/openapi.json", public, "this API's OpenAPI document", s.openapi},
		{"GET", "/v1/me", arc, "the caller's token: id, name, role and the reseller or client it belongs to", s.me},

		{"GET", "/v1/resellers", ar, "list resellers (?archived=true for deleted ones, ?parent_id)", s.listResellers},
		{"POST", "/v1/resellers", ar, "create a reseller", s.createH(catalog.Resellers)},
		{"GET", "/v1/resellers/{id}", ar, "read a reseller", s.getH(catalog.Resellers)},
		{"PATCH", "/v1/resellers/{id}", ar, "edit a reseller", s.updateH(catalog.Resellers)},
		{"DELETE", "/v1/resellers/{id}", ar, "archive a reseller (status deleted)", s.archiveH(catalog.Resellers, string(catalog.ResellerDeleted))},

		{"GET", "/v1/managers", ar, "list managers (?reseller_id, ?archived=true)", s.listManagers},
		{"POST", "/v1/managers", ar, "create a manager", s.createH(catalog.Managers)},
		{"GET", "/v1/managers/{id}", ar, "read a manager", s.getH(catalog.Managers)},
		{"PATCH", "/v1/managers/{id}", ar, "edit a manager", s.updateH(catalog.Managers)},
		{"DELETE", "/v1/managers/{id}", ar, "archive a manager (status deleted)", s.archiveH(catalog.Managers, string(catalog.ManagerDeleted))},

		{"GET", "/v1/clients", ar, "list clients (?name starts-with, ?email with * wildcard, ?status, ?tag, ?reseller_id, ?manager_id)", s.listClients},
		{"GET", "/v1/clients.csv", ar, "export the clients the same filters select, as CSV, in id order", s.exportClients},
		{"POST", "/v1/clients", ar, "create a client", s.createH(catalog.Clients)},
		{"POST", "/v1/clients/last-invoiced", ar, "set the last invoiced date of several clients at once", s.massLastInvoiced},
		{"GET", "/v1/clients/{id}", arc, "read a client", s.getH(catalog.Clients)},
		{"PATCH", "/v1/clients/{id}", ar, "edit a client; status deleted turns off orig and term on all its accounts", s.updateH(catalog.Clients)},
		{"DELETE", "/v1/clients/{id}", ar, "delete a client (status deleted); ?full=true removes a deleted client without xDRs or transactions for good", s.fullDeleteClient},

		{"GET", "/v1/clients/{id}/accounts", ar, "list a client's accounts", s.listAccounts},
		{"POST", "/v1/clients/{id}/accounts", ar, "create an account of a client", s.createAccount},
		{"GET", "/v1/accounts/{id}", ar, "read an account", s.getH(catalog.Accounts)},
		{"PATCH", "/v1/accounts/{id}", ar, "edit an account", s.updateH(catalog.Accounts)},
		{"DELETE", "/v1/accounts/{id}", ar, "deactivate an account (status inactive; history stays)", s.archiveH(catalog.Accounts, string(catalog.AccountInactive))},

		{"GET", "/v1/rate-tables", arc, "list the rate tables the caller sees (?archived=true, ?currency)", s.listRateTables},
		{"POST", "/v1/rate-tables", admin, "create a rate table", s.createH(catalog.RateTables)},
		{"GET", "/v1/rate-tables/{id}", arc, "read a rate table", s.getH(catalog.RateTables)},
		{"PATCH", "/v1/rate-tables/{id}", admin, "edit a rate table", s.updateH(catalog.RateTables)},
		{"DELETE", "/v1/rate-tables/{id}", admin, "archive a rate table (status deleted)", s.archiveH(catalog.RateTables, string(catalog.RateTableDeleted))},
		{"GET", "/v1/rate-tables/{id}/rates", arc, "list rates (?code exact, ?prefix, ?at in force at a time, ?status)", s.listRates},
		{"POST", "/v1/rate-tables/{id}/rates", admin, "import rates from a deck CSV (text/csv; ?mode=merge|replace, ?dry_run=true)", s.importRates},

		{"POST", "/v1/transactions", ar, "post a payment, charge or adjustment (ref makes a retry idempotent)", s.createTransaction},
		{"GET", "/v1/transactions/{id}", arc, "read a transaction", s.getH(catalog.Transactions)},
		{"GET", "/v1/clients/{id}/transactions", arc, "list a client's transactions (?from, ?to, ?kind)", s.listTransactions},
		{"GET", "/v1/clients/{id}/balance", arc, "a client's live, fixed and available balance", s.balance},

		{"POST", "/v1/authorize", ar, "prepaid authorization of a call: allowed, rate and longest affordable duration", s.authorize},
		{"GET", "/v1/audit", ar, "the audit log (?entity, ?entity_id, ?action, ?token_id, ?from, ?to)", s.listAudit},
	}, append(append(s.reportRoutes(), s.rerateRoutes()...), s.billingRoutes()...)...)
}

// wrap adds what every route shares: the body limit and read deadline,
// query-string hygiene, authentication, the role check, error answers and
// metrics.
func (s *Server) wrap(rt route) http.Handler {
	pattern := rt.method + " " + rt.path
	deck := pattern == deckRoute
	limit := s.cfg.MaxBody
	if deck {
		limit = s.cfg.MaxDeck
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		if deck {
			// A large deck may take longer than a JSON body to arrive.
			_ = http.NewResponseController(w).SetReadDeadline(start.Add(s.cfg.DeckReadTimeout))
		}
		r.Body = http.MaxBytesReader(sw, r.Body, limit)
		err := checkQuery(r)
		if err == nil {
			err = s.serve(sw, r, rt)
		}
		if err != nil {
			ae, ok := toAPIError(err)
			if !ok {
				if !errors.Is(r.Context().Err(), context.Canceled) {
					s.log.Error("api request failed", "route", pattern, "err", err)
				}
				ae = &apiError{Status: http.StatusInternalServerError, Msg: "internal error"}
			}
			if !sw.wrote {
				writeJSON(sw, ae.Status, ae)
			}
		}
		s.requests.WithLabelValues(pattern, strconv.Itoa(sw.status)).Inc()
		s.duration.WithLabelValues(pattern).Observe(time.Since(start).Seconds())
	})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt route) error {
	if rt.roles&public != 0 {
		return rt.h(w, r, nil)
	}
	p, err := s.authenticate(r.Context(), r)
	if err != nil {
		return err
	}
	if p == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tarifa"`)
		return errUnauthorized
	}
	var need roles
	switch p.role {
	case RoleAdmin:
		need = admin
	case RoleReseller:
		need = reseller
	case RoleClient:
		need = client
	}
	if rt.roles&need == 0 {
		return errForbidden
	}
	return rt.h(w, r, p)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

// WriteHeader records the status it sends.
func (w *statusWriter) WriteHeader(code int) {
	w.status, w.wrote = code, true
	w.ResponseWriter.WriteHeader(code)
}

// Write records that the answer has begun.
func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request, _ *principal) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "postgres unreachable"})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

//go:embed openapi.json
var openapiDoc []byte

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request, _ *principal) error {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openapiDoc)
	return nil
}

// getH answers one object of e in the caller's scope.
func (s *Server) getH(e *catalog.Entity) func(http.ResponseWriter, *http.Request, *principal) error {
	return func(w http.ResponseWriter, r *http.Request, p *principal) error {
		id, err := pathID(r, "id", e.Name)
		if err != nil {
			return err
		}
		out, err := catalog.Get(r.Context(), s.pool, p.catalogActor(), e, id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// createH creates an object of e from a JSON body.
func (s *Server) createH(e *catalog.Entity) func(http.ResponseWriter, *http.Request, *principal) error {
	return func(w http.ResponseWriter, r *http.Request, p *principal) error {
		body, err := decodeObject(r)
		if err != nil {
			return err
		}
		return s.create(w, r, p, e, body)
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, p *principal, e *catalog.Entity, body map[string]json.RawMessage) error {
	in, err := e.FromJSON(body, true)
	if err != nil {
		return err
	}
	var out json.RawMessage
	err = catalog.Write(r.Context(), s.pool, p.catalogActor(), func(cw *catalog.Writer) error {
		out, err = cw.Create(r.Context(), e, in)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// updateH applies a PATCH body to an object of e. Values equal to the
// stored ones change nothing (and write no audit row).
func (s *Server) updateH(e *catalog.Entity) func(http.ResponseWriter, *http.Request, *principal) error {
	return func(w http.ResponseWriter, r *http.Request, p *principal) error {
		id, err := pathID(r, "id", e.Name)
		if err != nil {
			return err
		}
		body, err := decodeObject(r)
		if err != nil {
			return err
		}
		in, err := e.FromJSON(body, false)
		if err != nil {
			return err
		}
		return s.update(w, r, p, e, id, in)
	}
}

// archiveH sets status to the archived value through the normal update
// path, so that the same checks and audit apply.
func (s *Server) archiveH(e *catalog.Entity, status string) func(http.ResponseWriter, *http.Request, *principal) error {
	return func(w http.ResponseWriter, r *http.Request, p *principal) error {
		id, err := pathID(r, "id", e.Name)
		if err != nil {
			return err
		}
		return s.update(w, r, p, e, id, catalog.Input{"status": status})
	}
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, p *principal, e *catalog.Entity, id int64, in catalog.Input) error {
	var out json.RawMessage
	err := catalog.Write(r.Context(), s.pool, p.catalogActor(), func(cw *catalog.Writer) error {
		var err error
		out, _, err = cw.Update(r.Context(), e, id, in)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
