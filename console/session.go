package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"
)

// cookieName is the session cookie: a random id, nothing else. The token
// stays on the server.
const cookieName = "tarifa_console"

// identity is who a session's token is, as GET /v1/me answered at sign-in.
type identity struct {
	TokenID    int64
	TokenName  string
	Role       string // admin, reseller or client
	ResellerID int64  // reseller tokens
	ClientID   int64  // client tokens
	Owner      string // the reseller's or client's name
}

// IsAdmin reports an admin token: the operator's whole world.
func (i identity) IsAdmin() bool { return i.Role == "admin" }

// IsReseller reports a reseller token: its own subtree.
func (i identity) IsReseller() bool { return i.Role == "reseller" }

// IsClient reports a client token: the customer portal.
func (i identity) IsClient() bool { return i.Role == "client" }

// Operator is true for the admin and reseller roles: the console's
// operator pages (clients, resellers, rerating, audit).
func (i identity) Operator() bool { return i.IsAdmin() || i.IsReseller() }

// flash is a one-shot message shown on the next page.
type flash struct {
	Kind string // ok or error
	Msg  string
}

// stagedDeck is a deck CSV checked with a dry run and kept, byte for
// byte, until it is applied: what is applied is exactly what was checked.
type stagedDeck struct {
	id      string
	table   int64
	mode    string
	name    string
	content []byte
}

// session is one signed-in browser. Its fields are guarded by the store's
// mutex.
type session struct {
	id      string
	token   string
	csrf    string
	me      identity
	created time.Time
	seen    time.Time
	flashes []flash
	staged  *stagedDeck
	tz      string // the timezone the pages use, UTC unless chosen
}

// sessions is the server-side session store, bounded by count and by the
// bytes of staged decks.
type sessions struct {
	mu        sync.Mutex
	byID      map[string]*session
	idle, max time.Duration
	limit     int
	perToken  int
	stagedMax int64
	stagedNow int64
	now       func() time.Time
}

func newSessions(cfg Config) *sessions {
	return &sessions{byID: map[string]*session{}, idle: cfg.SessionIdle, max: cfg.SessionMax,
		limit: cfg.MaxSessions, perToken: cfg.MaxTokenSessions, stagedMax: cfg.MaxStaged, now: time.Now}
}

// randomID is 32 random bytes, URL-safe.
func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails on Linux (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create stores a new session for token. When the token holds its bound of
// sessions, its own seen longest ago ends; when the store is full, expired
// sessions go first, then the one seen longest ago.
func (st *sessions) create(token string, me identity) *session {
	now := st.now()
	s := &session{id: randomID(), token: token, csrf: randomID(), me: me, created: now, seen: now, tz: "UTC"}
	st.mu.Lock()
	defer st.mu.Unlock()
	oldest := func(of func(*session) bool) (*session, int) {
		var o *session
		n := 0
		for _, x := range st.byID {
			if !of(x) {
				continue
			}
			n++
			if o == nil || x.seen.Before(o.seen) {
				o = x
			}
		}
		return o, n
	}
	for {
		o, n := oldest(func(x *session) bool { return x.token == token })
		if n < st.perToken {
			break
		}
		st.dropLocked(o)
	}
	if len(st.byID) >= st.limit {
		st.sweepLocked(now)
	}
	for len(st.byID) >= st.limit {
		o, _ := oldest(func(*session) bool { return true })
		st.dropLocked(o)
	}
	st.byID[s.id] = s
	return s
}

// lookup returns the live session of id and marks it seen; nil when it is
// unknown or expired (idle too long or older than the absolute limit).
func (st *sessions) lookup(id string) *session {
	if id == "" {
		return nil
	}
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.byID[id]
	if s == nil {
		return nil
	}
	if st.expired(s, now) {
		st.dropLocked(s)
		return nil
	}
	s.seen = now
	return s
}

func (st *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.seen) > st.idle || now.Sub(s.created) > st.max
}

func (st *sessions) sweepLocked(now time.Time) {
	for _, s := range st.byID {
		if st.expired(s, now) {
			st.dropLocked(s)
		}
	}
}

func (st *sessions) dropLocked(s *session) {
	if s.staged != nil {
		st.stagedNow -= int64(len(s.staged.content))
		s.staged = nil
	}
	delete(st.byID, s.id)
}

// drop ends a session (sign-out, or a token the API stopped accepting).
func (st *sessions) drop(s *session) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byID[s.id] == s {
		st.dropLocked(s)
	}
}

// count is the number of sessions held.
func (st *sessions) count() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.byID)
}

// addFlash queues a message for the session's next page.
func (st *sessions) addFlash(s *session, kind, msg string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s.flashes = append(s.flashes, flash{Kind: kind, Msg: msg})
}

// takeFlashes returns and clears the session's messages.
func (st *sessions) takeFlashes(s *session) []flash {
	st.mu.Lock()
	defer st.mu.Unlock()
	f := s.flashes
	s.flashes = nil
	return f
}

// setTZ records the timezone the session's pages use.
func (st *sessions) setTZ(s *session, tz string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s.tz = tz
}

// timezone is the session's timezone.
func (st *sessions) timezone(s *session) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return s.tz
}

// stage keeps a checked deck for the session, replacing the one it had;
// false when the bytes of all staged decks would pass the store's bound.
func (st *sessions) stage(s *session, d *stagedDeck) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	old := int64(0)
	if s.staged != nil {
		old = int64(len(s.staged.content))
	}
	if st.stagedNow-old+int64(len(d.content)) > st.stagedMax {
		return false
	}
	st.stagedNow += int64(len(d.content)) - old
	s.staged = d
	return true
}

// takeStaged returns the session's staged deck if its id is id, and
// forgets it.
func (st *sessions) takeStaged(s *session, id string) *stagedDeck {
	st.mu.Lock()
	defer st.mu.Unlock()
	d := s.staged
	if d == nil || subtle.ConstantTimeCompare([]byte(d.id), []byte(id)) != 1 {
		return nil
	}
	st.stagedNow -= int64(len(d.content))
	s.staged = nil
	return d
}

// peekStaged returns the session's staged deck if its id is id.
func (st *sessions) peekStaged(s *session, id string) *stagedDeck {
	st.mu.Lock()
	defer st.mu.Unlock()
	if d := s.staged; d != nil && subtle.ConstantTimeCompare([]byte(d.id), []byte(id)) == 1 {
		return d
	}
	return nil
}

// validCSRF checks the token a state-changing request carries against the
// session's.
func (s *session) validCSRF(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// setCookie gives the browser the session id: HttpOnly (no script reads
// it), SameSite=Strict (no other site's page sends it), Secure when the
// console is reached over TLS (directly or through a proxy that says so).
func setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"),
	})
}

// ID names the staged deck in the form that applies it.
func (d *stagedDeck) ID() string { return d.id }

// Name is the uploaded file's name.
func (d *stagedDeck) Name() string { return d.name }
