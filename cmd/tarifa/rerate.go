package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tarifa/tarifa/report"
	"github.com/tarifa/tarifa/rerate"
	"github.com/tarifa/tarifa/sinks"
)

const rerateSummary = `Rate past CDRs again from cdrs_raw against the catalog as it is now, both legs,
account matching included (a call may change client, or go from mismatch to
rated), and move each client's live balance by exactly the difference, once.

Selects the CDRs set up in [--from, --to) (dates are midnight in --tz) whose
current xDR matches the filters: --client on the chosen --side, --status,
--reason (orig or term_* reasons), --code (a prefix of the dialed number).
--dry-run changes nothing and shows, per client, side and currency, the calls,
the old and new sums and the delta (a live balance moves by −delta for an orig
row, +delta for a term row), the reason transitions and the invoices whose
period the selection touches. --yes runs the job, with a progress line on
stderr, and prints the same result when done.

A job killed in the middle is finished by 'tarifa rerate resume JOB', or by
running the same command again (a running 'tarifa api' also finishes a job
whose process died, within a minute). A job is refused while another is
unfinished. A job whose catalog changed since it started resumes only with
--with-current-catalog: its remaining chunks are then rated against the
catalog as it is now, and the job records that version.

  tarifa rerate jobs [--format table|json]     the jobs, newest first
  tarifa rerate resume JOB [--format …]        finish an unfinished job`

func runRerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "jobs" || args[0] == "resume") {
		return runRerateSub(ctx, args[0], args[1:], stdout, stderr)
	}
	fs := newFlagSet("rerate", "rerate --from T --to T [--tz ZONE] [--client NAME|ID]... [--side orig|term|both] "+
		"[--status all|rated|mismatch] [--reason R]... [--code PREFIX]... (--dry-run | --yes) [--format table|csv|json]", rerateSummary, stderr)
	from := fs.String("from", "", "start of the setup-time period: YYYY-MM-DD (midnight in --tz) or RFC 3339 (required)")
	to := fs.String("to", "", "end of the period, exclusive (required)")
	tz := fs.String("tz", "UTC", "IANA timezone of the dates")
	var clients, reasons, codes listFlag
	fs.Var(&clients, "client", "a client (name or id) on --side; repeat for more (default: every client)")
	side := fs.String("side", "both", "the side --client is looked for on: orig, term or both")
	status := fs.String("status", "all", "current xDRs to take: all, rated or mismatch")
	fs.Var(&reasons, "reason", "a mismatch reason (orig or term_*); repeat for more")
	fs.Var(&codes, "code", "a prefix of the dialed number; repeat for more")
	dry := fs.Bool("dry-run", false, "show what the job would do, change nothing")
	yes := fs.Bool("yes", false, "run the job")
	format := fs.String("format", "table", "table, csv or json")
	common := rerateFlags(fs)
	common.currentCatalog = currentCatalogFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	usage := func(msg string) error {
		fmt.Fprintln(stderr, msg)
		fs.Usage()
		return errUsage
	}
	if *dry == *yes {
		return usage("give exactly one of --dry-run and --yes")
	}
	if err := checkFormat(*format); err != nil {
		return usage(err.Error())
	}
	period, err := report.ParsePeriod(*from, *to, *tz)
	if err != nil {
		return usage(err.Error())
	}
	return common.with(ctx, stderr, func(pool *pgxpool.Pool, r *rerate.Runner) error {
		sel := rerate.Selection{From: period.From, To: period.To, TZ: *tz, Side: rerate.Side(*side), Status: rerate.Status(*status),
			Reasons: reasons, Codes: codes}
		for _, c := range clients {
			id, err := resolveClient(ctx, pool, c)
			if err != nil {
				return err
			}
			sel.Clients = append(sel.Clients, id)
		}
		if err := sel.Validate(); err != nil {
			return usage(err.Error())
		}
		j, err := r.Run(ctx, rerate.Request{Selection: sel, DryRun: *dry, Actor: "cli", CurrentCatalog: *common.currentCatalog})
		if err != nil {
			return err
		}
		return printJob(stdout, j, *format)
	})
}

