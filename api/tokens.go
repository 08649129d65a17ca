package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tarifa/tarifa/catalog"
)

// The roles a token can have.
const (
	RoleAdmin    = "admin"
	RoleReseller = "reseller"
	RoleClient   = "client"
)

// tokenPrefix marks Tarifa bearer tokens so that they are recognisable in
// logs and secret scanners.
const tokenPrefix = "tarifa_"

// Token is a new bearer token: Secret is shown once and never stored; only
// its SHA-256 is.
type Token struct {
	ID     int64
	Secret string
}

// TokenSpec describes a token to create.
type TokenSpec struct {
	Role       string // admin, reseller or client
	ResellerID int64  // the reseller of a reseller token
	ClientID   int64  // the client of a client token
	Name       string // a label for the audit log and token lists
	// Expires is when the token stops working; zero for never.
	Expires time.Time
}

// CreateToken stores a new bearer token of role (admin, reseller with
// resellerID, client with clientID) that never expires, and returns it.
func CreateToken(ctx context.Context, pool *pgxpool.Pool, role string, resellerID, clientID int64, name string) (Token, error) {
	return NewToken(ctx, pool, TokenSpec{Role: role, ResellerID: resellerID, ClientID: clientID, Name: name})
}

// NewToken stores a new bearer token as spec says and returns it. The
// reseller must exist and be active, the client exist and not be deleted.
func NewToken(ctx context.Context, pool *pgxpool.Pool, spec TokenSpec) (Token, error) {
	var rid, cid *int64
	switch spec.Role {
	case RoleAdmin:
		if spec.ResellerID != 0 || spec.ClientID != 0 {
			return Token{}, errors.New("an admin token takes neither a reseller nor a client id")
		}
	case RoleReseller:
		if spec.ResellerID <= 0 || spec.ClientID != 0 {
			return Token{}, errors.New("a reseller token needs a reseller id and no client id")
		}
		rid = &spec.ResellerID
	case RoleClient:
		if spec.ClientID <= 0 || spec.ResellerID != 0 {
			return Token{}, errors.New("a client token needs a client id and no reseller id")
		}
		cid = &spec.ClientID
	default:
		return Token{}, fmt.Errorf("unknown role %q: want admin, reseller or client", spec.Role)
	}
	if msg := catalog.CheckText(spec.Name, 100); msg != "" {
		return Token{}, fmt.Errorf("token name: %s", msg)
	}
	if !spec.Expires.IsZero() && !spec.Expires.After(time.Now()) {
		return Token{}, fmt.Errorf("expiry %s is not in the future", spec.Expires.UTC().Format(time.RFC3339))
	}
	if err := checkTokenOwner(ctx, pool, spec); err != nil {
		return Token{}, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return Token{}, fmt.Errorf("random token: %w", err)
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(secret))
	var expires *time.Time
	if !spec.Expires.IsZero() {
		expires = &spec.Expires
	}
	var id int64
	err := pool.QueryRow(ctx, `INSERT INTO api_tokens (name, role, reseller_id, client_id, hash, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, spec.Name, spec.Role, rid, cid, sum[:], expires).Scan(&id)
	if err != nil {
		return Token{}, fmt.Errorf("store token: %w", err)
	}
	return Token{ID: id, Secret: secret}, nil
}

// checkTokenOwner refuses a token for a reseller or client that does not
// exist or is archived (it would answer 401 anyway).
func checkTokenOwner(ctx context.Context, pool *pgxpool.Pool, spec TokenSpec) error {
	var what, sql string
	var id int64
	switch spec.Role {
	case RoleReseller:
		what, id, sql = "reseller", spec.ResellerID, "SELECT status = 'active' FROM resellers WHERE id = $1"
	case RoleClient:
		what, id, sql = "client", spec.ClientID, "SELECT status <> 'deleted' FROM clients WHERE id = $1"
	default:
		return nil
	}
	var live bool
	err := pool.QueryRow(ctx, sql, id).Scan(&live)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s %d not found", what, id)
	}
	if err != nil {
		return fmt.Errorf("look up %s %d: %w", what, id, err)
	}
	if !live {
		return fmt.Errorf("%s %d is archived or deleted", what, id)
	}
	return nil
}

// TokenInfo is a stored token as ListTokens shows it (never its secret,
// which is not stored).
type TokenInfo struct {
	ID         int64
	Name       string
	Role       string
	ResellerID int64  // reseller tokens
	ClientID   int64  // client tokens
	Owner      string // the reseller's or client's name
	Created    time.Time
	Expires    time.Time // zero: never
	Revoked    time.Time // zero: not revoked
}

// TokenState says whether a token works.
type TokenState string

// The states of a token: only an active one authenticates.
const (
	TokenActive  TokenState = "active"
	TokenExpired TokenState = "expired"
	TokenRevoked TokenState = "revoked"
)

// State is the token's state at now.
func (t TokenInfo) State(now time.Time) TokenState {
	switch {
	case !t.Revoked.IsZero():
		return TokenRevoked
	case !t.Expires.IsZero() && !t.Expires.After(now):
		return TokenExpired
	}
	return TokenActive
}

// ListTokens returns every stored token, oldest first.
func ListTokens(ctx context.Context, pool *pgxpool.Pool) ([]TokenInfo, error) {
	rows, err := pool.Query(ctx, `SELECT t.id, t.name, t.role, coalesce(t.reseller_id, 0), coalesce(t.client_id, 0),
			coalesce(r.name, c.name, ''), t.created_at, t.expires_at, t.revoked_at
		FROM api_tokens t LEFT JOIN resellers r ON r.id = t.reseller_id LEFT JOIN clients c ON c.id = t.client_id
		ORDER BY t.id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TokenInfo, error) {
		var t TokenInfo
		var expires, revoked *time.Time
		err := r.Scan(&t.ID, &t.Name, &t.Role, &t.ResellerID, &t.ClientID, &t.Owner, &t.Created, &expires, &revoked)
		if expires != nil {
			t.Expires = *expires
		}
		if revoked != nil {
			t.Revoked = *revoked
		}
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// principal is the authenticated caller of one request and its scope.
type principal struct {
	tokenID    int64
	name       string
	role       string
	resellerID int64   // reseller role
	clientID   int64   // client role
	subtree    []int64 // reseller role: its own reseller and every one below
}

func (p *principal) actor() string {
	if p.tokenID == 0 {
		return p.name
	}
	if p.name == "" {
		return "token " + strconv.FormatInt(p.tokenID, 10)
	}
	return fmt.Sprintf("token %d (%s)", p.tokenID, p.name)
}

// catalogActor is p as the catalog's write path and scopes know it.
func (p *principal) catalogActor() *catalog.Actor {
	a := &catalog.Actor{Name: p.actor(), TokenID: p.tokenID}
	switch p.role {
	case RoleReseller:
		a.ResellerID, a.Subtree = p.resellerID, p.subtree
	case RoleClient:
		a.ClientID = p.clientID
	}
	return a
}

// inSubtree reports whether reseller id is one p may see.
func (p *principal) inSubtree(id int64) bool { return p.catalogActor().InSubtree(id) }

// authenticate resolves the bearer token of r (the scheme in any case,
// RFC 7235); nil when it is missing, unknown, revoked or expired, or when
// its reseller is archived or its client deleted.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (*principal, error) {
	scheme, secret, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(secret, tokenPrefix) {
		return nil, nil
	}
	sum := sha256.Sum256([]byte(secret))
	p := &principal{}
	var rid, cid *int64
	err := s.pool.QueryRow(ctx, `SELECT t.id, t.name, t.role, t.reseller_id, t.client_id
		FROM api_tokens t
		LEFT JOIN resellers r ON r.id = t.reseller_id
		LEFT JOIN clients c ON c.id = t.client_id
		WHERE t.hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
		  AND (t.reseller_id IS NULL OR r.status = 'active')
		  AND (t.client_id IS NULL OR c.status <> 'deleted')`, sum[:]).Scan(&p.tokenID, &p.name, &p.role, &rid, &cid)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read token: %w", err)
	}
	if rid != nil {
		p.resellerID = *rid
	}
	if cid != nil {
		p.clientID = *cid
	}
	if p.role == RoleReseller {
		if p.subtree, err = catalog.Subtree(ctx, s.pool, p.resellerID); err != nil {
			return nil, err
		}
	}
	return p, nil
}
