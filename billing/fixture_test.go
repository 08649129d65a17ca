package billing_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/billing"
	"github.com/tarifa/tarifa/catalog"
	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/sinks"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixture is testdata/catalog.yaml on a private database pair, with
// traffic rated by the real rater and committed by the real store.
type fixture struct {
	t       *testing.T
	ctx     context.Context
	db      *sinktest.DB
	cat     *rater.Catalog
	store   *sinks.Store
	reports *report.Reports
	svc     *billing.Service
	offset  int64
	rated   map[string]rater.XDR // every committed xDR by id, as last written
}

// The clients of testdata/catalog.yaml, by id.
const (
	london  = 1
	newYork = 2
	tokyo   = 3
	plain   = 4
)

// The accounts' IPs of the clients.
var ipOf = map[int64]string{london: "192.0.2.1", newYork: "192.0.2.2", tokyo: "192.0.2.3", plain: "192.0.2.4"}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	t.Parallel()
	f := &fixture{t: t, ctx: context.Background(), db: sinktest.New(t), rated: map[string]rater.XDR{}}
	file, err := catalog.Load("testdata/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Apply(f.ctx, f.db.PG, file, catalog.Options{}); err != nil {
		t.Fatal(err)
	}
	if f.cat, err = sinks.NewCatalogLoader(f.db.PG).Load(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.store = sinks.NewStore(f.db.PG, f.db.CH, prometheus.NewRegistry())
	t.Cleanup(f.store.Close)
	f.reports = report.New(f.db.PG, f.db.CH, quiet)
	if f.svc, err = billing.New(billing.Config{}, f.db.PG, f.reports, quiet); err != nil {
		t.Fatal(err)
	}
	return f
}

