package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/tarifa/tarifa/billing"
)

// ResellerStatus is the status of a reseller.
type ResellerStatus string

// The statuses of a reseller: deleted means archived (its history stays).
const (
	ResellerActive  ResellerStatus = "active"
	ResellerDeleted ResellerStatus = "deleted"
)

// Resellers form a tree through parent_id. A reseller actor reads its own
// reseller and manages the ones below it; nobody sees upward or sideways.
// Archiving (status deleted) is refused while the reseller has clients
// that are not deleted or active sub-resellers. A parent that would make a
// cycle is refused, whether it comes from the API or a catalog file.
var Resellers = &Entity{
	Name:  "reseller",
	Table: "resellers",
	Fields: []Field{
		{Name: "name", Kind: KName, Required: true, Doc: "unique name"},
		{Name: "parent_id", Kind: KRef, Ref: "resellers", Doc: "parent reseller; null for a top-level reseller (operator only)"},
		{Name: "currency", Kind: KCurrency, Required: true, Fixed: true, Doc: "ISO 4217 code"},
		{Name: "status", Kind: KEnum, Enum: []string{string(ResellerActive), string(ResellerDeleted)}, Doc: "deleted = archived", Default: string(ResellerActive)},
		{Name: "orig_rate_table_id", Kind: KRef, Ref: "rate_tables"},
		{Name: "term_rate_table_id", Kind: KRef, Ref: "rate_tables"},
		{Name: "orig_capacity", Kind: KCount, Doc: "concurrent calls; null = no limit"},
		{Name: "term_capacity", Kind: KCount},
		{Name: "credit_limit", Kind: KMoney, Default: "0"},
		{Name: "unlimited", Kind: KBool, Doc: "postpaid", Default: false},
		{Name: "invoice_template", Kind: KText, Default: ""},
		{Name: "invoice_number_template", Kind: KName, Doc: "numbering template (No Tpl): {n} the number, {n:5} zero-padded, {yyyy} and {mm} of the issue date; default {n}", Default: string(billing.DefaultNumberTemplate)},
		{Name: "invoice_last_number", Kind: KInt, Min: 0, Max: 1e15, Doc: "Last No: the number of the last invoice issued; may be raised, never lowered below an issued one"},
		{Name: "company_name", Kind: KText, Default: ""},
		{Name: "email", Kind: KEmail, Default: ""},
		{Name: "address", Kind: KText, Default: ""},
		{Name: "tax_id", Kind: KText, Default: ""},
		{Name: "reg_id", Kind: KText, Default: ""},
	},
	scope: scopeByReseller("t.id"),
	owner: "t.id",
	rules: resellerRules,
	check: checkReseller,
}

// resellerRules checks the credit rule and the numbering template.
func resellerRules(old Row, in Input) *FieldError {
	if err := creditRule(old, in); err != nil {
		return err
	}
	if v, given := in["invoice_number_template"]; given {
		if err := billingField(billing.NumberTemplate(strValue(v)).Validate()); err != nil {
			return err
		}
	}
	return nil
}

// creditRule refuses a credit limit above zero given together with
// unlimited: true (a postpaid client or reseller has no limit).
func creditRule(_ Row, in Input) *FieldError {
	if in["unlimited"] == true {
		if c, ok := in["credit_limit"].(string); ok && c != "0" {
			return invalid("credit_limit", "must be 0 with unlimited: true (postpaid has no limit), got %s", c)
		}
	}
	return nil
}

func checkReseller(ctx context.Context, w *Writer, old Row, in Input) error {
	a := w.actor
	var id int64
	if old != nil {
		id = idValue(old["id"])
		if a.IsReseller() && id == a.ResellerID {
			return &FieldError{Kind: Forbidden, Msg: "a reseller cannot edit its own reseller"}
		}
	}
	if _, given := in["parent_id"]; !given && old == nil && a.IsReseller() {
		in["parent_id"] = a.ResellerID // a reseller creates below itself by default
	}
	if v, given := in["parent_id"]; given {
		parent := idValue(v)
		switch {
		case parent == 0 && !a.IsOperator():
			return invalid("parent_id", "a reseller can only create resellers inside its own tree")
		case parent != 0:
			if err := w.checkResellerRef(ctx, "parent_id", parent); err != nil {
				return err
			}
			if id != 0 {
				below, err := Subtree(ctx, w.tx, id)
				if err != nil {
					return err
				}
				if slices.Contains(below, parent) {
					return invalid("parent_id", "reseller %d %q is %d %q itself or below it: that would make a cycle",
						parent, w.name(ctx, "resellers", parent), id, w.name(ctx, "resellers", id))
				}
			}
		}
	}
	if _, moved := in["parent_id"]; !moved && revived(old, in, string(ResellerDeleted)) {
		if parent := idValue(old["parent_id"]); parent != 0 {
			if err := w.checkOwnerActive(ctx, parent, "sub-reseller"); err != nil {
				return err
			}
		}
	}
	currency := strValue(value(old, in, "currency"))
	for _, f := range []string{"orig_rate_table_id", "term_rate_table_id"} {
		if v, given := in[f]; given && v != nil {
			if err := w.checkRateTableRef(ctx, f, idValue(v), currency); err != nil {
				return err
			}
		}
	}
	if old != nil && in["status"] == string(ResellerDeleted) && old["status"] != string(ResellerDeleted) {
		return checkArchivable(ctx, w.tx, id)
	}
	return nil
}

