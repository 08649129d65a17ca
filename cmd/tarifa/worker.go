package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"

	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/sinks"
)

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("worker", "worker [flags]",
		"Consumes CDR messages from Kafka in a consumer group, rates both legs of every call against the\n"+
			"catalog in PostgreSQL, writes raw CDRs and xDRs to ClickHouse and moves balances in PostgreSQL,\n"+
			"exactly once. Serves /metrics, /healthz and /readyz. Stops cleanly on SIGINT/SIGTERM after\n"+
			"flushing the batches in flight.", stderr)
	pgDSN := fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN (TARIFA_PG_DSN)")
	chDSN := fs.String("clickhouse-dsn", env("TARIFA_CLICKHOUSE_DSN", defaultClickHouseDSN), "ClickHouse DSN (TARIFA_CLICKHOUSE_DSN)")
	brokers := fs.String("brokers", env("TARIFA_KAFKA_BROKERS", defaultKafkaBrokers), "Kafka brokers, comma-separated (TARIFA_KAFKA_BROKERS)")
	topic := fs.String("topic", env("TARIFA_KAFKA_TOPIC", defaultKafkaTopic), "CDR topic (TARIFA_KAFKA_TOPIC)")
	group := fs.String("group", env("TARIFA_KAFKA_GROUP", defaultKafkaGroup), "consumer group (TARIFA_KAFKA_GROUP)")
	partitions := fs.Int("partitions", 8, "partitions of the topic when the worker has to create it")
	eventsTopic := fs.String("events-topic", env("TARIFA_EVENTS_TOPIC", ""), "topic for low-balance events, empty for none (TARIFA_EVENTS_TOPIC)")
	metricsAddr := fs.String("metrics-addr", env("TARIFA_METRICS_ADDR", "127.0.0.1:9464"), "address of /metrics, /healthz and /readyz (TARIFA_METRICS_ADDR)")
	var cfg rater.WorkerConfig
	fs.IntVar(&cfg.BatchSize, "batch-size", 50000, "most CDRs rated and committed together (large batches make fewer, cheaper ClickHouse parts)")
	fs.DurationVar(&cfg.BatchWait, "batch-wait", 200*time.Millisecond, "how long a batch waits for more CDRs after its first")
	fs.DurationVar(&cfg.ReloadInterval, "reload-interval", 2*time.Second, "how often the catalog version is checked")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a stop may take to flush the batches in flight")
	fs.DurationVar(&cfg.MaxBackoff, "max-backoff", 10*time.Second, "longest wait between retries while a server is unreachable")
	sessionTimeout := fs.Duration("session-timeout", 6*time.Second, "consumer group session timeout: how long partitions stay with a worker that stopped without leaving (a crash)")
	progress := fs.Bool("progress", isTerminal(stderr), "show a progress line on stderr (CDRs consumed, CDRs/s, lag); default on when stderr is a terminal")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.Topic = *topic
	started := time.Now()
	status := newStatusLine(stderr, *progress)
	log := newLogger(status.logTo(stderr))
	if os.Getenv("GOGC") == "" {
		// Batches are short-lived and memory is plentiful next to CPU on a
		// rating host: collect garbage a quarter as often as Go's default.
		debug.SetGCPercent(400)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// /healthz, /readyz and /metrics answer from the first second, before
	// any server is reachable: an orchestrator sees "not ready" and why,
	// instead of a refused connection it cannot tell from a dead process.
	state := &readiness{why: "starting"}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tarifa_worker_ready",
		Help: "1 when the worker is ready (catalog loaded, PostgreSQL, ClickHouse and Kafka answering), else 0; /readyz says why."},
		func() float64 {
			if ok, _ := state.ready(); ok {
				return 1
			}
			return 0
		}))
	reg.MustRegister(buildInfo())
	srv, err := serveMetrics(*metricsAddr, reg, state.ready)
	if err != nil {
		return err
	}
	defer srv.Close()

	pool, ok := openWithRetry(ctx, log, "postgres", state.waiting, func(ctx context.Context) (*pgxpool.Pool, error) {
		return sinks.OpenPostgres(ctx, *pgDSN)
	})
	if !ok {
		return nil // stopped while waiting
	}
	defer pool.Close()
	ch, ok := openWithRetry(ctx, log, "clickhouse", state.waiting, func(ctx context.Context) (driver.Conn, error) {
		return sinks.OpenClickHouse(ctx, *chDSN)
	})
	if !ok {
		return nil
	}
	defer ch.Close()

	consumer, err := ingest.NewConsumer(ingest.ConsumerConfig{
		Brokers: strings.Split(*brokers, ","), Topic: *topic, Group: *group,
		Partitions: *partitions, SessionTimeout: *sessionTimeout,
	}, log)
	if err != nil {
		return err
	}
	state.waiting("kafka", nil)
	for {
		err := consumer.EnsureTopic(ctx)
		if err == nil {
			break
		}
		state.waiting("kafka", err)
		log.Warn("kafka not ready; retrying", "brokers", *brokers, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}

	var notifier rater.Notifier
	var events *eventPublisher
	if *eventsTopic != "" {
		events = &eventPublisher{pool: pool, log: log, wake: make(chan struct{}, 1),
			w: &kafka.Writer{Addr: kafka.TCP(strings.Split(*brokers, ",")...), Topic: *eventsTopic,
				AllowAutoTopicCreation: true, RequiredAcks: kafka.RequireAll}}
		defer events.w.Close()
		notifier = events
	}
	store := sinks.NewStore(pool, ch, reg)
	defer store.Close()
	worker, err := rater.NewWorker(cfg, consumer, store, sinks.NewCatalogLoader(pool), notifier, log, reg)
	if err != nil {
		return err
	}

	state.use(worker)
	log.Info("worker starting", "topic", *topic, "group", *group, "brokers", *brokers, "metrics", *metricsAddr)

	sideCtx, stopSide := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if status != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status.every(sideCtx, 500*time.Millisecond, workerProgress(reg, started))
		}()
	}
	if events != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			events.run(sideCtx)
		}()
	}
	wg.Add(3)
	go func() {
		defer wg.Done()
		pruneDedupeKeys(sideCtx, store, log)
	}()
	go func() {
		defer wg.Done()
		reportLoops(sideCtx, pool, ch, log, reg)
	}()
	go func() {
		defer wg.Done()
		probeKafka(sideCtx, consumer, worker)
	}()
	err = worker.Run(ctx)
	stopSide()
	wg.Wait()
	log.Info("worker stopped")
	return err
}

