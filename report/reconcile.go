package report

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// Drift is a client whose live balance is not what its transactions and
// xDRs make it (DESIGN.md invariant 1).
type Drift struct {
	ClientID int64
	Client   string
	Currency string
	Live     decimal.Decimal // balances.live
	Expected decimal.Decimal // payments and adjustments − charges − orig costs + term costs in xdrs FINAL
}

// Diff is Live − Expected.
func (d Drift) Diff() decimal.Decimal { return d.Live.Sub(d.Expected) }

// Reconcile checks invariant 1 for every client (or those of clients,
// names or ids): its live balance against its payments and adjustments,
// minus its charges and the orig costs of its rated calls, plus the term
// costs of the calls it carried, all calls of xdrs FINAL (through the
// rollups, which equal it). A client whose balance moved while it was
// checked (a worker committing) is checked again, up to three times, so a
// commit in flight is not reported as a drift. It returns the drifts,
// sorted by client name, and the number of clients checked.
func (r *Reports) Reconcile(ctx context.Context, clients []string) ([]Drift, int, error) {
	cat, err := LoadCatalog(ctx, r.pg)
	if err != nil {
		return nil, 0, err
	}
	var ids []int64
	if len(clients) == 0 {
		for id := range cat.Clients {
			ids = append(ids, id)
		}
	}
	for _, ref := range clients {
		cl, err := cat.Client(ref)
		if err != nil {
			return nil, 0, &ParamError{Param: "client", Msg: err.Error()}
		}
		ids = append(ids, cl.ID)
	}
	checked := len(ids)
	var drifts []Drift
	for attempt := 0; attempt < 3 && len(ids) > 0; attempt++ {
		if attempt > 0 {
			select { // let the commits in flight finish
			case <-ctx.Done():
				return nil, 0, ctx.Err()
			case <-time.After(time.Second):
			}
		}
		before, err := r.liveBalances(ctx, ids)
		if err != nil {
			return nil, 0, err
		}
		expected, err := r.expectedBalances(ctx, cat, ids)
		if err != nil {
			return nil, 0, err
		}
		after, err := r.liveBalances(ctx, ids)
		if err != nil {
			return nil, 0, err
		}
		var again []int64
		for _, id := range ids {
			if !before[id].Equal(after[id]) {
				again = append(again, id) // moving: check again
				continue
			}
			if !before[id].Equal(expected[id]) {
				if attempt < 2 {
					again = append(again, id) // maybe a commit in flight
					continue
				}
				drifts = append(drifts, Drift{ClientID: id, Client: cat.ClientName(id), Currency: cat.Clients[id].Currency,
					Live: before[id], Expected: expected[id]})
			}
		}
		ids = again
	}
	sort.Slice(drifts, func(i, j int) bool { return drifts[i].Client < drifts[j].Client })
	return drifts, checked, nil
}

func (r *Reports) liveBalances(ctx context.Context, ids []int64) (map[int64]decimal.Decimal, error) {
	rows, err := r.pg.Query(ctx, `SELECT c.id, coalesce(b.live, 0)::text FROM clients c LEFT JOIN balances b ON b.client_id = c.id WHERE c.id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("reconcile: read balances: %w", err)
	}
	out := map[int64]decimal.Decimal{}
	var id int64
	var v string
	if _, err := pgx.ForEachRow(rows, []any{&id, &v}, func() error {
		d, err := decimal.NewFromString(v)
		out[id] = d
		return err
	}); err != nil {
		return nil, fmt.Errorf("reconcile: read balances: %w", err)
	}
	return out, nil
}

func (r *Reports) expectedBalances(ctx context.Context, cat *Catalog, ids []int64) (map[int64]decimal.Decimal, error) {
	out := map[int64]decimal.Decimal{}
	rows, err := r.pg.Query(ctx, `SELECT client_id, sum(CASE kind WHEN 'charge' THEN -amount ELSE amount END)::text
		FROM transactions WHERE client_id = ANY($1) GROUP BY client_id`, ids)
	if err != nil {
		return nil, fmt.Errorf("reconcile: read transactions: %w", err)
	}
	var id int64
	var v string
	if _, err := pgx.ForEachRow(rows, []any{&id, &v}, func() error {
		d, err := decimal.NewFromString(v)
		out[id] = d
		return err
	}); err != nil {
		return nil, fmt.Errorf("reconcile: read transactions: %w", err)
	}
	set := map[int64]bool{}
	for _, id := range ids {
		set[id] = true
	}
	// All time: from 1970 to the last hour xDRs can hold.
	all := Period{From: minTime, To: time.Now().UTC().Truncate(time.Hour).Add(24 * 366 * time.Hour), Loc: time.UTC}
	if err := r.callMoney(ctx, all, nil, set, false, func(_ string, id int64, orig bool, amount decimal.Decimal) {
		if orig {
			amount = amount.Neg()
		}
		out[id] = out[id].Add(amount)
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// DriftTable renders drifts for the CLI.
func DriftTable(drifts []Drift, checked int) *Table {
	t := &Table{
		Title: fmt.Sprintf("Reconcile: %d client(s) checked, %d drift(s)", checked, len(drifts)),
		Note:  "live is balances.live; expected is payments and adjustments − charges − orig costs + term costs in xdrs FINAL.",
		Columns: []Column{{Name: "client_id", Kind: Int}, {Name: "client"}, {Name: "currency"},
			{Name: "live", Kind: Decimal}, {Name: "expected", Kind: Decimal}, {Name: "drift", Kind: Decimal}},
	}
	for _, d := range drifts {
		t.Rows = append(t.Rows, []string{strconv.FormatInt(d.ClientID, 10), d.Client, d.Currency,
			fixed(d.Live, 6), fixed(d.Expected, 6), fixed(d.Diff(), 6)})
	}
	return t
}
