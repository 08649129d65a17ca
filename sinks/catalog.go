package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/codedeck"
	"github.com/tarifa/tarifa/rater"
)

// CatalogLoader reads the rating catalog (clients, accounts, rate tables and
// their rates, time profiles) from PostgreSQL into an immutable
// rater.Catalog. It keeps the compiled deck of every rate table and rebuilds
// only the tables whose rates changed since its last load, so a reload after
// a one-client edit costs milliseconds even with million-code decks.
//
// A CatalogLoader is safe for concurrent use; loads are serialised.
type CatalogLoader struct {
	pool *pgxpool.Pool

	mu       sync.Mutex
	decks    map[int64]deckEntry
	profiles string // the time_profiles JSON the decks were built with
}

type deckEntry struct {
	fingerprint string
	deck        *codedeck.Deck
}

// NewCatalogLoader returns a loader reading from pool.
func NewCatalogLoader(pool *pgxpool.Pool) *CatalogLoader {
	return &CatalogLoader{pool: pool, decks: map[int64]deckEntry{}}
}

// Version returns the catalog version counter, bumped by every change to what
// rating reads; a loader compares it with Catalog.Version to decide to reload.
func (l *CatalogLoader) Version(ctx context.Context) (int64, error) {
	var v int64
	if err := l.pool.QueryRow(ctx, "SELECT version FROM catalog_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read catalog version: %w", err)
	}
	return v, nil
}