func runRerateSub(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	line := "rerate jobs [--format table|json]"
	if sub == "resume" {
		line = "rerate resume JOB [--format table|csv|json]"
	}
	fs := newFlagSet("rerate "+sub, line, rerateSummary, stderr)
	format := fs.String("format", "table", "table or json (jobs); table, csv or json (resume)")
	common := rerateFlags(fs)
	if sub == "resume" {
		common.currentCatalog = currentCatalogFlag(fs)
	}
	var id int64
	rest := args
	if sub == "resume" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		n, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || n <= 0 {
			fmt.Fprintf(stderr, "JOB %q: want a job id\n", args[0])
			fs.Usage()
			return errUsage
		}
		id, rest = n, args[1:]
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if sub == "resume" && id == 0 {
		fmt.Fprintln(stderr, "resume: JOB is required")
		fs.Usage()
		return errUsage
	}
	if err := checkFormat(*format); err != nil || (sub == "jobs" && *format == "csv") {
		fmt.Fprintf(stderr, "--format %q: want table or json\n", *format)
		fs.Usage()
		return errUsage
	}
	return common.with(ctx, stderr, func(pool *pgxpool.Pool, r *rerate.Runner) error {
		if sub == "resume" {
			j, err := r.Resume(ctx, rerate.ResumeRequest{ID: id, CurrentCatalog: *common.currentCatalog})
			if err != nil {
				return err
			}
			return printJob(stdout, j, *format)
		}
		jobs, err := rerate.List(ctx, pool, 0, 100)
		if err != nil {
			return err
		}
		if *format == "json" {
			if jobs == nil {
				jobs = []*rerate.Job{}
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(map[string]any{"jobs": jobs})
		}
		t := report.Table{Title: "Rerating jobs, newest first", Columns: []report.Column{
			{Name: "job", Kind: report.Int}, {Name: "state"}, {Name: "created_at"}, {Name: "actor"}, {Name: "from"}, {Name: "to"},
			{Name: "selected", Kind: report.Int}, {Name: "changed", Kind: report.Int}, {Name: "skipped", Kind: report.Int}, {Name: "error"}}}
		for _, j := range jobs {
			t.Rows = append(t.Rows, []string{strconv.FormatInt(j.ID, 10), j.State, j.CreatedAt.UTC().Format(time.RFC3339), j.Actor,
				j.Selection.From.Format(time.RFC3339), j.Selection.To.Format(time.RFC3339), strconv.FormatInt(j.Selected, 10),
				strconv.FormatInt(j.Changed, 10), strconv.FormatInt(j.Skipped, 10), j.Error})
		}
		return t.Render(stdout, "table")
	})
}

// rerateCommon are the flags every rerate subcommand takes.
type rerateCommon struct {
	pgDSN, chDSN, topic *string
	chunk               *int
	progress            *bool
	cpuProfile          *string
	currentCatalog      *bool // nil for jobs, which resumes nothing
}

func rerateFlags(fs *flag.FlagSet) *rerateCommon {
	return &rerateCommon{
		pgDSN:      fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN (TARIFA_PG_DSN)"),
		chDSN:      fs.String("clickhouse-dsn", env("TARIFA_CLICKHOUSE_DSN", defaultClickHouseDSN), "ClickHouse DSN (TARIFA_CLICKHOUSE_DSN)"),
		topic:      fs.String("topic", env("TARIFA_KAFKA_TOPIC", defaultKafkaTopic), "the workers' CDR topic, whose stored offsets say what they committed (TARIFA_KAFKA_TOPIC)"),
		chunk:      fs.Int("chunk-size", 25000, "about how many CDRs one chunk takes (a confirmed job pauses the workers' commits while it writes a chunk)"),
		progress:   fs.Bool("progress", isTerminal(fs.Output()), "show a progress line on stderr (CDRs, CDRs/s, time left); default on when stderr is a terminal"),
		cpuProfile: fs.String("cpu-profile", "", "write a CPU profile of the job to this file (for diagnosing a slow job)"),
	}
}

func currentCatalogFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("with-current-catalog", false,
		"resume a job although the catalog changed since it started: the chunks left are rated against the catalog as it is now")
}

