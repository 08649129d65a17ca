package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options tune Apply.
type Options struct {
	// DryRun runs the apply in a transaction that is rolled back: the report
	// says what would change and nothing is written.
	DryRun bool
	// Now is the time of payments without an `at`; zero means time.Now.
	Now time.Time
	// Progress, when set, is told what the apply is doing before each step
	// that may take a while (a large deck), on the calling goroutine.
	Progress func(step string)
}

var errDryRun = errors.New("dry run")

// applyLock serialises concurrent applies (pg_advisory_xact_lock key).
const applyLock = 0x7461726966610001

// Apply makes the database agree with f, in one transaction, through the
// same Writer as the API: the same rules and messages, and one audit row
// per change under the actor "catalog apply (PATH)". Entries are matched by
// name (accounts by kind + ident + tech_prefix, payments by client + ref):
// a missing one is created, one whose fields differ is updated, an
// identical one is not written at all, so the catalog version (and with it
// every worker's reload) moves only when something changed. A rate table's
// rates are replaced by its deck (ImportRates, Replace). Payments are
// recorded once per client and ref. It blocks on PostgreSQL and on any
// other apply running at the same time.
func Apply(ctx context.Context, pool *pgxpool.Pool, f *File, opts Options) (*Report, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	a := &applier{f: f, opts: opts, rep: &Report{DryRun: opts.DryRun}}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		a.w = NewWriter(tx, Operator("catalog apply ("+f.Path+")"))
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
	w    *Writer
	rep  *Report

	tableIDs     []int64  // of the file's rate tables, once applied
	tableChanges []Change // what applying them changed, owners aside
}

// fail returns an error naming the file, the entry and the field.
func (a *applier) fail(entry, field, format string, args ...any) error {
	var v validator
	v.add(entry, field, format, args...)
	return &FileError{Path: a.f.Path, Problems: v.problems}
}

// failed turns an error of the Writer into one naming the file and entry:
// a FieldError becomes the problem, anything else is wrapped.
func (a *applier) failed(entry string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		var v validator
		v.field(entry, fe)
		return &FileError{Path: a.f.Path, Problems: v.problems}
	}
	return fmt.Errorf("%s: %s: %w", a.f.Path, entry, err)
}

// validated checks an entry's values like Load does; Apply is given a
// loaded file, so a problem here is one Load did not check.
func (a *applier) validated(entry string, e *Entity, vals map[string]any) (Input, error) {
	in, problems := e.Validate(vals, true)
	if len(problems) > 0 {
		return nil, a.failed(entry, problems[0])
	}
	return in, nil
}

func (a *applier) progress(format string, args ...any) {
	if a.opts.Progress != nil {
		a.opts.Progress(fmt.Sprintf(format, args...))
	}
}

func (a *applier) run(ctx context.Context) error {
	if _, err := a.w.tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(applyLock)); err != nil {
		return fmt.Errorf("lock catalog: %w", err)
	}
	for _, step := range []func(context.Context) error{a.profiles, a.rateTables, a.billingSettings, a.resellers, a.rateTableOwners, a.clients, a.payments} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) profiles(ctx context.Context) error {
	for _, name := range a.f.profileNames() {
		ch, err := a.w.PutTimeProfile(ctx, name, a.f.TimeProfiles[name])
		if err != nil {
			return a.failed(fmt.Sprintf("time_profiles %q", name), err)
		}
		a.rep.note(&a.rep.TimeProfiles, ch, "time profile", name)
	}
	return nil
}

// lookup returns the id of the row of table named name, or 0.
func (a *applier) lookup(ctx context.Context, table, name string) (int64, error) {
	var id int64
	err := a.w.tx.QueryRow(ctx, "SELECT id FROM "+table+" WHERE name = $1", name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("look up %s %q: %w", table, name, err)
	}
	return id, nil
}

// ref resolves an optional name of table to an id (nil for none).
func (a *applier) ref(ctx context.Context, e, field, table, noun, name string) (any, error) {
	if name == "" {
		return nil, nil
	}
	id, err := a.lookup(ctx, table, name)
	if err != nil {
		return nil, err
	}
	if id == 0 {
		return nil, a.fail(e, field, "unknown %s %q", noun, name)
	}
	return id, nil
}

// put creates or updates the row of e named by in["name"] (id 0: none yet).
func (a *applier) put(ctx context.Context, e *Entity, entry string, id int64, in Input) (int64, Change, error) {
	if id == 0 {
		out, err := a.w.Create(ctx, e, in)
		if err != nil {
			return 0, Unchanged, a.failed(entry, err)
		}
		return idValue(DecodeRow(out)["id"]), Created, nil
	}
	_, ch, err := a.w.Update(ctx, e, id, in)
	if err != nil {
		return 0, Unchanged, a.failed(entry, err)
	}
	return id, ch, nil
}