// exec runs SQL on the test's PostgreSQL database.
func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.db.PG.Exec(f.ctx, sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

// call is one CDR of a test: a client's call to dst that ends (its event
// time) at end and lasts seconds (0: not answered).
type call struct {
	id      string
	client  int64
	dst     string
	end     string // RFC 3339
	seconds int
	vendor  bool // carried by the vendor
}

// rate decodes and rates the calls as the worker does, and commits them
// through the store as the next messages of partition 0.
func (f *fixture) rate(calls ...call) []rater.XDR {
	f.t.Helper()
	xs := make([]rater.XDR, len(calls))
	for i, c := range calls {
		end, err := time.Parse(time.RFC3339, c.end)
		if err != nil {
			f.t.Fatal(err)
		}
		setup := end.Add(-time.Duration(c.seconds+5) * time.Second)
		connect := ""
		if c.seconds > 0 {
			connect = fmt.Sprintf(`"connect_time":%q,`, setup.Add(5*time.Second).Format(time.RFC3339))
		}
		term := ""
		if c.vendor {
			term = `"term_ip":"198.51.100.1",`
		}
		line := fmt.Sprintf(`{"id":%q,"switch":"sw1","setup_time":%q,%s"disconnect_time":%q,"src_ip":%q,%s"dst":%q}`,
			c.id, setup.Format(time.RFC3339), connect, end.Format(time.RFC3339), ipOf[c.client], term, c.dst)
		x := &xs[i]
		x.Raw, x.Offset, x.Received = []byte(line), f.offset+int64(i), end
		if err := ingest.Decode(x.Raw, &x.CDR); err != nil {
			f.t.Fatalf("%s: %v", line, err)
		}
		x.ID = x.CDR.ID
		x.Key = key(x.CDR.Switch, x.CDR.ID)
		f.cat.Rate(&x.CDR, &x.Rating)
	}
	b := &rater.Batch{Topic: "cdrs", Partition: 0, First: f.offset, Next: f.offset + int64(len(xs)), Stored: f.offset, XDRs: xs}
	if f.offset == 0 {
		b.Stored = -1
	}
	if _, err := f.store.Commit(f.ctx, b); err != nil {
		f.t.Fatal(err)
	}
	f.offset = b.Next
	for _, x := range xs {
		f.rated[x.ID] = x
	}
	return xs
}

// rerate writes a new version of the named xDRs with their orig cost
// changed by fn, as a rerating job does: the xDRs through sinks.XDRWriter,
// then in one PostgreSQL transaction the balance deltas (old taken back,
// new added) and the marks of their rollup hours.
func (f *fixture) rerate(fn func(x *rater.XDR), ids ...string) {
	f.t.Helper()
	w := sinks.NewXDRWriter(f.db.CH)
	defer w.Close()
	tx, err := f.db.PG.Begin(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	defer tx.Rollback(f.ctx) //nolint:errcheck
	version, err := sinks.Clock(f.ctx, tx)
	if err != nil {
		f.t.Fatal(err)
	}
	var d sinks.BalanceDeltas
	var xs []rater.XDR
	for _, id := range ids {
		old, ok := f.rated[id]
		if !ok {
			f.t.Fatalf("no xDR %s", id)
		}
		x := old
		fn(&x)
		x.Version = version
		d.SubXDR(&old)
		d.AddXDR(&x)
		xs = append(xs, x)
	}
	if err := w.Write(f.ctx, xs, false); err != nil {
		f.t.Fatal(err)
	}
	if _, err := sinks.ApplyBalanceDeltas(f.ctx, tx, &d); err != nil {
		f.t.Fatal(err)
	}
	if err := sinks.MarkRollupHours(f.ctx, tx, xs); err != nil {
		f.t.Fatal(err)
	}
	if err := tx.Commit(f.ctx); err != nil {
		f.t.Fatal(err)
	}
	for _, x := range xs {
		f.rated[x.ID] = x
	}
}

// finalSum is what xdrs FINAL holds of a client's rated orig costs with an
// event time in [from, to) of tz: the figure invariant 7 names.
func (f *fixture) finalSum(client int64, from, to, tz string) decimal.Decimal {
	f.t.Helper()
	loc, err := time.LoadLocation(tz)
	if err != nil {
		f.t.Fatal(err)
	}
	a, b := day(f.t, from).Start(loc), day(f.t, to).Start(loc)
	var s string
	if err := f.db.CH.QueryRow(f.ctx, `SELECT toString(sum(orig_cost)) FROM xdrs FINAL
		WHERE status = 'rated' AND orig_client_id = ? AND event_time >= toDateTime(?) AND event_time < toDateTime(?)`,
		uint64(client), a.Unix(), b.Unix()).Scan(&s); err != nil {
		f.t.Fatal(err)
	}
	return decimal.RequireFromString(s)
}

// fixed is a client's fixed balance.
func (f *fixture) fixed(client int64) decimal.Decimal {
	f.t.Helper()
	var s string
	if err := f.db.PG.QueryRow(f.ctx, `SELECT fixed::text FROM client_balances WHERE client_id = $1`, client).Scan(&s); err != nil {
		f.t.Fatal(err)
	}
	return decimal.RequireFromString(s)
}

// create makes (or regenerates) the invoice of a client and period.
func (f *fixture) create(client int64, from, to string) *billing.Invoice {
	f.t.Helper()
	inv, err := f.svc.Create(f.ctx, billing.Caller{}, fmt.Sprint(client), day(f.t, from), day(f.t, to))
	if err != nil {
		f.t.Fatal(err)
	}
	return inv
}

func (f *fixture) approve(id int64) *billing.Invoice {
	f.t.Helper()
	inv, err := f.svc.Approve(f.ctx, billing.Caller{}, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return inv
}

func day(t testing.TB, s string) billing.Date {
	t.Helper()
	d, err := billing.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

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

// sum adds up an invoice's traffic lines.
func sum(inv *billing.Invoice) decimal.Decimal {
	var s decimal.Decimal
	for _, l := range inv.Lines {
		s = s.Add(l.Amount)
	}
	return s
}
