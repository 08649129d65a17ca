package api

import (
	"context"
	_ "embed"
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
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/sinks"
)

// Config holds the server's settings.
type Config struct {
	// MaxCall is the longest call authorize allows: the answer for
	// unlimited (postpaid) clients and the cap for prepaid ones. Default 4h.
	MaxCall time.Duration
	// MaxBody bounds a request body (a rate deck CSV is the largest).
	// Default 64 MiB.
	MaxBody int64
	// Reports serves /v1/reports/…; nil answers them 503 (no ClickHouse).
	Reports *report.Reports
	// Billing serves /v1/invoices, /v1/billruns, /v1/statements and
	// /v1/mail; nil answers them 503 (no ClickHouse).
	Billing *billing.Service
}

// Validate fills defaults and checks the settings.
func (c *Config) Validate() error {
	if c.MaxCall == 0 {
		c.MaxCall = 4 * time.Hour
	}
	if c.MaxCall < time.Second {
		return fmt.Errorf("max call %s: want at least 1s", c.MaxCall)
	}
	if c.MaxBody == 0 {
		c.MaxBody = 64 << 20
	}
	if c.MaxBody < 1024 {
		return fmt.Errorf("max body %d: want at least 1024 bytes", c.MaxBody)
	}
	return nil
}

// XDRCounter counts the rated records (xDRs) of a client, orig or term
// side; a full delete of a client is refused while it has any. The xDRs
// live in ClickHouse, which this package does not reach itself.
type XDRCounter func(ctx context.Context, clientID int64) (int64, error)

// Server is the management HTTP API. It is an http.Handler, safe for
// concurrent use; every request runs on the caller's goroutine and blocks
// on PostgreSQL only.
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
}

// New returns a server on pool. xdrs may be nil: a full delete of a client
// is then always refused, as its xDRs cannot be counted.
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
	for _, rt := range s.routes() {
		s.mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
	return s, nil
}

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
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