func (a *applier) rateTables(ctx context.Context) error {
	if cyc := a.f.rateTableCycle(); cyc != nil {
		return a.fail(entry("rate_tables", cyc[0], a.f.RateTables[cyc[0]].Name), "parent", "rate tables form a cycle: %s",
			a.f.loop(cyc, func(i int) string { return a.f.RateTables[i].Name }))
	}
	a.tableIDs = make([]int64, len(a.f.RateTables))
	a.tableChanges = make([]Change, len(a.f.RateTables))
	for _, i := range parentsFirst(len(a.f.RateTables), func(i int) (string, string) { return a.f.RateTables[i].Name, a.f.RateTables[i].Parent }) {
		t := &a.f.RateTables[i]
		e := entry("rate_tables", i, t.Name)
		in, err := a.validated(e, RateTables, t.values())
		if err != nil {
			return err
		}
		if t.deckErr != nil {
			return a.fail(e, "", "%v", t.deckErr)
		}
		if in["parent_id"], err = a.ref(ctx, e, "parent", "rate_tables", "rate table", t.Parent); err != nil {
			return err
		}
		existing, err := a.lookup(ctx, "rate_tables", t.Name)
		if err != nil {
			return err
		}
		id, ch, err := a.put(ctx, RateTables, e, existing, in)
		if err != nil {
			return err
		}
		a.tableIDs[i], a.tableChanges[i] = id, ch // counted with the owner
		if ch != Unchanged {
			a.rep.note(&Counts{}, ch, "rate table", t.Name) // listed in file order
		}
		a.progress("rates of %q: %d rows of %s", t.Name, len(t.rows), t.Deck)
		res, err := a.w.ImportRates(ctx, id, t.rows, t.rejected, Replace, false)
		if err != nil {
			return a.failed(e, err)
		}
		if res.RejectedN > 0 {
			return a.fail(e, "", "%s", deckProblem(t.Deck, res.Rejected))
		}
		rc := RateCounts{Table: t.Name, Added: res.AddedN, Changed: res.ChangedN, Removed: res.RemovedN, Unchanged: res.Unchanged}
		if rc.changed() {
			a.rep.Changes = append(a.rep.Changes, fmt.Sprintf("changed rates of %q", t.Name))
		}
		a.rep.Rates = append(a.rep.Rates, rc)
	}
	return nil
}

// rateTableOwners gives each rate table of the file its owning reseller,
// once the resellers exist, and counts the tables' changes.
func (a *applier) rateTableOwners(ctx context.Context) error {
	for i := range a.f.RateTables {
		t := &a.f.RateTables[i]
		e := entry("rate_tables", i, t.Name)
		owner, err := a.ref(ctx, e, "reseller", "resellers", "reseller", t.Reseller)
		if err != nil {
			return err
		}
		_, ch, err := a.w.Update(ctx, RateTables, a.tableIDs[i], Input{"reseller_id": owner})
		if err != nil {
			return a.failed(e, err)
		}
		if a.tableChanges[i] == Unchanged && ch == Updated {
			a.tableChanges[i] = ch
			a.rep.note(&Counts{}, ch, "rate table", t.Name)
		}
		a.rep.RateTables.note(a.tableChanges[i])
	}
	return nil
}

// parentsFirst orders n named entries so that a parent named among them
// comes before its children (they hold no cycle: checked before).
func parentsFirst(n int, of func(i int) (name, parent string)) []int {
	index := map[string]int{}
	for i := range n {
		name, _ := of(i)
		index[name] = i
	}
	placed := make([]bool, n)
	var order []int
	var visit func(i int)
	visit = func(i int) {
		if placed[i] {
			return
		}
		placed[i] = true
		if _, parent := of(i); parent != "" {
			if p, ok := index[parent]; ok && p != i {
				visit(p)
			}
		}
		order = append(order, i)
	}
	for i := range n {
		visit(i)
	}
	return order
}

func (a *applier) resellers(ctx context.Context) error {
	if cyc := a.f.resellerCycle(); cyc != nil {
		return a.fail(entry("resellers", cyc[0], a.f.Resellers[cyc[0]].Name), "parent", "resellers form a cycle: %s",
			a.f.loop(cyc, func(i int) string { return a.f.Resellers[i].Name }))
	}
	for _, i := range parentsFirst(len(a.f.Resellers), func(i int) (string, string) { return a.f.Resellers[i].Name, a.f.Resellers[i].Parent }) {
		r := &a.f.Resellers[i]
		e := entry("resellers", i, r.Name)
		in, err := a.validated(e, Resellers, r.values())
		if err != nil {
			return err
		}
		if in["parent_id"], err = a.ref(ctx, e, "parent", "resellers", "reseller", r.Parent); err != nil {
			return err
		}
		if in["orig_rate_table_id"], err = a.ref(ctx, e, "orig_rate_table", "rate_tables", "rate table", r.OrigRateTable); err != nil {
			return err
		}
		if in["term_rate_table_id"], err = a.ref(ctx, e, "term_rate_table", "rate_tables", "rate table", r.TermRateTable); err != nil {
			return err
		}
		existing, err := a.lookup(ctx, "resellers", r.Name)
		if err != nil {
			return err
		}
		_, ch, err := a.put(ctx, Resellers, e, existing, in)
		if err != nil {
			return err
		}
		a.rep.note(&a.rep.Resellers, ch, "reseller", r.Name)
	}
	return nil
}

