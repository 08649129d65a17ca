package report_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

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

// xdrRow is the part of an xdrs row the rerating of a test changes.
type xdrRow struct {
	ID, Switch                           string
	EventTime, SetupTime, Disconnect     time.Time
	Connect                              *time.Time
	DurationMs                           uint64
	Dst, Status, Reason                  string
	ResellerID, OrigClientID             uint64
	OrigAccountID                        uint64
	OrigCode, OrigCodeName               string
	OrigBilled                           uint32
	OrigCost                             decimal.Decimal
	TermClientID                         uint64
	TermReason                           string
	TermBilled                           uint32
	TermCost                             decimal.Decimal
	Currency, OrigCurrency, TermCurrency string
	Version                              uint64
}

const xdrRowCols = `cdr_id, switch, event_time, setup_time, disconnect_time, connect_time, duration_ms, dst, status, reason,
	reseller_id, orig_client_id, orig_account_id, orig_code, orig_code_name, orig_billed_seconds, orig_cost,
	term_client_id, term_reason, term_billed_seconds, term_cost, currency, orig_currency, term_currency, version`

func (x *xdrRow) fields() []any {
	return []any{&x.ID, &x.Switch, &x.EventTime, &x.SetupTime, &x.Disconnect, &x.Connect, &x.DurationMs, &x.Dst, &x.Status, &x.Reason,
		&x.ResellerID, &x.OrigClientID, &x.OrigAccountID, &x.OrigCode, &x.OrigCodeName, &x.OrigBilled, &x.OrigCost,
		&x.TermClientID, &x.TermReason, &x.TermBilled, &x.TermCost, &x.Currency, &x.OrigCurrency, &x.TermCurrency, &x.Version}
}

// rerate writes a new version of the current xDR of each CDR in change,
// changed by its function, and marks its hour as the commit path does (a
// rerating job commits through the same store).
func (f *fixture) rerate(change map[string]func(x *xdrRow)) []xdrRow {
	f.t.Helper()
	ctx := context.Background()
	rows, err := f.db.CH.Query(ctx, `SELECT `+xdrRowCols+` FROM xdrs FINAL ORDER BY cdr_id`)
	if err != nil {
		f.t.Fatal(err)
	}
	var xs []xdrRow
	for rows.Next() {
		var x xdrRow
		if err := rows.Scan(x.fields()...); err != nil {
			f.t.Fatal(err)
		}
		if fn, ok := change[x.ID]; ok {
			fn(&x)
			x.Version++
			xs = append(xs, x)
		}
	}
	rows.Close()
	f.writeRows(xs)
	return xs
}

// writeRows inserts xs into xdrs and marks their setup hours in one
// PostgreSQL transaction after the insert, as Store.Commit does.
func (f *fixture) writeRows(xs []xdrRow) {
	f.t.Helper()
	ctx := context.Background()
	b, err := f.db.CH.PrepareBatch(ctx, `INSERT INTO xdrs (`+xdrRowCols+`)`)
	if err != nil {
		f.t.Fatal(err)
	}
	var marks []rater.XDR
	for _, x := range xs {
		v := x
		p := v.fields()
		vals := make([]any, len(p))
		for i := range p {
			vals[i] = derefAny(p[i])
		}
		if err := b.Append(vals...); err != nil {
			f.t.Fatal(err)
		}
		marks = append(marks, rater.XDR{CDR: ingest.CDR{SetupTime: x.SetupTime}})
	}
	if err := b.Send(); err != nil {
		f.t.Fatal(err)
	}
	tx, err := f.db.PG.Begin(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := sinks.MarkRollupHours(ctx, tx, marks); err != nil {
		f.t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		f.t.Fatal(err)
	}
}

func derefAny(p any) any {
	switch v := p.(type) {
	case *string:
		return *v
	case *time.Time:
		return *v
	case **time.Time:
		return *v
	case *uint64:
		return *v
	case *uint32:
		return *v
	case *decimal.Decimal:
		return *v
	}
	panic(fmt.Sprintf("BUG: no case for %T", p))
}
