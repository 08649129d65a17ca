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
	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/sinks"
)

// runAPI serves the management API until ctx is cancelled (SIGINT or
// SIGTERM), then stops accepting and lets requests in flight finish for up
// to --shutdown-timeout.
func runAPI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("api", "api [--addr HOST:PORT] [--pg-dsn DSN] [--clickhouse-dsn DSN] [--max-call 4h]",
		"Serves the management HTTP API: JSON under /v1 (resellers, managers, clients, accounts,\n"+
			"rate tables and rates, transactions, balances, prepaid authorization, audit log, invoices,\n"+
			"bill runs, payment terms, tax profiles, the mail queue), its\n"+
			"OpenAPI document at /v1/openapi.json, /healthz and Prometheus /metrics. Every /v1 call\n"+
			"needs a bearer token from 'tarifa token create'. ClickHouse is used only to count a\n"+
			"client's xDRs before a full delete, for /v1/reports and for invoices; without it, full\n"+
			"deletes are refused and reports and invoices answer 503.", stderr)
	addr := fs.String("addr", env("TARIFA_API_ADDR", "127.0.0.1:8480"), "listen address (TARIFA_API_ADDR)")
	pgDSN := fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN (TARIFA_PG_DSN)")
	chDSN := fs.String("clickhouse-dsn", env("TARIFA_CLICKHOUSE_DSN", defaultClickHouseDSN), "ClickHouse DSN, for xDR counts (TARIFA_CLICKHOUSE_DSN); empty to go without")
	maxCall := fs.Duration("max-call", 4*time.Hour, "longest call authorize allows (unlimited clients get exactly this)")
	shutdown := fs.Duration("shutdown-timeout", 10*time.Second, "how long requests in flight may finish on stop")
	smtpAddr := fs.String("smtp-addr", env("TARIFA_SMTP_ADDR", ""), "SMTP server host:port for invoice send (TARIFA_SMTP_ADDR; TARIFA_SMTP_USER and _PASSWORD authenticate)")
	smtpFrom := fs.String("smtp-from", env("TARIFA_SMTP_FROM", ""), "sender address of invoices (TARIFA_SMTP_FROM)")
	smtpTLS := fs.String("smtp-tls", env("TARIFA_SMTP_TLS", billing.TLSAuto), "auto, starttls, tls or none (TARIFA_SMTP_TLS)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := newLogger(stderr)

	pool, err := sinks.OpenPostgres(ctx, *pgDSN)
	if err != nil {
		return err
	}
	defer pool.Close()

	var xdrs api.XDRCounter
	var reports *report.Reports
	var bill *billing.Service
	if *chDSN != "" {
		ch, err := sinks.OpenClickHouse(ctx, *chDSN)
		if err != nil {
			log.Warn("clickhouse unreachable: full deletes of clients are refused", "dsn", sinks.Redact(*chDSN), "err", err)
		} else {
			defer ch.Close()
			reports = report.New(pool, ch, log)
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
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := api.New(api.Config{MaxCall: *maxCall, Reports: reports, Billing: bill}, pool, xdrs, log, reg)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/", srv)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	log.Info("api listening", "addr", ln.Addr().String(), "pg", sinks.Redact(*pgDSN))
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), *shutdown)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("api stopped")
	return nil
}
