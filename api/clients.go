package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// clients carry every DOMAIN.md field of a client. Status rules: stop
// keeps accounts but rating answers inactive_client; deleted additionally
// turns off orig and term on every account of the client (the accounts
// stay, and turning the client active again does not turn them back on: an
// operator decides account by account). A full delete (DELETE
// ?full=true) is only for a client already deleted, and is refused while it
// has transactions or xDRs.
var clients = &entity{
	name:  "client",
	table: "clients",
	fields: []field{
		{name: "reseller_id", kind: kRefRequired, ref: "resellers", doc: "owning reseller; defaults to a reseller token's own"},
		{name: "manager_id", kind: kRef, ref: "managers", doc: "a manager of the same reseller"},
		{name: "name", kind: kName, required: true, doc: "unique name"},
		{name: "currency", kind: kCurrency, required: true, fixed: true, doc: "ISO 4217 code"},
		{name: "timezone", kind: kTimezone, doc: "IANA zone; default UTC"},
		{name: "status", kind: kEnum, enum: []string{"active", "stop", "deleted"}},
		{name: "tags", kind: kTags},
		{name: "bill_by", kind: kEnum, enum: []string{"setup", "connect", "disconnect"}, doc: "bill events by; default disconnect"},
		{name: "hidden_digits", kind: kInt, min: 0, max: 20, doc: "last digits of numbers masked in exports and reports"},
		{name: "credit_limit", kind: kMoney},
		{name: "unlimited", kind: kBool, doc: "postpaid: no available limit"},
		{name: "payment_terms_id", kind: kRef, ref: "payment_terms"},
		{name: "tax_profile_id", kind: kRef, ref: "tax_profiles", doc: "taxes of its invoices; null: none"},
		{name: "invoice_rounding", kind: kEnum, enum: []string{"round_then_sum", "sum_then_round"}, doc: "default round_then_sum"},
		{name: "invoice_precision", kind: kCount, doc: "decimals of invoice totals, 0 to 6; null: the currency's (2 for most)"},
		{name: "orig_rate_table_id", kind: kRef, ref: "rate_tables"},
		{name: "routing_plan", kind: kText, doc: "stored only"},
		{name: "orig_capacity", kind: kCount},
		{name: "term_rate_table_id", kind: kRef, ref: "rate_tables"},
		{name: "vendor_credit_limit", kind: kMoney},
		{name: "term_capacity", kind: kCount},
		{name: "notify_client", kind: kBool, doc: "low-balance notification to the client"},
		{name: "notify_admin", kind: kBool},
		{name: "low_balance_threshold", kind: kMoneyNull},
		{name: "capacity_under_threshold", kind: kCount},
		{name: "invoice_template", kind: kText},
		{name: "autoinvoice", kind: kBool},
		{name: "last_invoiced_at", kind: kDate},
		{name: "company_name", kind: kText},
		{name: "email_main", kind: kEmail},
		{name: "email_noc", kind: kEmail},
		{name: "email_billing", kind: kEmail},
		{name: "email_rates", kind: kEmail},
		{name: "address", kind: kText},
		{name: "zip", kind: kText},
		{name: "tax_id", kind: kText},
		{name: "reg_id", kind: kText},
		{name: "account_details", kind: kText},
		{name: "locale", kind: kLocale},
	},
	scope: func(q *query, p *principal) {
		switch p.role {
		case RoleReseller:
			q.add("t.reseller_id = ANY(%s)", p.subtree)
		case RoleClient:
			q.add("t.id = %s", p.clientID)
		}
	},
	owner: "t.reseller_id",
	check: checkClient,
	after: func(ctx context.Context, s *Server, tx pgx.Tx, p *principal, id int64, old, vals map[string]any) error {
		if vals["status"] != "deleted" || old["status"] == "deleted" {
			return nil
		}
		// Deleting a client turns off both sides of every account, each
		// change audited like an edit of the account.
		rows, err := tx.Query(ctx, "SELECT id FROM accounts WHERE client_id = $1 AND (orig OR term) ORDER BY id", id)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		off := map[string]json.RawMessage{"orig": json.RawMessage("false"), "term": json.RawMessage("false")}
		for _, acc := range ids {
			if _, err := s.updateIn(ctx, tx, adminAs(p), accounts, acc, off); err != nil {
				return err
			}
		}
		return nil
	},
}