func (s *Server) routes() []route {
	const ar, arc = admin | reseller, admin | reseller | client
	return append([]route{
		{"GET", "/healthz", public, "liveness: the server answers and PostgreSQL is reachable", s.healthz},
		{"GET", "/v1/openapi.json", public, "this API's OpenAPI document", s.openapi},

		{"GET", "/v1/resellers", ar, "list resellers (?archived=true for deleted ones, ?parent_id)", s.listResellers},
		{"POST", "/v1/resellers", ar, "create a reseller", s.createResellerH},
		{"GET", "/v1/resellers/{id}", ar, "read a reseller", s.getH(resellers)},
		{"PATCH", "/v1/resellers/{id}", ar, "edit a reseller", s.updateResellerH},
		{"DELETE", "/v1/resellers/{id}", ar, "archive a reseller (status deleted)", s.archiveResellerH},

		{"GET", "/v1/managers", ar, "list managers (?reseller_id, ?archived=true)", s.listManagers},
		{"POST", "/v1/managers", ar, "create a manager", s.createH(managers)},
		{"GET", "/v1/managers/{id}", ar, "read a manager", s.getH(managers)},
		{"PATCH", "/v1/managers/{id}", ar, "edit a manager", s.updateH(managers)},
		{"DELETE", "/v1/managers/{id}", ar, "archive a manager (status deleted)", s.archiveManagerH},

		{"GET", "/v1/clients", ar, "list clients (?name starts-with, ?email with * wildcard, ?status, ?tag, ?reseller_id, ?manager_id)", s.listClients},
		{"GET", "/v1/clients.csv", ar, "export the clients the same filters select, as CSV", s.exportClients},
		{"POST", "/v1/clients", ar, "create a client", s.createClientH},
		{"POST", "/v1/clients/last-invoiced", ar, "set the last invoiced date of several clients at once", s.massLastInvoiced},
		{"GET", "/v1/clients/{id}", arc, "read a client", s.getH(clients)},
		{"PATCH", "/v1/clients/{id}", ar, "edit a client; status deleted turns off orig and term on all its accounts", s.updateH(clients)},
		{"DELETE", "/v1/clients/{id}", ar, "delete a client (status deleted); ?full=true removes a deleted client without xDRs or transactions for good", s.fullDeleteClient},

		{"GET", "/v1/clients/{id}/accounts", ar, "list a client's accounts", s.listAccounts},
		{"POST", "/v1/clients/{id}/accounts", ar, "create an account of a client", s.createAccount},
		{"GET", "/v1/accounts/{id}", ar, "read an account", s.getH(accounts)},
		{"PATCH", "/v1/accounts/{id}", ar, "edit an account", s.updateH(accounts)},
		{"DELETE", "/v1/accounts/{id}", ar, "deactivate an account (status inactive; history stays)", s.deactivateAccount},

		{"GET", "/v1/rate-tables", ar, "list rate tables (?archived=true, ?currency)", s.listRateTables},
		{"POST", "/v1/rate-tables", admin, "create a rate table", s.createH(rateTables)},
		{"GET", "/v1/rate-tables/{id}", ar, "read a rate table", s.getH(rateTables)},
		{"PATCH", "/v1/rate-tables/{id}", admin, "edit a rate table", s.updateH(rateTables)},
		{"DELETE", "/v1/rate-tables/{id}", admin, "archive a rate table (status deleted)", s.archiveRateTable},
		{"GET", "/v1/rate-tables/{id}/rates", ar, "list rates (?code exact, ?prefix, ?at in force at a time, ?status)", s.listRates},
		{"POST", "/v1/rate-tables/{id}/rates", admin, "import rates from a deck CSV (text/csv; ?dry_run=true)", s.importRates},

		{"POST", "/v1/transactions", ar, "post a payment, charge or adjustment (ref makes a retry idempotent)", s.createTransaction},
		{"GET", "/v1/transactions/{id}", arc, "read a transaction", s.getTransaction},
		{"GET", "/v1/clients/{id}/transactions", arc, "list a client's transactions (?from, ?to, ?kind)", s.listTransactions},
		{"GET", "/v1/clients/{id}/balance", arc, "a client's live, fixed and available balance", s.balance},

		{"POST", "/v1/authorize", ar, "prepaid authorization of a call: allowed, rate and longest affordable duration", s.authorize},
		{"GET", "/v1/audit", ar, "the audit log (?entity, ?entity_id, ?actor, ?from, ?to)", s.listAudit},
	}, append(s.reportRoutes(), s.billingRoutes()...)...)
}

// wrap adds what every route shares: the body limit, authentication, the
// role check, error answers and metrics.
func (s *Server) wrap(rt route) http.Handler {
	pattern := rt.method + " " + rt.path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		r.Body = http.MaxBytesReader(sw, r.Body, s.cfg.MaxBody)
		err := s.serve(sw, r, rt)
		if err != nil {
			ae, ok := toAPIError(err)
			if !ok {
				if !errors.Is(r.Context().Err(), context.Canceled) {
					s.log.Error("api request failed", "route", pattern, "err", err)
				}
				ae = &apiError{Status: http.StatusInternalServerError, Msg: "internal error"}
			}
			writeJSON(sw, ae.Status, ae)
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
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

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
func (s *Server) getH(e *entity) func(http.ResponseWriter, *http.Request, *principal) error {
	return func(w http.ResponseWriter, r *http.Request, p *principal) error {
		id, err := pathID(r, "id", e.name)
		if err != nil {
			return err
		}
		out, err := s.get(r.Context(), nil, e, p, id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// createH creates an object of e from a JSON body.
func (s *Server) createH(e *entity) func(http.ResponseWriter, *http.Request, *principal) error {
	return func(w http.ResponseWriter, r *http.Request, p *principal) error {
		body, err := decodeObject(r)
		if err != nil {
			return err
		}
		out, err := s.create(r.Context(), p, e, body)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, out)
		return nil
	}
}

// updateH applies a PATCH body to an object of e.
func (s *Server) updateH(e *entity) func(http.ResponseWriter, *http.Request, *principal) error {
	return func(w http.ResponseWriter, r *http.Request, p *principal) error {
		id, err := pathID(r, "id", e.name)
		if err != nil {
			return err
		}
		body, err := decodeObject(r)
		if err != nil {
			return err
		}
		out, err := s.update(r.Context(), p, e, id, body)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}
