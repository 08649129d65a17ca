package report_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/sinks"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

// BenchmarkSummary10M is `make bench-reports`: the summary by day × orig
// client over 10M xDRs (30 days, 50 customers on 100 accounts, 5 vendors,
// 300 destinations with a skew, as real traffic has), generated straight
// into ClickHouse, then 1 % of them rerated (new versions, some moved to
// another customer) and late CDRs added for hours already summarised. Each
// stage checks the rollup summary against a plain xdrs FINAL computation
// and prints both times. TARIFA_BENCH_XDRS changes the count.
func BenchmarkSummary10M(b *testing.B) {
	n := 10_000_000
	if v, err := strconv.Atoi(os.Getenv("TARIFA_BENCH_XDRS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	db := sinktest.New(b)
	reps := report.New(db.PG, db.CH, quiet)
	if _, err := db.PG.Exec(ctx, `
		INSERT INTO resellers (id, name, currency) VALUES (1, 'R1', 'USD'), (2, 'R2', 'EUR');
		INSERT INTO clients (id, reseller_id, name, currency)
			SELECT i, 1 + i % 2, 'customer ' || i, CASE WHEN i % 2 = 0 THEN 'EUR' ELSE 'USD' END FROM generate_series(1, 55) i;
		INSERT INTO accounts (id, client_id, kind, ident) SELECT i, 1 + i % 50, 'ip', '10.0.' || (i / 250) || '.' || (i % 250) FROM generate_series(1, 100) i;`); err != nil {
		b.Fatal(err)
	}
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	span := 30 * 24 * time.Hour
	step := span.Seconds() / float64(n)
	_ = step
	gen := func(from, count, idBase int, setupExpr string) string {
		// Deterministic rows from number; money is integer micro-units
		// turned into Decimal(18, 6) inside ClickHouse.
		return fmt.Sprintf(`INSERT INTO xdrs (cdr_id, switch, event_time, setup_time, connect_time, disconnect_time, duration_ms, dst,
			status, reason, reseller_id, orig_client_id, orig_account_id, orig_code, orig_code_name, orig_billed_seconds, orig_cost,
			term_client_id, term_reason, term_billed_seconds, term_cost, currency, orig_currency, term_currency, version)
		SELECT concat('b', toString(number + %d)) AS id, 'sw1', setup + dur AS ev, setup, if(dur > 0, setup, NULL), setup + dur, dur * 1000,
			concat('44', toString(intHash32(number) %% 100000000)),
			if(intHash32(number + 7) %% 50 = 0, 'mismatch', 'rated'), if(intHash32(number + 7) %% 50 = 0, 'unknown_destination', ''),
			1 + acct %% 50 %% 2, 1 + acct %% 50, acct,
			toString(440 + dest), concat('Destination ', toString(dest)), toUInt32(dur), toDecimal64(dur * (100 + dest), 0) / 1000000,
			51 + intHash32(number + 3) %% 5, '', toUInt32(dur), toDecimal64(dur * (60 + dest), 0) / 1000000,
			if((acct %% 50) %% 2 = 0, 'EUR', 'USD'), if((acct %% 50) %% 2 = 0, 'EUR', 'USD'), if((51 + intHash32(number + 3) %% 5) %% 2 = 0, 'EUR', 'USD'), 1
		FROM (SELECT number, %s AS setup, toUInt64(if(intHash32(number + 1) %% 100 < 55, 1 + intHash32(number + 2) %% 600, 0)) AS dur,
			1 + intHash32(number + 4) %% 100 AS acct, (intHash32(number + 5) %% 300) * (intHash32(number + 6) %% 300) %% 300 AS dest
			FROM numbers(%d, %d))`, idBase, setupExpr, from, count)
	}
	t0 := time.Now()
	if err := db.CH.Exec(ctx, gen(0, n, 0, fmt.Sprintf("toDateTime(%d + intDiv(number * %d, %d))", start.Unix(), int64(span.Seconds()), n))); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("generated %d xDRs over 30 days in %.1f s\n", n, time.Since(t0).Seconds())
	if _, err := sinks.Backfill(ctx, db.PG, db.CH); err != nil { // marks every hour, as tarifa migrate does
		b.Fatal(err)
	}
	refresh := func(stage string) {
		t := time.Now()
		res, err := reps.RefreshRollups(ctx, 0)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Printf("%-42s rollups of %d setup hours recomputed in %.2f s\n", stage, res.Hours, time.Since(t).Seconds())
	}
	p := report.Period{From: start, To: start.Add(span + 24*time.Hour), Loc: time.UTC}
	q := report.SummaryQuery{Period: p, By: []string{"day", "orig_client"}}
	measure := func(stage string) time.Duration {
		var best time.Duration
		var fast string
		var src report.Source
		for i := 0; i < 3; i++ {
			t := time.Now()
			s, err := reps.Summary(ctx, report.Scope{}, q)
			if err != nil {
				b.Fatal(err)
			}
			d := time.Since(t)
			if i == 0 || d < best {
				best = d
			}
			fast, src = render(b, s), s.Source
		}
		eq := q
		eq.Exact = true
		t := time.Now()
		s, err := reps.Summary(ctx, report.Scope{}, eq)
		if err != nil {
			b.Fatal(err)
		}
		exact := time.Since(t)
		if render(b, s) != fast {
			b.Fatalf("%s: the rollup summary differs from xdrs FINAL", stage)
		}
		fmt.Printf("%-42s summary day x orig_client: %.3f s (best of 3; %s); xdrs FINAL: %.3f s; equal\n",
			stage, best.Seconds(), src, exact.Seconds())
		return best
	}
	refresh("after generation:")
	b.ResetTimer()
	first := measure("10M xDRs summarised:")

	// 1 % rerated: new versions with other costs, every tenth moved to
	// another customer, as a rerating job commits them (marking the hours).
	t1 := time.Now()
	if err := db.CH.Exec(ctx, `INSERT INTO xdrs (cdr_id, switch, event_time, setup_time, connect_time, disconnect_time, duration_ms, dst,
			status, reason, reseller_id, orig_client_id, orig_account_id, orig_code, orig_code_name, orig_billed_seconds, orig_cost,
			term_client_id, term_reason, term_billed_seconds, term_cost, currency, orig_currency, term_currency, version)
		SELECT cdr_id, switch, event_time, setup_time, connect_time, disconnect_time, duration_ms, dst,
			status, reason, reseller_id, if(cityHash64(cdr_id) % 1000 < 10, 1 + orig_client_id % 50, orig_client_id), orig_account_id,
			orig_code, orig_code_name, orig_billed_seconds, orig_cost * 2,
			term_client_id, term_reason, term_billed_seconds, term_cost, currency, orig_currency, term_currency, version + 1
		FROM xdrs FINAL WHERE cityHash64(cdr_id) % 100 = 7`); err != nil {
		b.Fatal(err)
	}
	markAll(b, db, start, span)
	fmt.Printf("rerated 1%% (new versions of %d hours' calls) in %.1f s\n", int(span.Hours()), time.Since(t1).Seconds())
	measure("right after the rerating (not summarised):")
	refresh("rerating:")
	afterRerate := measure("after the rerating was summarised:")

	// Late CDRs: 20k calls set up in 10 hours already summarised.
	if err := db.CH.Exec(ctx, gen(0, 20000, n, fmt.Sprintf("toDateTime(%d + (number %% 10) * 86400 * 2 + intDiv(number, 10) %% 3600)", start.Unix()))); err != nil {
		b.Fatal(err)
	}
	var marks []rater.XDR
	for i := 0; i < 10; i++ {
		marks = append(marks, rater.XDR{CDR: ingest.CDR{SetupTime: start.Add(time.Duration(i) * 48 * time.Hour)}})
	}
	mark(b, db, marks)
	late := measure("right after 20k late CDRs in 10 old hours:")
	refresh("late CDRs:")
	measure("after the late CDRs were summarised:")
	b.ReportMetric(first.Seconds(), "s/summary")
	b.ReportMetric(afterRerate.Seconds(), "s/summary-after-rerate")
	b.ReportMetric(late.Seconds(), "s/summary-late-unsummarised")
}

func render(b *testing.B, s *report.Summary) string {
	var w stringsBuilder
	if err := s.Table().Render(&w, "json"); err != nil {
		b.Fatal(err)
	}
	return w.String()
}

// markAll marks every setup hour of the span, as the commits of a
// rerating of the whole span do.
func markAll(b *testing.B, db *sinktest.DB, start time.Time, span time.Duration) {
	var marks []rater.XDR
	for h := start; h.Before(start.Add(span)); h = h.Add(time.Hour) {
		marks = append(marks, rater.XDR{CDR: ingest.CDR{SetupTime: h}})
	}
	mark(b, db, marks)
}

func mark(b *testing.B, db *sinktest.DB, xs []rater.XDR) {
	ctx := context.Background()
	tx, err := db.PG.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := sinks.MarkRollupHours(ctx, tx, xs); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		b.Fatal(err)
	}
}