func checkClient(ctx context.Context, tx pgx.Tx, p *principal, old, vals map[string]any) error {
	if _, given := vals["reseller_id"]; !given && old == nil {
		if p.role != RoleReseller {
			return invalid("reseller_id", "required")
		}
		vals["reseller_id"] = p.resellerID
	}
	if v, given := vals["reseller_id"]; given {
		if err := checkResellerRef(ctx, tx, p, "reseller_id", idValue(v)); err != nil {
			return err
		}
	}
	resellerID := idValue(value(old, vals, "reseller_id"))
	if m := idValue(value(old, vals, "manager_id")); m != 0 {
		var owner int64
		err := tx.QueryRow(ctx, "SELECT reseller_id FROM managers WHERE id = $1 AND status = 'active'", m).Scan(&owner)
		if err == pgx.ErrNoRows {
			return invalid("manager_id", "manager %d not found", m)
		}
		if err != nil {
			return err
		}
		if owner != resellerID {
			return invalid("manager_id", "manager %d belongs to another reseller", m)
		}
	}
	if v, given := vals["payment_terms_id"]; given && v != nil {
		var ok bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM payment_terms WHERE id = $1)", idValue(v)).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return invalid("payment_terms_id", "payment terms %d not found", idValue(v))
		}
	}
	if v, given := vals["tax_profile_id"]; given && v != nil {
		var ok bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM tax_profiles WHERE id = $1)", idValue(v)).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return invalid("tax_profile_id", "tax profile %d not found", idValue(v))
		}
	}
	currency := strValue(value(old, vals, "currency"))
	for _, f := range []string{"orig_rate_table_id", "term_rate_table_id"} {
		if v, given := vals[f]; given && v != nil {
			if err := checkRateTable(ctx, tx, f, idValue(v), currency); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkResellerRef checks that reseller id exists, is active and lies in
// p's scope; a reseller outside it is reported as not found.
func checkResellerRef(ctx context.Context, tx pgx.Tx, p *principal, field string, id int64) error {
	if !p.inSubtree(id) {
		return invalid(field, "reseller %d not found", id)
	}
	var status string
	err := tx.QueryRow(ctx, "SELECT status FROM resellers WHERE id = $1", id).Scan(&status)
	if err == pgx.ErrNoRows {
		return invalid(field, "reseller %d not found", id)
	}
	if err != nil {
		return err
	}
	if status != "active" {
		return invalid(field, "reseller %d is archived", id)
	}
	return nil
}

func (s *Server) createClientH(w http.ResponseWriter, r *http.Request, p *principal) error {
	return s.createH(clients)(w, r, p)
}

// clientQuery builds the WHERE of a client list or export from the query
// string: ?name (starts with, any case), ?email (the main email; * is a
// wildcard, otherwise an exact match in any case), ?status (active by
// default; a comma list, or "all"), ?tag, ?reseller_id, ?manager_id.
func clientQuery(p *principal, v url.Values) (*query, error) {
	q := &query{}
	clients.scope(q, p)
	if err := nameFilter(q, v); err != nil {
		return nil, err
	}
	if email := strings.TrimSpace(v.Get("email")); email != "" {
		q.add("t.email_main ILIKE %s", strings.ReplaceAll(escapeLike(email), "*", "%"))
	}
	switch st := v.Get("status"); st {
	case "all":
	case "":
		q.conds = append(q.conds, "t.status = 'active'")
	default:
		var list []string
		for s := range strings.SplitSeq(st, ",") {
			switch s {
			case "active", "stop", "deleted":
				list = append(list, s)
			default:
				return nil, badRequest("status", "must be active, stop, deleted (comma separated) or all")
			}
		}
		q.add("t.status = ANY(%s)", list)
	}
	if tag := strings.TrimSpace(v.Get("tag")); tag != "" {
		q.add("t.tags @> ARRAY[%s]::text[]", tag)
	}
	if err := idFilter(q, v, "reseller_id", "t.reseller_id"); err != nil {
		return nil, err
	}
	if err := idFilter(q, v, "manager_id", "t.manager_id"); err != nil {
		return nil, err
	}
	return q, nil
}

func (s *Server) listClients(w http.ResponseWriter, r *http.Request, p *principal) error {
	v := r.URL.Query()
	q, err := clientQuery(p, v)
	if err != nil {
		return err
	}
	pg, err := s.list(r.Context(), clients, q, "lower(t.name), t.id", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}

// exportClients streams every client the filters select as CSV, one
// column per field. Text cells that a spreadsheet would run as a formula
// (starting with = + - @) are prefixed with a quote.
func (s *Server) exportClients(w http.ResponseWriter, r *http.Request, p *principal) error {
	q, err := clientQuery(p, r.URL.Query())
	if err != nil {
		return err
	}
	sql := fmt.Sprintf("SELECT row_to_json(x)::text FROM (SELECT %s FROM clients t%s ORDER BY lower(t.name), t.id) x", clients.selectList(), q.where())
	rows, err := s.pool.Query(r.Context(), sql, q.args...)
	if err != nil {
		return fmt.Errorf("export clients: %w", err)
	}
	defer rows.Close()
	cols := []string{"id"}
	textual := map[string]bool{}
	for _, f := range clients.fields {
		cols = append(cols, f.name)
		switch f.kind {
		case kText, kName, kEmail, kTags:
			textual[f.name] = true
		}
	}
	cols = append(cols, "created_at", "updated_at")
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="clients.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write(cols)
	rec := make([]string, len(cols))
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return fmt.Errorf("export clients: %w", err)
		}
		m := decodeRow(json.RawMessage(raw))
		for i, c := range cols {
			rec[i] = csvCell(m[c])
			if textual[c] && rec[i] != "" && strings.ContainsRune("=+-@", rune(rec[i][0])) {
				rec[i] = "'" + rec[i]
			}
		}
		_ = cw.Write(rec)
	}
	cw.Flush()
	if err := rows.Err(); err != nil {
		s.log.Error("export clients", "err", err) // the header has gone out; the CSV ends short
	}
	return nil
}

func csvCell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = csvCell(e)
		}
		return strings.Join(parts, ";")
	}
	return fmt.Sprint(v)
}

