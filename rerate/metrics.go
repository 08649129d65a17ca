package rerate

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes the rerating jobs table as metrics, read when scraped
// (a job runs in whichever process started it — a CLI, an API server — so
// the table, not a process, is where its state lives):
//
//	tarifa_rerate_jobs{state}                 jobs per state
//	tarifa_rerate_cdrs_total                  CDRs rated again by confirmed jobs
//	tarifa_rerate_running_progress_ratio      CDRs done ÷ planned of the running job (0 when none)
//	tarifa_rerate_balance_delta{currency}     what finished confirmed jobs moved live balances by, in all
//
// It is safe for concurrent use; a scrape waits at most 2 s for PostgreSQL.
type Collector struct {
	pg       *pgxpool.Pool
	jobs     *prometheus.Desc
	cdrs     *prometheus.Desc
	progress *prometheus.Desc
	delta    *prometheus.Desc
	failed   *prometheus.Desc
}

// NewCollector returns a collector reading pg; register it on a registry.
func NewCollector(pg *pgxpool.Pool) *Collector {
	return &Collector{
		pg:       pg,
		jobs:     prometheus.NewDesc("tarifa_rerate_jobs", "Rerating jobs by state (dry_run, running, done, failed).", []string{"state"}, nil),
		cdrs:     prometheus.NewDesc("tarifa_rerate_cdrs_total", "CDRs rated again by confirmed rerating jobs.", nil, nil),
		progress: prometheus.NewDesc("tarifa_rerate_running_progress_ratio", "CDRs done over CDRs planned of the running rerating job; 0 when none runs.", nil, nil),
		delta: prometheus.NewDesc("tarifa_rerate_balance_delta", "Net movement of live balances by finished confirmed rerating jobs, per currency.",
			[]string{"currency"}, nil),
		failed: prometheus.NewDesc("tarifa_rerate_collect_errors", "1 when the last scrape could not read the rerating jobs table.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.jobs, c.cdrs, c.progress, c.delta, c.failed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ok := c.collect(ctx, ch) == nil
	v := 0.0
	if !ok {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(c.failed, prometheus.GaugeValue, v)
}

func (c *Collector) collect(ctx context.Context, ch chan<- prometheus.Metric) error {
	counts := map[string]float64{StateDryRun: 0, StateRunning: 0, StateDone: 0, StateFailed: 0}
	rows, err := c.pg.Query(ctx, `SELECT state, count(*) FROM rerate_jobs GROUP BY state`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			rows.Close()
			return err
		}
		counts[state] = float64(n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, n, state)
	}
	var rerated, done, planned int64
	if err := c.pg.QueryRow(ctx, `SELECT coalesce(sum(selected) FILTER (WHERE NOT dry_run), 0),
		coalesce(sum(selected) FILTER (WHERE state = 'running'), 0), coalesce(sum(planned) FILTER (WHERE state = 'running'), 0)
		FROM rerate_jobs`).Scan(&rerated, &done, &planned); err != nil {
		return err
	}
	ch <- prometheus.MustNewConstMetric(c.cdrs, prometheus.CounterValue, float64(rerated))
	ratio := 0.0
	if planned > 0 {
		ratio = min(1, float64(done)/float64(planned))
	}
	ch <- prometheus.MustNewConstMetric(c.progress, prometheus.GaugeValue, ratio)
	// Balances move by −delta on the orig side and +delta on the term side.
	// Every currency a client bills in has a series, 0 before any job, so
	// a graph or an alert has data from the start.
	drows, err := c.pg.Query(ctx, `SELECT currency, coalesce(sum(d), 0)::text FROM (
			SELECT DISTINCT currency, 0::numeric AS d FROM clients
			UNION ALL
			SELECT e->>'currency', CASE e->>'side' WHEN 'orig' THEN -(e->>'delta')::numeric ELSE (e->>'delta')::numeric END
			FROM rerate_jobs, jsonb_array_elements(result->'clients') AS e WHERE state = 'done' AND NOT dry_run) AS m
		GROUP BY currency`)
	if err != nil {
		return err
	}
	defer drows.Close()
	for drows.Next() {
		var currency, sum string
		if err := drows.Scan(&currency, &sum); err != nil {
			return err
		}
		// A gauge is a float: this is for graphs and alerts, the books are
		// in the jobs table.
		f, err := strconv.ParseFloat(sum, 64)
		if err != nil {
			return err
		}
		ch <- prometheus.MustNewConstMetric(c.delta, prometheus.GaugeValue, f, currency)
	}
	return drows.Err()
}
