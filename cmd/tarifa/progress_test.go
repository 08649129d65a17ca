package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestStatusLineOffATerminal: forced onto a pipe or file, the progress
// line is written as whole lines (the first at once, the last on Done),
// log lines pass through untouched, and a nil line is off.
func TestStatusLineOffATerminal(t *testing.T) {
	var b bytes.Buffer
	s := newStatusLine(&b, true)
	s.Set("step 1")
	s.Set("step 2") // within lineEvery of the first: not written
	_, _ = s.logTo(&b).Write([]byte("a log line\n"))
	s.Done()
	if got, want := b.String(), "step 1\na log line\nstep 2\n"; got != want || strings.Contains(got, "\r") {
		t.Errorf("got %q, want %q", got, want)
	}
	var off *statusLine = newStatusLine(&b, false)
	off.Set("x")
	off.Done()
	off.Clear()
	if w := off.logTo(&b); w != &b {
		t.Error("an off status line does not log straight to stderr")
	}
}

// TestWorkerProgressLine reads the worker's own metrics.
func TestWorkerProgressLine(t *testing.T) {
	reg := prometheus.NewRegistry()
	consumed := prometheus.NewCounter(prometheus.CounterOpts{Name: "tarifa_cdrs_consumed_total"})
	rated := prometheus.NewCounter(prometheus.CounterOpts{Name: "tarifa_cdrs_rated_total"})
	dups := prometheus.NewCounter(prometheus.CounterOpts{Name: "tarifa_cdrs_duplicate_total"})
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tarifa_consumer_lag"}, []string{"partition"})
	reg.MustRegister(consumed, rated, dups, lag)
	consumed.Add(1234567)
	rated.Add(777000)
	dups.Add(12345)
	lag.WithLabelValues("0").Set(1000)
	lag.WithLabelValues("1").Set(2500)
	line := workerProgress(reg, time.Now().Add(-10*time.Second))()
	for _, want := range []string{"consumed 1,234,567 CDRs (rated 777,000, duplicates 12,345)", "lag 3,500", "CDRs/s"} {
		if !strings.Contains(line, want) {
			t.Errorf("%q lacks %q", line, want)
		}
	}
	if got := thousands(-1234); got != "-1,234" {
		t.Errorf("thousands(-1234) = %s", got)
	}
}
