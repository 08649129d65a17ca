package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/sinks"
)

const reportIntro = `Prints reports of rated traffic (ClickHouse xdrs FINAL, so a rerated call counts once,
with its current figures) and balances. The period is [--from, --to) on the calls' billing
event time; dates (YYYY-MM-DD) are midnight in --tz, RFC 3339 times are taken as written,
and it must lie in 1970-2105. Money is never added across currencies: rows and totals are
per currency. Numbers are masked by each client's hidden digits.`

// reportSubs says what each report is, in the order 'tarifa report --help'
// lists them; a report's own --help shows its line alone.
var reportSubs = [][2]string{
	{"summary", `rated calls grouped by --by: calls, answered, ASR %, ACD, billed minutes,
              revenue (orig cost), cost (term cost), profit, margin %`},
	{"origterm", `per customer x vendor x code name: calls, minutes and money of each side,
              profit and margin`},
	{"mismatches", `calls not rated (orig reasons), rated without a vendor cost (term reasons,
              no_term_leg): calls, duration, example ids and numbers per reason`},
	{"balance", `per client and day or month: opening, payments, charges, credits or
              invoices, closing (each closing the next opening)`},
	{"refresh", `recompute the summary's rollups of the hours that changed (the worker does
              this every few seconds; reports are exact either way)`},
}

// reportSummary is the help of 'tarifa report': the intro and every report.
var reportSummary = func() string {
	var b strings.Builder
	b.WriteString(reportIntro + "\n\nSubcommands:\n")
	for _, s := range reportSubs {
		fmt.Fprintf(&b, "  %-11s %s\n", s[0], s[1])
	}
	b.WriteString("\nRun 'tarifa report SUBCOMMAND --help' for its flags.")
	return b.String()
}()

// wrap breaks text into lines of at most width columns, between words.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for _, w := range strings.Fields(text) {
		if n > 0 && n+1+len(w) > width {
			b.WriteByte('\n')
			n = 0
		} else if n > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

// reportHelp is the help of one report: what it is, then the intro.
func reportHelp(sub string) string {
	for _, s := range reportSubs {
		if s[0] == sub {
			return wrap("The "+sub+" report: "+strings.Join(strings.Fields(s[1]), " ")+".", 90) + "\n\n" + reportIntro
		}
	}
	return reportIntro
}

var reportUsages = map[string]string{
	"summary":    "report summary --from T --to T [--tz ZONE] [--by day,orig_client,…] [--client C]… [--vendor V]… [--reseller R]… [--tag T]… [--code-name N]… [--sort [-]COLUMN] [--limit N] [--exact] [--format table|csv|json]",
	"origterm":   "report origterm --from T --to T [--tz ZONE] [--client C]… [--vendor V]… [--reseller R]… [--tag T]… [--code-name N]… [--limit N] [--exact] [--format table|csv|json]",
	"mismatches": "report mismatches --from T --to T [--tz ZONE] [--by orig_client,day,…] [--client C]… [--reseller R]… [--tag T]… [--format table|csv|json]",
	"balance":    "report balance --from T --to T [--tz ZONE] [--mode live|fixed] [--by day|month] [--client C]… [--reseller R]… [--tag T]… [--exact] [--format table|csv|json]",
	"refresh":    "report refresh [--settle 0s]",
}

