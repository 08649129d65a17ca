package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Writer is the one write path of the catalog: the API and the catalog
// file make every change through it, so both apply the same rules with the
// same messages, and every change gets its audit row (who, what, before,
// after) in the transaction that makes it. A Writer belongs to one
// transaction and one actor; it is not safe for concurrent use, and it
// blocks on PostgreSQL (and on the row locks other writers hold).
type Writer struct {
	tx    pgx.Tx
	actor *Actor
}

// Write runs fn with a Writer for a in one transaction on pool, committed
// when fn returns nil and rolled back otherwise.
func Write(ctx context.Context, pool *pgxpool.Pool, a *Actor, fn func(w *Writer) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return fn(NewWriter(tx, a))
	})
}

// NewWriter returns a Writer for a inside the caller's transaction tx.
func NewWriter(tx pgx.Tx, a *Actor) *Writer { return &Writer{tx: tx, actor: a} }

// Tx is the Writer's transaction, for reads that must see its writes.
func (w *Writer) Tx() pgx.Tx { return w.tx }

// Actor is who the Writer writes as.
func (w *Writer) Actor() *Actor { return w.actor }

// as returns a Writer on the same transaction acting as a.
func (w *Writer) as(a *Actor) *Writer { return &Writer{tx: w.tx, actor: a} }

// Change is what a write did to a row.
type Change int

// The changes a write reports.
const (
	Unchanged Change = iota // the row already held the values: nothing written
	Created
	Updated
)

// Get reads one row of e in the Writer's scope (not found outside it), as
// of the Writer's transaction.
func (w *Writer) Get(ctx context.Context, e *Entity, id int64) (json.RawMessage, error) {
	return Get(ctx, w.tx, w.actor, e, id)
}

// Create inserts a row of e with in (validated by e.Validate or
// e.FromJSON), checked against the database, with its audit row, and
// returns the created object.
func (w *Writer) Create(ctx context.Context, e *Entity, in Input) (json.RawMessage, error) {
	if e.rules != nil {
		if err := e.rules(nil, in); err != nil {
			return nil, err
		}
	}
	if e.check != nil {
		if err := e.check(ctx, w, nil, in); err != nil {
			return nil, err
		}
	}
	var args []any
	var cols, phs []string
	for _, f := range e.Fields {
		if v, ok := in[f.Name]; ok {
			args = append(args, v)
			cols = append(cols, f.Name)
			phs = append(phs, fmt.Sprintf("$%d%s", len(args), castOf(f.Kind)))
		}
	}
	sql := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) RETURNING id", e.Table, strings.Join(cols, ", "), strings.Join(phs, ", "))
	if len(cols) == 0 {
		sql = fmt.Sprintf("INSERT INTO %s DEFAULT VALUES RETURNING id", e.Table)
	}
	var id int64
	if err := w.tx.QueryRow(ctx, sql, args...).Scan(&id); err != nil {
		return nil, w.dbError(fmt.Sprintf("create %s", e.Name), err)
	}
	out, err := Get(ctx, w.tx, Operator(""), e, id)
	if err != nil {
		return nil, err
	}
	return out, w.audit(ctx, "create", e, id, nil, out)
}

// Update gives row id of e (in the Writer's scope) the values of in. Only
// the values that differ from the stored ones are checked and written; when
// none differs nothing is written at all (no audit row, no catalog version
// bump) and the change is Unchanged. A fixed field may be given only with
// its stored value.
func (w *Writer) Update(ctx context.Context, e *Entity, id int64, in Input) (json.RawMessage, Change, error) {
	before, err := w.lockAndGet(ctx, e, id)
	if err != nil {
		return nil, Unchanged, err
	}
	old := DecodeRow(before)
	if e.rules != nil {
		if err := e.rules(old, in); err != nil {
			return nil, Unchanged, err
		}
	}
	changed, err := w.differing(ctx, e, id, in)
	if err != nil {
		return nil, Unchanged, err
	}
	for _, f := range e.Fields {
		if _, ok := changed[f.Name]; ok && f.Fixed {
			return nil, Unchanged, invalid(f.Name, "cannot be changed after creation")
		}
	}
	if len(changed) == 0 {
		return before, Unchanged, nil
	}
	if e.check != nil {
		if err := e.check(ctx, w, old, changed); err != nil {
			return nil, Unchanged, err
		}
	}
	if err := w.set(ctx, e, id, changed); err != nil {
		return nil, Unchanged, err
	}
	if e.after != nil {
		if err := e.after(ctx, w, id, old, changed); err != nil {
			return nil, Unchanged, err
		}
	}
	out, err := Get(ctx, w.tx, Operator(""), e, id)
	if err != nil {
		return nil, Unchanged, err
	}
	return out, Updated, w.audit(ctx, "update", e, id, before, out)
}

