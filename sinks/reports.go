package sinks

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
)

// Report periods are [From, To) on xdrs.event_time (the client's billing
// event), and calendar groupings are read in Loc. Reports read `xdrs FINAL`,
// so a rerated or replayed CDR counts once, with its current figures.

// SummaryDimensions are the groupings Summary accepts, in the order they
// are documented.
var SummaryDimensions = []string{"day", "hour", "month", "reseller", "orig_client", "term_client", "account", "code", "code_name"}

// summaryKey is the ClickHouse expression of a grouping; {tz} stands for the
// quoted timezone.
var summaryKey = map[string]string{
	"day":         "toString(toDate(event_time, {tz}))",
	"hour":        "substring(toString(toStartOfHour(event_time, {tz}), {tz}), 1, 16)",
	"month":       "substring(toString(toStartOfMonth(event_time, {tz})), 1, 7)",
	"reseller":    "toString(reseller_id)",
	"orig_client": "toString(orig_client_id)",
	"term_client": "toString(term_client_id)",
	"account":     "toString(orig_account_id)",
	"code":        "orig_code",
	"code_name":   "orig_code_name",
}

// SummaryQuery selects and groups the summary report.
type SummaryQuery struct {
	From, To time.Time
	Loc      *time.Location // for day, hour and month; nil means UTC
	By       []string       // any of SummaryDimensions; none means one total row
}

// SummaryRow is one group of rated calls. Keys has one value per grouping:
// a date, hour ("2006-01-02 15:00") or month ("2006-01") in the report's
// timezone, an id (reseller, clients, account; "0" for none) or a code or
// code name.
type SummaryRow struct {
	Keys          []string
	Calls         uint64
	Answered      uint64
	AnsweredMs    uint64 // total duration of answered calls
	BilledSeconds uint64 // orig billed seconds
	Revenue       decimal.Decimal
	Cost          decimal.Decimal
}

// ASR is answered / calls × 100, rounded to 2 decimals.
func (r SummaryRow) ASR() decimal.Decimal {
	if r.Calls == 0 {
		return decimal.Zero
	}
	return decimal.NewFromInt(int64(r.Answered)).Mul(decimal.NewFromInt(100)).DivRound(decimal.NewFromInt(int64(r.Calls)), 2)
}

// ACD is the average answered call duration in seconds, rounded to 1
// decimal.
func (r SummaryRow) ACD() decimal.Decimal {
	if r.Answered == 0 {
		return decimal.Zero
	}
	return decimal.New(int64(r.AnsweredMs), -3).DivRound(decimal.NewFromInt(int64(r.Answered)), 1)
}

// Minutes are the billed orig minutes, rounded to 2 decimals.
func (r SummaryRow) Minutes() decimal.Decimal {
	return decimal.NewFromInt(int64(r.BilledSeconds)).DivRound(decimal.NewFromInt(60), 2)
}

// Profit is revenue − cost, exact.
func (r SummaryRow) Profit() decimal.Decimal { return r.Revenue.Sub(r.Cost) }

// Margin is profit / revenue × 100, rounded to 2 decimals; ok is false
// when there is no revenue.
func (r SummaryRow) Margin() (m decimal.Decimal, ok bool) {
	if r.Revenue.IsZero() {
		return decimal.Zero, false
	}
	return r.Profit().Mul(decimal.NewFromInt(100)).DivRound(r.Revenue, 2), true
}

// Add adds o's figures to r (for totals).
func (r *SummaryRow) Add(o SummaryRow) {
	r.Calls += o.Calls
	r.Answered += o.Answered
	r.AnsweredMs += o.AnsweredMs
	r.BilledSeconds += o.BilledSeconds
	r.Revenue = r.Revenue.Add(o.Revenue)
	r.Cost = r.Cost.Add(o.Cost)
}