func (a *applier) clients(ctx context.Context) error {
	for i := range a.f.Clients {
		c := &a.f.Clients[i]
		e := entry("clients", i, c.Name)
		resName := or(c.Reseller, a.f.defaultReseller())
		var resID int64
		var resCurrency string
		err := a.w.tx.QueryRow(ctx, "SELECT id, currency FROM resellers WHERE name = $1", resName).Scan(&resID, &resCurrency)
		if errors.Is(err, pgx.ErrNoRows) {
			return a.fail(e, "reseller", "unknown reseller %q", resName)
		}
		if err != nil {
			return fmt.Errorf("%s: %s: %w", a.f.Path, e, err)
		}
		vals := c.values()
		vals["currency"] = or(c.Currency, resCurrency)
		in, err := a.validated(e, Clients, vals)
		if err != nil {
			return err
		}
		in["reseller_id"] = resID
		if in["orig_rate_table_id"], err = a.ref(ctx, e, "orig_rate_table", "rate_tables", "rate table", c.OrigRateTable); err != nil {
			return err
		}
		if in["term_rate_table_id"], err = a.ref(ctx, e, "term_rate_table", "rate_tables", "rate table", c.TermRateTable); err != nil {
			return err
		}
		if in["payment_terms_id"], err = a.ref(ctx, e, "payment_terms", "payment_terms", "payment terms", c.PaymentTerms); err != nil {
			return err
		}
		if in["tax_profile_id"], err = a.ref(ctx, e, "tax_profile", "tax_profiles", "tax profile", c.TaxProfile); err != nil {
			return err
		}
		existing, err := a.lookup(ctx, "clients", c.Name)
		if err != nil {
			return err
		}
		id, ch, err := a.put(ctx, Clients, e, existing, in)
		if err != nil {
			return err
		}
		a.rep.note(&a.rep.Clients, ch, "client", c.Name)
		for j := range c.Accounts {
			if err := a.account(ctx, fmt.Sprintf("%s: accounts[%d]", e, j), id, c, &c.Accounts[j]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *applier) account(ctx context.Context, e string, clientID int64, c *Client, acc *Account) error {
	vals := acc.values(c)
	vals["client_id"] = clientID
	in, err := a.validated(e, Accounts, vals)
	if err != nil {
		return err
	}
	if err := accountRules(nil, in); err != nil { // the canonical ident, to find the account by
		return a.failed(e, err)
	}
	if in["orig_rate_table_id"], err = a.ref(ctx, e, "orig_rate_table", "rate_tables", "rate table", acc.OrigRateTable); err != nil {
		return err
	}
	if in["term_rate_table_id"], err = a.ref(ctx, e, "term_rate_table", "rate_tables", "rate table", acc.TermRateTable); err != nil {
		return err
	}
	var id, owner int64
	var ownerName string
	err = a.w.tx.QueryRow(ctx, `SELECT a.id, a.client_id, c.name FROM accounts a JOIN clients c ON c.id = a.client_id
		WHERE a.kind = $1 AND a.ident = $2 AND a.tech_prefix = $3`, in["kind"], in["ident"], in["tech_prefix"]).Scan(&id, &owner, &ownerName)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("%s: %s: look up account: %w", a.f.Path, e, err)
	case owner != clientID:
		return a.fail(e, "ident", "%s %s belongs to client %q: an account never moves to another client", in["kind"], in["ident"], ownerName)
	}
	_, ch, err := a.put(ctx, Accounts, e, id, in)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%s %s", in["kind"], in["ident"])
	if acc.TechPrefix != "" {
		name += " " + acc.TechPrefix
	}
	a.rep.note(&a.rep.Accounts, ch, "account", name)
	return nil
}

func (a *applier) payments(ctx context.Context) error {
	for i := range a.f.Payments {
		p := &a.f.Payments[i]
		e := p.entry(i)
		t, problems := ParseTxn(p.values())
		if len(problems) > 0 {
			return a.failed(e, problems[0])
		}
		clientID, err := a.lookup(ctx, "clients", p.Client)
		if err != nil {
			return err
		}
		if clientID == 0 {
			return a.fail(e, "client", "unknown client %q", p.Client)
		}
		t.ClientID = clientID
		if t.At.IsZero() {
			t.At = a.opts.Now
		}
		_, replayed, err := a.w.Post(ctx, t)
		if err != nil {
			return a.failed(e, err)
		}
		if replayed {
			a.rep.Payments.Unchanged++
			continue
		}
		a.rep.Payments.Created++
		a.rep.Changes = append(a.rep.Changes, fmt.Sprintf("recorded payment %q of %s %s for %q", p.Ref, FormatMoney(t.Amount), t.Currency, p.Client))
	}
	return nil
}