// with opens the servers and a runner, and calls fn.
func (c *rerateCommon) with(ctx context.Context, stderr io.Writer, fn func(*pgxpool.Pool, *rerate.Runner) error) error {
	if *c.chunk < 1 || *c.chunk > 1_000_000 {
		fmt.Fprintf(stderr, "--chunk-size %d: want 1 to 1000000\n", *c.chunk)
		return errUsage
	}
	status := newStatusLine(stderr, *c.progress)
	defer status.Done()
	log := newLogger(status.logTo(stderr))
	if os.Getenv("GOMEMLIMIT") == "" {
		// A job's memory is its chunks in flight; a soft limit keeps the
		// garbage of a long job from doubling it (GOMEMLIMIT overrides)...
		debug.SetMemoryLimit(400 << 20)
		if os.Getenv("GOGC") == "" {
			// ... and under it the collector may run a third as often: a
			// job's garbage is the raw CDRs of chunks gone by.
			debug.SetGCPercent(300)
		}
	}
	if *c.cpuProfile != "" {
		f, err := os.Create(*c.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	pool, err := sinks.OpenPostgres(ctx, *c.pgDSN)
	if err != nil {
		return err
	}
	defer pool.Close()
	ch, err := sinks.OpenClickHouse(ctx, *c.chDSN)
	if err != nil {
		return err
	}
	defer ch.Close()
	reports := report.New(pool, ch, log)
	cfg := rerate.Config{Topic: *c.topic, ChunkSize: *c.chunk, Refresh: func(ctx context.Context) error {
		_, err := reports.RefreshRollups(ctx, 0)
		return err
	}}
	if status != nil {
		cfg.Progress = func(p rerate.Progress) { status.Set(progressText(p)) }
	}
	r, err := rerate.NewRunner(cfg, pool, ch, log)
	if err != nil {
		return err
	}
	defer r.Close()
	return fn(pool, r)
}

// progressText is a job's progress line: CDRs done of planned, the rate
// and the time left.
func progressText(p rerate.Progress) string {
	rate := int64(0)
	if ms := p.Elapsed.Milliseconds(); ms > 0 {
		rate = p.Done * 1000 / ms
	}
	eta := "-"
	if rate > 0 && p.Planned > p.Done {
		eta = (time.Duration((p.Planned-p.Done)/rate) * time.Second).String()
	}
	return fmt.Sprintf("rerate job %d: %d of about %d CDRs, %d CDRs/s, %s left", p.Job, p.Done, p.Planned, rate, eta)
}

func checkFormat(f string) error {
	switch f {
	case "table", "csv", "json":
		return nil
	}
	return fmt.Errorf("--format %q: want table, csv or json", f)
}

// resolveClient reads a client given by id or by name.
func resolveClient(ctx context.Context, pool *pgxpool.Pool, s string) (int64, error) {
	var id int64
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if err := pool.QueryRow(ctx, `SELECT id FROM clients WHERE id = $1`, n).Scan(&id); err != nil {
			return 0, fmt.Errorf("--client %s: no client with that id", s)
		}
		return id, nil
	}
	if err := pool.QueryRow(ctx, `SELECT id FROM clients WHERE name = $1`, s).Scan(&id); err != nil {
		return 0, fmt.Errorf("--client %q: no client with that name", s)
	}
	return id, nil
}

// printJob writes a job's result as format.
func printJob(w io.Writer, j *rerate.Job, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(j)
	}
	t := report.Table{
		Title: fmt.Sprintf("Rerating job %d (%s): %d CDRs set up %s to %s selected, %d changed, %d left alone",
			j.ID, j.State, j.Selected, j.Selection.From.Format(time.RFC3339), j.Selection.To.Format(time.RFC3339), j.Changed, j.Skipped),
		Note: "A live balance moves by −delta for an orig row, +delta for a term row.",
		Columns: []report.Column{{Name: "client_id", Kind: report.Int}, {Name: "client"}, {Name: "side"}, {Name: "currency"},
			{Name: "calls", Kind: report.Int}, {Name: "old", Kind: report.Decimal}, {Name: "new", Kind: report.Decimal},
			{Name: "delta", Kind: report.Decimal}},
	}
	for _, c := range j.Clients {
		t.Rows = append(t.Rows, []string{strconv.FormatInt(c.ClientID, 10), c.Client, c.Side, c.Currency, strconv.FormatInt(c.Calls, 10),
			c.Old.StringFixed(6), c.New.StringFixed(6), c.Delta.StringFixed(6)})
	}
	if err := t.Render(w, format); err != nil || format == "csv" {
		return err
	}
	fmt.Fprintln(w, "\nTransitions (orig side)")
	if len(j.Transitions) == 0 {
		fmt.Fprintln(w, "(none)")
	}
	for _, tr := range j.Transitions {
		fmt.Fprintf(w, "  %s → %s: %d calls\n", tr.From, tr.To, tr.Calls)
	}
	fmt.Fprintln(w, "\nInvoices whose period the selection touches (they never change; the difference reaches the next invoice)")
	if len(j.Invoices) == 0 {
		fmt.Fprintln(w, "(none)")
	}
	for _, inv := range j.Invoices {
		num := "(draft)"
		if inv.Number != nil {
			num = *inv.Number
		}
		fmt.Fprintf(w, "  invoice %d %s, %s, %s\n", inv.InvoiceID, num, inv.Client, inv.State)
	}
	return nil
}
