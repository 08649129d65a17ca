package sinks

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
)

// Event is a notification row waiting to be published.
type Event struct {
	ID         int64 // the notifications row: consumers dedupe by it
	Kind       string
	ClientID   int64
	ClientName string
	Available  decimal.Decimal
	Threshold  decimal.Decimal
	Message    string
	At         time.Time
}

// PublishEvents hands up to limit unpublished notifications, oldest first,
// to publish, and marks them published when it returns nil: delivery is at
// least once (a crash after publish and before the mark publishes them
// again). Rows another publisher holds are skipped, so several workers can
// run it at once. It returns how many it published.
func PublishEvents(ctx context.Context, pool *pgxpool.Pool, limit int, publish func(context.Context, []Event) error) (int, error) {
	var n int
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT n.id, n.kind, n.client_id, c.name, coalesce(n.available, 0)::text, coalesce(n.threshold, 0)::text, n.message, n.created_at
			FROM notifications n JOIN clients c ON c.id = n.client_id
			WHERE n.published_at IS NULL ORDER BY n.id LIMIT $1 FOR UPDATE OF n SKIP LOCKED`, limit)
		if err != nil {
			return err
		}
		var events []Event
		var ids []int64
		for rows.Next() {
			var e Event
			var avail, thr string
			if err := rows.Scan(&e.ID, &e.Kind, &e.ClientID, &e.ClientName, &avail, &thr, &e.Message, &e.At); err != nil {
				rows.Close()
				return err
			}
			e.Available, e.Threshold = decimal.RequireFromString(avail), decimal.RequireFromString(thr)
			events = append(events, e)
			ids = append(ids, e.ID)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(events) == 0 {
			return nil
		}
		if err := publish(ctx, events); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE notifications SET published_at = now() WHERE id = ANY($1)`, ids); err != nil {
			return err
		}
		n = len(events)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("publish notifications: %w", err)
	}
	return n, nil
}
