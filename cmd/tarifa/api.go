package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tarifa/tarifa/api"
	"github.com/tarifa/tarifa/billing"
	"github.com/tarifa/tarifa/console"
	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/rerate"
	"github.com/tarifa/tarifa/sinks"
)

// runAPI serves the management API until ctx is cancelled (SIGINT or
// SIGTERM), then stops accepting and lets requests in flight finish for up
// to --shutdown-timeout.
func runAPI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("api", "api [--addr HOST:PORT] [--metrics-addr HOST:PORT] [--pg-dsn DSN] [--clickhouse-dsn DSN] [flags]",
		"Serves the management HTTP API: JSON under /v1 (resellers, managers, clients, accounts,\n"+
			"rate tables and rates, transactions, balances, prepaid authorization, audit log, invoices,\n"+
			"bill runs, payment terms, tax profiles, the mail queue), its OpenAPI document at\n"+
			"/v1/openapi.json and /healthz. Every /v1 call needs a bearer token from 'tarifa token\n"+
			"create'. Prometheus /metrics is served on --metrics-addr when it is set, otherwise on\n"+
			"--addr to admin tokens only. JSON bodies are at most 1 MiB, deck CSVs 64 MiB; a request\n"+
			"must arrive within --read-timeout and each answer (each page of an export) be read within\n"+
			"--write-timeout. ClickHouse is used to count a client's xDRs before a full delete, for\n"+
			"/v1/reports, /v1/rerate-jobs and invoices; without it, full deletes are refused and\n"+
			"reports, rerating and invoices answer 503. Invoice send mails through --smtp-addr.\n"+
			"The operator console is served at / (--console=false to turn it off): sign in there\n"+
			"with an API token; it shows what that token may see.", stderr)
	addr := fs.String("addr", env("TARIFA_API_ADDR", "127.0.0.1:8480"), "listen address (TARIFA_API_ADDR)")
	metricsAddr := fs.String("metrics-addr", env("TARIFA_API_METRICS_ADDR", ""), "address of /metrics of its own (TARIFA_API_METRICS_ADDR); empty: on --addr, admin tokens only")
	pgDSN := fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN (TARIFA_PG_DSN)")
	pgConns := fs.Int("pg-max-conns", 16, "PostgreSQL connections at most: the requests that can run a statement at once")
	chDSN := fs.String("clickhouse-dsn", env("TARIFA_CLICKHOUSE_DSN", defaultClickHouseDSN), "ClickHouse DSN, for xDR counts, reports, rerating and invoices (TARIFA_CLICKHOUSE_DSN); empty to go without")
	topic := fs.String("topic", env("TARIFA_KAFKA_TOPIC", defaultKafkaTopic), "the workers' CDR topic, whose stored offsets rerating jobs read (TARIFA_KAFKA_TOPIC)")
	var cfg api.Config
	fs.DurationVar(&cfg.MaxCall, "max-call", 4*time.Hour, "longest call authorize allows (unlimited clients get exactly this)")
	fs.DurationVar(&cfg.ReadTimeout, "read-timeout", 30*time.Second, "longest a request (headers and JSON body) may take to arrive")
	fs.DurationVar(&cfg.DeckReadTimeout, "deck-read-timeout", 10*time.Minute, "longest a deck CSV upload may take to arrive")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", 30*time.Second, "longest a client may take to read an answer, or one page of an export")
	shutdown := fs.Duration("shutdown-timeout", 10*time.Second, "how long requests in flight may finish on stop")
	smtpAddr := fs.String("smtp-addr", env("TARIFA_SMTP_ADDR", ""), "SMTP server host:port for invoice send (TARIFA_SMTP_ADDR; TARIFA_SMTP_USER and _PASSWORD authenticate)")
	smtpFrom := fs.String("smtp-from", env("TARIFA_SMTP_FROM", ""), "sender address of invoices (TARIFA_SMTP_FROM)")
	smtpTLS := fs.String("smtp-tls", env("TARIFA_SMTP_TLS", billing.TLSAuto), "auto, starttls, tls or none (TARIFA_SMTP_TLS)")
	withConsole := fs.Bool("console", true, "serve the operator console at / (a client of /v1: sign in with an API token)")
	var consoleCfg console.Config
	fs.DurationVar(&consoleCfg.SessionIdle, "console-session-idle", 12*time.Hour, "end a console session nobody used for this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *pgConns < 1 {
		fmt.Fprintln(stderr, "--pg-max-conns must be at least 1")
		fs.Usage()
		return errUsage
	}
	log := newLogger(stderr)

	pool, err := sinks.OpenPostgresPool(ctx, *pgDSN, int32(*pgConns))
	if err != nil {
		return err
	}
	defer pool.Close()

	var xdrs api.XDRCounter
	var reports *report.Reports
	var rerater *rerate.Runner
	var bill *billing.Service
	if *chDSN != "" {
		ch, err := sinks.OpenClickHouse(ctx, *chDSN)
		if err != nil {
			log.Warn("clickhouse unreachable: full deletes of clients are refused", "dsn", sinks.Redact(*chDSN), "err", err)
		} else {
			defer ch.Close()
			reports = report.New(pool, ch, log)
			refresh := func(ctx context.Context) error { _, err := reports.RefreshRollups(ctx, 0); return err }
			if rerater, err = rerate.NewRunner(rerate.Config{Topic: *topic, Refresh: refresh}, pool, ch, log); err != nil {
				return err
			}
			defer rerater.Close()
			smtp := billing.SMTPConfig{Addr: *smtpAddr, From: *smtpFrom, TLS: *smtpTLS,
				User: os.Getenv("TARIFA_SMTP_USER"), Password: os.Getenv("TARIFA_SMTP_PASSWORD")}
			if bill, err = billing.New(billing.Config{SMTP: smtp}, pool, reports, log); err != nil {
				return err
			}
			xdrs = func(ctx context.Context, clientID int64) (int64, error) {
				var n uint64
				err := ch.QueryRow(ctx, "SELECT count() FROM xdrs WHERE orig_client_id = ? OR term_client_id = ?",
					uint64(clientID), uint64(clientID)).Scan(&n)
				return int64(n), err
			}
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), rerate.NewCollector(pool))
	cfg.Reports, cfg.Rerate, cfg.Billing = reports, rerater, bill
	srv, err := api.New(cfg, pool, xdrs, log, reg)
	if err != nil {
		return err
	}
	defer srv.Close() // stops the rerating jobs it runs, resumable, before their runner closes
	// A job whose process died does not block the next one for long.
	srv.ResumeAbandoned(time.Minute)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.Handle("/v1/", srv)
	mux.Handle("/healthz", srv)
	root := http.Handler(srv)
	if *withConsole {
		if root, err = console.New(consoleCfg, srv, log, reg); err != nil {
			return err
		}
	}
	mux.Handle("/", root)
	servers := []*http.Server{srv.HTTPServer(mux)}
	listeners := []string{*addr}
	if *metricsAddr == "" {
		mux.Handle("GET /metrics", srv.AdminOnly(metrics))
	} else {
		mm := http.NewServeMux()
		mm.Handle("GET /metrics", metrics)
		servers = append(servers, &http.Server{Handler: mm, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second})
		listeners = append(listeners, *metricsAddr)
	}

	served := make(chan error, len(servers))
	for i, hs := range servers {
		ln, err := net.Listen("tcp", listeners[i])
		if err != nil {
			for _, s := range servers[:i] {
				_ = s.Close()
			}
			return fmt.Errorf("listen: %w", err)
		}
		if i == 0 {
			log.Info("api listening", "addr", ln.Addr().String(), "pg", sinks.Redact(*pgDSN), "pg_max_conns", *pgConns)
		} else {
			log.Info("api metrics listening", "addr", ln.Addr().String())
		}
		go func() { served <- hs.Serve(ln) }()
	}
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), *shutdown)
	defer cancel()
	for _, hs := range servers {
		if err := hs.Shutdown(sctx); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
	}
	for range servers {
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	log.Info("api stopped")
	return nil
}
