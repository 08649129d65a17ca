package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/sinks"
)

// Counts is what an apply did to one kind of entry.
type Counts struct {
	Created, Updated, Unchanged int
}

func (c Counts) changed() bool { return c.Created+c.Updated > 0 }

// RateCounts is what an apply did to the rates of one rate table.
type RateCounts struct {
	Table                              string
	Added, Changed, Removed, Unchanged int
}

func (c RateCounts) changed() bool { return c.Added+c.Changed+c.Removed > 0 }

// Report is the outcome of Apply: counts per kind of entry, per rate table,
// and one line per created or updated entry.
type Report struct {
	DryRun                                       bool
	TimeProfiles, RateTables, Resellers, Clients Counts
	Accounts                                     Counts
	Payments                                     Counts // Updated is always 0: payments are never changed
	PaymentTerms, TaxProfiles                    Counts
	Rates                                        []RateCounts
	Changes                                      []string // such as `created client "Customer A"`
	Version                                      int64    // catalog version after the apply
}

// Changed reports whether the apply changed (or, dry, would change) anything.
func (r *Report) Changed() bool {
	for _, c := range []Counts{r.TimeProfiles, r.RateTables, r.Resellers, r.Clients, r.Accounts, r.Payments, r.PaymentTerms, r.TaxProfiles} {
		if c.changed() {
			return true
		}
	}
	for _, rc := range r.Rates {
		if rc.changed() {
			return true
		}
	}
	return false
}

// Write prints the report for an operator.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	if r.DryRun {
		b.WriteString("dry run: nothing written; an apply would do this:\n")
	}
	for _, c := range r.Changes {
		fmt.Fprintf(&b, "  %s\n", c)
	}
	line := func(name string, c Counts) {
		fmt.Fprintf(&b, "%-14s %d created, %d updated, %d unchanged\n", name, c.Created, c.Updated, c.Unchanged)
	}
	line("time profiles", r.TimeProfiles)
	line("rate tables", r.RateTables)
	for _, rc := range r.Rates {
		fmt.Fprintf(&b, "  rates of %q: %d added, %d changed, %d removed, %d unchanged\n", rc.Table, rc.Added, rc.Changed, rc.Removed, rc.Unchanged)
	}
	if r.PaymentTerms != (Counts{}) || r.TaxProfiles != (Counts{}) {
		line("payment terms", r.PaymentTerms)
		line("tax profiles", r.TaxProfiles)
	}
	line("resellers", r.Resellers)
	line("clients", r.Clients)
	line("accounts", r.Accounts)
	fmt.Fprintf(&b, "%-14s %d recorded, %d already recorded\n", "payments", r.Payments.Created, r.Payments.Unchanged)
	switch {
	case !r.Changed():
		fmt.Fprintf(&b, "nothing changed (catalog version %d)\n", r.Version)
	case !r.DryRun:
		fmt.Fprintf(&b, "applied (catalog version %d)\n", r.Version)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Options tune Apply.
type Options struct {
	// DryRun runs the apply in a transaction that is rolled back: the report
	// says what would change and nothing is written.
	DryRun bool
	// Now is the time of payments without an `at`; zero means time.Now.
	Now time.Time
}

var errDryRun = errors.New("dry run")

// applyLock serialises concurrent applies (pg_advisory_xact_lock key).
const applyLock = 0x7461726966610001

// Apply makes the database agree with f, in one transaction (see the
// package doc). It blocks on PostgreSQL and on any other apply running at
// the same time.
func Apply(ctx context.Context, pool *pgxpool.Pool, f *File, opts Options) (*Report, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	a := &applier{f: f, opts: opts, rep: &Report{DryRun: opts.DryRun}}
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		a.tx = tx
		if err := a.run(ctx); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT version FROM catalog_version").Scan(&a.rep.Version); err != nil {
			return fmt.Errorf("read catalog version: %w", err)
		}
		if opts.DryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return nil, err
	}
	if opts.DryRun { // the version of the database as it stays
		if err := pool.QueryRow(ctx, "SELECT version FROM catalog_version").Scan(&a.rep.Version); err != nil {
			return nil, fmt.Errorf("read catalog version: %w", err)
		}
	}
	return a.rep, nil
}

