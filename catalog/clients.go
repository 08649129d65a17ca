package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tarifa/tarifa/billing"
)

// ClientStatus is the status of a client (DOMAIN.md "Client").
type ClientStatus string

// The statuses of a client.
const (
	// ClientActive clients are rated.
	ClientActive ClientStatus = "active"
	// ClientStop keeps the accounts, but rating answers inactive_client.
	ClientStop ClientStatus = "stop"
	// ClientDeleted additionally turns off orig and term on every account
	// of the client (the accounts stay; making the client active again does
	// not turn them back on: an operator decides account by account).
	ClientDeleted ClientStatus = "deleted"
)

// Clients carry every DOMAIN.md field of a client. A full delete (removing
// the row) is only for a client already deleted, and is refused while it
// has transactions or xDRs (Writer.DeleteClient).
var Clients = &Entity{
	Name:  "client",
	Table: "clients",
	Fields: []Field{
		{Name: "reseller_id", Kind: KRefRequired, Ref: "resellers", Doc: "owning reseller; defaults to a reseller actor's own"},
		{Name: "manager_id", Kind: KRef, Ref: "managers", Doc: "a manager of the same reseller"},
		{Name: "name", Kind: KName, Required: true, Doc: "unique name"},
		{Name: "currency", Kind: KCurrency, Required: true, Fixed: true, Doc: "ISO 4217 code"},
		{Name: "timezone", Kind: KTimezone, Doc: "IANA zone; default UTC", Default: "UTC"},
		{Name: "status", Kind: KEnum, Enum: []string{string(ClientActive), string(ClientStop), string(ClientDeleted)}, Default: string(ClientActive)},
		{Name: "tags", Kind: KTags, Default: []string{}},
		{Name: "bill_by", Kind: KEnum, Enum: []string{"disconnect", "setup", "connect"}, Doc: "bill events by; default disconnect", Default: "disconnect"},
		{Name: "hidden_digits", Kind: KInt, Min: 0, Max: 20, Doc: "last digits of numbers masked in exports and reports", Default: int64(0)},
		{Name: "credit_limit", Kind: KMoney, Default: "0"},
		{Name: "unlimited", Kind: KBool, Doc: "postpaid: no available limit", Default: false},
		{Name: "payment_terms_id", Kind: KRef, Ref: "payment_terms", Doc: "billing periods and due days of its invoices; null: not invoiced by bill runs"},
		{Name: "tax_profile_id", Kind: KRef, Ref: "tax_profiles", Doc: "taxes of its invoices; null: none"},
		{Name: "invoice_rounding", Kind: KEnum, Enum: []string{billing.RoundThenSum, billing.SumThenRound}, Doc: "round each line then sum, or sum then round; default round_then_sum", Default: billing.RoundThenSum},
		{Name: "invoice_precision", Kind: KIntNull, Min: 0, Max: 6, Doc: "decimals of invoice totals; null: the currency's (2 for most)"},
		{Name: "orig_rate_table_id", Kind: KRef, Ref: "rate_tables"},
		{Name: "routing_plan", Kind: KText, Doc: "stored only", Default: ""},
		{Name: "orig_capacity", Kind: KCount},
		{Name: "term_rate_table_id", Kind: KRef, Ref: "rate_tables"},
		{Name: "vendor_credit_limit", Kind: KMoney, Default: "0"},
		{Name: "term_capacity", Kind: KCount},
		{Name: "notify_client", Kind: KBool, Doc: "low-balance notification to the client", Default: false},
		{Name: "notify_admin", Kind: KBool, Default: false},
		{Name: "low_balance_threshold", Kind: KMoneyNull},
		{Name: "capacity_under_threshold", Kind: KCount},
		{Name: "invoice_template", Kind: KText, Default: ""},
		{Name: "autoinvoice", Kind: KBool, Default: false},
		{Name: "last_invoiced_at", Kind: KDate},
		{Name: "company_name", Kind: KText, Default: ""},
		{Name: "email_main", Kind: KEmail, Default: ""},
		{Name: "email_noc", Kind: KEmail, Default: ""},
		{Name: "email_billing", Kind: KEmail, Default: ""},
		{Name: "email_rates", Kind: KEmail, Default: ""},
		{Name: "address", Kind: KText, Default: ""},
		{Name: "zip", Kind: KText, Default: ""},
		{Name: "tax_id", Kind: KText, Default: ""},
		{Name: "reg_id", Kind: KText, Default: ""},
		{Name: "account_details", Kind: KText, Default: ""},
		{Name: "locale", Kind: KLocale, Default: "en"},
	},
	scope: scopeClients,
	owner: "t.reseller_id",
	rules: creditRule,
	check: checkClient,
	after: func(ctx context.Context, w *Writer, id int64, old Row, in Input) error {
		if in["status"] != string(ClientDeleted) || old["status"] == string(ClientDeleted) {
			return nil
		}
		// Deleting a client turns off both sides of every account, each
		// change audited like an edit of the account by the same actor.
		rows, err := w.tx.Query(ctx, "SELECT id FROM accounts WHERE client_id = $1 AND (orig OR term) ORDER BY id", id)
		if err != nil {
			return fmt.Errorf("read accounts of client %d: %w", id, err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("read accounts of client %d: %w", id, err)
		}
		off := Input{"orig": false, "term": false}
		for _, acc := range ids {
			if _, _, err := w.as(w.actor.unscoped()).Update(ctx, Accounts, acc, off); err != nil {
				return err
			}
		}
		return nil
	},
}

func scopeClients(q *query, a *Actor) {
	switch {
	case a.IsReseller():
		q.add("t.reseller_id = ANY(%s)", a.Subtree)
	case a.IsClient():
		q.add("t.id = %s", a.ClientID)
	}
}

func checkClient(ctx context.Context, w *Writer, old Row, in Input) error {
	a := w.actor
	if _, given := in["reseller_id"]; !given && old == nil {
		if !a.IsReseller() {
			return invalid("reseller_id", "required")
		}
		in["reseller_id"] = a.ResellerID
	}
	if v, given := in["reseller_id"]; given {
		if err := w.checkResellerRef(ctx, "reseller_id", idValue(v)); err != nil {
			return err
		}
	}
	resellerID := idValue(value(old, in, "reseller_id"))
	if _, moved := in["reseller_id"]; !moved && revived(old, in, string(ClientDeleted)) {
		if err := w.checkOwnerActive(ctx, resellerID, "client"); err != nil {
			return err
		}
	}
	if m := idValue(value(old, in, "manager_id")); m != 0 {
		var owner int64
		err := w.tx.QueryRow(ctx, "SELECT reseller_id FROM managers WHERE id = $1 AND status = 'active'", m).Scan(&owner)
		if errors.Is(err, pgx.ErrNoRows) {
			return invalid("manager_id", "manager %d not found", m)
		}
		if err != nil {
			return fmt.Errorf("read manager %d: %w", m, err)
		}
		if owner != resellerID {
			return invalid("manager_id", "manager %d belongs to another reseller", m)
		}
	}
	for _, f := range []string{"payment_terms_id", "tax_profile_id"} {
		if v, given := in[f]; given && v != nil {
			if err := w.checkBillingRef(ctx, f, idValue(v)); err != nil {
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
	return nil
}

// DeleteClient removes a deleted client for good (DOMAIN.md "full
// delete"), with its accounts, balance row, notifications and tokens, and
// its audit row; it is refused while the client is not deleted, has
// transactions, or has xDRs (xdrs counts them; nil means they cannot be
// counted, and the delete is refused).
func (w *Writer) DeleteClient(ctx context.Context, id int64, xdrs func(ctx context.Context, clientID int64) (int64, error)) error {
	before, err := w.lockAndGet(ctx, Clients, id)
	if err != nil {
		return err
	}
	old := DecodeRow(before)
	if old["status"] != string(ClientDeleted) {
		return conflict("status", "only a deleted client can be fully deleted; set status deleted first")
	}
	var txns int64
	if err := w.tx.QueryRow(ctx, "SELECT count(*) FROM transactions WHERE client_id = $1", id).Scan(&txns); err != nil {
		return fmt.Errorf("count transactions of client %d: %w", id, err)
	}
	if txns > 0 {
		return conflict("", "client %d has %d transactions: full delete refused", id, txns)
	}
	if xdrs == nil {
		return conflict("", "client %d: xDRs cannot be counted (no xDR store configured): full delete refused", id)
	}
	n, err := xdrs(ctx, id)
	if err != nil {
		return fmt.Errorf("count xdrs of client %d: %w", id, err)
	}
	if n > 0 {
		return conflict("", "client %d has %d xDRs: full delete refused", id, n)
	}
	owner := idValue(old["reseller_id"])
	if err := w.auditOwned(ctx, "delete", Clients.Name, id, &owner, before, nil); err != nil {
		return err
	}
	for _, sql := range []string{
		"DELETE FROM api_tokens WHERE client_id = $1",
		"DELETE FROM notifications WHERE client_id = $1",
		"DELETE FROM balances WHERE client_id = $1",
		"DELETE FROM accounts WHERE client_id = $1",
		"DELETE FROM clients WHERE id = $1",
	} {
		if _, err := w.tx.Exec(ctx, sql, id); err != nil {
			return w.dbError(fmt.Sprintf("delete client %d", id), err)
		}
	}
	return nil
}

// ManagerStatus is the status of a manager.
type ManagerStatus string

// The statuses of a manager: deleted means archived.
const (
	ManagerActive  ManagerStatus = "active"
	ManagerDeleted ManagerStatus = "deleted"
)

// Managers belong to one reseller and are responsible for some of its
// clients; no balance, transactions or rate tables.
var Managers = &Entity{
	Name:  "manager",
	Table: "managers",
	Fields: []Field{
		{Name: "reseller_id", Kind: KRefRequired, Ref: "resellers", Fixed: true, Doc: "defaults to a reseller actor's own"},
		{Name: "name", Kind: KName, Required: true, Doc: "unique within the reseller"},
		{Name: "email", Kind: KEmail},
		{Name: "status", Kind: KEnum, Enum: []string{string(ManagerActive), string(ManagerDeleted)}},
	},
	scope: scopeByReseller("t.reseller_id"),
	owner: "t.reseller_id",
	check: func(ctx context.Context, w *Writer, old Row, in Input) error {
		if old != nil {
			return nil
		}
		if _, given := in["reseller_id"]; !given {
			if !w.actor.IsReseller() {
				return invalid("reseller_id", "required")
			}
			in["reseller_id"] = w.actor.ResellerID
		}
		return w.checkResellerRef(ctx, "reseller_id", idValue(in["reseller_id"]))
	},
}

// ClientInScope reports whether client id exists and a may see it.
func ClientInScope(ctx context.Context, db querier, a *Actor, id int64) (bool, error) {
	q := &query{}
	q.add("t.id = %s", id)
	scopeClients(q, a)
	var ok bool
	if err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM clients t"+q.where()+")", q.args...).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up client %d: %w", id, err)
	}
	return ok, nil
}
