package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tarifa/tarifa/sinks"
)

// RateTableStatus is the status of a rate table.
type RateTableStatus string

// The statuses of a rate table: clients keep using an archived (deleted)
// table until an operator moves them, but it cannot be newly assigned.
const (
	RateTableActive  RateTableStatus = "active"
	RateTableDeleted RateTableStatus = "deleted"
)

// RateTables are written by the operator only. Who reads them:
//
//   - a reseller actor sees the tables that belong to its subtree
//     (reseller_id) and the ones its subtree uses: assigned to one of its
//     resellers, clients or their accounts, orig or term;
//   - a client actor sees only the orig tables it is rated with (its
//     client's and its active accounts' overrides), so a customer reads
//     its own prices and no vendor's costs;
//   - a parent table is not seen through a child: the child's own rates are.
//
// A reseller may assign to its clients, accounts and sub-resellers only a
// table it sees.
var RateTables = &Entity{
	Name:  "rate table",
	Table: "rate_tables",
	Fields: []Field{
		{Name: "name", Kind: KName, Required: true, Doc: "unique name"},
		{Name: "currency", Kind: KCurrency, Required: true, Fixed: true, Doc: "ISO 4217 code"},
		{Name: "parent_id", Kind: KRef, Ref: "rate_tables", Doc: "parent table of the same currency"},
		{Name: "reseller_id", Kind: KRef, Ref: "resellers", Doc: "the reseller it belongs to (it and its parents see it); null for the operator's own"},
		{Name: "status", Kind: KEnum, Enum: []string{string(RateTableActive), string(RateTableDeleted)}, Doc: "deleted = archived", Default: string(RateTableActive)},
		{Name: "notes", Kind: KNotes, Default: ""},
	},
	extra:    []string{"(SELECT count(*) FROM rates r WHERE r.rate_table_id = t.id) AS rates"},
	readOnly: []string{"rates"},
	scope:    scopeRateTables,
	owner:    "t.reseller_id",
	check:    checkRateTable,
}

func scopeRateTables(q *query, a *Actor) {
	switch {
	case a.IsReseller():
		s := q.arg(a.Subtree)
		q.conds = append(q.conds, fmt.Sprintf(`(t.reseller_id = ANY(%[1]s) OR t.id IN (
			SELECT orig_rate_table_id FROM resellers WHERE id = ANY(%[1]s)
			UNION ALL SELECT term_rate_table_id FROM resellers WHERE id = ANY(%[1]s)
			UNION ALL SELECT orig_rate_table_id FROM clients WHERE reseller_id = ANY(%[1]s)
			UNION ALL SELECT term_rate_table_id FROM clients WHERE reseller_id = ANY(%[1]s)
			UNION ALL SELECT ac.orig_rate_table_id FROM accounts ac JOIN clients c ON c.id = ac.client_id WHERE c.reseller_id = ANY(%[1]s)
			UNION ALL SELECT ac.term_rate_table_id FROM accounts ac JOIN clients c ON c.id = ac.client_id WHERE c.reseller_id = ANY(%[1]s)))`, s))
	case a.IsClient():
		c := q.arg(a.ClientID)
		q.conds = append(q.conds, fmt.Sprintf(`t.id IN (
			SELECT orig_rate_table_id FROM clients WHERE id = %[1]s
			UNION ALL SELECT orig_rate_table_id FROM accounts WHERE client_id = %[1]s AND status = 'active')`, c))
	}
}

func checkRateTable(ctx context.Context, w *Writer, old Row, in Input) error {
	if v, given := in["reseller_id"]; given && v != nil {
		if err := w.checkResellerRef(ctx, "reseller_id", idValue(v)); err != nil {
			return err
		}
	}
	v, given := in["parent_id"]
	if !given || v == nil {
		return nil
	}
	parent := idValue(v)
	currency := strValue(value(old, in, "currency"))
	if err := w.checkRateTableRef(ctx, "parent_id", parent, currency); err != nil {
		return err
	}
	if old == nil {
		return nil
	}
	id := idValue(old["id"])
	cycle, err := sinks.RateTableCycle(ctx, w.tx, id, parent)
	if err != nil {
		return fmt.Errorf("check parents of rate table %d: %w", id, err)
	}
	if cycle {
		return invalid("parent_id", "rate table %d %q is %d %q itself or below it: that would make a cycle",
			parent, w.name(ctx, "rate_tables", parent), id, w.name(ctx, "rate_tables", id))
	}
	return nil
}

// checkRateTableRef checks that a referenced rate table exists, is not
// archived, lies in the Writer's scope and bills in currency (when
// currency is known).
func (w *Writer) checkRateTableRef(ctx context.Context, field string, id int64, currency string) error {
	q := &query{}
	q.add("t.id = %s", id)
	scopeRateTables(q, w.actor)
	var name, cur, status string
	err := w.tx.QueryRow(ctx, "SELECT t.name, t.currency::text, t.status FROM rate_tables t"+q.where(), q.args...).Scan(&name, &cur, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return invalid(field, "rate table %d not found", id)
	}
	if err != nil {
		return fmt.Errorf("read rate table %d: %w", id, err)
	}
	if status != string(RateTableActive) {
		return invalid(field, "rate table %d %q is archived", id, name)
	}
	if currency != "" && cur != currency {
		return invalid(field, "rate table %q is in %s, not %s", name, cur, currency)
	}
	return nil
}

// RateStatus is the status of a rate.
type RateStatus string

// The statuses of a rate: a stashed rate is kept but not rated with.
const (
	RateActive  RateStatus = "active"
	RateStashed RateStatus = "stashed"
)

// Rates is the read shape of a rate (rates are written by ImportRates
// only). Its scope is its table's.
var Rates = &Entity{
	Name:  "rate",
	Table: "rates",
	extra: []string{"t.rate_table_id", "t.code", "t.code_name", "t.rate::text AS rate",
		TimeText("t.effective_from") + " AS effective_from", TimeText("t.end_date") + " AS end_date",
		"t.min_volume", `t."interval"`, "t.grace_volume", "t.setup_fee::text AS setup_fee",
		"t.time_profile", "t.status", "t.notes", TimeText("t.updated_at") + " AS updated_at"},
	noStamps: true,
}
