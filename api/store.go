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

	"github.com/jackc/pgx/v5"
)

// entity describes one editable table: its typed fields, how a caller's
// scope narrows its rows and the rules beyond single fields.
type entity struct {
	name   string // singular, for messages and the audit log: "client"
	table  string
	fields []field
	extra  []string // further read-only select expressions on alias t
	// noStamps leaves created_at and updated_at out of the read shape (the
	// table lacks them, or extra formats them itself).
	noStamps bool
	// scope adds the condition that limits rows (alias t) to what p may see.
	scope func(q *query, p *principal)
	// owner is an SQL expression on alias t naming the reseller that owns a
	// row, recorded in the audit log for scoped audit reads.
	owner string
	// check validates a create (old == nil) or an update across fields and
	// against the database, inside the writing transaction.
	check func(ctx context.Context, tx pgx.Tx, p *principal, old, vals map[string]any) error
	// after runs inside the writing transaction after an update, with the
	// row's id; rules such as "deleted turns off every account" live here.
	after func(ctx context.Context, s *Server, tx pgx.Tx, p *principal, id int64, old, vals map[string]any) error
}

func (e *entity) field(name string) *field {
	for i := range e.fields {
		if e.fields[i].name == name {
			return &e.fields[i]
		}
	}
	return nil
}

// selectList is the read shape of a row of alias t: amounts as decimal
// strings, dates as YYYY-MM-DD, timestamps as RFC 3339 UTC.
func (e *entity) selectList() string {
	cols := []string{"t.id"}
	for _, f := range e.fields {
		switch f.kind {
		case kMoney, kMoneyNull:
			cols = append(cols, fmt.Sprintf("t.%s::text AS %s", f.name, f.name))
		case kDate:
			cols = append(cols, fmt.Sprintf("to_char(t.%s, 'YYYY-MM-DD') AS %s", f.name, f.name))
		case kCurrency:
			cols = append(cols, fmt.Sprintf("t.%s::text AS %s", f.name, f.name))
		default:
			cols = append(cols, "t."+f.name)
		}
	}
	cols = append(cols, e.extra...)
	if !e.noStamps {
		cols = append(cols, ts("t.created_at")+" AS created_at", ts("t.updated_at")+" AS updated_at")
	}
	return strings.Join(cols, ", ")
}

// ts formats a timestamptz expression as RFC 3339 in UTC.
func ts(expr string) string {
	return fmt.Sprintf(`to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')`, expr)
}

// query collects WHERE conditions and their bound arguments. Only fixed
// SQL text is ever concatenated; every value a caller sends is an argument.
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

