package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/sinks"
)

const reportSummary = `Print reports from ClickHouse (xdrs FINAL, so rerated calls count once).
The period is [--from, --to) on the calls' billing event time; dates
(YYYY-MM-DD) are midnight in --tz, RFC 3339 times are taken as written.

Subcommands:
  summary     rated calls grouped by --by: calls, answered, ASR %, ACD, billed
              minutes, revenue (orig cost), cost (term cost), profit, margin %
  mismatches  calls not rated (orig reasons) or rated without a vendor cost
              (term reasons): count, duration and example CDR ids per reason`

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "summary" && args[0] != "mismatches") {
		fs := newFlagSet("report", "report summary|mismatches --from T --to T [--tz ZONE] [flags]", reportSummary, stderr)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help") {
			return parseFlags(fs, []string{"-h"})
		}
		fs.Usage()
		return errUsage
	}
	sub := args[0]
	fs := newFlagSet("report "+sub, "report "+sub+" --from T --to T [--tz ZONE] [flags]", reportSummary, stderr)
	fromFlag := fs.String("from", "", "start of the period, YYYY-MM-DD (in --tz) or RFC 3339 (required)")
	toFlag := fs.String("to", "", "end of the period, exclusive, YYYY-MM-DD (in --tz) or RFC 3339 (required)")
	tz := fs.String("tz", "UTC", "IANA timezone of dates and of day, hour and month groups")
	by := fs.String("by", "day", "summary groups, comma separated: "+strings.Join(sinks.SummaryDimensions, ", ")+"; empty for one total row")
	format := fs.String("format", "table", "table or csv")
	chDSN := fs.String("clickhouse-dsn", env("TARIFA_CLICKHOUSE_DSN", defaultClickHouseDSN), "ClickHouse DSN (env TARIFA_CLICKHOUSE_DSN)")
	pgDSN := fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN for client and reseller names (env TARIFA_PG_DSN); empty to print ids")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	usage := func(format string, a ...any) error {
		fmt.Fprintf(stderr, format+"\n", a...)
		fs.Usage()
		return errUsage
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return usage("--tz: unknown time zone %q", *tz)
	}
	if *fromFlag == "" || *toFlag == "" {
		return usage("--from and --to are required")
	}
	from, err := parseReportTime(*fromFlag, loc)
	if err != nil {
		return usage("--from: %v", err)
	}
	to, err := parseReportTime(*toFlag, loc)
	if err != nil {
		return usage("--to: %v", err)
	}
	if !to.After(from) {
		return usage("--to must be after --from")
	}
	if *format != "table" && *format != "csv" {
		return usage("--format must be table or csv")
	}
	var groups []string
	for _, g := range strings.Split(*by, ",") {
		if g = strings.TrimSpace(g); g != "" {
			groups = append(groups, g)
		}
	}

	ch, err := sinks.OpenClickHouse(ctx, *chDSN)
	if err != nil {
		return err
	}
	defer ch.Close()
	period := fmt.Sprintf("%s to %s (%s), event time in [from, to)",
		from.In(loc).Format("2006-01-02 15:04"), to.In(loc).Format("2006-01-02 15:04"), loc)

	var t reportTable
	if sub == "mismatches" {
		rows, err := sinks.Mismatches(ctx, ch, from, to)
		if err != nil {
			return err
		}
		t.title = "Mismatches, " + period + ". Orig reasons are not billed until rerated; term reasons are billed without a vendor cost."
		t.header = []string{"side", "reason", "calls", "duration_s", "examples"}
		t.right = []bool{false, false, true, true, false}
		var total sinks.MismatchRow
		for _, r := range rows {
			t.rows = append(t.rows, []string{r.Side, r.Reason, strconv.FormatUint(r.Calls, 10),
				decimal.New(int64(r.DurationMs), -3).StringFixed(3), strings.Join(r.Examples, " ")})
			total.Calls += r.Calls
			total.DurationMs += r.DurationMs
		}
		if len(rows) > 1 {
			t.total = []string{"total", "", strconv.FormatUint(total.Calls, 10), decimal.New(int64(total.DurationMs), -3).StringFixed(3), ""}
		}
		return t.write(stdout, *format)
	}

	for _, g := range groups {
		if !contains(sinks.SummaryDimensions, g) {
			return usage("--by: unknown group %q (want %s)", g, strings.Join(sinks.SummaryDimensions, ", "))
		}
	}
	rows, err := sinks.Summary(ctx, ch, sinks.SummaryQuery{From: from, To: to, Loc: loc, By: groups})
	if err != nil {
		return err
	}
	names := reportNames(ctx, *pgDSN, groups, stderr)
	t.title = "Summary of rated calls (mismatches excluded: see tarifa report mismatches), " + period
	t.header = append(append([]string(nil), groups...), "calls", "answered", "asr_pct", "acd_s", "minutes", "revenue", "cost", "profit", "margin_pct")
	for range groups {
		t.right = append(t.right, false)
	}
	for range 9 {
		t.right = append(t.right, true)
	}
	var total sinks.SummaryRow
	for _, r := range rows {
		keys := make([]string, len(r.Keys))
		for i, k := range r.Keys {
			keys[i] = names.name(groups[i], k)
		}
		t.rows = append(t.rows, append(keys, summaryFigures(r)...))
		total.Add(r)
	}
	if len(rows) > 1 && len(groups) > 0 {
		keys := make([]string, len(groups))
		keys[0] = "total"
		t.total = append(keys, summaryFigures(total)...)
	}
	return t.write(stdout, *format)
}

