package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

const invoiceCols = `i.id, coalesce(i.number, ''), i.reseller_id, i.client_id, c.name, i.currency::text, i.period_from, i.period_to,
	i.timezone, i.state, i.source, i.rounding, i.precision, i.tax_profile, i.tax_mode, i.due_at, i.net::text, i.taxes::text,
	i.total::text, i.generated_at, i.issued_at, i.sent_at, i.paid_at, i.voided_at`

const invoiceFrom = ` FROM invoices i JOIN clients c ON c.id = i.client_id`

func scanInvoice(row pgx.Row) (*Invoice, error) {
	inv := &Invoice{}
	var from, to, due time.Time
	var net, taxes, total string
	if err := row.Scan(&inv.ID, &inv.Number, &inv.ResellerID, &inv.ClientID, &inv.Client, &inv.Currency, &from, &to,
		&inv.Timezone, &inv.State, &inv.Source, &inv.Rounding, &inv.Precision, &inv.TaxProfile, &inv.TaxMode, &due, &net, &taxes,
		&total, &inv.GeneratedAt, &inv.IssuedAt, &inv.SentAt, &inv.PaidAt, &inv.VoidedAt); err != nil {
		return nil, err
	}
	inv.PeriodFrom, inv.PeriodTo, inv.DueAt = dateFromDB(from), dateFromDB(to), dateFromDB(due)
	var err error
	if inv.Net, err = decimal.NewFromString(net); err != nil {
		return nil, fmt.Errorf("invoice %d net %q: %w", inv.ID, net, err)
	}
	if inv.Total, err = decimal.NewFromString(total); err != nil {
		return nil, fmt.Errorf("invoice %d total %q: %w", inv.ID, total, err)
	}
	if err := json.Unmarshal([]byte(taxes), &inv.Taxes); err != nil {
		return nil, fmt.Errorf("invoice %d taxes: %w", inv.ID, err)
	}
	return inv, nil
}

