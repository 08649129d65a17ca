package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tarifa/tarifa/billing"
)

// resellers: a tree through parent_id. A reseller token reads its own
// reseller and manages the ones below it; nobody sees upward or sideways.
// Deleting archives (status deleted); archived resellers are listed with
// ?archived=true.
var resellers = &entity{
	name:  "reseller",
	table: "resellers",
	fields: []field{
		{name: "name", kind: kName, required: true, doc: "unique name"},
		{name: "parent_id", kind: kRef, ref: "resellers", doc: "parent reseller; null for a top-level reseller (admin only)"},
		{name: "currency", kind: kCurrency, required: true, fixed: true, doc: "ISO 4217 code"},
		{name: "status", kind: kEnum, enum: []string{"active", "deleted"}, doc: "deleted = archived"},
		{name: "orig_rate_table_id", kind: kRef, ref: "rate_tables"},
		{name: "term_rate_table_id", kind: kRef, ref: "rate_tables"},
		{name: "orig_capacity", kind: kCount, doc: "concurrent calls; null = no limit"},
		{name: "term_capacity", kind: kCount},
		{name: "credit_limit", kind: kMoney},
		{name: "unlimited", kind: kBool, doc: "postpaid"},
		{name: "invoice_template", kind: kText},
		{name: "invoice_number_template", kind: kName, doc: "numbering template (No Tpl): {n} the number, {n:5} zero-padded, {yyyy} and {mm} of the issue date"},
		{name: "invoice_last_number", kind: kInt, min: 0, max: 1e15, doc: "Last No"},
		{name: "company_name", kind: kText},
		{name: "email", kind: kEmail},
		{name: "address", kind: kText},
		{name: "tax_id", kind: kText},
		{name: "reg_id", kind: kText},
	},
	scope: scopeByReseller("t.id"),
	owner: "t.id",
	check: checkReseller,
}

func checkReseller(ctx context.Context, tx pgx.Tx, p *principal, old, vals map[string]any) error {
	var id int64
	if old != nil {
		id = idValue(old["id"])
		if p.role == RoleReseller && id == p.resellerID {
			return &apiError{Status: http.StatusForbidden, Msg: "a reseller token cannot edit its own reseller"}
		}
	}
	if _, given := vals["parent_id"]; !given && old == nil && p.role == RoleReseller {
		vals["parent_id"] = p.resellerID // a reseller creates below itself by default
	}
	if v, given := vals["parent_id"]; given {
		parent := idValue(v)
		switch {
		case parent == 0 && p.role != RoleAdmin:
			return invalid("parent_id", "a reseller token can only create resellers inside its own tree")
		case parent != 0:
			if !p.inSubtree(parent) {
				return invalid("parent_id", "reseller %d not found", parent)
			}
			var status string
			err := tx.QueryRow(ctx, "SELECT status FROM resellers WHERE id = $1", parent).Scan(&status)
			if err == pgx.ErrNoRows {
				return invalid("parent_id", "reseller %d not found", parent)
			}
			if err != nil {
				return err
			}
			if status != "active" {
				return invalid("parent_id", "reseller %d is archived", parent)
			}
			if id != 0 {
				below, err := subtree(ctx, tx, id)
				if err != nil {
					return err
				}
				if slices.Contains(below, parent) {
					return invalid("parent_id", "reseller %d is %d itself or below it: that would make a cycle", parent, id)
				}
			}
		}
	}
	if v, given := vals["invoice_number_template"]; given {
		var fe *billing.FieldError
		if err := billing.NumberTemplate(strValue(v)).Validate(); errors.As(err, &fe) {
			return invalid(fe.Field, "%s", fe.Msg)
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
	if old != nil && vals["status"] == "deleted" && old["status"] != "deleted" {
		return checkArchivable(ctx, tx, id)
	}
	return nil
}

// checkArchivable refuses to archive a reseller that still has active
// clients or active sub-resellers: their traffic would have no live owner.
func checkArchivable(ctx context.Context, tx pgx.Tx, id int64) error {
	var clients, children int64
	err := tx.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM clients WHERE reseller_id = $1 AND status <> 'deleted'),
		(SELECT count(*) FROM resellers WHERE parent_id = $1 AND status = 'active')`, id).Scan(&clients, &children)
	if err != nil {
		return err
	}
	if clients > 0 || children > 0 {
		return conflict("status", "reseller %d still has %d clients and %d sub-resellers that are not deleted", id, clients, children)
	}
	return nil
}

// checkRateTable checks that a referenced rate table exists, is not
// archived and bills in currency (when currency is known).
func checkRateTable(ctx context.Context, tx pgx.Tx, field string, id int64, currency string) error {
	var cur, status string
	err := tx.QueryRow(ctx, "SELECT currency::text, status FROM rate_tables WHERE id = $1", id).Scan(&cur, &status)
	if err == pgx.ErrNoRows {
		return invalid(field, "rate table %d not found", id)
	}
	if err != nil {
		return err
	}
	if status != "active" {
		return invalid(field, "rate table %d is archived", id)
	}
	if currency != "" && cur != currency {
		return invalid(field, "rate table %d is in %s, not %s", id, cur, currency)
	}
	return nil
}

func (s *Server) listResellers(w http.ResponseWriter, r *http.Request, p *principal) error {
	v := r.URL.Query()
	q := &query{}
	resellers.scope(q, p)
	if err := archivedFilter(q, v); err != nil {
		return err
	}
	if err := nameFilter(q, v); err != nil {
		return err
	}
	if err := idFilter(q, v, "parent_id", "t.parent_id"); err != nil {
		return err
	}
	pg, err := s.list(r.Context(), resellers, q, "t.id", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}

func (s *Server) createResellerH(w http.ResponseWriter, r *http.Request, p *principal) error {
	return s.createH(resellers)(w, r, p)
}

func (s *Server) updateResellerH(w http.ResponseWriter, r *http.Request, p *principal) error {
	return s.updateH(resellers)(w, r, p)
}

// archiveResellerH archives a reseller: its history stays.
func (s *Server) archiveResellerH(w http.ResponseWriter, r *http.Request, p *principal) error {
	return s.archive(w, r, p, resellers, "deleted")
}

// archive sets status to the archived value through the normal update
// path, so that the same checks and audit apply.
func (s *Server) archive(w http.ResponseWriter, r *http.Request, p *principal, e *entity, status string) error {
	id, err := pathID(r, "id", e.name)
	if err != nil {
		return err
	}
	out, err := s.update(r.Context(), p, e, id, map[string]json.RawMessage{"status": json.RawMessage(strconv.Quote(status))})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
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
