package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// statusLine is one line of progress on stderr. On a terminal it is
// redrawn in place; on a pipe or a file (when --progress asks for it
// anyway) it is written as a whole line at most every lineEvery. Log lines
// written through it go above the status line. A nil *statusLine is off:
// every method does nothing. Safe for concurrent use.
type statusLine struct {
	mu     sync.Mutex
	w      io.Writer
	tty    bool
	line   string
	shown  bool // the line is on screen (terminal)
	lastAt time.Time
}

// lineEvery is how often a status line is written when it cannot be
// redrawn in place.
const lineEvery = 5 * time.Second

// newStatusLine returns a status line on w, or nil when on is false.
func newStatusLine(w io.Writer, on bool) *statusLine {
	if !on {
		return nil
	}
	return &statusLine{w: w, tty: isTerminal(w)}
}

// Set replaces the status line.
func (s *statusLine) Set(line string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.line = line
	if s.tty {
		fmt.Fprintf(s.w, "\r\033[K%s", line)
		s.shown = true
		return
	}
	if now := time.Now(); now.Sub(s.lastAt) >= lineEvery {
		fmt.Fprintln(s.w, line)
		s.lastAt = now
	}
}

// Done writes the last state of the line for good and ends it.
func (s *statusLine) Done() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.tty && s.shown:
		fmt.Fprintln(s.w)
	case !s.tty && s.line != "":
		fmt.Fprintln(s.w, s.line)
	}
	s.line, s.shown = "", false
}

// Clear erases the line: what it said was only for the moment.
func (s *statusLine) Clear() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tty && s.shown {
		fmt.Fprint(s.w, "\r\033[K")
	}
	s.line, s.shown = "", false
}

// Write writes log output above the status line.
func (s *statusLine) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.tty || !s.shown {
		return s.w.Write(p)
	}
	fmt.Fprint(s.w, "\r\033[K")
	n, err := s.w.Write(p)
	fmt.Fprint(s.w, s.line)
	return n, err
}

// logTo is where a command's log goes: through its status line when it
// has one, so that log lines do not tear it.
func (s *statusLine) logTo(stderr io.Writer) io.Writer {
	if s == nil {
		return stderr
	}
	return s
}

// every calls fn each period until ctx ends, and once more at the end.
func (s *statusLine) every(ctx context.Context, period time.Duration, fn func() string) {
	if s == nil {
		return
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Set(fn())
			s.Done()
			return
		case <-t.C:
			s.Set(fn())
		}
	}
}

// thousands formats n with thousands separators: 1234567 → "1,234,567".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}

// perSecond is n over d, rounded, as a count.
func perSecond(n int64, d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return thousands(int64(float64(n) / d.Seconds()))
}

// workerProgress is the worker's status line, read from its own metrics:
// CDRs consumed and committed, the rate since start (catalog load and
// group join included), how many were rated and dropped as duplicates, and
// the lag of its partitions.
func workerProgress(g prometheus.Gatherer, start time.Time) func() string {
	return func() string {
		sums := map[string]int64{}
		mfs, err := g.Gather()
		if err != nil {
			return "progress unavailable: " + err.Error()
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				switch {
				case m.GetCounter() != nil:
					sums[mf.GetName()] += int64(m.GetCounter().GetValue())
				case m.GetGauge() != nil:
					sums[mf.GetName()] += int64(m.GetGauge().GetValue())
				}
			}
		}
		n := sums["tarifa_cdrs_consumed_total"]
		return fmt.Sprintf("consumed %s CDRs (rated %s, duplicates %s)  %s CDRs/s  lag %s",
			thousands(n), thousands(sums["tarifa_cdrs_rated_total"]), thousands(sums["tarifa_cdrs_duplicate_total"]),
			perSecond(n, time.Since(start)), thousands(sums["tarifa_consumer_lag"]))
	}
}
