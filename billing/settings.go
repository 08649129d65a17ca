package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what the settings store needs of a pool or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Stored says what a save did.
type Stored string

// What a save can do.
const (
	Created   Stored = "created"
	Updated   Stored = "updated"
	Unchanged Stored = "unchanged"
)

const termsCols = `id, name, period, coalesce(day, 0), coalesce(weekday, ''), coalesce(every, 0), anchor, due_days`

func scanTerms(row pgx.Row) (*PaymentTerms, error) {
	t := &PaymentTerms{}
	var anchor *time.Time
	if err := row.Scan(&t.ID, &t.Name, &t.Period, &t.Day, &t.Weekday, &t.Every, &anchor, &t.DueDays); err != nil {
		return nil, err
	}
	if anchor != nil {
		t.Anchor = dateFromDB(*anchor)
	}
	return t, nil
}

func nullInt(v int) any {
	if v == 0 {
		return nil
	}
	return v
}

func nullStr(v string) any {
	if v == "" {
		return nil
	}
	return v
}

// SaveTerms validates t (Validate) and stores it in q: by id when t.ID is
// set (an edit), else by name — a new row, or the row of that name when
// upsert is set (the catalog file) and a conflict otherwise (the API's
// create). It is the one store path of payment terms (package catalog's
// Writer calls it and audits the change). t.ID is set to the row's id; old
// is the row as it was before (nil when created).
func SaveTerms(ctx context.Context, q Querier, t *PaymentTerms, upsert bool) (stored Stored, old *PaymentTerms, err error) {
	if err := t.Validate(); err != nil {
		return "", nil, err
	}
	args := []any{t.Name, t.Period, nullInt(t.Day), nullStr(t.Weekday), nullInt(t.Every), t.Anchor.dbValue(), t.DueDays}
	switch {
	case t.ID != 0:
		old, err = scanTerms(q.QueryRow(ctx, `SELECT `+termsCols+` FROM payment_terms WHERE id = $1 FOR UPDATE`, t.ID))
		if errors.Is(err, pgx.ErrNoRows) {
			return "", nil, notFound("payment terms %d", t.ID)
		}
	default:
		old, err = scanTerms(q.QueryRow(ctx, `SELECT `+termsCols+` FROM payment_terms WHERE name = $1 FOR UPDATE`, t.Name))
		if errors.Is(err, pgx.ErrNoRows) {
			old, err = nil, nil
		} else if err == nil && !upsert {
			return "", nil, conflictErr("payment terms %q already exist (id %d)", t.Name, old.ID)
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("read payment terms: %w", err)
	}
	if old == nil {
		err = q.QueryRow(ctx, `INSERT INTO payment_terms (name, period, day, weekday, every, anchor, due_days)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, args...).Scan(&t.ID)
		if uniqueViolation(err) {
			return "", nil, conflictErr("payment terms %q already exist", t.Name)
		}
		if err != nil {
			return "", nil, fmt.Errorf("store payment terms %q: %w", t.Name, err)
		}
		return Created, nil, nil
	}
	t.ID = old.ID
	if old.Name == t.Name && old.Period == t.Period && old.Day == t.Day && old.Weekday == t.Weekday &&
		old.Every == t.Every && old.Anchor.Equal(t.Anchor) && old.DueDays == t.DueDays {
		return Unchanged, old, nil
	}
	_, err = q.Exec(ctx, `UPDATE payment_terms SET name = $1, period = $2, day = $3, weekday = $4, every = $5, anchor = $6,
		due_days = $7, updated_at = now() WHERE id = $8`, append(args, t.ID)...)
	if uniqueViolation(err) {
		return "", nil, conflictErr("payment terms %q already exist", t.Name)
	}
	if err != nil {
		return "", nil, fmt.Errorf("store payment terms %q: %w", t.Name, err)
	}
	return Updated, old, nil
}

// GetTerms reads payment terms by id.
func GetTerms(ctx context.Context, q Querier, id int64) (*PaymentTerms, error) {
	t, err := scanTerms(q.QueryRow(ctx, `SELECT `+termsCols+` FROM payment_terms WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("payment terms %d", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read payment terms %d: %w", id, err)
	}
	return t, nil
}

// ListTerms reads every payment terms, by name.
func ListTerms(ctx context.Context, q Querier) ([]*PaymentTerms, error) {
	rows, err := q.Query(ctx, `SELECT `+termsCols+` FROM payment_terms ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list payment terms: %w", err)
	}
	defer rows.Close()
	var out []*PaymentTerms
	for rows.Next() {
		t, err := scanTerms(rows)
		if err != nil {
			return nil, fmt.Errorf("list payment terms: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

const taxCols = `id, name, mode, taxes::text`

func scanTax(row pgx.Row) (*TaxProfile, error) {
	p := &TaxProfile{}
	var taxes string
	if err := row.Scan(&p.ID, &p.Name, &p.Mode, &taxes); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(taxes), &p.Taxes); err != nil {
		return nil, fmt.Errorf("tax profile %d: stored taxes: %w", p.ID, err)
	}
	if p.Taxes == nil {
		p.Taxes = []Tax{}
	}
	return p, nil
}

func sameTaxes(a, b *TaxProfile) bool {
	if a.Name != b.Name || a.Mode != b.Mode || len(a.Taxes) != len(b.Taxes) {
		return false
	}
	for i := range a.Taxes {
		if a.Taxes[i].Name != b.Taxes[i].Name || !a.Taxes[i].Percent.Equal(b.Taxes[i].Percent) {
			return false
		}
	}
	return true
}

// SaveTaxProfile validates p (Validate) and stores it in q, by id or by
// name as SaveTerms does: the one store path of tax profiles. old is the
// row as it was before (nil when created).
func SaveTaxProfile(ctx context.Context, q Querier, p *TaxProfile, upsert bool) (stored Stored, old *TaxProfile, err error) {
	if err := p.Validate(); err != nil {
		return "", nil, err
	}
	if p.Taxes == nil {
		p.Taxes = []Tax{}
	}
	taxes, err := json.Marshal(p.Taxes)
	if err != nil {
		return "", nil, fmt.Errorf("BUG: taxes: %w", err)
	}
	switch {
	case p.ID != 0:
		old, err = scanTax(q.QueryRow(ctx, `SELECT `+taxCols+` FROM tax_profiles WHERE id = $1 FOR UPDATE`, p.ID))
		if errors.Is(err, pgx.ErrNoRows) {
			return "", nil, notFound("tax profile %d", p.ID)
		}
	default:
		old, err = scanTax(q.QueryRow(ctx, `SELECT `+taxCols+` FROM tax_profiles WHERE name = $1 FOR UPDATE`, p.Name))
		if errors.Is(err, pgx.ErrNoRows) {
			old, err = nil, nil
		} else if err == nil && !upsert {
			return "", nil, conflictErr("tax profile %q already exists (id %d)", p.Name, old.ID)
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("read tax profile: %w", err)
	}
	if old == nil {
		err = q.QueryRow(ctx, `INSERT INTO tax_profiles (name, mode, taxes) VALUES ($1, $2, $3::jsonb) RETURNING id`,
			p.Name, p.Mode, string(taxes)).Scan(&p.ID)
		if uniqueViolation(err) {
			return "", nil, conflictErr("tax profile %q already exists", p.Name)
		}
		if err != nil {
			return "", nil, fmt.Errorf("store tax profile %q: %w", p.Name, err)
		}
		return Created, nil, nil
	}
	p.ID = old.ID
	if sameTaxes(old, p) {
		return Unchanged, old, nil
	}
	_, err = q.Exec(ctx, `UPDATE tax_profiles SET name = $1, mode = $2, taxes = $3::jsonb, updated_at = now() WHERE id = $4`,
		p.Name, p.Mode, string(taxes), p.ID)
	if uniqueViolation(err) {
		return "", nil, conflictErr("tax profile %q already exists", p.Name)
	}
	if err != nil {
		return "", nil, fmt.Errorf("store tax profile %q: %w", p.Name, err)
	}
	return Updated, old, nil
}

// GetTaxProfile reads a tax profile by id.
func GetTaxProfile(ctx context.Context, q Querier, id int64) (*TaxProfile, error) {
	p, err := scanTax(q.QueryRow(ctx, `SELECT `+taxCols+` FROM tax_profiles WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("tax profile %d", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read tax profile %d: %w", id, err)
	}
	return p, nil
}

// ListTaxProfiles reads every tax profile, by name.
func ListTaxProfiles(ctx context.Context, q Querier) ([]*TaxProfile, error) {
	rows, err := q.Query(ctx, `SELECT `+taxCols+` FROM tax_profiles ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tax profiles: %w", err)
	}
	defer rows.Close()
	var out []*TaxProfile
	for rows.Next() {
		p, err := scanTax(rows)
		if err != nil {
			return nil, fmt.Errorf("list tax profiles: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