// Summary returns the rated calls of the period grouped by q.By, sorted by
// the keys. Only xDRs with status rated count: mismatches are in
// Mismatches. A call is answered when it has a connect time or a duration.
// Revenue is the sum of orig costs and cost the sum of term costs, exact.
func Summary(ctx context.Context, conn driver.Conn, q SummaryQuery) ([]SummaryRow, error) {
	tz := tzLiteral(q.Loc)
	keys := make([]string, 0, len(q.By))
	for i, by := range q.By {
		expr, ok := summaryKey[by]
		if !ok {
			return nil, fmt.Errorf("summary: unknown grouping %q (want %s)", by, strings.Join(SummaryDimensions, ", "))
		}
		keys = append(keys, strings.ReplaceAll(expr, "{tz}", tz)+fmt.Sprintf(" AS k%d", i))
	}
	sel := "SELECT tuple()"
	group := ""
	if len(keys) > 0 {
		sel = "SELECT [" + strings.Join(keys, ", ") + "]"
		ks := make([]string, len(keys))
		for i := range ks {
			ks[i] = fmt.Sprintf("k%d", i)
		}
		group = " GROUP BY " + strings.Join(ks, ", ")
	}
	query := sel + `,
		count() AS calls,
		countIf(duration_ms > 0 OR isNotNull(connect_time)) AS answered,
		sumIf(duration_ms, duration_ms > 0 OR isNotNull(connect_time)) AS answered_ms,
		sum(toUInt64(orig_billed_seconds)) AS billed,
		toString(sum(orig_cost)) AS revenue,
		toString(sum(term_cost)) AS cost
	FROM xdrs FINAL
	WHERE status = 'rated' AND event_time >= toDateTime(?) AND event_time < toDateTime(?)` + group
	if len(keys) == 0 {
		query = strings.Replace(query, "SELECT tuple(),", "SELECT", 1)
	}
	rows, err := conn.Query(ctx, query, q.From.Unix(), q.To.Unix())
	if err != nil {
		return nil, fmt.Errorf("summary query: %w", err)
	}
	defer rows.Close()
	var out []SummaryRow
	for rows.Next() {
		var r SummaryRow
		var revenue, cost string
		dest := []any{&r.Calls, &r.Answered, &r.AnsweredMs, &r.BilledSeconds, &revenue, &cost}
		if len(keys) > 0 {
			dest = append([]any{&r.Keys}, dest...)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("summary scan: %w", err)
		}
		if r.Revenue, err = decimal.NewFromString(revenue); err != nil {
			return nil, fmt.Errorf("summary revenue %q: %w", revenue, err)
		}
		if r.Cost, err = decimal.NewFromString(cost); err != nil {
			return nil, fmt.Errorf("summary cost %q: %w", cost, err)
		}
		if len(keys) == 0 && r.Calls == 0 {
			continue // no traffic: no rows rather than a row of zeros
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("summary query: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Keys, out[j].Keys
		for k := range a {
			if a[k] != b[k] {
				return a[k] < b[k]
			}
		}
		return false
	})
	return out, nil
}

// MismatchRow is one mismatch reason: orig reasons (status mismatch, the
// call is not billed) and term reasons (the orig side is billed, the
// vendor side is not).
type MismatchRow struct {
	Reason     string
	Side       string // orig | term
	Calls      uint64
	DurationMs uint64
	Examples   []string // up to 3 cdr_ids, sorted
}

// Mismatches returns the calls of the period whose orig or term side was
// not rated, by reason: orig reasons first, then term reasons, each by
// descending count.
func Mismatches(ctx context.Context, conn driver.Conn, from, to time.Time) ([]MismatchRow, error) {
	var out []MismatchRow
	for _, side := range []struct{ name, reason, where string }{
		{"orig", "reason", "status = 'mismatch'"},
		{"term", "term_reason", "status = 'rated' AND term_reason != ''"},
	} {
		rows, err := conn.Query(ctx, `
			SELECT `+side.reason+` AS r, count(), sum(duration_ms), groupArray(3)(cdr_id)
			FROM xdrs FINAL
			WHERE `+side.where+` AND event_time >= toDateTime(?) AND event_time < toDateTime(?)
			GROUP BY r ORDER BY count() DESC, r`, from.Unix(), to.Unix())
		if err != nil {
			return nil, fmt.Errorf("mismatches query: %w", err)
		}
		for rows.Next() {
			m := MismatchRow{Side: side.name}
			if err := rows.Scan(&m.Reason, &m.Calls, &m.DurationMs, &m.Examples); err != nil {
				rows.Close()
				return nil, fmt.Errorf("mismatches scan: %w", err)
			}
			sort.Strings(m.Examples)
			out = append(out, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("mismatches query: %w", err)
		}
	}
	return out, nil
}

// tzLiteral quotes loc's name for a ClickHouse query; IANA names hold no
// quote, and a name that could is replaced by UTC rather than escaped.
func tzLiteral(loc *time.Location) string {
	name := "UTC"
	if loc != nil && loc.String() != "Local" {
		name = loc.String()
	}
	if strings.ContainsAny(name, `'\`) {
		name = "UTC"
	}
	return "'" + name + "'"
}
