package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// client is what invoicing needs of a client: its settings and parties.
type client struct {
	ID, ResellerID int64
	Name           string
	Currency       string
	Timezone       string
	Loc            *time.Location
	Status         string
	Autoinvoice    bool
	LastInvoiced   Date // the last day an invoice covers; zero: none yet
	Created        time.Time
	Rounding       string
	Precision      int
	Terms          *PaymentTerms // nil: none (invoices are due at the period's end)
	Tax            *TaxProfile   // nil: no taxes
	HiddenDigits   int
	Emails         []string // billing address first, else the main one
	Party          Party
}

const clientCols = `c.id, c.reseller_id, c.name, c.currency::text, c.timezone, c.status, c.autoinvoice, c.last_invoiced_at,
	c.created_at, c.invoice_rounding, c.invoice_precision, c.hidden_digits, c.email_billing, c.email_main,
	c.company_name, c.address, c.zip, c.tax_id, c.reg_id, c.account_details,
	pt.id, pt.name, pt.period, coalesce(pt.day, 0), coalesce(pt.weekday, ''), coalesce(pt.every, 0), pt.anchor, coalesce(pt.due_days, 0),
	tp.id, coalesce(tp.name, ''), coalesce(tp.mode, ''), coalesce(tp.taxes::text, '[]')`

const clientFrom = ` FROM clients c LEFT JOIN payment_terms pt ON pt.id = c.payment_terms_id
	LEFT JOIN tax_profiles tp ON tp.id = c.tax_profile_id`

func scanClient(row pgx.Row) (*client, error) {
	c := &client{}
	var last *time.Time
	var precision *int
	var billing, main string
	var termsID, taxID *int64
	var termsName, period *string
	var terms PaymentTerms
	var anchor *time.Time
	var tax TaxProfile
	var taxes string
	if err := row.Scan(&c.ID, &c.ResellerID, &c.Name, &c.Currency, &c.Timezone, &c.Status, &c.Autoinvoice, &last,
		&c.Created, &c.Rounding, &precision, &c.HiddenDigits, &billing, &main,
		&c.Party.Company, &c.Party.Address, &c.Party.Zip, &c.Party.TaxID, &c.Party.RegID, &c.Party.Account,
		&termsID, &termsName, &period, &terms.Day, &terms.Weekday, &terms.Every, &anchor, &terms.DueDays,
		&taxID, &tax.Name, &tax.Mode, &taxes); err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return nil, fmt.Errorf("client %d: timezone %q: %w", c.ID, c.Timezone, err)
	}
	c.Loc = loc
	if last != nil {
		c.LastInvoiced = dateFromDB(*last)
	}
	c.Precision = Precision(c.Currency)
	if precision != nil {
		c.Precision = *precision
	}
	for _, e := range []string{billing, main} {
		if e != "" {
			c.Emails = append(c.Emails, e)
			break
		}
	}
	c.Party.Name, c.Party.Email = c.Name, billing
	if termsID != nil {
		terms.ID, terms.Name, terms.Period = *termsID, *termsName, *period
		if anchor != nil {
			terms.Anchor = dateFromDB(*anchor)
		}
		c.Terms = &terms
	}
	if taxID != nil {
		tax.ID = *taxID
		if err := json.Unmarshal([]byte(taxes), &tax.Taxes); err != nil {
			return nil, fmt.Errorf("client %d: tax profile %d: %w", c.ID, tax.ID, err)
		}
		c.Tax = &tax
	}
	return c, nil
}

// findClient resolves a client by id or name within c's scope.
func (s *Service) findClient(ctx context.Context, q Querier, c Caller, ref string) (*client, error) {
	args := []any{ref}
	cond := "c.name = $1"
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		cond = "(c.id = $2 OR c.name = $1)"
		args = append(args, id)
	}
	rows, err := q.Query(ctx, `SELECT `+clientCols+clientFrom+` WHERE `+cond+` AND `+c.scopeCond("c.id", &args)+` ORDER BY c.name = $1 DESC LIMIT 1`, args...)
	if err != nil {
		return nil, fmt.Errorf("find client %q: %w", ref, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("find client %q: %w", ref, err)
		}
		return nil, notFound("client %q", ref)
	}
	cl, err := scanClient(rows)
	if err != nil {
		return nil, fmt.Errorf("read client %q: %w", ref, err)
	}
	return cl, nil
}

// lockClient takes the row lock that orders every change to a client's
// invoices and reads the client as of the lock.
func lockClient(ctx context.Context, tx pgx.Tx, id int64) (*client, error) {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM clients WHERE id = $1 FOR NO KEY UPDATE`, id); err != nil {
		return nil, fmt.Errorf("lock client %d: %w", id, err)
	}
	cl, err := scanClient(tx.QueryRow(ctx, `SELECT `+clientCols+clientFrom+` WHERE c.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("client %d", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read client %d: %w", id, err)
	}
	return cl, nil
}

// issuer reads the company data of a reseller for documents.
func issuer(ctx context.Context, q Querier, id int64) (Party, error) {
	var p Party
	err := q.QueryRow(ctx, `SELECT name, company_name, address, email, tax_id, reg_id FROM resellers WHERE id = $1`, id).
		Scan(&p.Name, &p.Company, &p.Address, &p.Email, &p.TaxID, &p.RegID)
	if err != nil {
		return p, fmt.Errorf("read reseller %d: %w", id, err)
	}
	return p, nil
}