// get reads one row as JSON; rows outside p's scope are not found.
func (s *Server) get(ctx context.Context, db pgx.Tx, e *entity, p *principal, id int64) (json.RawMessage, error) {
	q := &query{}
	q.add("t.id = %s", id)
	if e.scope != nil {
		e.scope(q, p)
	}
	sql := fmt.Sprintf("SELECT row_to_json(x)::text FROM (SELECT %s FROM %s t%s) x", e.selectList(), e.table, q.where())
	var out string
	var err error
	if db != nil {
		err = db.QueryRow(ctx, sql, q.args...).Scan(&out)
	} else {
		err = s.pool.QueryRow(ctx, sql, q.args...).Scan(&out)
	}
	if err == pgx.ErrNoRows {
		return nil, notFound(e.name)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %d: %w", e.name, id, err)
	}
	return json.RawMessage(out), nil
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
// already narrowed to p's scope), ordered by orderBy.
func (s *Server) list(ctx context.Context, e *entity, q *query, orderBy string, v url.Values) (*page, error) {
	limit, offset, err := pagination(v)
	if err != nil {
		return nil, err
	}
	pg := &page{Limit: limit, Offset: offset}
	from := fmt.Sprintf("FROM %s t%s", e.table, q.where())
	if err := s.pool.QueryRow(ctx, "SELECT count(*) "+from, q.args...).Scan(&pg.Total); err != nil {
		return nil, fmt.Errorf("count %s: %w", e.table, err)
	}
	lim, off := q.arg(limit), q.arg(offset)
	sql := fmt.Sprintf("SELECT coalesce(json_agg(x), '[]')::text FROM (SELECT %s %s ORDER BY %s LIMIT %s OFFSET %s) x",
		e.selectList(), from, orderBy, lim, off)
	var items string
	if err := s.pool.QueryRow(ctx, sql, q.args...).Scan(&items); err != nil {
		return nil, fmt.Errorf("list %s: %w", e.table, err)
	}
	pg.Items = json.RawMessage(items)
	return pg, nil
}

// input validates a create (create true) or update body against e's
// fields and returns the values to bind by column. The read-only id,
// created_at and updated_at are ignored so that a read object can be sent
// back edited.
func (e *entity) input(body map[string]json.RawMessage, create bool) (map[string]any, error) {
	vals := map[string]any{}
	for name, raw := range body {
		switch name {
		case "id", "created_at", "updated_at":
			continue
		}
		f := e.field(name)
		if f == nil {
			return nil, badRequest(name, "unknown field")
		}
		if f.fixed && !create {
			return nil, invalid(name, "cannot be changed after creation")
		}
		v, aerr := f.parse(raw)
		if aerr != nil {
			return nil, aerr
		}
		vals[name] = v
	}
	if create {
		for _, f := range e.fields {
			if _, ok := vals[f.name]; f.required && !ok {
				return nil, invalid(f.name, "required")
			}
		}
	} else if len(vals) == 0 {
		return nil, badRequest("", "nothing to change")
	}
	return vals, nil
}

// decodeRow turns a row read by get into a map (numbers kept exact).
func decodeRow(raw json.RawMessage) map[string]any {
	m := map[string]any{}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		panic("BUG: row_to_json produced bad JSON: " + err.Error())
	}
	return m
}

// value returns the value a field will have after the write: the new one
// when vals sets it, else the old row's.
func value(old, vals map[string]any, name string) any {
	if v, ok := vals[name]; ok {
		return v
	}
	if old != nil {
		return old[name]
	}
	return nil
}

// idValue reads an id from an input (int64) or a decoded row (json.Number);
// 0 when null or absent.
func idValue(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case json.Number:
		n, _ := x.Int64()
		return n
	}
	return 0
}

func strValue(v any) string {
	s, _ := v.(string)
	return s
}

// create inserts a row and its audit record in one transaction and answers
// the created object.
func (s *Server) create(ctx context.Context, p *principal, e *entity, body map[string]json.RawMessage) (json.RawMessage, error) {
	vals, err := e.input(body, true)
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if e.check != nil {
			if err := e.check(ctx, tx, p, nil, vals); err != nil {
				return err
			}
		}
		q := &query{}
		var cols, phs []string
		for _, f := range e.fields {
			if v, ok := vals[f.name]; ok {
				cols = append(cols, f.name)
				phs = append(phs, q.arg(v)+castOf(f.kind))
			}
		}
		sql := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) RETURNING id", e.table, strings.Join(cols, ", "), strings.Join(phs, ", "))
		if len(cols) == 0 {
			sql = fmt.Sprintf("INSERT INTO %s DEFAULT VALUES RETURNING id", e.table)
		}
		var id int64
		if err := tx.QueryRow(ctx, sql, q.args...).Scan(&id); err != nil {
			return err
		}
		out, err = s.get(ctx, tx, e, adminPrincipal, id)
		if err != nil {
			return err
		}
		return s.audit(ctx, tx, p, "create", e, id, nil, out)
	})
	return out, err
}

