package console

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config holds the console's settings.
type Config struct {
	// SessionIdle ends a session nobody used for this long. Default 12h.
	SessionIdle time.Duration
	// SessionMax ends any session this long after sign-in. Default 7 days.
	SessionMax time.Duration
	// MaxSessions bounds the sessions held in memory; when full, the one
	// idle longest is ended. Default 10,000.
	MaxSessions int
	// MaxTokenSessions bounds the sessions of one API token: its next
	// sign-in ends its own session idle longest, so that one token (a
	// customer portal's, say) signing in again and again cannot fill the
	// store and sign everybody else out. Default 20 (or MaxSessions, if
	// lower).
	MaxTokenSessions int
	// MaxDeck bounds a deck CSV uploaded through the console. Default
	// 64 MiB, the API's own bound.
	MaxDeck int64
	// MaxStaged bounds the bytes of all decks checked and waiting to be
	// applied, across sessions. Default 256 MiB.
	MaxStaged int64
	// DeckReadTimeout replaces the server's read timeout for a deck
	// upload. Default 10m, as the API's.
	DeckReadTimeout time.Duration
	// PageSize is how many rows a list page shows. Default 50.
	PageSize int
}

// Validate fills defaults and checks the settings.
func (c *Config) Validate() error {
	if c.SessionIdle == 0 {
		c.SessionIdle = 12 * time.Hour
	}
	if c.SessionMax == 0 {
		c.SessionMax = 7 * 24 * time.Hour
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 10000
	}
	if c.MaxTokenSessions == 0 {
		c.MaxTokenSessions = min(20, c.MaxSessions)
	}
	if c.MaxDeck == 0 {
		c.MaxDeck = 64 << 20
	}
	if c.MaxStaged == 0 {
		c.MaxStaged = 256 << 20
	}
	if c.DeckReadTimeout == 0 {
		c.DeckReadTimeout = 10 * time.Minute
	}
	if c.PageSize == 0 {
		c.PageSize = 50
	}
	switch {
	case c.SessionIdle < time.Minute || c.SessionMax < c.SessionIdle:
		return fmt.Errorf("session idle %s, max %s: want idle ≥ 1m and max ≥ idle", c.SessionIdle, c.SessionMax)
	case c.MaxSessions < 1:
		return fmt.Errorf("max sessions %d: want at least 1", c.MaxSessions)
	case c.MaxTokenSessions < 1 || c.MaxTokenSessions > c.MaxSessions:
		return fmt.Errorf("max sessions of a token %d: want 1 to max sessions (%d)", c.MaxTokenSessions, c.MaxSessions)
	case c.MaxDeck < 1024 || c.MaxStaged < c.MaxDeck:
		return fmt.Errorf("max deck %d, max staged %d: want deck ≥ 1024 bytes and staged ≥ deck", c.MaxDeck, c.MaxStaged)
	case c.PageSize < 1 || c.PageSize > 1000:
		return fmt.Errorf("page size %d: want 1 to 1000", c.PageSize)
	}
	return nil
}

//go:embed assets
var assets embed.FS

// Console serves the operator console. It is an http.Handler, safe for
// concurrent use; see the package doc for what it blocks on.
type Console struct {
	cfg      Config
	api      http.Handler
	log      *slog.Logger
	mux      *http.ServeMux
	handler  http.Handler
	pages    map[string]*template.Template
	sessions *sessions
	schemas  map[string]schema // the API's OpenAPI schemas, for forms
	invoices bool              // the API serves /v1/invoices

	signins *prometheus.CounterVec
}

// New returns a console over api, the http.Handler of the management API
// (its /v1 routes are called in process with each session's token). It
// reads the API's OpenAPI document once, to build its forms, and asks
// which optional capabilities the API has.
func New(cfg Config, api http.Handler, log *slog.Logger, reg prometheus.Registerer) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("console config: %w", err)
	}
	c := &Console{cfg: cfg, api: api, log: log, mux: http.NewServeMux(), sessions: newSessions(cfg),
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tarifa_console_signins_total", Help: "Console sign-ins by result (ok, refused).",
		}, []string{"result"}),
	}
	sessionsGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tarifa_console_sessions", Help: "Console sessions held in memory.",
	}, func() float64 { return float64(c.sessions.count()) })
	for _, m := range []prometheus.Collector{c.signins, sessionsGauge} {
		if err := reg.Register(m); err != nil {
			return nil, fmt.Errorf("register console metrics: %w", err)
		}
	}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if c.schemas, err = c.loadSchemas(); err != nil {
		return nil, err
	}
	c.invoices = c.routeExists("/v1/invoices")
	c.routes()
	protect := http.NewCrossOriginProtection()
	protect.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	c.handler = protect.Handler(c.mux)
	return c, nil
}

// ServeHTTP answers one request of the console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

