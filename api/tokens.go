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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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

// CreateToken stores a new bearer token of role (admin, reseller with
// resellerID, client with clientID) and returns it. The referenced reseller
// or client must exist.
func CreateToken(ctx context.Context, pool *pgxpool.Pool, role string, resellerID, clientID int64, name string) (Token, error) {
	var rid, cid *int64
	switch role {
	case RoleAdmin:
		if resellerID != 0 || clientID != 0 {
			return Token{}, errors.New("an admin token takes neither a reseller nor a client id")
		}
	case RoleReseller:
		if resellerID <= 0 || clientID != 0 {
			return Token{}, errors.New("a reseller token needs a reseller id and no client id")
		}
		rid = &resellerID
	case RoleClient:
		if clientID <= 0 || resellerID != 0 {
			return Token{}, errors.New("a client token needs a client id and no reseller id")
		}
		cid = &clientID
	default:
		return Token{}, fmt.Errorf("unknown role %q: want admin, reseller or client", role)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return Token{}, fmt.Errorf("random token: %w", err)
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(secret))
	var id int64
	err := pool.QueryRow(ctx, `INSERT INTO api_tokens (name, role, reseller_id, client_id, hash)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`, name, role, rid, cid, sum[:]).Scan(&id)
	if err != nil {
		return Token{}, fmt.Errorf("store token: %w", err)
	}
	return Token{ID: id, Secret: secret}, nil
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

// adminPrincipal reads without scope; the server uses it to read back rows
// it has just written.
var adminPrincipal = &principal{role: RoleAdmin, name: "tarifa"}

// adminAs is p with admin scope, for the changes a rule makes on p's
// behalf (still audited as p).
func adminAs(p *principal) *principal {
	q := *p
	q.role, q.subtree = RoleAdmin, nil
	return &q
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

func (p *principal) tokenIDArg() any {
	if p.tokenID == 0 {
		return nil
	}
	return p.tokenID
}

// inSubtree reports whether reseller id is one p may see.
func (p *principal) inSubtree(id int64) bool {
	switch p.role {
	case RoleAdmin:
		return true
	case RoleReseller:
		for _, r := range p.subtree {
			if r == id {
				return true
			}
		}
	}
	return false
}

// authenticate resolves the bearer token of r; nil when it is missing,
// unknown or revoked.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (*principal, error) {
	h := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || !strings.HasPrefix(secret, tokenPrefix) {
		return nil, nil
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	p := &principal{}
	var rid, cid *int64
	err := s.pool.QueryRow(ctx, `SELECT id, name, role, reseller_id, client_id FROM api_tokens
		WHERE hash = $1 AND revoked_at IS NULL`, sum[:]).Scan(&p.tokenID, &p.name, &p.role, &rid, &cid)
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
		p.subtree, err = subtree(ctx, s.pool, p.resellerID)
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// querier is what subtree needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// subtree returns reseller id and every reseller below it.
func subtree(ctx context.Context, db querier, id int64) ([]int64, error) {
	rows, err := db.Query(ctx, `WITH RECURSIVE sub(id) AS (
			SELECT id FROM resellers WHERE id = $1
			UNION SELECT r.id FROM resellers r JOIN sub ON r.parent_id = sub.id)
		SELECT id FROM sub ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("read reseller subtree: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("read reseller subtree: %w", err)
	}
	if ids == nil {
		ids = []int64{} // a token of a reseller gone: sees nothing
	}
	return ids, nil
}

// scopeByReseller limits rows to those whose col (a reseller id) p may see;
// client tokens see none.
func scopeByReseller(col string) func(q *query, p *principal) {
	return func(q *query, p *principal) {
		switch p.role {
		case RoleReseller:
			q.add(col+" = ANY(%s)", p.subtree)
		case RoleClient:
			q.conds = append(q.conds, "false")
		}
	}
}

// scopeByClient limits rows to those whose col (a client id) p may see.
func scopeByClient(col string) func(q *query, p *principal) {
	return func(q *query, p *principal) {
		switch p.role {
		case RoleReseller:
			q.add(col+" IN (SELECT id FROM clients WHERE reseller_id = ANY(%s))", p.subtree)
		case RoleClient:
			q.add(col+" = %s", p.clientID)
		}
	}
}
