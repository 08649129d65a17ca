package rater

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/ingest"
)

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// Topic is the CDR topic; stored offsets are kept per topic (required).
	Topic string
	// BatchSize is the most messages rated and committed together (default
	// 50000: ClickHouse spends half the CPU per row on 100k-row inserts that
	// it spends on 20k-row ones, and the inserts of concurrent partitions are
	// coalesced).
	BatchSize int
	// BatchWait is how long a batch waits for more messages after its first
	// (default 200 ms).
	BatchWait time.Duration
	// ReloadInterval is how often the catalog version is checked (default 2 s).
	ReloadInterval time.Duration
	// ShutdownTimeout bounds the flush of the batch in flight on stop
	// (default 30 s).
	ShutdownTimeout time.Duration
	// MaxBackoff caps the wait between retries of a failing commit (default 10 s).
	MaxBackoff time.Duration
}

// Validate fills defaults and checks bounds.
func (c *WorkerConfig) Validate() error {
	if c.BatchSize == 0 {
		c.BatchSize = 50000
	}
	if c.BatchWait == 0 {
		c.BatchWait = 200 * time.Millisecond
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = 2 * time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.Topic == "" {
		return errors.New("topic: empty")
	}
	if c.BatchSize < 1 || c.BatchSize > 1_000_000 {
		return fmt.Errorf("batch size %d: want 1 to 1000000", c.BatchSize)
	}
	if c.BatchWait < 0 || c.ReloadInterval < 0 || c.ShutdownTimeout < 0 || c.MaxBackoff < 0 {
		return errors.New("durations must not be negative")
	}
	return nil
}

// Batch is the unit of exactly-once: the XDRs of consecutive offsets
// [First, Next) of one partition, committed together with Next.
type Batch struct {
	Topic     string
	Partition int
	First     int64 // offset of the first message
	Next      int64 // offset after the last message
	// Stored is the next offset this worker last read from or wrote to the
	// store for the partition (-1: none stored). A store that holds another
	// value refuses the batch with ErrFenced.
	Stored int64
	XDRs   []XDR
}

// CommitResult is what a store reports about a committed batch.
type CommitResult struct {
	Duplicates    int            // XDRs dropped as already billed within the dedupe window
	Notifications []Notification // low-balance notifications raised by the batch
}

// Notification is a low-balance event: a client's available balance fell
// below its threshold. Balances are unbounded, so the amounts are decimals.
type Notification struct {
	ClientID   int64
	ClientName string
	Available  decimal.Decimal
	Threshold  decimal.Decimal
}

// ErrFenced is returned by a store when the partition's stored offset is not
// the batch's first offset: another worker committed this partition since we
// read it (a rebalance we did not notice in time). The batch is dropped and
// the partition restarts from the stored offset.
var ErrFenced = errors.New("partition offset moved: another worker owns it")

// ErrRefused is returned (wrapped) by a store when a sink refused what the
// batch holds — a value it cannot store, a constraint the data breaks —
// rather than failing to answer: retrying the same batch can never
// succeed. The worker then isolates the messages that cause it (see
// Worker.commitRange); an outage is retried instead.
var ErrRefused = errors.New("a sink refused the batch's content")

// ErrStale is returned by a store when a batch refers to catalog objects
// that no longer exist (a client fully deleted between rating and commit):
// retrying the same batch can never succeed, rating it again can.
var ErrStale = errors.New("batch refers to catalog objects that no longer exist")

// SinkError names the server a store failed on, for logs and metrics.
type SinkError struct {
	Sink string // postgres | clickhouse
	Err  error
}

func (e *SinkError) Error() string { return e.Sink + ": " + e.Err.Error() }
func (e *SinkError) Unwrap() error { return e.Err }

// sinkOf names the server an error of a store came from, for metrics.
func sinkOf(err error) string {
	var se *SinkError
	if errors.As(err, &se) {
		return se.Sink
	}
	return "store"
}

// Store makes batches durable. Commit must be atomic with respect to the
// balances and the offset: either all of a batch's balance deltas and its
// Next offset are stored, or none. It writes xDRs idempotently (a replayed
// batch replaces its rows). It drops XDRs whose dedupe key was billed within
// the window, marking them in the result.
type Store interface {
	NextOffset(ctx context.Context, topic string, partition int) (int64, error)
	Commit(ctx context.Context, b *Batch) (CommitResult, error)
}

// CatalogSource loads catalog snapshots.
type CatalogSource interface {
	Version(ctx context.Context) (int64, error)
	Load(ctx context.Context) (*Catalog, error)
}

// Notifier receives low-balance notifications after their batch committed.
type Notifier interface {
	Notify(ctx context.Context, ns []Notification)
}

// Consumer is the message source: ingest.Consumer.
type Consumer interface {
	Run(ctx context.Context, start func(ctx context.Context, partition int) (int64, error), handle ingest.Handler) error
}

// Worker rates CDRs from a consumer and commits them to a store, exactly once
// per CDR. Each assigned partition is served by one goroutine that fetches a
// batch, rates it against the current catalog snapshot and commits it,
// retrying a failed commit with capped backoff until it succeeds: nothing is
// consumed past a batch that is not durable.
type Worker struct {
	cfg      WorkerConfig
	consumer Consumer
	store    Store
	source   CatalogSource
	notifier Notifier
	log      *slog.Logger
	m        *workerMetrics

	catalog atomic.Pointer[Catalog]
	health  health
}

// NewWorker returns a worker; notifier may be nil.
func NewWorker(cfg WorkerConfig, consumer Consumer, store Store, source CatalogSource, notifier Notifier, log *slog.Logger, reg prometheus.Registerer) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, consumer: consumer, store: store, source: source, notifier: notifier, log: log, m: newWorkerMetrics(reg)}
	w.health.log = log
	return w, nil
}

