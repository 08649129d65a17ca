package report

import (
	"context"
	"fmt"
	"sort"
)

// SyncNames copies the catalog's resellers, clients and accounts into
// ClickHouse's name tables (migration 0004), so that analysts join names to
// xdrs inside ClickHouse; ClickHouse 18.16 has no PostgreSQL dictionary
// source. It writes every row again under the catalog version when that
// version is newer than last (the version of the previous sync, 0 for
// none) and returns the version it synced. The tables are
// ReplacingMergeTree(version): read them with FINAL.
func (r *Reports) SyncNames(ctx context.Context, last int64) (int64, error) {
	cat, err := LoadCatalog(ctx, r.pg)
	if err != nil {
		return last, err
	}
	if cat.Version <= last {
		return last, nil
	}
	v := uint64(cat.Version)
	b, err := r.ch.PrepareBatch(ctx, "INSERT INTO resellers (id, name, parent_id, currency, status, version)")
	if err != nil {
		return last, fmt.Errorf("sync reseller names: %w", err)
	}
	for _, id := range sortedIDs(cat.Resellers) {
		x := cat.Resellers[id]
		if err := b.Append(uint64(x.ID), x.Name, uint64(x.ParentID), x.Currency, x.Status, v); err != nil {
			return last, fmt.Errorf("sync reseller names: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return last, fmt.Errorf("sync reseller names: %w", err)
	}
	b, err = r.ch.PrepareBatch(ctx, "INSERT INTO clients (id, name, reseller_id, currency, status, timezone, tags, hidden_digits, version)")
	if err != nil {
		return last, fmt.Errorf("sync client names: %w", err)
	}
	for _, id := range sortedIDs(cat.Clients) {
		x := cat.Clients[id]
		tags := x.Tags
		if tags == nil {
			tags = []string{}
		}
		if err := b.Append(uint64(x.ID), x.Name, uint64(x.ResellerID), x.Currency, x.Status, x.Timezone, tags, uint8(x.HiddenDigits), v); err != nil {
			return last, fmt.Errorf("sync client names: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return last, fmt.Errorf("sync client names: %w", err)
	}
	b, err = r.ch.PrepareBatch(ctx, "INSERT INTO accounts (id, client_id, kind, ident, tech_prefix, status, version)")
	if err != nil {
		return last, fmt.Errorf("sync account names: %w", err)
	}
	for _, id := range sortedIDs(cat.Accounts) {
		x := cat.Accounts[id]
		if err := b.Append(uint64(x.ID), uint64(x.ClientID), x.Kind, x.Ident, x.TechPrefix, x.Status, v); err != nil {
			return last, fmt.Errorf("sync account names: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return last, fmt.Errorf("sync account names: %w", err)
	}
	return cat.Version, nil
}

func sortedIDs[T any](m map[int64]T) []int64 {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
