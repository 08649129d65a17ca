package report_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tarifa/tarifa/catalog"
	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/sinks"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixture is the fixed data set of testdata/ (catalog.yaml, cdrs.jsonl)
// rated by the real rater and committed by the real store, on a private
// database pair.
type fixture struct {
	t       *testing.T
	db      *sinktest.DB
	reports *report.Reports
	store   *sinks.Store
	cat     *rater.Catalog
	offset  int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	t.Parallel()
	ctx := context.Background()
	f := &fixture{t: t, db: sinktest.New(t)}
	file, err := catalog.Load("testdata/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Apply(ctx, f.db.PG, file, catalog.Options{}); err != nil {
		t.Fatal(err)
	}
	if f.cat, err = sinks.NewCatalogLoader(f.db.PG).Load(ctx); err != nil {
		t.Fatal(err)
	}
	f.store = sinks.NewStore(f.db.PG, f.db.CH, prometheus.NewRegistry())
	t.Cleanup(f.store.Close)
	f.reports = report.New(f.db.PG, f.db.CH, quiet)

	raw, err := os.ReadFile("testdata/cdrs.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	xs := f.rate(lines, time.Date(2024, 3, 1, 15, 0, 30, 0, time.UTC))
	// A re-sent c01 with other content, as the hardening of issue 9 writes
	// it: a mismatch row of its own with a synthetic id.
	conflict := rater.XDR{ID: "c01#conflict-9f2c", Raw: lines[0], Detail: "same switch and id as a billed CDR, other content: duration 65s, was 60s"}
	if err := ingest.Decode(lines[0], &conflict.CDR); err != nil {
		t.Fatal(err)
	}
	conflict.Key = key(conflict.CDR.Switch, conflict.ID)
	conflict.Rating = rater.Rating{Status: "mismatch", Reason: "duplicate_conflict"}
	xs = append(xs, conflict)
	f.commit(xs)
	return f
}

// rate decodes and rates CDR lines as the worker does.
func (f *fixture) rate(lines [][]byte, received time.Time) []rater.XDR {
	xs := make([]rater.XDR, len(lines))
	for i, l := range lines {
		x := &xs[i]
		x.Raw, x.Offset, x.Received = l, f.offset+int64(i), received
		if err := ingest.Decode(l, &x.CDR); err != nil {
			rater.MarkMalformed(x, err)
			continue
		}
		x.ID = x.CDR.ID
		x.Key = key(x.CDR.Switch, x.CDR.ID)
		f.cat.Rate(&x.CDR, &x.Rating)
	}
	return xs
}

// commit writes xs through the store as the next messages of partition 0.
func (f *fixture) commit(xs []rater.XDR) {
	f.t.Helper()
	b := &rater.Batch{Topic: "cdrs", Partition: 0, First: f.offset, Next: f.offset + int64(len(xs)), Stored: f.offset, XDRs: xs}
	if f.offset == 0 {
		b.Stored = -1
	}
	if _, err := f.store.Commit(context.Background(), b); err != nil {
		f.t.Fatal(err)
	}
	f.offset = b.Next
}

// key is the dedupe key the rater gives a CDR.
func key(sw, id string) [16]byte {
	h := fnv.New128a()
	h.Write([]byte(sw))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var k [16]byte
	h.Sum(k[:0])
	return k
}

func period(t *testing.T, from, to, tz string) report.Period {
	t.Helper()
	p, err := report.ParsePeriod(from, to, tz)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// golden compares a rendered report with testdata/name (-update rewrites it).
func golden(t *testing.T, name string, tab *report.Table, format string) {
	t.Helper()
	var b bytes.Buffer
	if err := tab.Render(&b, format); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("%s differs from the golden file (go test ./report -update rewrites it):\n%s", name, b.String())
	}
}
