package main

import (
	"fmt"
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

// logSettings reads TARIFA_LOG_LEVEL (debug, info, warn, error; default
// info) and TARIFA_LOG_FORMAT (text or json; default text). run checks them
// before any command starts, so a typo fails the start instead of silently
// logging in another shape than the log pipeline expects.
func logSettings() (slog.Level, bool, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(env("TARIFA_LOG_LEVEL", "info"))); err != nil {
		return level, false, fmt.Errorf("TARIFA_LOG_LEVEL %q: want debug, info, warn or error", os.Getenv("TARIFA_LOG_LEVEL"))
	}
	switch f := env("TARIFA_LOG_FORMAT", "text"); f {
	case "text":
		return level, false, nil
	case "json":
		return level, true, nil
	default:
		return level, false, fmt.Errorf("TARIFA_LOG_FORMAT %q: want text or json", f)
	}
}

// newLogger returns the process logger writing to w (stderr when nil): one
// logfmt line per record, or with TARIFA_LOG_FORMAT=json one JSON object per
// line (time, level, msg and the attributes as fields), for log pipelines
// that parse JSON.
func newLogger(w io.Writer) *slog.Logger {
	level, json, err := logSettings()
	if err != nil {
		level, json = slog.LevelInfo, false // run has refused to start already
	}
	if w == nil {
		w = os.Stderr
	}
	opts := &slog.HandlerOptions{Level: level}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
