package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Entity is one editable table of the catalog: its typed fields, how an
// actor's scope narrows its rows, and its rules beyond single fields. The
// entities are package variables (Resellers, Managers, Clients, Accounts,
// RateTables) and never change; they are safe for concurrent use.
type Entity struct {
	Name   string  // singular, for messages and the audit log: "client"
	Table  string  // the PostgreSQL table
	Fields []Field // in the order of the read shape and of the checks

	extra []string // further read-only select expressions on alias t
	// readOnly names further keys of the read shape that an edit may send
	// back unchanged (they are ignored, like id and the time stamps).
	readOnly []string
	// noStamps leaves created_at and updated_at out of the read shape.
	noStamps bool
	// scope adds the condition that limits rows (alias t) to what a may see.
	scope func(q *query, a *Actor)
	// owner is an SQL expression on alias t naming the reseller that owns a
	// row, recorded in the audit log for scoped audit reads.
	owner string
	// rules checks the values of a create (old nil) or an update across
	// fields without the database, and may normalise them.
	rules func(old Row, in Input) *FieldError
	// check validates a create (old nil) or the changed values of an update
	// against the database, inside the writing transaction.
	check func(ctx context.Context, w *Writer, old Row, in Input) error
	// after runs inside the writing transaction after an update that
	// changed something, with the row's id.
	after func(ctx context.Context, w *Writer, id int64, old Row, in Input) error
}

// Input is a validated set of field values for a create or an update, by
// field name, as Field.Check returns them.
type Input map[string]any

// Row is a stored row as read back (numbers as json.Number, amounts as
// decimal text).
type Row map[string]any

// Field returns the field called name, or nil.
func (e *Entity) Field(name string) *Field {
	for i := range e.Fields {
		if e.Fields[i].Name == name {
			return &e.Fields[i]
		}
	}
	return nil
}

// SelectList is the read shape of a row of alias t: amounts as decimal
// strings with 6 decimals, dates as YYYY-MM-DD, timestamps as RFC 3339 UTC.
func (e *Entity) SelectList() string {
	cols := []string{"t.id"}
	for _, f := range e.Fields {
		switch f.Kind {
		case KMoney, KMoneyNull:
			cols = append(cols, MoneyText("t."+f.Name)+" AS "+f.Name)
		case KDate:
			cols = append(cols, fmt.Sprintf("to_char(t.%s, 'YYYY-MM-DD') AS %s", f.Name, f.Name))
		case KCurrency:
			cols = append(cols, fmt.Sprintf("t.%s::text AS %s", f.Name, f.Name))
		default:
			cols = append(cols, "t."+f.Name)
		}
	}
	cols = append(cols, e.extra...)
	if !e.noStamps {
		cols = append(cols, TimeText("t.created_at")+" AS created_at", TimeText("t.updated_at")+" AS updated_at")
	}
	return strings.Join(cols, ", ")
}

// TimeText is the SQL of a timestamptz expression as RFC 3339 in UTC.
func TimeText(expr string) string {
	return fmt.Sprintf(`to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')`, expr)
}

// Scope returns the SQL condition (on alias t) that limits rows of e to
// what a may see, or "" when a sees them all; arg binds a value and
// returns its placeholder.
func (e *Entity) Scope(a *Actor, arg func(any) string) string {
	if e.scope == nil {
		return ""
	}
	q := &query{bind: arg}
	e.scope(q, a)
	return strings.Join(q.conds, " AND ")
}