// checkArchivable refuses to archive a reseller that still has clients
// that are not deleted, or active sub-resellers: their traffic would have
// no live owner.
func checkArchivable(ctx context.Context, tx pgx.Tx, id int64) error {
	var clients, children int64
	err := tx.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM clients WHERE reseller_id = $1 AND status <> 'deleted'),
		(SELECT count(*) FROM resellers WHERE parent_id = $1 AND status = 'active')`, id).Scan(&clients, &children)
	if err != nil {
		return fmt.Errorf("count what reseller %d owns: %w", id, err)
	}
	if clients > 0 || children > 0 {
		return conflict("status", "reseller %d still has %d clients and %d sub-resellers that are not deleted", id, clients, children)
	}
	return nil
}

// revived reports whether in brings a row that old holds as deleted (its
// status deleted) back to another status.
func revived(old Row, in Input, deleted string) bool {
	s, given := in["status"]
	return old != nil && given && old["status"] == deleted && s != deleted
}

// checkOwnerActive refuses to bring a deleted client or sub-reseller (what)
// back while its reseller id is archived: archiving a reseller requires all
// it owns deleted, and reviving one of them must not undo that — its token
// would answer again and its traffic would have no live owner.
func (w *Writer) checkOwnerActive(ctx context.Context, id int64, what string) error {
	var status string
	if err := w.tx.QueryRow(ctx, "SELECT status FROM resellers WHERE id = $1", id).Scan(&status); err != nil {
		return fmt.Errorf("read reseller %d: %w", id, err)
	}
	if status != string(ResellerActive) {
		return conflict("status", "reseller %d %q is archived: a %s of it stays deleted", id, w.name(ctx, "resellers", id), what)
	}
	return nil
}

// checkResellerRef checks that reseller id exists, is active and lies in
// the Writer's scope; a reseller outside it is reported as not found.
func (w *Writer) checkResellerRef(ctx context.Context, field string, id int64) error {
	if !w.actor.InSubtree(id) {
		return invalid(field, "reseller %d not found", id)
	}
	var status string
	err := w.tx.QueryRow(ctx, "SELECT status FROM resellers WHERE id = $1", id).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return invalid(field, "reseller %d not found", id)
	}
	if err != nil {
		return fmt.Errorf("read reseller %d: %w", id, err)
	}
	if status != string(ResellerActive) {
		return invalid(field, "reseller %q is archived", w.name(ctx, "resellers", id))
	}
	return nil
}

// name returns the name of row id of table for a message ("" when it
// cannot be read).
func (w *Writer) name(ctx context.Context, table string, id int64) string {
	var n string
	_ = w.tx.QueryRow(ctx, "SELECT name FROM "+table+" WHERE id = $1", id).Scan(&n)
	return n
}

// Subtree returns reseller id and every reseller below it, in id order
// (empty when id does not exist). db is a pool or a transaction.
func Subtree(ctx context.Context, db querier, id int64) ([]int64, error) {
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
		ids = []int64{}
	}
	return ids, nil
}

// scopeByReseller limits rows to those whose col (a reseller id) the actor
// may see; client actors see none.
func scopeByReseller(col string) func(q *query, a *Actor) {
	return func(q *query, a *Actor) {
		switch {
		case a.IsReseller():
			q.add(col+" = ANY(%s)", a.Subtree)
		case a.IsClient():
			q.conds = append(q.conds, "false")
		}
	}
}

// scopeByClient limits rows to those whose col (a client id) the actor may
// see.
func scopeByClient(col string) func(q *query, a *Actor) {
	return func(q *query, a *Actor) {
		switch {
		case a.IsReseller():
			q.add(col+" IN (SELECT id FROM clients WHERE reseller_id = ANY(%s))", a.Subtree)
		case a.IsClient():
			q.add(col+" = %s", a.ClientID)
		}
	}
}