// routeExists asks the API, without a token, whether it serves path: an
// existing route answers 401, a missing one 404.
func (c *Console) routeExists(path string) bool {
	req, _ := http.NewRequest(http.MethodGet, "http://console"+path, nil)
	rep := &reply{header: http.Header{}}
	c.api.ServeHTTP(rep, req)
	return rep.status != http.StatusNotFound
}

// handlerFunc is a page: it renders or redirects, or returns an error for
// the wrapper to show.
type handlerFunc func(w http.ResponseWriter, r *http.Request, s *session) error

// routes is the console's route table.
func (c *Console) routes() {
	static, _ := fs.Sub(assets, "assets/static")
	files := http.FileServerFS(static)
	c.mux.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})))
	c.mux.HandleFunc("GET /signin", c.signinPage)
	c.mux.HandleFunc("POST /signin", c.signin)

	pages := []struct {
		pattern string
		h       handlerFunc
	}{
		{"POST /signout", c.signout},
		{"POST /settings/tz", c.setTimezone},
		{"GET /{$}", c.dashboard},

		{"GET /clients", c.clientList},
		{"GET /clients.csv", c.clientExport},
		{"GET /clients/new", c.clientNew},
		{"POST /clients/new", c.clientCreate},
		{"POST /clients/last-invoiced", c.clientMassEdit},
		{"GET /clients/{id}", c.clientOverview},
		{"GET /clients/{id}/edit", c.clientEdit},
		{"POST /clients/{id}/edit", c.clientUpdate},
		{"GET /clients/{id}/delete", c.clientDeletePage},
		{"POST /clients/{id}/delete", c.clientDelete},
		{"GET /clients/{id}/accounts", c.clientAccounts},
		{"POST /clients/{id}/accounts", c.accountCreate},
		{"GET /accounts/{id}/edit", c.accountEdit},
		{"POST /accounts/{id}/edit", c.accountUpdate},
		{"POST /accounts/{id}/deactivate", c.accountDeactivate},
		{"GET /clients/{id}/rates", c.clientRates},
		{"GET /clients/{id}/transactions", c.clientTransactions},
		{"POST /clients/{id}/transactions", c.transactionCreate},
		{"GET /clients/{id}/balance", c.clientBalanceReport},
		{"GET /clients/{id}/summary", c.clientSummary},
		{"GET /clients/{id}/invoices", c.clientInvoices},
		{"GET /clients/{id}/audit", c.clientAudit},

		{"GET /resellers", c.resellerTree},
		{"GET /resellers/new", c.resellerNew},
		{"POST /resellers/new", c.resellerCreate},
		{"GET /resellers/{id}", c.resellerDetail},
		{"GET /resellers/{id}/edit", c.resellerEdit},
		{"POST /resellers/{id}/edit", c.resellerUpdate},
		{"POST /resellers/{id}/archive", c.resellerArchive},
		{"POST /resellers/{id}/managers", c.managerCreate},
		{"POST /managers/{id}/archive", c.managerArchive},

		{"GET /rate-tables", c.rateTableList},
		{"GET /rate-tables/new", c.rateTableNew},
		{"POST /rate-tables/new", c.rateTableCreate},
		{"GET /rate-tables/{id}", c.rateTableRates},
		{"GET /rate-tables/{id}/edit", c.rateTableEdit},
		{"POST /rate-tables/{id}/edit", c.rateTableUpdate},
		{"POST /rate-tables/{id}/deck/apply", c.deckApply},

		{"GET /reports/{name}", c.report},

		{"GET /rerate", c.rerateForm},
		{"POST /rerate", c.rerateDryRun},
		{"GET /rerate/{id}", c.rerateJob},
		{"POST /rerate/{id}/confirm", c.rerateConfirm},
		{"POST /rerate/{id}/resume", c.rerateResume},

		{"GET /invoices", c.invoiceList},
		{"GET /invoices/{id}", c.invoiceDetail},
		{"GET /invoices/{id}/pdf", c.invoicePDF},
		{"GET /invoices/{id}/csv", c.invoiceCSV},
		{"POST /invoices/{id}/{action}", c.invoiceAction},

		{"GET /audit", c.auditLog},
	}
	for _, p := range pages {
		c.mux.Handle(p.pattern, c.page(p.h))
	}
	c.mux.Handle("POST /rate-tables/{id}/deck", c.pageWith(c.deckCheck, true))
	// A path that is no page is not found, signed in or not (it is not a
	// page to sign in for, and a script asking for an API path it thinks
	// is there, such as /metrics on its own address, learns it is not).
	c.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		c.renderError(w, r, c.session(r), &APIError{Status: http.StatusNotFound, Msg: "no such page in the console"})
	})
}

// securityHeaders are on every answer: nothing loads from elsewhere, no
// page is framed or cached.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
}