// FromJSON validates a JSON body of a create (create true) or an edit and
// returns its values; the first problem (in field order) is the error: an
// unknown field or a value of the wrong JSON type is Malformed. The
// read-only id, time stamps and counts of the read shape are ignored, so
// that a read object can be sent back edited.
func (e *Entity) FromJSON(body map[string]json.RawMessage, create bool) (Input, error) {
	names := make([]string, 0, len(body))
	for name := range body {
		names = append(names, name)
	}
	sort.Strings(names)
	vals := map[string]any{}
	for _, name := range names {
		if e.ignored(name) {
			continue
		}
		f := e.Field(name)
		if f == nil {
			return nil, malformed(name, "unknown field")
		}
		v, err := f.FromJSON(body[name])
		if err != nil {
			return nil, err
		}
		vals[name] = v
	}
	in, problems := e.Validate(vals, create)
	if len(problems) > 0 {
		return nil, problems[0]
	}
	return in, nil
}

func (e *Entity) ignored(name string) bool {
	switch name {
	case "id", "created_at", "updated_at":
		return true
	}
	return slices.Contains(e.readOnly, name)
}

// Validate checks the values of a create or an edit (Go values as
// Field.FromJSON returns them, or as a catalog file gives them) without
// the database: each field, the required ones of a create, and the rules
// across fields of a create. It returns the values to write and every
// problem, in field order.
func (e *Entity) Validate(vals map[string]any, create bool) (Input, []*FieldError) {
	in := Input{}
	var problems []*FieldError
	for i := range e.Fields {
		f := &e.Fields[i]
		v, given := vals[f.Name]
		if !given {
			if create && f.Required {
				problems = append(problems, invalid(f.Name, "required"))
			}
			continue
		}
		cv, err := f.Check(v)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		in[f.Name] = cv
	}
	for name := range vals {
		if e.Field(name) == nil {
			problems = append(problems, malformed(name, "unknown field"))
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	if !create && len(in) == 0 {
		return nil, []*FieldError{malformed("", "nothing to change")}
	}
	if create && e.rules != nil {
		if err := e.rules(nil, in); err != nil {
			return nil, []*FieldError{err}
		}
	}
	return in, nil
}

// query collects WHERE conditions and their bound arguments. Only fixed
// SQL text is ever concatenated; every value is an argument.
type query struct {
	conds []string
	args  []any
	bind  func(any) string // binds into another builder's arguments
}

func (q *query) arg(v any) string {
	if q.bind != nil {
		return q.bind(v)
	}
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

func (q *query) where() string {
	if len(q.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.conds, " AND ")
}

// querier is what a read needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Get reads one row of e as JSON; rows outside a's scope are not found.
// db is a pool or a transaction.
func Get(ctx context.Context, db querier, a *Actor, e *Entity, id int64) (json.RawMessage, error) {
	q := &query{}
	q.add("t.id = %s", id)
	if e.scope != nil {
		e.scope(q, a)
	}
	sql := fmt.Sprintf("SELECT row_to_json(x)::text FROM (SELECT %s FROM %s t%s) x", e.SelectList(), e.Table, q.where())
	var out string
	err := db.QueryRow(ctx, sql, q.args...).Scan(&out)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(e.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %d: %w", e.Name, id, err)
	}
	return json.RawMessage(out), nil
}

// DecodeRow turns a row read by Get into a map, numbers kept exact.
func DecodeRow(raw json.RawMessage) Row {
	m := Row{}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		panic("BUG: row_to_json produced bad JSON: " + err.Error())
	}
	return m
}

// value returns the value a field will have after the write: the new one
// when in sets it, else the old row's.
func value(old Row, in Input, name string) any {
	if v, ok := in[name]; ok {
		return v
	}
	if old != nil {
		return old[name]
	}
	return nil
}

// idValue reads an id from an input (int64) or a read row (json.Number); 0
// when null or absent.
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

// castOf is the SQL cast a bound value of kind k takes.
func castOf(k Kind) string {
	switch k {
	case KMoney, KMoneyNull:
		return "::numeric"
	case KDate:
		return "::date"
	case KTags:
		return "::text[]"
	case KCount, KInt, KIntNull, KRef, KRefRequired:
		return "::bigint"
	case KBool:
		return "::boolean"
	}
	return "::text"
}