// readiness answers /readyz: while the worker starts, what it waits for;
// once the worker runs, the worker's own readiness. Safe for concurrent use.
type readiness struct {
	mu  sync.Mutex
	why string
	w   *rater.Worker
}

// waiting records that the start waits for server name (err is its last
// failure, nil while the first attempt runs).
func (r *readiness) waiting(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.why = "starting: connecting to " + name
	if err != nil {
		r.why = name + ": " + err.Error()
	}
}

// use hands readiness over to the running worker.
func (r *readiness) use(w *rater.Worker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w = w
}

func (r *readiness) ready() (bool, string) {
	r.mu.Lock()
	w, why := r.w, r.why
	r.mu.Unlock()
	if w == nil {
		return false, why
	}
	return w.Ready()
}

// buildInfo is tarifa_build_info{version, goversion} = 1, so dashboards can
// show which build each process runs (a rolling upgrade shows as two).
func buildInfo() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tarifa_build_info", Help: "Always 1; the labels name the build of this process."},
		[]string{"version", "goversion"})
	g.WithLabelValues(version, runtime.Version()).Set(1)
	return g
}

// openWithRetry opens a server connection, retrying with capped backoff
// while it is unreachable and logging once per change of state; report
// hears of the first attempt (nil error) and of every result. ok is false
// when ctx ended first.
func openWithRetry[T any](ctx context.Context, log *slog.Logger, name string, report func(string, error), open func(context.Context) (T, error)) (conn T, ok bool) {
	backoff, logged := time.Second, false
	report(name, nil)
	for {
		conn, err := open(ctx)
		report(name, err)
		if err == nil {
			if logged {
				log.Info("server reachable", "server", name)
			}
			return conn, true
		}
		if ctx.Err() != nil {
			return conn, false
		}
		if !logged {
			log.Error("server unreachable; retrying with backoff", "server", name, "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return conn, false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// serveMetrics serves Prometheus metrics, /healthz (the process is alive),
// /readyz (the worker has a catalog and its servers answer) and the Go
// profiler under /debug/pprof/ (bind it to loopback or a private network).
func serveMetrics(addr string, reg *prometheus.Registry, ready func() (bool, string)) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := ready(); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	return srv, nil
}

// every calls fn each period until ctx ends.
func every(ctx context.Context, period time.Duration, fn func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

func pruneDedupeKeys(ctx context.Context, store *sinks.Store, log *slog.Logger) {
	every(ctx, 10*time.Minute, func() {
		if n, err := store.PruneDedupeKeys(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("prune dedupe keys", "err", err)
		} else if n > 0 {
			log.Info("pruned dedupe keys", "count", n)
		}
	})
}

// probeKafka reports the brokers' reachability to the worker's readiness
// every few seconds: the Kafka client retries on its own, so a broker
// outage would otherwise only show as silence.
func probeKafka(ctx context.Context, c *ingest.Consumer, w *rater.Worker) {
	every(ctx, 3*time.Second, func() {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.Probe(pctx)
		cancel()
		if ctx.Err() == nil {
			w.SetHealth("kafka", err)
		}
	})
}

// eventPublisher publishes the notifications table's unpublished rows to
// the events topic as JSON (an outbox: the rows commit with the balances
// that raised them, so a crash never loses an event; it may repeat one,
// with the same id). A commit that raised notifications wakes it; it also
// looks every few seconds, for rows other workers or earlier runs left.
type eventPublisher struct {
	pool *pgxpool.Pool
	w    *kafka.Writer
	log  *slog.Logger
	wake chan struct{}
}

// Notify implements rater.Notifier: the rows are in the table already.
func (p *eventPublisher) Notify(context.Context, []rater.Notification) {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *eventPublisher) run(ctx context.Context) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	failing := false
	for {
		for {
			n, err := sinks.PublishEvents(ctx, p.pool, 500, p.publish)
			if err != nil {
				if ctx.Err() == nil && !failing {
					p.log.Warn("events not published; retrying", "err", err)
				}
				failing = true
				break
			}
			if failing {
				p.log.Info("events published again")
				failing = false
			}
			if n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-tick.C:
		}
	}
}

func (p *eventPublisher) publish(ctx context.Context, events []sinks.Event) error {
	msgs := make([]kafka.Message, 0, len(events))
	for _, e := range events {
		b, err := json.Marshal(map[string]any{
			"id": e.ID, "kind": e.Kind, "client_id": e.ClientID, "client": e.ClientName,
			"available": e.Available.StringFixed(6), "threshold": e.Threshold.StringFixed(6),
			"message": e.Message, "at": e.At.UTC().Format(time.RFC3339Nano),
		})
		if err != nil {
			return err
		}
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprint(e.ClientID)), Value: b})
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return p.w.WriteMessages(ctx, msgs...)
}