type applier struct {
	f    *File
	opts Options
	tx   pgx.Tx
	rep  *Report
}

// fail returns an error naming the file, the entry and the field.
func (a *applier) fail(entry, field, format string, args ...any) error {
	var v validator
	v.add(entry, field, format, args...)
	return &Error{Path: a.f.Path, Problems: v.problems}
}

func (a *applier) run(ctx context.Context) error {
	if _, err := a.tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(applyLock)); err != nil {
		return fmt.Errorf("lock catalog: %w", err)
	}
	for _, step := range []func(context.Context) error{a.profiles, a.rateTables, a.billingSettings, a.resellers, a.clients, a.payments} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) note(c *Counts, st state, kind, name string) {
	switch st {
	case created:
		c.Created++
		a.rep.Changes = append(a.rep.Changes, fmt.Sprintf("created %s %q", kind, name))
	case updated:
		c.Updated++
		a.rep.Changes = append(a.rep.Changes, fmt.Sprintf("updated %s %q", kind, name))
	default:
		c.Unchanged++
	}
}

func (a *applier) profiles(ctx context.Context) error {
	for _, name := range a.f.profileNames() {
		def, err := json.Marshal(a.f.TimeProfiles[name])
		if err != nil {
			return fmt.Errorf("time profile %q: %w", name, err)
		}
		_, st, err := upsert(ctx, a.tx, "time_profiles",
			[]col{{"name", "text", name}},
			[]col{{"definition", "jsonb", string(def)}})
		if err != nil {
			return fmt.Errorf("time profile %q: %w", name, err)
		}
		a.note(&a.rep.TimeProfiles, st, "time profile", name)
	}
	return nil
}

func (a *applier) rateTables(ctx context.Context) error {
	if len(a.f.RateTables) == 0 {
		return nil
	}
	known := map[string]bool{"all": true}
	rows, err := a.tx.Query(ctx, "SELECT name FROM time_profiles")
	if err != nil {
		return fmt.Errorf("read time profiles: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read time profiles: %w", err)
	}
	for _, n := range names {
		known[n] = true
	}
	if _, err := a.tx.Exec(ctx, `CREATE TEMP TABLE catalog_deck (
		code text, code_name text, rate text, effective_from timestamptz, end_date timestamptz,
		min_volume integer, "interval" integer, grace_volume integer, setup_fee text, time_profile text
	) ON COMMIT DROP`); err != nil {
		return fmt.Errorf("create deck staging table: %w", err)
	}
	order, err := a.parentsFirst()
	if err != nil {
		return err
	}
	for _, i := range order {
		t := &a.f.RateTables[i]
		e := entry("rate_tables", i, t.Name)
		for _, r := range t.rows {
			if !known[r.Profile] {
				return a.fail(e, "", "deck %s: line %d: unknown time profile %q", t.Deck, r.Line, r.Profile)
			}
		}
		parent, err := a.parentTable(ctx, e, t)
		if err != nil {
			return err
		}
		if parent != nil { // only a table that exists already can close a cycle
			existing, err := a.lookup(ctx, "rate_tables", t.Name)
			if err != nil {
				return err
			}
			if existing != 0 {
				cycle, err := sinks.RateTableCycle(ctx, a.tx, existing, parent.(int64))
				if err != nil {
					return fmt.Errorf("%s: check parents: %w", e, err)
				}
				if cycle {
					return a.fail(e, "parent", "rate table %q is below %q: that would make a cycle", t.Parent, t.Name)
				}
			}
		}
		id, st, err := upsert(ctx, a.tx, "rate_tables",
			[]col{{"name", "text", t.Name}},
			[]col{{"currency", "char(3)", t.Currency}, {"parent_id", "bigint", parent}, {"notes", "text", t.Notes}})
		if err != nil {
			return fmt.Errorf("%s: %w", e, err)
		}
		a.note(&a.rep.RateTables, st, "rate table", t.Name)
		rc, err := a.rates(ctx, id, t)
		if err != nil {
			return fmt.Errorf("%s: rates: %w", e, err)
		}
		a.rep.Rates = append(a.rep.Rates, rc)
	}
	return nil
}