// update applies a PATCH body to a row in p's scope, with its audit record,
// and answers the updated object.
func (s *Server) update(ctx context.Context, p *principal, e *entity, id int64, body map[string]json.RawMessage) (json.RawMessage, error) {
	if _, err := e.input(body, false); err != nil {
		return nil, err // before opening a transaction
	}
	var out json.RawMessage
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = s.updateIn(ctx, tx, p, e, id, body)
		return err
	})
	return out, err
}

// updateIn is update inside the caller's transaction.
func (s *Server) updateIn(ctx context.Context, tx pgx.Tx, p *principal, e *entity, id int64, body map[string]json.RawMessage) (json.RawMessage, error) {
	vals, err := e.input(body, false)
	if err != nil {
		return nil, err
	}
	before, err := s.lockAndGet(ctx, tx, e, p, id)
	if err != nil {
		return nil, err
	}
	old := decodeRow(before)
	if e.check != nil {
		if err := e.check(ctx, tx, p, old, vals); err != nil {
			return nil, err
		}
	}
	if err := s.set(ctx, tx, e, id, vals); err != nil {
		return nil, err
	}
	if e.after != nil {
		if err := e.after(ctx, s, tx, p, id, old, vals); err != nil {
			return nil, err
		}
	}
	out, err := s.get(ctx, tx, e, adminPrincipal, id)
	if err != nil {
		return nil, err
	}
	return out, s.audit(ctx, tx, p, "update", e, id, before, out)
}

// lockAndGet locks a row of p's scope for update and reads it.
func (s *Server) lockAndGet(ctx context.Context, tx pgx.Tx, e *entity, p *principal, id int64) (json.RawMessage, error) {
	if _, err := s.get(ctx, tx, e, p, id); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("SELECT 1 FROM %s WHERE id = $1 FOR UPDATE", e.table), id); err != nil {
		return nil, err
	}
	return s.get(ctx, tx, e, p, id) // as of the lock
}

// set writes vals to row id.
func (s *Server) set(ctx context.Context, tx pgx.Tx, e *entity, id int64, vals map[string]any) error {
	q := &query{}
	var sets []string
	for _, f := range e.fields {
		if v, ok := vals[f.name]; ok {
			sets = append(sets, f.name+" = "+q.arg(v)+castOf(f.kind))
		}
	}
	if len(sets) == 0 {
		return nil
	}
	sql := fmt.Sprintf("UPDATE %s SET %s, updated_at = now() WHERE id = %s", e.table, strings.Join(sets, ", "), q.arg(id))
	_, err := tx.Exec(ctx, sql, q.args...)
	return err
}

func castOf(k kind) string {
	switch k {
	case kMoney, kMoneyNull:
		return "::numeric"
	case kDate:
		return "::date"
	case kTags:
		return "::text[]"
	}
	return ""
}

// audit records a change made by p: who, what, when, before and after,
// inside the transaction of the change.
func (s *Server) audit(ctx context.Context, tx pgx.Tx, p *principal, action string, e *entity, id int64, before, after json.RawMessage) error {
	var owner *int64
	if e.owner != "" {
		err := tx.QueryRow(ctx, fmt.Sprintf("SELECT %s FROM %s t WHERE t.id = $1", e.owner, e.table), id).Scan(&owner)
		if err != nil && err != pgx.ErrNoRows {
			return fmt.Errorf("audit owner: %w", err)
		}
	}
	return s.auditOwned(ctx, tx, p, action, e.name, id, owner, before, after)
}

func (s *Server) auditOwned(ctx context.Context, tx pgx.Tx, p *principal, action, entity string, id int64, owner *int64, before, after json.RawMessage) error {
	_, err := tx.Exec(ctx, `INSERT INTO audit_log (actor, action, entity, entity_id, before, after, token_id, reseller_id)
		VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8)`,
		p.actor(), action, entity, id, jsonArg(before), jsonArg(after), p.tokenIDArg(), owner)
	if err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	return nil
}

func jsonArg(raw json.RawMessage) any {
	if raw == nil {
		return nil
	}
	return string(raw)
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
