package report

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Catalog is what reports need of the PostgreSQL catalog: names to show
// instead of ids, the reseller tree and client tags to filter by, hidden
// digits to mask numbers with, currencies. It is read whole for each report
// (a catalog holds thousands of rows, not millions) and is not changed
// after LoadCatalog, so it is safe for concurrent reads.
type Catalog struct {
	Clients   map[int64]*ClientInfo
	Resellers map[int64]*ResellerInfo
	Accounts  map[int64]*AccountInfo
	Version   int64 // catalog_version when it was read
}

// ClientInfo is one client as reports see it.
type ClientInfo struct {
	ID, ResellerID int64
	Name           string
	Currency       string
	Status         string
	Timezone       string
	Tags           []string
	HiddenDigits   int
}

// ResellerInfo is one reseller as reports see it.
type ResellerInfo struct {
	ID, ParentID int64 // ParentID 0: a top-level reseller
	Name         string
	Currency     string
	Status       string
}

// AccountInfo is one account as reports see it.
type AccountInfo struct {
	ID, ClientID int64
	Kind         string // ip | username | ani
	Ident        string
	TechPrefix   string
	Status       string
}

// LoadCatalog reads the catalog's clients, resellers and accounts.
func LoadCatalog(ctx context.Context, pg *pgxpool.Pool) (*Catalog, error) {
	c := &Catalog{Clients: map[int64]*ClientInfo{}, Resellers: map[int64]*ResellerInfo{}, Accounts: map[int64]*AccountInfo{}}
	tx, err := pg.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read only
	if err := tx.QueryRow(ctx, `SELECT version FROM catalog_version`).Scan(&c.Version); err != nil {
		return nil, fmt.Errorf("read catalog version: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT id, reseller_id, name, currency::text, status, timezone, tags, hidden_digits FROM clients`)
	if err != nil {
		return nil, fmt.Errorf("read clients: %w", err)
	}
	var cl ClientInfo
	if _, err := pgx.ForEachRow(rows, []any{&cl.ID, &cl.ResellerID, &cl.Name, &cl.Currency, &cl.Status, &cl.Timezone, &cl.Tags, &cl.HiddenDigits}, func() error {
		v := cl
		c.Clients[v.ID] = &v
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read clients: %w", err)
	}
	rows, err = tx.Query(ctx, `SELECT id, coalesce(parent_id, 0), name, currency::text, status FROM resellers`)
	if err != nil {
		return nil, fmt.Errorf("read resellers: %w", err)
	}
	var r ResellerInfo
	if _, err := pgx.ForEachRow(rows, []any{&r.ID, &r.ParentID, &r.Name, &r.Currency, &r.Status}, func() error {
		v := r
		c.Resellers[v.ID] = &v
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read resellers: %w", err)
	}
	rows, err = tx.Query(ctx, `SELECT id, client_id, kind, ident, tech_prefix, status FROM accounts`)
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	var a AccountInfo
	if _, err := pgx.ForEachRow(rows, []any{&a.ID, &a.ClientID, &a.Kind, &a.Ident, &a.TechPrefix, &a.Status}, func() error {
		v := a
		c.Accounts[v.ID] = &v
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	return c, nil
}

// Client finds a client by name or id.
func (c *Catalog) Client(ref string) (*ClientInfo, error) {
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		if cl, ok := c.Clients[id]; ok {
			return cl, nil
		}
	}
	for _, cl := range c.Clients {
		if cl.Name == ref {
			return cl, nil
		}
	}
	return nil, fmt.Errorf("no client %q", ref)
}

// Reseller finds a reseller by name or id.
func (c *Catalog) Reseller(ref string) (*ResellerInfo, error) {
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		if r, ok := c.Resellers[id]; ok {
			return r, nil
		}
	}
	for _, r := range c.Resellers {
		if r.Name == ref {
			return r, nil
		}
	}
	return nil, fmt.Errorf("no reseller %q", ref)
}

// Subtree returns reseller id and every reseller below it.
func (c *Catalog) Subtree(id int64) []int64 {
	out := []int64{id}
	for i := 0; i < len(out); i++ {
		for _, r := range c.Resellers {
			if r.ParentID == out[i] && r.ID != id {
				out = append(out, r.ID)
			}
		}
	}
	return out
}

// ClientName is the name of client id: "-" for none (0), the id for one
// the catalog no longer has.
func (c *Catalog) ClientName(id int64) string {
	if id == 0 {
		return "-"
	}
	if cl, ok := c.Clients[id]; ok {
		return cl.Name
	}
	return strconv.FormatInt(id, 10)
}

// ResellerName is the name of reseller id, like ClientName.
func (c *Catalog) ResellerName(id int64) string {
	if id == 0 {
		return "-"
	}
	if r, ok := c.Resellers[id]; ok {
		return r.Name
	}
	return strconv.FormatInt(id, 10)
}

// AccountLabel describes account id as "kind ident [tech prefix]"; the
// ident of an ANI account is a number, masked by its client's hidden
// digits.
func (c *Catalog) AccountLabel(id int64) string {
	if id == 0 {
		return "-"
	}
	a, ok := c.Accounts[id]
	if !ok {
		return strconv.FormatInt(id, 10)
	}
	ident := a.Ident
	if a.Kind == "ani" {
		ident = Mask(ident, c.HiddenDigits(a.ClientID))
	}
	return strings.TrimSpace(a.Kind + " " + ident + " " + a.TechPrefix)
}

// HiddenDigits is how many last digits of client id's numbers reports
// mask; 0 for none or an unknown client.
func (c *Catalog) HiddenDigits(id int64) int {
	if cl, ok := c.Clients[id]; ok {
		return cl.HiddenDigits
	}
	return 0
}