// listFlag collects a repeatable flag whose values may also be comma lists.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || reportUsages[args[0]] == "" {
		help := len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help")
		w := stderr
		if help {
			w = stdout
		}
		fmt.Fprintf(w, "Usage: tarifa report SUBCOMMAND [flags]\n\n%s\n", reportSummary)
		if help {
			return flag.ErrHelp
		}
		if len(args) > 0 {
			fmt.Fprintf(stderr, "\nunknown report %q\n", args[0])
		}
		return errUsage
	}
	sub := args[0]
	fs := newFlagSet("report "+sub, reportUsages[sub], reportHelp(sub), stderr)
	chDSN := fs.String("clickhouse-dsn", env("TARIFA_CLICKHOUSE_DSN", defaultClickHouseDSN), "ClickHouse DSN (env TARIFA_CLICKHOUSE_DSN)")
	pgDSN := fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN: catalog, balances, rollup state (env TARIFA_PG_DSN)")
	var fromFlag, toFlag, tz, format, by, sortFlag *string
	var limit *int
	var exact *bool
	var filter report.Filter
	settle := new(time.Duration)
	if sub != "refresh" {
		fromFlag = fs.String("from", "", "start of the period, YYYY-MM-DD (in --tz) or RFC 3339 (required)")
		toFlag = fs.String("to", "", "end of the period, exclusive, YYYY-MM-DD (in --tz) or RFC 3339 (required)")
		tz = fs.String("tz", "UTC", "IANA timezone of dates and of day, hour and month groups")
		format = fs.String("format", "table", "table, csv or json")
		fs.Var((*listFlag)(&filter.Clients), "client", "only this customer (name or id; repeat or comma-separate for several)")
		fs.Var((*listFlag)(&filter.Resellers), "reseller", "only customers of this reseller and its sub-resellers (name or id)")
		fs.Var((*listFlag)(&filter.Tags), "tag", "only customers with this tag")
	}
	switch sub {
	case "summary":
		by = fs.String("by", "day", "groups, comma separated: "+strings.Join(report.Dimensions, ", ")+"; empty for one total row per currency")
	case "mismatches":
		by = fs.String("by", "", "groups besides side and reason, comma separated: "+strings.Join(report.MismatchDimensions, ", "))
	case "balance":
		by = fs.String("by", "day", "step: day or month (in --tz)")
	}
	switch sub {
	case "summary", "origterm":
		fs.Var((*listFlag)(&filter.Vendors), "vendor", "only calls terminated by this vendor (name or id)")
		fs.Var((*listFlag)(&filter.CodeNames), "code-name", "only this destination (orig code name, exactly)")
		limit = fs.Int("limit", 0, "print the first N rows (after sorting); totals still cover all; 0 for all")
	}
	if sub == "summary" {
		sortFlag = fs.String("sort", "", "sort by this column; -COLUMN for descending (default: by the groups)")
	}
	switch sub {
	case "summary", "origterm", "balance":
		exact = fs.Bool("exact", false, "read xdrs FINAL only, not the rollups (the same figures, slower)")
	}
	mode := new(string)
	if sub == "balance" {
		mode = fs.String("mode", "live", "live (calls and transactions) or fixed (transactions and approved invoices)")
	}
	if sub == "refresh" {
		settle = fs.Duration("settle", 0, "only hours that ended and were last changed at least this long ago")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	usage := func(err error) error {
		fmt.Fprintf(stderr, "%v\n", err)
		fs.Usage()
		return errUsage
	}
	var p report.Period
	if sub != "refresh" {
		var err error
		if p, err = report.ParsePeriod(*fromFlag, *toFlag, *tz); err != nil {
			return usage(err)
		}
		if *format != "table" && *format != "csv" && *format != "json" {
			return usage(errors.New("--format must be table, csv or json"))
		}
	}
	dims := map[string][]string{"summary": report.Dimensions, "mismatches": report.MismatchDimensions}[sub]
	if dims != nil {
		for _, d := range splitList(*by) {
			if !contains(dims, d) {
				return usage(fmt.Errorf("--by: unknown group %q (want %s)", d, strings.Join(dims, ", ")))
			}
		}
	}

	pg, err := sinks.OpenPostgres(ctx, *pgDSN)
	if err != nil {
		return err
	}
	defer pg.Close()
	ch, err := sinks.OpenClickHouse(ctx, *chDSN)
	if err != nil {
		return err
	}
	defer ch.Close()
	reps := report.New(pg, ch, newLogger(stderr))

	var t *report.Table
	switch sub {
	case "refresh":
		res, err := reps.RefreshRollups(ctx, *settle)
		if err != nil {
			return err
		}
		if res.Busy {
			fmt.Fprintln(stdout, "another refresh is running; nothing done")
			return nil
		}
		fmt.Fprintf(stdout, "recomputed the rollups of %d setup hour(s)\n", res.Hours)
		return nil
	case "summary":
		var s *report.Summary
		s, err = reps.Summary(ctx, report.Scope{}, report.SummaryQuery{Period: p, By: splitList(*by), Filter: filter,
			Sort: *sortFlag, Limit: *limit, Exact: *exact})
		if err == nil {
			t = s.Table()
		}
	case "origterm":
		var o *report.OrigTerm
		o, err = reps.OrigTerm(ctx, report.Scope{}, report.OrigTermQuery{Period: p, Filter: filter, Limit: *limit, Exact: *exact})
		if err == nil {
			t = o.Table()
		}
	case "mismatches":
		var m *report.Mismatches
		m, err = reps.Mismatches(ctx, report.Scope{}, report.MismatchQuery{Period: p, By: splitList(*by), Filter: filter})
		if err == nil {
			t = m.Table()
		}
	case "balance":
		var b *report.Balance
		b, err = reps.Balance(ctx, report.Scope{}, report.BalanceQuery{Period: p, Mode: *mode, By: *by, Filter: filter, Exact: *exact})
		if err == nil {
			t = b.Table()
		}
	}
	var pe *report.ParamError
	if errors.As(err, &pe) {
		return usage(err)
	}
	if err != nil {
		return err
	}
	return t.Render(stdout, *format)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