// session returns the request's live session, or nil.
func (c *Console) session(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	return c.sessions.lookup(ck.Value)
}

// page wraps a page: it needs a session (a GET without one goes to the
// sign-in page and comes back), a state-changing request needs the
// session's CSRF token, and errors become pages.
func (c *Console) page(h handlerFunc) http.Handler { return c.pageWith(h, false) }

// pageWith is page; a multipart page (the deck upload) reads its form as a
// stream and checks the CSRF token itself, and no other page takes one.
func (c *Console) pageWith(h handlerFunc, multipart bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		s := c.session(r)
		if s == nil {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.renderError(w, r, nil, &APIError{Status: http.StatusForbidden, Msg: "you are signed out: sign in again and repeat what you did"})
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !multipart {
			if isMultipart(r) {
				c.renderError(w, r, s, &APIError{Status: http.StatusUnsupportedMediaType, Msg: "this form takes no file"})
				return
			}
			if !s.validCSRF(r.PostFormValue("csrf")) {
				c.renderError(w, r, s, &APIError{Status: http.StatusForbidden, Msg: "this form has expired (its CSRF token does not match your session): reload the page and try again"})
				return
			}
		}
		c.fail(w, r, s, h(w, r, s))
	})
}

// fail shows err (nil: nothing to do).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var ae *APIError
	switch {
	case err == nil:
	case errors.Is(err, errSignedOut):
		c.sessions.drop(s)
		setCookie(w, r, "", -1)
		http.Redirect(w, r, "/signin?expired=1", http.StatusSeeOther)
	case errors.As(err, &ae):
		c.renderError(w, r, s, ae)
	default:
		if r.Context().Err() == nil {
			c.log.Error("console page failed", "path", r.URL.Path, "err", err)
		}
		c.renderError(w, r, s, &APIError{Status: http.StatusInternalServerError, Msg: "internal error (logged by the server)"})
	}
}

func isMultipart(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data")
}

// view is what every page template gets.
type view struct {
	Title   string
	Section string // the nav entry to highlight
	Me      identity
	CSRF    string
	TZ      string
	Nav     []navItem
	Flashes []flash
	Err     *APIError // the API's refusal of what the page tried
	Data    any
}

type navItem struct {
	Name, Href, Section string
}

// nav is the menu of a role: presentation only, since the API refuses
// what a role may not use whatever the menu shows.
func (c *Console) nav(me identity) []navItem {
	if me.IsClient() {
		own := fmt.Sprintf("/clients/%d", me.ClientID)
		items := []navItem{{"Dashboard", "/", "dashboard"}, {"My account", own, "clients"},
			{"Transactions", own + "/transactions", "transactions"}, {"Rate tables", "/rate-tables", "rates"},
			{"Reports", "/reports/summary", "reports"}}
		if c.invoices {
			items = append(items, navItem{"Invoices", "/invoices", "invoices"})
		}
		return items
	}
	items := []navItem{{"Dashboard", "/", "dashboard"}, {"Clients", "/clients", "clients"},
		{"Resellers", "/resellers", "resellers"}, {"Rate tables", "/rate-tables", "rates"},
		{"Reports", "/reports/summary", "reports"}, {"Rerating", "/rerate", "rerate"}}
	if c.invoices {
		items = append(items, navItem{"Invoices", "/invoices", "invoices"})
	}
	return append(items, navItem{"Audit log", "/audit", "audit"})
}

// render writes page name with v, completing its common parts. The page is
// rendered whole before anything is sent, so a template error is a clean
// 500.
func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, status int, name string, v *view) {
	if s != nil {
		v.Me, v.CSRF, v.Nav, v.TZ = s.me, s.csrf, c.nav(s.me), c.sessions.timezone(s)
		v.Flashes = append(c.sessions.takeFlashes(s), v.Flashes...)
	}
	t := c.pages[name]
	if t == nil {
		panic("BUG: no console page " + name)
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		c.log.Error("console template failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func (c *Console) renderError(w http.ResponseWriter, r *http.Request, s *session, e *APIError) {
	status := e.Status
	if status < 400 {
		status = http.StatusBadGateway
	}
	c.render(w, r, s, status, "error", &view{Title: http.StatusText(status), Err: e})
}

// redirect ends a POST with a message and a GET of to (post/redirect/get,
// so a reload never sends the form again).
func (c *Console) redirect(w http.ResponseWriter, r *http.Request, s *session, to, msg string) error {
	if msg != "" {
		c.sessions.addFlash(s, "ok", msg)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// parsePages parses every page template with the layout and partials.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(assets, "assets/templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(n[len("assets/templates/"):], ".html")
		if base == "layout" || base == "partials" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(assets, "assets/templates/layout.html", "assets/templates/partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", base, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// Assets are the console's embedded templates and static files, for
// checks that they name nothing outside the binary.
func Assets() fs.FS { return assets }
