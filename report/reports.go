package report

import (
	"log/slog"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Reports runs every report of DESIGN.md "Reports" over one PostgreSQL
// catalog and one ClickHouse database. It is safe for concurrent use; each
// call blocks on its queries to both servers.
type Reports struct {
	pg  *pgxpool.Pool
	ch  driver.Conn
	log *slog.Logger
}

// New returns the reports over pg (catalog, balances, rollup state) and ch
// (xdrs and the rollups).
func New(pg *pgxpool.Pool, ch driver.Conn, log *slog.Logger) *Reports {
	return &Reports{pg: pg, ch: ch, log: log}
}

// Scope narrows a report to what an API token may see (DESIGN.md: "scoped
// like every other route"). The zero Scope sees everything (an admin or an
// operator at the CLI).
type Scope struct {
	// Resellers, when not nil, limits the report to the clients of these
	// resellers (a reseller token: its own reseller and its subtree).
	Resellers []int64
	// Client, when not 0, limits the report to that client's own calls,
	// balance and mismatches (a client token).
	Client int64
}

// Filter selects calls by the catalog; every field takes names or ids, and
// values of one field are alternatives while the fields combine with AND.
type Filter struct {
	Clients   []string // the orig client (customer)
	Vendors   []string // the term client (vendor)
	Resellers []string // the orig client's reseller, with its sub-resellers
	Tags      []string // orig clients with any of these tags
	CodeNames []string // orig code names, exactly
}

// client finds a client named in a filter. Unknown, it is a ParamError
// for the zero scope; for a token's scope, unknown and outside the scope
// alike are nil (the filter matches nothing), so that a token cannot learn
// which names exist beyond its scope.
func (s Scope) client(cat *Catalog, ref string) (*ClientInfo, error) {
	cl, err := cat.Client(ref)
	if s.Client == 0 && s.Resellers == nil {
		if err != nil {
			return nil, &ParamError{Param: "client", Msg: err.Error()}
		}
		return cl, nil
	}
	if err != nil || (s.Client != 0 && cl.ID != s.Client) || (s.Resellers != nil && !containsID(s.Resellers, cl.ResellerID)) {
		return nil, nil
	}
	return cl, nil
}

// reseller finds a reseller named in a filter, as client does: inside a
// token's scope are the resellers of a reseller token's subtree and a
// client token's own reseller.
func (s Scope) reseller(cat *Catalog, ref string) (*ResellerInfo, error) {
	r, err := cat.Reseller(ref)
	if s.Client == 0 && s.Resellers == nil {
		if err != nil {
			return nil, &ParamError{Param: "reseller", Msg: err.Error()}
		}
		return r, nil
	}
	if err != nil || (s.Resellers != nil && !containsID(s.Resellers, r.ID)) {
		return nil, nil
	}
	if cl, ok := cat.Clients[s.Client]; s.Client != 0 && (!ok || cl.ResellerID != r.ID) {
		return nil, nil
	}
	return r, nil
}

// where turns the scope and the filter into ClickHouse conditions on
// columns that xdrs and xdrs_rollup share.
func where(cat *Catalog, s Scope, f Filter) ([]string, error) {
	var conds []string
	if s.Resellers != nil {
		conds = append(conds, "reseller_id IN "+idList(s.Resellers))
	}
	if s.Client != 0 {
		conds = append(conds, "orig_client_id = "+strconv.FormatInt(s.Client, 10))
	}
	clientIDs := func(param string, refs []string) ([]int64, error) {
		var ids []int64
		for _, ref := range refs {
			if param == "vendor" && s.Resellers == nil && s.Client == 0 {
				cl, err := cat.Client(ref)
				if err != nil {
					return nil, &ParamError{Param: param, Msg: err.Error()}
				}
				ids = append(ids, cl.ID)
				continue
			}
			cl, err := s.client(cat, ref)
			if err != nil {
				return nil, err
			}
			if cl != nil {
				ids = append(ids, cl.ID)
			}
		}
		return ids, nil
	}
	if len(f.Clients) > 0 {
		ids, err := clientIDs("client", f.Clients)
		if err != nil {
			return nil, err
		}
		conds = append(conds, inIDs("orig_client_id", ids))
	}
	if len(f.Vendors) > 0 {
		ids, err := clientIDs("vendor", f.Vendors)
		if err != nil {
			return nil, err
		}
		conds = append(conds, inIDs("term_client_id", ids))
	}
	if len(f.Resellers) > 0 {
		var ids []int64
		for _, ref := range f.Resellers {
			r, err := s.reseller(cat, ref)
			if err != nil {
				return nil, err
			}
			if r != nil {
				ids = append(ids, cat.Subtree(r.ID)...)
			}
		}
		conds = append(conds, inIDs("reseller_id", ids))
	}
	if len(f.Tags) > 0 {
		var ids []int64
		for _, c := range cat.Clients {
			for _, t := range c.Tags {
				if contains(f.Tags, t) {
					ids = append(ids, c.ID)
					break
				}
			}
		}
		conds = append(conds, inIDs("orig_client_id", ids))
	}
	if len(f.CodeNames) > 0 {
		q := make([]string, len(f.CodeNames))
		for i, n := range f.CodeNames {
			q[i] = quote(n)
		}
		conds = append(conds, "orig_code_name IN ("+strings.Join(q, ", ")+")")
	}
	return conds, nil
}

// inIDs is the condition col IN ids, false for no ids: a filter that names
// nothing (unknown, outside the scope, a tag nobody has) matches no call,
// not the calls matched to no client or vendor (id 0).
func inIDs(col string, ids []int64) string {
	if len(ids) == 0 {
		return "1 = 0"
	}
	return col + " IN " + idList(ids)
}

// idList is a ClickHouse tuple of ids; (0) for none, which matches no
// client or reseller (ids start at 1).
func idList(ids []int64) string {
	if len(ids) == 0 {
		return "(0)"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return "(" + strings.Join(s, ", ") + ")"
}

// quote is a ClickHouse string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// tzLiteral quotes loc's name for a ClickHouse query; IANA names hold no
// quote, and a name that could is replaced by UTC rather than escaped.
func tzLiteral(p Period) string {
	name := "UTC"
	if p.Loc != nil && p.Loc.String() != "Local" {
		name = p.Loc.String()
	}
	if strings.ContainsAny(name, `'\`) {
		name = "UTC"
	}
	return "'" + name + "'"
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
