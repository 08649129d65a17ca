package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tarifa/tarifa/catalog"
)

// query collects the WHERE conditions of a list and their bound
// arguments. Only fixed SQL text is ever concatenated; every value a
// caller sends is an argument.
type query struct {
	conds []string
	args  []any
}

func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

func (q *query) add(format string, args ...any) {
	ph := make([]any, len(args))
	for i, a := range args {
		ph[i] = q.arg(a)
	}
	q.conds = append(q.conds, fmt.Sprintf(format, ph...))
}

// scope limits q to the rows of e that p may see.
func (q *query) scope(e *catalog.Entity, p *principal) {
	if c := e.Scope(p.catalogActor(), q.arg); c != "" {
		q.conds = append(q.conds, c)
	}
}

// oneOf filters col by the query parameter param when it is given, which
// must then be one of allowed (400 naming the parameter otherwise).
func (q *query) oneOf(v url.Values, param, col string, allowed ...string) error {
	val := v.Get(param)
	if val == "" {
		return nil
	}
	if !slices.Contains(allowed, val) {
		list := strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
		return badRequest(param, "must be %s", list)
	}
	q.add(col+" = %s", val)
	return nil
}

func (q *query) where() string {
	if len(q.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.conds, " AND ")
}

// page is one page of a list answer.
type page struct {
	Items  json.RawMessage `json:"items"`
	Total  int64           `json:"total"`
	Limit  int64           `json:"limit"`
	Offset int64           `json:"offset"`
}

// pagination reads ?limit (default 100, at most 1000) and ?offset.
func pagination(v url.Values) (limit, offset int64, err error) {
	limit, offset = 100, 0
	if s := v.Get("limit"); s != "" {
		n, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil || n < 1 || n > 1000 {
			return 0, 0, badRequest("limit", "must be an integer from 1 to 1000")
		}
		limit = n
	}
	if s := v.Get("offset"); s != "" {
		n, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil || n < 0 {
			return 0, 0, badRequest("offset", "must be a non-negative integer")
		}
		offset = n
	}
	return limit, offset, nil
}

// list answers one page of e's rows matching q (which the caller has
// already narrowed to p's scope), ordered by orderBy; selectList defaults
// to e's read shape.
func (s *Server) list(ctx context.Context, e *catalog.Entity, q *query, orderBy string, v url.Values) (*page, error) {
	return s.listAs(ctx, e.Table, e.SelectList(), q, orderBy, v)
}

func (s *Server) listAs(ctx context.Context, table, selectList string, q *query, orderBy string, v url.Values) (*page, error) {
	limit, offset, err := pagination(v)
	if err != nil {
		return nil, err
	}
	pg := &page{Limit: limit, Offset: offset}
	from := fmt.Sprintf("FROM %s t%s", table, q.where())
	if err := s.pool.QueryRow(ctx, "SELECT count(*) "+from, q.args...).Scan(&pg.Total); err != nil {
		return nil, fmt.Errorf("count %s: %w", table, err)
	}
	lim, off := q.arg(limit), q.arg(offset)
	sql := fmt.Sprintf("SELECT coalesce(json_agg(x), '[]')::text FROM (SELECT %s %s ORDER BY %s LIMIT %s OFFSET %s) x",
		selectList, from, orderBy, lim, off)
	var items string
	if err := s.pool.QueryRow(ctx, sql, q.args...).Scan(&items); err != nil {
		return nil, fmt.Errorf("list %s: %w", table, err)
	}
	pg.Items = json.RawMessage(items)
	return pg, nil
}

// pathID reads the {name} path value as a positive id; anything else is a
// 404, as no object has that id.
func pathID(r *http.Request, name, what string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, notFound(what)
	}
	return id, nil
}

// archivedFilter applies ?archived=true (only archived rows) or the
// default (only rows not archived).
func archivedFilter(q *query, v url.Values) error {
	switch v.Get("archived") {
	case "", "false":
		q.conds = append(q.conds, "t.status <> 'deleted'")
	case "true":
		q.conds = append(q.conds, "t.status = 'deleted'")
	default:
		return badRequest("archived", "must be true or false")
	}
	return nil
}

// nameFilter applies ?name: a case-insensitive starts-with match.
func nameFilter(q *query, v url.Values) error {
	if name := strings.TrimSpace(v.Get("name")); name != "" {
		q.add("t.name ILIKE %s", escapeLike(name)+"%")
	}
	return nil
}

// idFilter applies ?param=ID as col = ID.
func idFilter(q *query, v url.Values, param, col string) error {
	s := v.Get(param)
	if s == "" {
		return nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return badRequest(param, "must be a positive integer")
	}
	q.add(col+" = %s", id)
	return nil
}

// escapeLike quotes the LIKE metacharacters of s.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