func summaryFigures(r sinks.SummaryRow) []string {
	margin := ""
	if m, ok := r.Margin(); ok {
		margin = m.StringFixed(2)
	}
	return []string{
		strconv.FormatUint(r.Calls, 10), strconv.FormatUint(r.Answered, 10),
		r.ASR().StringFixed(2), r.ACD().StringFixed(1), r.Minutes().StringFixed(2),
		r.Revenue.StringFixed(6), r.Cost.StringFixed(6), r.Profit().StringFixed(6), margin,
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// parseReportTime reads a date (midnight in loc) or an RFC 3339 time.
func parseReportTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither YYYY-MM-DD nor RFC 3339", s)
	}
	return t, nil
}

// reportNamer maps the ids of reseller, client and account groups to names.
type reportNamer map[string]map[string]string

func (n reportNamer) name(group, id string) string {
	if v, ok := n[group][id]; ok {
		return v
	}
	if id == "0" && (group == "term_client" || group == "reseller" || group == "orig_client" || group == "account") {
		return "-"
	}
	return id
}

// reportNames reads names from PostgreSQL for the groups that hold ids; on
// any failure the report shows ids, with a note on stderr.
func reportNames(ctx context.Context, dsn string, groups []string, stderr io.Writer) reportNamer {
	queries := map[string]string{
		"reseller":    "SELECT id::text, name FROM resellers",
		"orig_client": "SELECT id::text, name FROM clients",
		"term_client": "SELECT id::text, name FROM clients",
		"account":     "SELECT id::text, kind || ' ' || ident || CASE WHEN tech_prefix <> '' THEN ' ' || tech_prefix ELSE '' END FROM accounts",
	}
	out := reportNamer{}
	need := false
	for _, g := range groups {
		_, ok := queries[g]
		need = need || ok
	}
	if !need || dsn == "" {
		return out
	}
	pool, err := sinks.OpenPostgres(ctx, dsn)
	if err != nil {
		fmt.Fprintf(stderr, "showing ids instead of names: %v\n", err)
		return out
	}
	defer pool.Close()
	for _, g := range groups {
		q, ok := queries[g]
		if !ok {
			continue
		}
		rows, err := pool.Query(ctx, q)
		if err != nil {
			fmt.Fprintf(stderr, "showing ids instead of names: %v\n", err)
			return reportNamer{}
		}
		m := map[string]string{}
		var id, name string
		_, err = pgx.ForEachRow(rows, []any{&id, &name}, func() error { m[id] = name; return nil })
		if err != nil {
			fmt.Fprintf(stderr, "showing ids instead of names: %v\n", err)
			return reportNamer{}
		}
		out[g] = m
	}
	return out
}

// reportTable is a report ready to print: aligned for people, or CSV with
// a header row (no title, no total row) for programs.
type reportTable struct {
	title  string
	header []string
	right  []bool // right-align the column
	rows   [][]string
	total  []string
}

func (t *reportTable) write(w io.Writer, format string) error {
	if format == "csv" {
		cw := csv.NewWriter(w)
		cw.Write(t.header)
		cw.WriteAll(t.rows)
		return cw.Error()
	}
	all := append([][]string{t.header}, t.rows...)
	if t.total != nil {
		all = append(all, t.total)
	}
	widths := make([]int, len(t.header))
	for _, r := range all {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	b.WriteString(t.title + "\n\n")
	line := func(r []string) {
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if t.right[i] {
				b.WriteString(pad + c)
			} else if i < len(r)-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(c)
			}
		}
		b.WriteString("\n")
	}
	line(t.header)
	for _, r := range t.rows {
		line(r)
	}
	if len(t.rows) == 0 {
		b.WriteString("(no calls)\n")
	}
	if t.total != nil {
		line(t.total)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