// Ready reports whether the worker has a catalog and its last commit and
// catalog read succeeded; the reason says what is wrong when it is not.
func (w *Worker) Ready() (bool, string) {
	if w.catalog.Load() == nil {
		return false, "catalog not loaded"
	}
	return w.health.ready()
}

// SetHealth records the state of a component the worker depends on but does
// not call itself (the Kafka brokers, probed by the caller); a non-nil err
// makes the worker unready until a nil one clears it.
func (w *Worker) SetHealth(component string, err error) { w.health.set(component, err) }

// Catalog returns the snapshot in use.
func (w *Worker) Catalog() *Catalog { return w.catalog.Load() }

// Run loads the catalog, then consumes until ctx ends; it returns after the
// batches in flight are flushed.
func (w *Worker) Run(ctx context.Context) error {
	backoff := time.Second
	for w.catalog.Load() == nil {
		if err := w.reload(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.health.set("catalog", err)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, w.cfg.MaxBackoff)
		}
	}
	w.health.set("catalog", nil)
	watchCtx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.watchCatalog(watchCtx)
	}()
	err := w.consumer.Run(ctx, w.startOffset, w.handlePartition)
	stopWatch()
	wg.Wait()
	return err
}

func (w *Worker) reload(ctx context.Context) error {
	start := time.Now()
	cat, err := w.source.Load(ctx)
	if err != nil {
		return err
	}
	w.catalog.Store(cat)
	w.m.catalogVersion.Set(float64(cat.Version))
	w.m.catalogReloads.Inc()
	w.log.Info("catalog loaded", "version", cat.Version, "clients", len(cat.Clients), "rate_tables", len(cat.Tables), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// watchCatalog polls the catalog version and swaps in a new snapshot when it
// moved; rating continues on the old snapshot while the new one loads.
func (w *Worker) watchCatalog(ctx context.Context) {
	t := time.NewTicker(w.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v, err := w.source.Version(ctx)
		if err == nil && v != w.catalog.Load().Version {
			err = w.reload(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		w.health.set("catalog", err)
	}
}

func (w *Worker) startOffset(ctx context.Context, partition int) (int64, error) {
	return w.store.NextOffset(ctx, w.cfg.Topic, partition)
}

func (w *Worker) handlePartition(ctx context.Context, p *ingest.Partition, commit func(int64)) error {
	label := strconv.Itoa(p.ID)
	committed := w.m.committed.WithLabelValues(label)
	defer func() {
		w.m.lag.DeleteLabelValues(label)
		w.m.committed.DeleteLabelValues(label)
	}()
	// The consumer reports the lag, also while a commit keeps failing; the
	// series appears with the first report, never as a 0 not measured.
	p.OnLag(func(n int64) { w.m.lag.WithLabelValues(label).Set(float64(n)) })
	defer p.OnLag(nil)
	next, err := w.nextOffset(ctx, p)
	if err != nil {
		return nil // stopping
	}
	if next >= 0 {
		// What PostgreSQL holds, from the start: a restarted worker shows
		// its partitions' progress before its first commit, not 0.
		committed.Set(float64(next))
	}
	w.log.Info("partition started", "topic", p.Topic, "partition", p.ID, "offset", next)
	r := NewRater()
	msgs := make([]ingest.Message, 0, w.cfg.BatchSize)
	batch := &Batch{Topic: p.Topic, Partition: p.ID, XDRs: make([]XDR, 0, w.cfg.BatchSize)}
	for {
		msgs, err = p.Fetch(ctx, msgs[:0], w.cfg.BatchSize, w.cfg.BatchWait)
		if len(msgs) == 0 {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		start := time.Now()
		// Skip what the store already holds: a replay after a crash, or
		// messages the reader delivered before our seek took effect.
		i := 0
		for i < len(msgs) && msgs[i].Offset < next {
			i++
		}
		if i == len(msgs) {
			continue
		}
		batch.First, batch.Next, batch.Stored = msgs[i].Offset, msgs[len(msgs)-1].Offset+1, next
		if batch.First != next && next >= 0 {
			// A gap is normal after retention or compaction; say so once.
			w.log.Warn("offset gap", "partition", p.ID, "expected", next, "got", batch.First)
		}
		err = w.commitRange(ctx, r, p.ID, msgs[i:], batch, next, batch.Next, func(b *Batch, res CommitResult) {
			next = b.Next
			commit(next)
			w.observe(b, res, time.Since(start))
			committed.Set(float64(next))
			if len(res.Notifications) > 0 {
				w.notify(res.Notifications)
			}
			start = time.Now()
		})
		if errors.Is(err, ErrFenced) {
			w.log.Warn("partition fenced: another worker committed it; restarting from the stored offset", "partition", p.ID)
			return err
		}
		if err != nil { // only when stopping without having flushed
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// commitRange rates msgs, the messages of offsets [msgs[0].Offset, next)
// of one partition, into b and commits them after the stored offset
// stored, calling done after each commit. No input stops a partition: when
// a sink refuses what the batch holds (ErrRefused, not an outage), the
// batch is split in halves, each committed on its own, until the messages
// the sink refuses are alone; each of those is quarantined — stored as a
// malformed xDR with the sink's complaint, its bytes kept in cdrs_raw —
// and the partition moves on. It returns ErrFenced, or an error when it
// stops without having flushed.
func (w *Worker) commitRange(ctx context.Context, r *Rater, partition int, msgs []ingest.Message, b *Batch, stored, next int64,
	done func(*Batch, CommitResult)) error {
	b.First, b.Next, b.Stored = msgs[0].Offset, next, stored
	res, err := w.rateAndCommit(ctx, r, msgs, b, nil)
	if err == nil {
		done(b, res)
		return nil
	}
	if !errors.Is(err, ErrRefused) {
		return err
	}
	if len(msgs) == 1 {
		return w.quarantine(ctx, r, msgs, b, err, done)
	}
	w.log.Warn("a sink refused a batch; splitting it to isolate the messages it refuses", "partition", partition,
		"first_offset", b.First, "next_offset", b.Next, "messages", len(msgs), "err", err)
	mid := len(msgs) / 2
	if err := w.commitRange(ctx, r, partition, msgs[:mid], b, stored, msgs[mid].Offset, done); err != nil {
		return err
	}
	return w.commitRange(ctx, r, partition, msgs[mid:], b, msgs[mid].Offset, next, done)
}

// quarantine commits the one message of msgs, which a sink refused with
// refusal, as a malformed xDR (MarkQuarantined). Should a sink refuse even
// that, the refusal is not the message's fault: it is retried like an
// outage until it commits or the worker stops.
func (w *Worker) quarantine(ctx context.Context, r *Rater, msgs []ingest.Message, b *Batch, refusal error,
	done func(*Batch, CommitResult)) error {
	m := msgs[0]
	w.log.Error("message quarantined: a sink refused it; stored as malformed with the reason", "partition", m.Partition,
		"offset", m.Offset, "err", refusal)
	backoff := 100 * time.Millisecond
	for {
		res, err := w.rateAndCommit(ctx, r, msgs, b, func(x *XDR) { MarkQuarantined(x, refusal) })
		if err == nil {
			w.m.quarantined.Inc()
			done(b, res)
			return nil
		}
		if !errors.Is(err, ErrRefused) {
			return err
		}
		w.m.sinkErrors.WithLabelValues(sinkOf(err)).Inc()
		w.health.set("store", err)
		if !sleep(ctx, backoff) {
			return fmt.Errorf("quarantined message at offset %d of partition %d not flushed before stopping: %w", m.Offset, m.Partition, err)
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
	}
}

// rateAndCommit rates msgs into b against the current catalog, applies
// mark (when not nil) to each XDR, and commits b, retrying outages (see
// commit). A batch that refers to catalog objects that no longer exist is
// rated again against a freshly loaded catalog.
func (w *Worker) rateAndCommit(ctx context.Context, r *Rater, msgs []ingest.Message, b *Batch, mark func(*XDR)) (CommitResult, error) {
	for stale := 0; ; stale++ {
		cat := w.catalog.Load()
		version := uint64(time.Now().UnixNano())
		b.XDRs = b.XDRs[:0]
		for i := range msgs {
			// Slots are reused from batch to batch: rate keeps a slot's
			// decode buffer and resets the rest.
			if n := len(b.XDRs); n < cap(b.XDRs) {
				b.XDRs = b.XDRs[:n+1]
			} else {
				b.XDRs = append(b.XDRs, XDR{})
			}
			x := &b.XDRs[len(b.XDRs)-1]
			r.Rate(cat, &msgs[i], x, version)
			if mark != nil {
				mark(x)
			}
		}
		res, err := w.commit(ctx, b)
		if !errors.Is(err, ErrStale) {
			return res, err
		}
		// The catalog changed under the batch (a client it bills was
		// removed): load the current catalog and rate the batch again.
		w.log.Warn("batch refers to a catalog that changed; rating it again", "partition", b.Partition, "err", err)
		if rerr := w.reload(ctx); rerr != nil {
			w.health.set("catalog", rerr)
		}
		if !sleep(ctx, min(time.Duration(stale+1)*time.Second, w.cfg.MaxBackoff)) {
			return res, fmt.Errorf("batch %d-%d of partition %d not flushed before stopping: %w", b.First, b.Next, b.Partition, err)
		}
	}
}

// nextOffset reads the partition's stored offset, retrying while the store
// is unreachable; it fails only when ctx ends.
func (w *Worker) nextOffset(ctx context.Context, p *ingest.Partition) (int64, error) {
	backoff := 100 * time.Millisecond
	for {
		next, err := w.store.NextOffset(ctx, p.Topic, p.ID)
		if err == nil {
			return next, nil
		}
		w.health.set("store", err)
		if !sleep(ctx, backoff) {
			return 0, ctx.Err()
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
	}
}

// commit stores the batch, retrying with capped backoff while the store
// fails. It keeps trying after ctx ends, for up to the shutdown timeout, so
// the batch in flight is flushed on stop.
func (w *Worker) commit(ctx context.Context, b *Batch) (CommitResult, error) {
	stopCtx, cancelStop := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStop()
	go func() {
		select {
		case <-ctx.Done():
			select {
			case <-time.After(w.cfg.ShutdownTimeout):
				cancelStop()
			case <-stopCtx.Done():
			}
		case <-stopCtx.Done():
		}
	}()
	backoff := 100 * time.Millisecond
	for {
		res, err := w.store.Commit(stopCtx, b)
		if err == nil || errors.Is(err, ErrFenced) || errors.Is(err, ErrStale) {
			w.health.set("store", nil)
			return res, err
		}
		w.m.sinkErrors.WithLabelValues(sinkOf(err)).Inc()
		if errors.Is(err, ErrRefused) {
			return res, err // retrying the same batch cannot help: the caller isolates what is refused
		}
		w.health.set("store", err)
		if stopCtx.Err() != nil {
			return res, fmt.Errorf("batch %d-%d of partition %d not flushed before the shutdown timeout: %w", b.First, b.Next, b.Partition, err)
		}
		if !sleep(stopCtx, backoff) {
			return res, fmt.Errorf("batch %d-%d of partition %d not flushed before the shutdown timeout: %w", b.First, b.Next, b.Partition, err)
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
	}
}

func (w *Worker) observe(b *Batch, res CommitResult, took time.Duration) {
	w.m.batchSize.Observe(float64(len(b.XDRs)))
	w.m.batchSeconds.Observe(took.Seconds())
	w.m.consumed.Add(float64(len(b.XDRs)))
	w.m.duplicates.Add(float64(res.Duplicates))
	rated := 0
	for i := range b.XDRs {
		x := &b.XDRs[i]
		switch {
		case x.Key == dupMark:
			// counted in duplicates
		case x.Conflict():
			w.m.conflicts.Inc()
			w.m.mismatched.WithLabelValues(string(ReasonDuplicateConflict)).Inc()
		case x.Rating.Status == "rated":
			rated++
			if x.Rating.Term.Reason != ReasonNone {
				w.m.mismatched.WithLabelValues(string(x.Rating.Term.Reason)).Inc()
			}
		default:
			w.m.mismatched.WithLabelValues(string(x.Rating.Reason)).Inc()
		}
	}
	w.m.rated.Add(float64(rated))
}

func (w *Worker) notify(ns []Notification) {
	w.m.lowBalance.Add(float64(len(ns)))
	for _, n := range ns {
		w.log.Warn("low balance", "client_id", n.ClientID, "client", n.ClientName,
			"available", n.Available.StringFixed(6), "threshold", n.Threshold.StringFixed(6))
	}
	if w.notifier != nil {
		w.notifier.Notify(context.Background(), ns)
	}
}

// dupMark is the key a store gives an XDR it dropped as a duplicate.
var dupMark = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// MarkDuplicate marks an XDR the store dropped as already billed.
func (x *XDR) MarkDuplicate() { x.Key = dupMark }

// Duplicate reports whether the store dropped the XDR as already billed.
func (x *XDR) Duplicate() bool { return x.Key == dupMark }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// health tracks the failing components and logs once per change of state.
type health struct {
	log     *slog.Logger
	mu      sync.Mutex
	failing map[string]string
}

func (h *health) set(component string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing == nil {
		h.failing = map[string]string{}
	}
	_, was := h.failing[component]
	switch {
	case err != nil && !was:
		h.failing[component] = err.Error()
		h.log.Error("component failing; retrying with backoff", "component", component, "err", err)
	case err != nil:
		h.failing[component] = err.Error()
	case was:
		delete(h.failing, component)
		h.log.Info("component recovered", "component", component)
	}
}

func (h *health) ready() (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c, e := range h.failing {
		return false, c + ": " + e
	}
	return true, ""
}