// differing returns the values of in that differ from row id's, compared
// by PostgreSQL with the column types (so "100" equals 100.000000).
func (w *Writer) differing(ctx context.Context, e *Entity, id int64, in Input) (Input, error) {
	var names, exprs []string
	var args []any
	for _, f := range e.Fields {
		if v, ok := in[f.Name]; ok {
			args = append(args, v)
			names = append(names, f.Name)
			exprs = append(exprs, fmt.Sprintf("t.%s IS DISTINCT FROM $%d%s", f.Name, len(args), castOf(f.Kind)))
		}
	}
	if len(names) == 0 {
		return Input{}, nil
	}
	args = append(args, id)
	differs := make([]bool, len(names))
	dest := make([]any, len(names))
	for i := range differs {
		dest[i] = &differs[i]
	}
	sql := fmt.Sprintf("SELECT %s FROM %s t WHERE t.id = $%d", strings.Join(exprs, ", "), e.Table, len(args))
	if err := w.tx.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		return nil, w.dbError(fmt.Sprintf("compare %s %d", e.Name, id), err)
	}
	out := Input{}
	for i, name := range names {
		if differs[i] {
			out[name] = in[name]
		}
	}
	return out, nil
}

// lockAndGet locks a row of the Writer's scope for update and reads it.
func (w *Writer) lockAndGet(ctx context.Context, e *Entity, id int64) (json.RawMessage, error) {
	if _, err := w.Get(ctx, e, id); err != nil {
		return nil, err
	}
	if _, err := w.tx.Exec(ctx, fmt.Sprintf("SELECT 1 FROM %s WHERE id = $1 FOR UPDATE", e.Table), id); err != nil {
		return nil, fmt.Errorf("lock %s %d: %w", e.Name, id, err)
	}
	return w.Get(ctx, e, id) // as of the lock
}

// set writes in to row id.
func (w *Writer) set(ctx context.Context, e *Entity, id int64, in Input) error {
	var args []any
	var sets []string
	for _, f := range e.Fields {
		if v, ok := in[f.Name]; ok {
			args = append(args, v)
			sets = append(sets, fmt.Sprintf("%s = $%d%s", f.Name, len(args), castOf(f.Kind)))
		}
	}
	if len(sets) == 0 {
		return nil
	}
	args = append(args, id)
	stamp := ", updated_at = now()"
	if e.noStamps {
		stamp = ""
	}
	sql := fmt.Sprintf("UPDATE %s SET %s%s WHERE id = $%d", e.Table, strings.Join(sets, ", "), stamp, len(args))
	if _, err := w.tx.Exec(ctx, sql, args...); err != nil {
		return w.dbError(fmt.Sprintf("update %s %d", e.Name, id), err)
	}
	return nil
}

// dbError passes on the errors a caller can fix as FieldErrors and wraps
// the rest with what was being done.
func (w *Writer) dbError(doing string, err error) error {
	if fe, ok := AsFieldError(err); ok && !errors.Is(err, pgx.ErrNoRows) {
		return fe
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// audit records a change made by the Writer's actor, inside the
// transaction of the change.
func (w *Writer) audit(ctx context.Context, action string, e *Entity, id int64, before, after json.RawMessage) error {
	var owner *int64
	if e.owner != "" {
		err := w.tx.QueryRow(ctx, fmt.Sprintf("SELECT %s FROM %s t WHERE t.id = $1", e.owner, e.Table), id).Scan(&owner)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("audit owner of %s %d: %w", e.Name, id, err)
		}
	}
	return w.auditOwned(ctx, action, e.Name, id, owner, before, after)
}

func (w *Writer) auditOwned(ctx context.Context, action, entity string, id int64, owner *int64, before, after json.RawMessage) error {
	var token any
	if w.actor.TokenID != 0 {
		token = w.actor.TokenID
	}
	_, err := w.tx.Exec(ctx, `INSERT INTO audit_log (actor, action, entity, entity_id, before, after, token_id, reseller_id)
		VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8)`,
		w.actor.Name, action, entity, id, jsonArg(before), jsonArg(after), token, owner)
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
