package sinks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// BackfillResult says what Backfill changed.
type BackfillResult struct {
	TermCurrency int64 // xDRs whose term_currency was filled
	Hours        int   // setup hours marked for their first rollup
}

// Backfill brings xDRs written before the current migrations up to them;
// `tarifa migrate` runs it after the migrations, and running it again
// changes nothing.
//
//   - term_currency (ClickHouse 0002) of xDRs with a term client is filled
//     from the client's currency in PostgreSQL, with a mutation it waits for;
//     new xDRs carry it from the rater.
//   - every setup hour that holds xDRs but is unknown to the rollups
//     (PostgreSQL 0007) is marked, so that the summary reads it from xdrs
//     FINAL until its rollup is computed.
func Backfill(ctx context.Context, pg *pgxpool.Pool, ch driver.Conn) (BackfillResult, error) {
	var res BackfillResult
	n, err := fillTermCurrency(ctx, pg, ch)
	if err != nil {
		return res, err
	}
	res.TermCurrency = n
	if res.Hours, err = markUnknownHours(ctx, pg, ch); err != nil {
		return res, err
	}
	return res, nil
}

func fillTermCurrency(ctx context.Context, pg *pgxpool.Pool, ch driver.Conn) (int64, error) {
	var missing uint64
	if err := ch.QueryRow(ctx, `SELECT count() FROM xdrs WHERE term_client_id != 0 AND term_currency = ''`).Scan(&missing); err != nil {
		return 0, fmt.Errorf("count xdrs without term currency: %w", err)
	}
	if missing == 0 {
		return 0, nil
	}
	rows, err := pg.Query(ctx, `SELECT id, currency::text FROM clients ORDER BY id`)
	if err != nil {
		return 0, fmt.Errorf("read client currencies: %w", err)
	}
	var ids, currencies []string
	var id int64
	var cur string
	if _, err := pgx.ForEachRow(rows, []any{&id, &cur}, func() error {
		ids = append(ids, fmt.Sprintf("toUInt64(%d)", id))
		currencies = append(currencies, "'"+cur+"'") // ^[A-Z]{3}$ by the catalog's check
		return nil
	}); err != nil {
		return 0, fmt.Errorf("read client currencies: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if err := ch.Exec(ctx, `ALTER TABLE xdrs UPDATE term_currency = transform(term_client_id, [`+strings.Join(ids, ",")+`], [`+
		strings.Join(currencies, ",")+`], '') WHERE term_client_id != 0 AND term_currency = ''`); err != nil {
		return 0, fmt.Errorf("fill term currency: %w", err)
	}
	if err := waitMutations(ctx, ch, "xdrs"); err != nil {
		return 0, fmt.Errorf("fill term currency: %w", err)
	}
	return int64(missing), nil
}

// waitMutations waits until the mutations of table are done: ClickHouse
// 18.16 runs them in the background and has no setting to wait.
func waitMutations(ctx context.Context, ch driver.Conn, table string) error {
	for {
		var pending uint64
		if err := ch.QueryRow(ctx, `SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table = ? AND is_done = 0`,
			table).Scan(&pending); err != nil {
			return fmt.Errorf("read mutations: %w", err)
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func markUnknownHours(ctx context.Context, pg *pgxpool.Pool, ch driver.Conn) (int, error) {
	rows, err := ch.Query(ctx, `SELECT DISTINCT toStartOfHour(setup_time) AS h FROM xdrs WHERE status = 'rated' ORDER BY h`)
	if err != nil {
		return 0, fmt.Errorf("read xdr hours: %w", err)
	}
	var hours []time.Time
	for rows.Next() {
		var h time.Time
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read xdr hours: %w", err)
		}
		hours = append(hours, h.UTC())
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read xdr hours: %w", err)
	}
	if len(hours) == 0 {
		return 0, nil
	}
	tag, err := pg.Exec(ctx, `INSERT INTO rollup_dirty (hour)
		SELECT h FROM unnest($1::timestamptz[]) AS u(h)
		WHERE NOT EXISTS (SELECT 1 FROM rollup_hours r WHERE r.hour = u.h)
		  AND NOT EXISTS (SELECT 1 FROM rollup_dirty d WHERE d.hour = u.h)
		ORDER BY h`, hours)
	if err != nil {
		return 0, fmt.Errorf("mark xdr hours: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
