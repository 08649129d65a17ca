package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tarifa/tarifa/report"
)

// Report upkeep a worker does beside rating (one of several workers does
// each at a time where it matters: the rollup refresh holds an advisory
// lock; the name sync and the reconcile are idempotent reads and writes).
const (
	rollupEvery    = 5 * time.Second
	rollupSettle   = 30 * time.Second // hours ended and unchanged this long are recomputed
	namesEvery     = 30 * time.Second
	reconcileEvery = 10 * time.Minute
)

// reportLoops runs the rollup refresh, the sync of names into ClickHouse
// and the periodic reconcile (metrics tarifa_balance_drift_clients and
// tarifa_reconcile_timestamp_seconds) until ctx ends.
func reportLoops(ctx context.Context, pg *pgxpool.Pool, ch driver.Conn, log *slog.Logger, reg prometheus.Registerer) {
	reps := report.New(pg, ch, log)
	drift := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tarifa_balance_drift_clients",
		Help: "Clients whose live balance differs from their transactions and xDRs (invariant 1) at the last reconcile."})
	last := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tarifa_reconcile_timestamp_seconds",
		Help: "When the last reconcile finished (unix seconds)."})
	reg.MustRegister(drift, last)
	quietly := func(what string, err error) {
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Warn(what, "err", err)
		}
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		every(ctx, rollupEvery, func() {
			_, err := reps.RefreshRollups(ctx, rollupSettle)
			quietly("refresh rollups", err)
		})
	}()
	go func() {
		defer wg.Done()
		var synced int64
		every(ctx, namesEvery, func() {
			v, err := reps.SyncNames(ctx, synced)
			quietly("sync names to clickhouse", err)
			synced = v
		})
	}()
	go func() {
		defer wg.Done()
		every(ctx, reconcileEvery, func() {
			drifts, _, err := reps.Reconcile(ctx, nil)
			if err != nil {
				quietly("reconcile", err)
				return
			}
			for _, d := range drifts {
				log.Error("balance drifts from its transactions and xDRs", "client_id", d.ClientID,
					"live", d.Live.String(), "expected", d.Expected.String())
			}
			drift.Set(float64(len(drifts)))
			last.SetToCurrentTime()
		})
	}()
	wg.Wait()
}
