package rater

import "github.com/prometheus/client_golang/prometheus"

// workerMetrics are the worker's Prometheus metrics. Labels never carry a
// CDR, account or number: only reasons, sinks and partitions.
type workerMetrics struct {
	consumed       prometheus.Counter
	rated          prometheus.Counter
	duplicates     prometheus.Counter
	mismatched     *prometheus.CounterVec
	sinkErrors     *prometheus.CounterVec
	batchSize      prometheus.Histogram
	batchSeconds   prometheus.Histogram
	lag            *prometheus.GaugeVec
	committed      *prometheus.GaugeVec
	catalogVersion prometheus.Gauge
	catalogReloads prometheus.Counter
	quarantined    prometheus.Counter
	conflicts      prometheus.Counter
	lowBalance     prometheus.Counter
}

// mismatchReasons are the reasons tarifa_cdrs_mismatched_total starts with
// at zero, so that a dashboard or an alert on a reason has a series (and a
// rate of 0) before the first such CDR, instead of no data.
var mismatchReasons = []Reason{ReasonMalformed, ReasonUnknownDestination, ReasonNoRate, ReasonUnknownAccount, ReasonInactiveClient,
	ReasonCostOutOfRange, ReasonDuplicateConflict, ReasonTermUnknownAccount, ReasonTermUnknownDestination, ReasonTermNoRate,
	ReasonTermCostOutOfRange}

func newWorkerMetrics(reg prometheus.Registerer) *workerMetrics {
	m := &workerMetrics{
		consumed:   prometheus.NewCounter(prometheus.CounterOpts{Name: "tarifa_cdrs_consumed_total", Help: "CDR messages consumed and committed."}),
		rated:      prometheus.NewCounter(prometheus.CounterOpts{Name: "tarifa_cdrs_rated_total", Help: "CDRs whose orig side was rated."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "tarifa_cdrs_duplicate_total", Help: "CDRs dropped as already billed within the dedupe window."}),
		mismatched: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tarifa_cdrs_mismatched_total", Help: "CDRs not rated (orig reasons) or rated without their term side (term_* reasons), by reason."}, []string{"reason"}),
		sinkErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tarifa_sink_errors_total", Help: "Failed batch commits, by the server that failed."}, []string{"sink"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tarifa_batch_size", Help: "CDRs per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tarifa_batch_duration_seconds", Help: "Time to rate and commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}),
		lag:            prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tarifa_consumer_lag", Help: "Messages of a partition not yet committed: its log-end offset less the next offset stored in PostgreSQL."}, []string{"partition"}),
		committed:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tarifa_committed_offset", Help: "Next offset to process of a partition, as committed to PostgreSQL."}, []string{"partition"}),
		catalogVersion: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tarifa_catalog_version", Help: "Version of the catalog snapshot in use."}),
		catalogReloads: prometheus.NewCounter(prometheus.CounterOpts{Name: "tarifa_catalog_reloads_total", Help: "Catalog snapshots loaded."}),
		quarantined: prometheus.NewCounter(prometheus.CounterOpts{Name: "tarifa_cdrs_quarantined_total",
			Help: "Messages a sink refused to store, isolated from their batch and stored as malformed xDRs (the log names partition and offset)."}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "tarifa_cdrs_duplicate_conflicts_total",
			Help: "CDRs with the switch and id of a billed CDR but other content: kept as duplicate_conflict mismatches, not billed."}),
		lowBalance: prometheus.NewCounter(prometheus.CounterOpts{Name: "tarifa_low_balance_events_total",
			Help: "Low-balance notifications raised by committed batches (a client's available balance fell below its threshold)."}),
	}
	reg.MustRegister(m.consumed, m.rated, m.duplicates, m.mismatched, m.sinkErrors, m.batchSize, m.batchSeconds, m.lag, m.committed,
		m.catalogVersion, m.catalogReloads, m.quarantined, m.conflicts, m.lowBalance)
	for _, r := range mismatchReasons {
		m.mismatched.WithLabelValues(string(r))
	}
	for _, sink := range []string{"postgres", "clickhouse"} {
		m.sinkErrors.WithLabelValues(sink)
	}
	return m
}
