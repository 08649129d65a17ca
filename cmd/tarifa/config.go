package main

import (
	"io"
	"log/slog"
	"os"
)

// Defaults match the local stack of deploy/local.
const (
	defaultPGDSN         = "postgres://postgres@127.0.0.1:55432/tarifa?sslmode=disable"
	defaultClickHouseDSN = "clickhouse://127.0.0.1:19000/tarifa"
	defaultKafkaBrokers  = "127.0.0.1:19092"
	defaultKafkaTopic    = "cdrs"
	defaultKafkaGroup    = "tarifa-rater"
)

// newLogger returns the process logger: text to w, level from TARIFA_LOG_LEVEL
// (debug, info, warn, error; default info).
func newLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(env("TARIFA_LOG_LEVEL", "info"))); err != nil {
		level = slog.LevelInfo
	}
	if w == nil {
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