// parentsFirst orders the file's rate tables so that a parent named in the
// file comes before its children.
func (a *applier) parentsFirst() ([]int, error) {
	index := map[string]int{}
	for i, t := range a.f.RateTables {
		index[t.Name] = i
	}
	var order []int
	state := make([]int8, len(a.f.RateTables)) // 0 new, 1 visiting, 2 placed
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case 1:
			t := a.f.RateTables[i]
			return a.fail(entry("rate_tables", i, t.Name), "parent", "rate tables form a cycle")
		case 2:
			return nil
		}
		state[i] = 1
		if p, ok := index[a.f.RateTables[i].Parent]; ok {
			if err := visit(p); err != nil {
				return err
			}
		}
		state[i] = 2
		order = append(order, i)
		return nil
	}
	for i := range a.f.RateTables {
		if err := visit(i); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// parentTable resolves t's parent (nil for none): a rate table of the same
// currency, in the file (applied already) or in the database.
func (a *applier) parentTable(ctx context.Context, e string, t *RateTable) (any, error) {
	if t.Parent == "" {
		return nil, nil
	}
	var id int64
	var currency string
	err := a.tx.QueryRow(ctx, "SELECT id, currency FROM rate_tables WHERE name = $1", t.Parent).Scan(&id, &currency)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, a.fail(e, "parent", "unknown rate table %q", t.Parent)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: look up rate table %q: %w", e, t.Parent, err)
	}
	if currency != t.Currency {
		return nil, a.fail(e, "parent", "rate table %q is in %s, this one in %s", t.Parent, currency, t.Currency)
	}
	return id, nil
}

// rateDiffers is true when a stored rate r differs from the staged deck row
// d with the same code, effective_from and time_profile.
const rateDiffers = `ROW(r.code_name, r.rate, r.end_date, r.min_volume, r."interval", r.grace_volume, r.setup_fee, r.status)
	IS DISTINCT FROM ROW(d.code_name, d.rate::numeric, d.end_date, d.min_volume, d."interval", d.grace_volume, d.setup_fee::numeric, 'active')`

const rateMatches = `r.code = d.code AND r.effective_from = d.effective_from AND r.time_profile = d.time_profile`