// massLastInvoiced sets last_invoiced_at of every listed client in one
// transaction: all or none, one audit row per client.
func (s *Server) massLastInvoiced(w http.ResponseWriter, r *http.Request, p *principal) error {
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	var ids []int64
	raw, ok := body["client_ids"]
	if !ok {
		return invalid("client_ids", "required")
	}
	if err := json.Unmarshal(raw, &ids); err != nil {
		return badRequest("client_ids", "must be a list of client ids")
	}
	if len(ids) == 0 || len(ids) > 10000 {
		return invalid("client_ids", "must list 1 to 10000 clients")
	}
	for k := range body {
		if k != "client_ids" && k != "last_invoiced_at" {
			return badRequest(k, "unknown field")
		}
	}
	dateRaw, ok := body["last_invoiced_at"]
	if !ok {
		return invalid("last_invoiced_at", "required")
	}
	patch := map[string]json.RawMessage{"last_invoiced_at": dateRaw}
	if _, err := clients.input(patch, false); err != nil {
		return err
	}
	err = pgx.BeginFunc(r.Context(), s.pool, func(tx pgx.Tx) error {
		for _, id := range ids {
			if _, err := s.get(r.Context(), tx, clients, p, id); err != nil {
				return invalid("client_ids", "client %d not found", id)
			}
		}
		for _, id := range ids {
			if _, err := s.updateIn(r.Context(), tx, p, clients, id, patch); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"updated": len(ids), "client_ids": ids})
	return nil
}

// fullDeleteClient answers DELETE /v1/clients/{id}: without ?full=true it
// sets status deleted (accounts kept, orig and term off); with it, it
// removes a deleted client for good, refused while it has transactions or
// xDRs.
func (s *Server) fullDeleteClient(w http.ResponseWriter, r *http.Request, p *principal) error {
	switch r.URL.Query().Get("full") {
	case "", "false":
		return s.archive(w, r, p, clients, "deleted")
	case "true":
	default:
		return badRequest("full", "must be true or false")
	}
	id, err := pathID(r, "id", "client")
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		before, err := s.lockAndGet(ctx, tx, clients, p, id)
		if err != nil {
			return err
		}
		old := decodeRow(before)
		if old["status"] != "deleted" {
			return conflict("status", "only a deleted client can be fully deleted; set status deleted first")
		}
		var txns int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM transactions WHERE client_id = $1", id).Scan(&txns); err != nil {
			return err
		}
		if txns > 0 {
			return conflict("", "client %d has %d transactions: full delete refused", id, txns)
		}
		if s.xdrs == nil {
			return conflict("", "client %d: xDRs cannot be counted (no xDR store configured): full delete refused", id)
		}
		n, err := s.xdrs(ctx, id)
		if err != nil {
			return fmt.Errorf("count xdrs of client %d: %w", id, err)
		}
		if n > 0 {
			return conflict("", "client %d has %d xDRs: full delete refused", id, n)
		}
		owner := idValue(old["reseller_id"])
		if err := s.auditOwned(ctx, tx, p, "delete", "client", id, &owner, before, nil); err != nil {
			return err
		}
		for _, sql := range []string{
			"DELETE FROM api_tokens WHERE client_id = $1",
			"DELETE FROM notifications WHERE client_id = $1",
			"DELETE FROM balances WHERE client_id = $1",
			"DELETE FROM accounts WHERE client_id = $1",
			"DELETE FROM clients WHERE id = $1",
		} {
			if _, err := tx.Exec(ctx, sql, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// managers belong to one reseller and are responsible for some of its
// clients; no balance, transactions or rate tables.
var managers = &entity{
	name:  "manager",
	table: "managers",
	fields: []field{
		{name: "reseller_id", kind: kRefRequired, ref: "resellers", fixed: true, doc: "defaults to a reseller token's own"},
		{name: "name", kind: kName, required: true, doc: "unique within the reseller"},
		{name: "email", kind: kEmail},
		{name: "status", kind: kEnum, enum: []string{"active", "deleted"}},
	},
	scope: scopeByReseller("t.reseller_id"),
	owner: "t.reseller_id",
	check: func(ctx context.Context, tx pgx.Tx, p *principal, old, vals map[string]any) error {
		if old != nil {
			return nil
		}
		if _, given := vals["reseller_id"]; !given {
			if p.role != RoleReseller {
				return invalid("reseller_id", "required")
			}
			vals["reseller_id"] = p.resellerID
		}
		return checkResellerRef(ctx, tx, p, "reseller_id", idValue(vals["reseller_id"]))
	},
}

func (s *Server) listManagers(w http.ResponseWriter, r *http.Request, p *principal) error {
	v := r.URL.Query()
	q := &query{}
	managers.scope(q, p)
	if err := archivedFilter(q, v); err != nil {
		return err
	}
	if err := nameFilter(q, v); err != nil {
		return err
	}
	if err := idFilter(q, v, "reseller_id", "t.reseller_id"); err != nil {
		return err
	}
	pg, err := s.list(r.Context(), managers, q, "t.id", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}

func (s *Server) archiveManagerH(w http.ResponseWriter, r *http.Request, p *principal) error {
	return s.archive(w, r, p, managers, "deleted")
}