// Load reads a consistent snapshot of the catalog (one repeatable-read
// transaction).
func (l *CatalogLoader) Load(ctx context.Context) (*rater.Catalog, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var cat *rater.Catalog
	err := pgx.BeginTxFunc(ctx, l.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		cat, err = l.load(ctx, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	return cat, nil
}

func (l *CatalogLoader) load(ctx context.Context, tx pgx.Tx) (*rater.Catalog, error) {
	var version int64
	if err := tx.QueryRow(ctx, "SELECT version FROM catalog_version").Scan(&version); err != nil {
		return nil, err
	}
	profiles, profilesJSON, err := loadProfiles(ctx, tx)
	if err != nil {
		return nil, err
	}
	if profilesJSON != l.profiles {
		l.decks = map[int64]deckEntry{} // profile ids inside decks may have changed
		l.profiles = profilesJSON
	}

	tables := map[int64]*rater.Table{}
	rows, err := tx.Query(ctx, `
		SELECT id, name, currency, coalesce(parent_id, 0), status = 'active', rates_rev FROM rate_tables`)
	if err != nil {
		return nil, err
	}
	type tableRow struct {
		parent int64
		active bool
		rev    int64
	}
	meta := map[int64]tableRow{}
	for rows.Next() {
		t := &rater.Table{}
		var m tableRow
		if err := rows.Scan(&t.ID, &t.Name, &t.Currency, &m.parent, &m.active, &m.rev); err != nil {
			rows.Close()
			return nil, err
		}
		tables[t.ID] = t
		meta[t.ID] = m
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// lineage is a table and its active ancestors, nearest first, stopping
	// before a table seen already (a cycle the API refuses but SQL may make).
	lineage := func(id int64) []int64 {
		chain := []int64{id}
		for p := meta[id].parent; p != 0 && meta[p].active && !slices.Contains(chain, p); p = meta[p].parent {
			chain = append(chain, p)
		}
		return chain
	}
	fresh := map[int64]deckEntry{}
	for id, t := range tables {
		chain := lineage(id)
		// A deck is rebuilt when its own rates or an ancestor's change.
		var fp strings.Builder
		for _, a := range chain {
			fmt.Fprintf(&fp, "%d:%d ", a, meta[a].rev)
		}
		if e, ok := l.decks[id]; ok && e.fingerprint == fp.String() {
			t.Deck = e.deck
		} else {
			deck, err := loadDeck(ctx, tx, chain, profiles)
			if err != nil {
				return nil, fmt.Errorf("rate table %q: %w", t.Name, err)
			}
			t.Deck = deck
		}
		fresh[id] = deckEntry{fingerprint: fp.String(), deck: t.Deck}
	}
	l.decks = fresh

	clients := map[int64]*rater.Client{}
	locs := map[string]*time.Location{}
	rows, err = tx.Query(ctx, `
		SELECT id, reseller_id, name, currency, status, timezone, bill_by,
		       coalesce(orig_rate_table_id, 0), coalesce(term_rate_table_id, 0),
		       credit_limit::text, unlimited, coalesce(low_balance_threshold::text, '')
		FROM clients`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		c := &rater.Client{}
		var tz, billBy, credit, threshold string
		var origID, termID int64
		if err := rows.Scan(&c.ID, &c.ResellerID, &c.Name, &c.Currency, &c.Status, &tz, &billBy, &origID, &termID, &credit, &c.Unlimited, &threshold); err != nil {
			rows.Close()
			return nil, err
		}
		loc, ok := locs[tz]
		if !ok {
			if loc, err = time.LoadLocation(tz); err != nil {
				loc = time.UTC // validated on input; a zone missing from this host's tzdata rates in UTC
			}
			locs[tz] = loc
		}
		c.Loc = loc
		c.BillBy, _ = rater.ParseBillBy(billBy) // constrained by a CHECK
		c.OrigTable, c.TermTable = tables[origID], tables[termID]
		c.CreditMicro = Micro(decimal.RequireFromString(credit))
		if threshold != "" {
			c.ThresholdMicro, c.HasThreshold = Micro(decimal.RequireFromString(threshold)), true
		}
		clients[c.ID] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	var accounts []*rater.Account
	rows, err = tx.Query(ctx, `
		SELECT a.id, a.client_id, a.kind, a.ident, a.tech_prefix, a.orig, a.term,
		       coalesce(a.orig_rate_table_id, 0), coalesce(a.term_rate_table_id, 0)
		FROM accounts a JOIN clients c ON c.id = a.client_id
		WHERE a.status = 'active'
		ORDER BY a.id`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		a := &rater.Account{}
		var clientID, origID, termID int64
		if err := rows.Scan(&a.ID, &clientID, &a.Kind, &a.Ident, &a.TechPrefix, &a.Orig, &a.Term, &origID, &termID); err != nil {
			rows.Close()
			return nil, err
		}
		a.Client, a.OrigTable, a.TermTable = clients[clientID], tables[origID], tables[termID]
		accounts = append(accounts, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return rater.NewCatalog(version, clients, tables, accounts), nil
}

func loadProfiles(ctx context.Context, tx pgx.Tx) (*codedeck.Profiles, string, error) {
	var raw []byte
	err := tx.QueryRow(ctx, `SELECT coalesce(jsonb_object_agg(name, definition), '{}'::jsonb)::text FROM time_profiles`).Scan(&raw)
	if err != nil {
		return nil, "", err
	}
	var defs map[string][]codedeck.Window
	if err := json.Unmarshal(raw, &defs); err != nil {
		return nil, "", fmt.Errorf("time profiles: %w", err)
	}
	p, err := codedeck.NewProfiles(defs)
	if err != nil {
		return nil, "", fmt.Errorf("time profiles: %w", err)
	}
	return p, string(raw), nil
}

// RateTableCycle reports whether making parent the parent of rate table id
// would close a cycle: id is parent itself or one of its ancestors.
func RateTableCycle(ctx context.Context, tx pgx.Tx, id, parent int64) (bool, error) {
	var cycle bool
	err := tx.QueryRow(ctx, `WITH RECURSIVE up(id) AS (
			SELECT $1::bigint UNION SELECT t.parent_id FROM rate_tables t JOIN up ON t.id = up.id WHERE t.parent_id IS NOT NULL)
		SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)`, parent, id).Scan(&cycle)
	return cycle, err
}

// loadDeck builds the deck of chain[0] over its ancestors chain[1:]
// (DOMAIN.md "Rate table"): a code keeps the rates of the nearest table that
// has it, so the child's codes win over the same codes of a parent, while a
// parent's codes the child lacks, longer ones included, stay in the deck
// and win the longest-prefix match where they are longer.
func loadDeck(ctx context.Context, tx pgx.Tx, chain []int64, profiles *codedeck.Profiles) (*codedeck.Deck, error) {
	const columns = `code, code_name, rate::text, effective_from, end_date, min_volume, "interval",
		grace_volume, setup_fee::text, time_profile`
	query := `SELECT ` + columns + ` FROM rates WHERE rate_table_id = ($1::bigint[])[1] AND status = 'active'`
	if len(chain) > 1 {
		query = `SELECT ` + columns + `
		FROM rates r JOIN unnest($1::bigint[]) WITH ORDINALITY AS c(id, depth) ON r.rate_table_id = c.id
		WHERE r.status = 'active'
		  AND NOT EXISTS (SELECT 1 FROM rates n JOIN unnest($1::bigint[]) WITH ORDINALITY AS cn(id, depth) ON n.rate_table_id = cn.id
		                  WHERE cn.depth < c.depth AND n.code = r.code AND n.status = 'active')`
	}
	rows, err := tx.Query(ctx, query, chain)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []codedeck.Row
	for rows.Next() {
		var r codedeck.Row
		var rate, setup string
		var end *time.Time
		if err := rows.Scan(&r.Code, &r.CodeName, &rate, &r.EffectiveFrom, &end, &r.MinVolume, &r.Interval, &r.GraceVolume, &setup, &r.Profile); err != nil {
			return nil, err
		}
		r.Rate, r.SetupFee = decimal.RequireFromString(rate), decimal.RequireFromString(setup)
		r.EffectiveFrom = r.EffectiveFrom.UTC()
		if end != nil {
			r.EndDate = end.UTC()
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return codedeck.Build(out, profiles)
}

// Micro converts an amount to millionths, truncating anything finer (amounts
// stored at 6 decimals have nothing finer). An amount beyond what int64
// millionths hold (±9.2 trillion; balances are unbounded) saturates there
// rather than wrapping.
func Micro(d decimal.Decimal) int64 {
	m := d.Shift(6)
	switch {
	case m.GreaterThan(maxMicroDec):
		return math.MaxInt64
	case m.LessThan(minMicroDec):
		return math.MinInt64
	}
	return m.IntPart()
}

var maxMicroDec, minMicroDec = decimal.NewFromInt(math.MaxInt64), decimal.NewFromInt(math.MinInt64)

// Decimal converts millionths back to an exact decimal amount.
func Decimal(micro int64) decimal.Decimal { return decimal.New(micro, -6) }