// rates replaces the rates of table id with the deck: COPY into the
// staging table, count, then one statement per kind of change, and only
// when there is such a change (every statement on rates bumps the catalog
// version).
func (a *applier) rates(ctx context.Context, id int64, t *RateTable) (RateCounts, error) {
	rc := RateCounts{Table: t.Name}
	if _, err := a.tx.Exec(ctx, "TRUNCATE catalog_deck"); err != nil {
		return rc, err
	}
	_, err := a.tx.CopyFrom(ctx, pgx.Identifier{"catalog_deck"},
		[]string{"code", "code_name", "rate", "effective_from", "end_date", "min_volume", "interval", "grace_volume", "setup_fee", "time_profile"},
		pgx.CopyFromSlice(len(t.rows), func(i int) ([]any, error) {
			r := &t.rows[i]
			var end any
			if !r.EndDate.IsZero() {
				end = r.EndDate
			}
			return []any{r.Code, r.CodeName, r.Rate.String(), r.EffectiveFrom, end, int32(r.MinVolume), int32(r.Interval), int32(r.GraceVolume), r.SetupFee.String(), r.Profile}, nil
		}))
	if err != nil {
		return rc, fmt.Errorf("copy deck: %w", err)
	}
	if _, err := a.tx.Exec(ctx, "ANALYZE catalog_deck"); err != nil {
		return rc, err
	}
	err = a.tx.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE r.id IS NULL),
		       count(*) FILTER (WHERE r.id IS NOT NULL AND `+rateDiffers+`),
		       count(*) FILTER (WHERE r.id IS NOT NULL AND NOT (`+rateDiffers+`))
		FROM catalog_deck d LEFT JOIN rates r ON r.rate_table_id = $1 AND `+rateMatches, id).
		Scan(&rc.Added, &rc.Changed, &rc.Unchanged)
	if err != nil {
		return rc, fmt.Errorf("compare deck: %w", err)
	}
	err = a.tx.QueryRow(ctx, `
		SELECT count(*) FROM rates r
		WHERE r.rate_table_id = $1 AND NOT EXISTS (SELECT 1 FROM catalog_deck d WHERE `+rateMatches+`)`, id).
		Scan(&rc.Removed)
	if err != nil {
		return rc, fmt.Errorf("compare deck: %w", err)
	}
	if rc.Removed > 0 {
		if _, err := a.tx.Exec(ctx, `
			DELETE FROM rates r
			WHERE r.rate_table_id = $1 AND NOT EXISTS (SELECT 1 FROM catalog_deck d WHERE `+rateMatches+`)`, id); err != nil {
			return rc, fmt.Errorf("remove rates: %w", err)
		}
	}
	if rc.Changed > 0 {
		if _, err := a.tx.Exec(ctx, `
			UPDATE rates r SET code_name = d.code_name, rate = d.rate::numeric, end_date = d.end_date,
			       min_volume = d.min_volume, "interval" = d."interval", grace_volume = d.grace_volume,
			       setup_fee = d.setup_fee::numeric, status = 'active', updated_at = now()
			FROM catalog_deck d
			WHERE r.rate_table_id = $1 AND `+rateMatches+` AND `+rateDiffers, id); err != nil {
			return rc, fmt.Errorf("update rates: %w", err)
		}
	}
	if rc.Added > 0 {
		if _, err := a.tx.Exec(ctx, `
			INSERT INTO rates (rate_table_id, code, code_name, rate, effective_from, end_date,
			                   min_volume, "interval", grace_volume, setup_fee, time_profile)
			SELECT $1, d.code, d.code_name, d.rate::numeric, d.effective_from, d.end_date,
			       d.min_volume, d."interval", d.grace_volume, d.setup_fee::numeric, d.time_profile
			FROM catalog_deck d
			WHERE NOT EXISTS (SELECT 1 FROM rates r WHERE r.rate_table_id = $1 AND `+rateMatches+`)
			ORDER BY d.code, d.effective_from, d.time_profile`, id); err != nil {
			return rc, fmt.Errorf("add rates: %w", err)
		}
	}
	if rc.changed() {
		a.rep.Changes = append(a.rep.Changes, fmt.Sprintf("changed rates of %q", t.Name))
	}
	return rc, nil
}

// lookup returns the id of the row of table named name, or 0.
func (a *applier) lookup(ctx context.Context, table, name string) (int64, error) {
	var id int64
	err := a.tx.QueryRow(ctx, "SELECT id FROM "+table+" WHERE name = $1", name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("look up %s %q: %w", table, name, err)
	}
	return id, nil
}

// rateTable resolves an optional rate table name to an id (nil for none).
func (a *applier) rateTable(ctx context.Context, e, field, name string) (any, error) {
	if name == "" {
		return nil, nil
	}
	id, err := a.lookup(ctx, "rate_tables", name)
	if err != nil {
		return nil, err
	}
	if id == 0 {
		return nil, a.fail(e, field, "unknown rate table %q", name)
	}
	return id, nil
}

// resellers applies parents before their children, whatever the file order.
func (a *applier) resellers(ctx context.Context) error {
	done := make([]bool, len(a.f.Resellers))
	inFile := map[string]bool{}
	for _, r := range a.f.Resellers {
		inFile[r.Name] = true
	}
	for left := len(a.f.Resellers); left > 0; {
		progress := false
		for i := range a.f.Resellers {
			r := &a.f.Resellers[i]
			if done[i] {
				continue
			}
			e := entry("resellers", i, r.Name)
			var parent any
			if r.Parent != "" {
				id, err := a.lookup(ctx, "resellers", r.Parent)
				if err != nil {
					return err
				}
				if id == 0 || inFile[r.Parent] && !a.resellerDone(done, r.Parent) {
					if !inFile[r.Parent] {
						return a.fail(e, "parent", "unknown reseller %q", r.Parent)
					}
					continue // its parent first
				}
				parent = id
			}
			orig, err := a.rateTable(ctx, e, "orig_rate_table", r.OrigRateTable)
			if err != nil {
				return err
			}
			term, err := a.rateTable(ctx, e, "term_rate_table", r.TermRateTable)
			if err != nil {
				return err
			}
			_, st, err := upsert(ctx, a.tx, "resellers",
				[]col{{"name", "text", r.Name}},
				[]col{
					{"parent_id", "bigint", parent},
					{"currency", "char(3)", r.Currency},
					{"status", "text", r.Status},
					{"orig_rate_table_id", "bigint", orig},
					{"term_rate_table_id", "bigint", term},
					{"credit_limit", "numeric", r.credit.String()},
					{"unlimited", "boolean", r.Unlimited},
					{"invoice_template", "text", r.InvoiceTemplate},
					{"invoice_number_template", "text", r.InvoiceNumberTemplate},
					{"company_name", "text", r.CompanyName},
					{"email", "text", r.Email},
					{"address", "text", r.Address},
					{"tax_id", "text", r.TaxID},
					{"reg_id", "text", r.RegID},
				})
			if err != nil {
				return fmt.Errorf("%s: %w", e, err)
			}
			a.note(&a.rep.Resellers, st, "reseller", r.Name)
			done[i], progress = true, true
			left--
		}
		if !progress {
			for i, r := range a.f.Resellers {
				if !done[i] {
					return a.fail(entry("resellers", i, r.Name), "parent", "resellers form a cycle")
				}
			}
		}
	}
	return nil
}

func (a *applier) resellerDone(done []bool, name string) bool {
	for i, r := range a.f.Resellers {
		if r.Name == name {
			return done[i]
		}
	}
	return false
}

func (a *applier) clients(ctx context.Context) error {
	for i := range a.f.Clients {
		c := &a.f.Clients[i]
		e := entry("clients", i, c.Name)
		resName := c.Reseller
		if resName == "" {
			resName = a.f.defaultReseller()
		}
		var resID int64
		var resCurrency string
		err := a.tx.QueryRow(ctx, "SELECT id, currency FROM resellers WHERE name = $1", resName).Scan(&resID, &resCurrency)
		if errors.Is(err, pgx.ErrNoRows) {
			return a.fail(e, "reseller", "unknown reseller %q", resName)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e, err)
		}
		currency := c.Currency
		if currency == "" {
			currency = resCurrency
		}
		orig, err := a.rateTable(ctx, e, "orig_rate_table", c.OrigRateTable)
		if err != nil {
			return err
		}
		term, err := a.rateTable(ctx, e, "term_rate_table", c.TermRateTable)
		if err != nil {
			return err
		}
		terms, err := a.billingRef(ctx, e, "payment_terms", "payment_terms", "payment terms", c.PaymentTerms)
		if err != nil {
			return err
		}
		tax, err := a.billingRef(ctx, e, "tax_profile", "tax_profiles", "tax profile", c.TaxProfile)
		if err != nil {
			return err
		}
		var threshold any
		if c.threshold != nil {
			threshold = c.threshold.String()
		}
		tags := c.Tags
		if tags == nil {
			tags = []string{}
		}
		id, st, err := upsert(ctx, a.tx, "clients",
			[]col{{"name", "text", c.Name}},
			[]col{
				{"reseller_id", "bigint", resID},
				{"currency", "char(3)", currency},
				{"timezone", "text", c.Timezone},
				{"status", "text", c.Status},
				{"tags", "text[]", tags},
				{"bill_by", "text", c.BillBy},
				{"hidden_digits", "integer", c.HiddenDigits},
				{"credit_limit", "numeric", c.credit.String()},
				{"unlimited", "boolean", c.Unlimited},
				{"orig_rate_table_id", "bigint", orig},
				{"routing_plan", "text", c.RoutingPlan},
				{"orig_capacity", "integer", c.OrigCapacity},
				{"term_rate_table_id", "bigint", term},
				{"vendor_credit_limit", "numeric", c.vendorCredit.String()},
				{"term_capacity", "integer", c.TermCapacity},
				{"notify_client", "boolean", c.NotifyClient},
				{"notify_admin", "boolean", c.NotifyAdmin},
				{"low_balance_threshold", "numeric", threshold},
				{"capacity_under_threshold", "integer", c.CapacityUnderThreshold},
				{"invoice_template", "text", c.InvoiceTemplate},
				{"autoinvoice", "boolean", c.Autoinvoice},
				{"payment_terms_id", "bigint", terms},
				{"tax_profile_id", "bigint", tax},
				{"invoice_rounding", "text", c.InvoiceRounding},
				{"invoice_precision", "integer", c.InvoicePrecision},
				{"company_name", "text", c.CompanyName},
				{"email_main", "text", c.EmailMain},
				{"email_noc", "text", c.EmailNOC},
				{"email_billing", "text", c.EmailBilling},
				{"email_rates", "text", c.EmailRates},
				{"address", "text", c.Address},
				{"zip", "text", c.Zip},
				{"tax_id", "text", c.TaxID},
				{"reg_id", "text", c.RegID},
				{"account_details", "text", c.AccountDetails},
				{"locale", "text", c.Locale},
			})
		if err != nil {
			return fmt.Errorf("%s: %w", e, err)
		}
		a.note(&a.rep.Clients, st, "client", c.Name)
		for j := range c.Accounts {
			if err := a.account(ctx, fmt.Sprintf("%s: accounts[%d]", e, j), id, &c.Accounts[j]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *applier) account(ctx context.Context, e string, clientID int64, acc *Account) error {
	orig, err := a.rateTable(ctx, e, "orig_rate_table", acc.OrigRateTable)
	if err != nil {
		return err
	}
	term, err := a.rateTable(ctx, e, "term_rate_table", acc.TermRateTable)
	if err != nil {
		return err
	}
	origOn, termOn := true, false
	if acc.Orig != nil {
		origOn = *acc.Orig
	}
	if acc.Term != nil {
		termOn = *acc.Term
	}
	_, st, err := upsert(ctx, a.tx, "accounts",
		[]col{{"kind", "text", acc.Kind}, {"ident", "text", acc.Ident}, {"tech_prefix", "text", acc.TechPrefix}},
		[]col{
			{"client_id", "bigint", clientID},
			{"orig", "boolean", origOn},
			{"term", "boolean", termOn},
			{"orig_rate_table_id", "bigint", orig},
			{"term_rate_table_id", "bigint", term},
			{"status", "text", acc.Status},
		})
	if err != nil {
		return fmt.Errorf("%s: %w", e, err)
	}
	name := acc.Kind + " " + acc.Ident
	if acc.TechPrefix != "" {
		name += " " + acc.TechPrefix
	}
	a.note(&a.rep.Accounts, st, "account", name)
	return nil
}

func (a *applier) payments(ctx context.Context) error {
	for i := range a.f.Payments {
		p := &a.f.Payments[i]
		e := fmt.Sprintf("payments[%d] %q", i, p.Ref)
		var clientID int64
		var currency string
		err := a.tx.QueryRow(ctx, "SELECT id, currency FROM clients WHERE name = $1", p.Client).Scan(&clientID, &currency)
		if errors.Is(err, pgx.ErrNoRows) {
			return a.fail(e, "client", "unknown client %q", p.Client)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e, err)
		}
		if p.Currency != "" && p.Currency != currency {
			return a.fail(e, "currency", "%s differs from the client's currency %s", p.Currency, currency)
		}
		var kind, amount string
		err = a.tx.QueryRow(ctx, "SELECT kind, amount::text FROM transactions WHERE client_id = $1 AND ref = $2", clientID, p.Ref).Scan(&kind, &amount)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("%s: %w", e, err)
		default:
			if stored := decimal.RequireFromString(amount); kind != "payment" || !stored.Equal(p.amount) {
				return a.fail(e, "ref", "already recorded for %q as a %s of %s; a recorded transaction is never changed", p.Client, kind, stored)
			}
			a.rep.Payments.Unchanged++
			continue
		}
		at := p.at
		if at.IsZero() {
			at = a.opts.Now
		}
		if _, err := a.tx.Exec(ctx, `
			INSERT INTO transactions (client_id, kind, amount, currency, at, ref, notes)
			VALUES ($1, 'payment', $2::numeric, $3, $4, $5, $6)`,
			clientID, p.amount.String(), currency, at, p.Ref, p.Notes); err != nil {
			return fmt.Errorf("%s: record payment: %w", e, err)
		}
		a.rep.Payments.Created++
		a.rep.Changes = append(a.rep.Changes, fmt.Sprintf("recorded payment %q of %s %s for %q", p.Ref, p.amount, currency, p.Client))
	}
	return nil
}

// col is one column of an upsert: its name, the SQL type its parameter is
// cast to, and the value (nil for NULL).
type col struct {
	name, typ string
	val       any
}

type state int

const (
	unchanged state = iota
	created
	updated
)

// upsert makes the row of table identified by key hold cols. It writes
// nothing when the row already does (statement triggers such as the catalog
// version bump fire even for statements that change no row).
func upsert(ctx context.Context, tx pgx.Tx, table string, key, cols []col) (int64, state, error) {
	args := make([]any, 0, len(key)+len(cols)+1)
	var where, stored, wanted []string
	for _, k := range key {
		args = append(args, k.val)
		where = append(where, fmt.Sprintf("%s = $%d::%s", k.name, len(args), k.typ))
	}
	for _, c := range cols {
		args = append(args, c.val)
		stored = append(stored, c.name)
		wanted = append(wanted, fmt.Sprintf("$%d::%s", len(args), c.typ))
	}
	var id int64
	var same bool
	err := tx.QueryRow(ctx, fmt.Sprintf("SELECT id, ROW(%s) IS NOT DISTINCT FROM ROW(%s) FROM %s WHERE %s",
		strings.Join(stored, ", "), strings.Join(wanted, ", "), table, strings.Join(where, " AND ")), args...).Scan(&id, &same)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		names := make([]string, 0, len(key)+len(cols))
		vals := make([]string, 0, len(key)+len(cols))
		for i, c := range append(append([]col(nil), key...), cols...) {
			names = append(names, c.name)
			vals = append(vals, fmt.Sprintf("$%d::%s", i+1, c.typ))
		}
		err = tx.QueryRow(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) RETURNING id",
			table, strings.Join(names, ", "), strings.Join(vals, ", ")), args...).Scan(&id)
		if err != nil {
			return 0, 0, fmt.Errorf("insert: %w", err)
		}
		return id, created, nil
	case err != nil:
		return 0, 0, fmt.Errorf("read: %w", err)
	case same:
		return id, unchanged, nil
	}
	sets := make([]string, 0, len(cols))
	for i, c := range cols {
		sets = append(sets, fmt.Sprintf("%s = %s", c.name, wanted[i]))
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("UPDATE %s SET %s, updated_at = now() WHERE %s",
		table, strings.Join(sets, ", "), strings.Join(where, " AND ")), args...); err != nil {
		return 0, 0, fmt.Errorf("update: %w", err)
	}
	return id, updated, nil
}