// readInvoices reads the invoices that cond (on alias i, with args)
// selects, with their lines, in the order given.
func readInvoices(ctx context.Context, q Querier, cond, order string, args ...any) ([]*Invoice, error) {
	rows, err := q.Query(ctx, `SELECT `+invoiceCols+invoiceFrom+` WHERE `+cond+` ORDER BY `+order, args...)
	if err != nil {
		return nil, fmt.Errorf("read invoices: %w", err)
	}
	var out []*Invoice
	byID := map[int64]*Invoice{}
	for rows.Next() {
		inv, err := scanInvoice(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read invoices: %w", err)
		}
		out = append(out, inv)
		byID[inv.ID] = inv
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read invoices: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(out))
	for i, inv := range out {
		ids[i] = inv.ID
	}
	rows, err = q.Query(ctx, `SELECT l.invoice_id, l.kind, l.code_name, l.calls, l.billed_seconds, l.amount::text,
			coalesce(l.transaction_id, 0), coalesce(l.ref, ''), l.at, coalesce(l.corrects_invoice_id, 0),
			coalesce(x.number, ''), x.period_from, x.period_to
		FROM invoice_lines l LEFT JOIN invoices x ON x.id = l.corrects_invoice_id
		WHERE l.invoice_id = ANY($1) ORDER BY l.invoice_id, l.position`, ids)
	if err != nil {
		return nil, fmt.Errorf("read invoice lines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, calls, secs, txn, corrects int64
		var kind, name, amount, ref, number string
		var at, xfrom, xto *time.Time
		if err := rows.Scan(&id, &kind, &name, &calls, &secs, &amount, &txn, &ref, &at, &corrects, &number, &xfrom, &xto); err != nil {
			return nil, fmt.Errorf("read invoice lines: %w", err)
		}
		a, err := decimal.NewFromString(amount)
		if err != nil {
			return nil, fmt.Errorf("invoice %d line amount %q: %w", id, amount, err)
		}
		inv := byID[id]
		switch kind {
		case "traffic":
			inv.Lines = append(inv.Lines, Line{CodeName: name, Calls: calls, BilledSeconds: secs, Amount: a})
		case "charge":
			c := Charge{TransactionID: txn, Ref: ref, Amount: a}
			if at != nil {
				c.At = *at
			}
			inv.Charges = append(inv.Charges, c)
		case "correction":
			c := Correction{InvoiceID: corrects, Number: number, CodeName: name, Calls: calls, BilledSeconds: secs, Amount: a}
			if xfrom != nil && xto != nil {
				c.PeriodFrom, c.PeriodTo = dateFromDB(*xfrom), dateFromDB(*xto)
			}
			inv.Corrections = append(inv.Corrections, c)
		}
	}
	return out, rows.Err()
}

// Get reads one invoice in c's scope.
func (s *Service) Get(ctx context.Context, c Caller, id int64) (*Invoice, error) {
	return s.get(ctx, s.pg, c, id)
}

func (s *Service) get(ctx context.Context, q Querier, c Caller, id int64) (*Invoice, error) {
	args := []any{id}
	invs, err := readInvoices(ctx, q, "i.id = $1 AND "+c.scopeCond("i.client_id", &args), "i.id", args...)
	if err != nil {
		return nil, err
	}
	if len(invs) == 0 {
		return nil, notFound("invoice %d", id)
	}
	return invs[0], nil
}

// ListQuery selects invoices to list.
type ListQuery struct {
	Client string // name or id; "" for all
	State  string // one of States; "" for all
	From   Date   // periods ending after From (zero: any)
	To     Date   // periods starting before To (zero: any)
	Limit  int    // default 1000
	Offset int
}

// List reads the invoices of c's scope that q selects, by period then
// id, and how many there are in all.
func (s *Service) List(ctx context.Context, c Caller, q ListQuery) ([]*Invoice, int, error) {
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	conds = append(conds, c.scopeCond("i.client_id", &args))
	if q.Client != "" {
		cl, err := s.findClient(ctx, s.pg, c, q.Client)
		if err != nil {
			return nil, 0, err
		}
		conds = append(conds, "i.client_id = "+arg(cl.ID))
	}
	if q.State != "" {
		if !contains(States, q.State) {
			return nil, 0, fieldErr("state", "must be one of %s, got %q", strings.Join(States, ", "), q.State)
		}
		conds = append(conds, "i.state = "+arg(q.State))
	}
	if !q.From.IsZero() {
		conds = append(conds, "i.period_to > "+arg(q.From.String())+"::date")
	}
	if !q.To.IsZero() {
		conds = append(conds, "i.period_from < "+arg(q.To.String())+"::date")
	}
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	cond := strings.Join(conds, " AND ")
	var total int
	if err := s.pg.QueryRow(ctx, `SELECT count(*)`+invoiceFrom+` WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count invoices: %w", err)
	}
	order := "i.period_from, c.name, i.id LIMIT " + strconv.Itoa(q.Limit) + " OFFSET " + strconv.Itoa(max(q.Offset, 0))
	invs, err := readInvoices(ctx, s.pg, cond, order, args...)
	return invs, total, err
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// storeInvoice writes a generated invoice: a new row (inv.ID 0) or the
// draft it regenerates, and its lines in place of the draft's.
func storeInvoice(ctx context.Context, tx pgx.Tx, inv *Invoice) error {
	taxes, err := json.Marshal(taxRows(inv))
	if err != nil {
		return fmt.Errorf("BUG: taxes: %w", err)
	}
	if inv.ID == 0 {
		err = tx.QueryRow(ctx, `INSERT INTO invoices (reseller_id, client_id, currency, period_from, period_to, timezone, source,
				rounding, precision, tax_profile, tax_mode, net, taxes, total, due_at, generated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14, $15, clock_timestamp())
			RETURNING id, generated_at`,
			inv.ResellerID, inv.ClientID, inv.Currency, inv.PeriodFrom.String(), inv.PeriodTo.String(), inv.Timezone, inv.Source,
			inv.Rounding, inv.Precision, inv.TaxProfile, inv.TaxMode, money(inv.Net, inv.Precision), string(taxes),
			money(inv.Total, inv.Precision), inv.DueAt.String()).Scan(&inv.ID, &inv.GeneratedAt)
		if uniqueViolation(err) {
			return conflictErr("client %s already has an invoice for %s to %s", inv.Client, inv.PeriodFrom, inv.PeriodTo)
		}
		if err != nil {
			return fmt.Errorf("store invoice: %w", err)
		}
	} else {
		if _, err := tx.Exec(ctx, `DELETE FROM invoice_lines WHERE invoice_id = $1`, inv.ID); err != nil {
			return fmt.Errorf("replace invoice %d lines: %w", inv.ID, err)
		}
		if err := tx.QueryRow(ctx, `UPDATE invoices SET reseller_id = $2, currency = $3, timezone = $4, rounding = $5, precision = $6,
				tax_profile = $7, tax_mode = $8, net = $9, taxes = $10::jsonb, total = $11, due_at = $12, source = $13,
				generated_at = clock_timestamp(), updated_at = now()
			WHERE id = $1 AND state = 'to_verify' RETURNING generated_at`,
			inv.ID, inv.ResellerID, inv.Currency, inv.Timezone, inv.Rounding, inv.Precision, inv.TaxProfile, inv.TaxMode,
			money(inv.Net, inv.Precision), string(taxes), money(inv.Total, inv.Precision), inv.DueAt.String(), inv.Source).
			Scan(&inv.GeneratedAt); err != nil {
			return fmt.Errorf("regenerate invoice %d: %w", inv.ID, err)
		}
	}
	var (
		pos, calls, secs, txns, corrects []int64
		kinds, names, amounts, refs      []string
		ats                              []*time.Time
	)
	add := func(kind, name string, c, sec int64, amount decimal.Decimal, txn int64, ref string, at *time.Time, corr int64) {
		pos = append(pos, int64(len(pos)+1))
		kinds, names, calls, secs = append(kinds, kind), append(names, name), append(calls, c), append(secs, sec)
		amounts, txns, refs, ats, corrects = append(amounts, amount.String()), append(txns, txn), append(refs, ref), append(ats, at), append(corrects, corr)
	}
	for _, l := range inv.Lines {
		add("traffic", l.CodeName, l.Calls, l.BilledSeconds, l.Amount, 0, "", nil, 0)
	}
	for _, c := range inv.Charges {
		at := c.At
		add("charge", "", 0, 0, c.Amount, c.TransactionID, c.Ref, &at, 0)
	}
	for _, c := range inv.Corrections {
		add("correction", c.CodeName, c.Calls, c.BilledSeconds, c.Amount, 0, "", nil, c.InvoiceID)
	}
	if len(pos) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO invoice_lines (invoice_id, position, kind, code_name, calls, billed_seconds, amount,
			transaction_id, ref, at, corrects_invoice_id)
		SELECT $1, p, k, n, c, s, a::numeric, nullif(t, 0), nullif(r, ''), at, nullif(x, 0)
		FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::bigint[], $9::text[],
			$10::timestamptz[], $11::bigint[]) AS l(p, k, n, c, s, a, t, r, at, x)`,
		inv.ID, pos, kinds, names, calls, secs, amounts, txns, refs, ats, corrects); err != nil {
		return fmt.Errorf("store invoice %d lines: %w", inv.ID, err)
	}
	return nil
}

func taxRows(inv *Invoice) []taxJSON {
	out := []taxJSON{}
	for _, t := range inv.Taxes {
		out = append(out, taxJSON{Name: t.Name, Percent: t.Percent.String(), Amount: money(t.Amount, inv.Precision)})
	}
	return out
}
