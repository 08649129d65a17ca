package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tarifa/tarifa/codedeck"
)

// ImportMode says what a deck import does to the rates the deck lacks.
type ImportMode string

// The import modes.
const (
	// Merge adds the deck's new rates, changes the ones that differ (and
	// re-activates stashed ones) and leaves rates absent from the deck as
	// they are: the API's default, for a supplier's update of some codes.
	Merge ImportMode = "merge"
	// Replace makes the table hold exactly the deck: rates absent from it
	// are removed. It writes nothing when any row is rejected, as that row's
	// rates would otherwise be removed. The catalog file imports this way.
	Replace ImportMode = "replace"
)

// RateDecimals is the precision rates and setup fees are stored with.
const RateDecimals = 9

// CheckRateRow returns why a parsed deck row cannot be stored, or "": the
// rules a deck row must meet beyond the CSV parser's that need no
// database (a time profile's existence does).
func CheckRateRow(r *codedeck.Row) string {
	switch {
	case codedeck.CheckAmounts(r) != "":
		return codedeck.CheckAmounts(r) // the bounds of DESIGN.md "Rate deck CSV", stated once
	case !r.Rate.Equal(r.Rate.Truncate(RateDecimals)):
		return fmt.Sprintf("rate: at most %d decimal places, got %s", RateDecimals, r.Rate)
	case !r.SetupFee.Equal(r.SetupFee.Truncate(RateDecimals)):
		return fmt.Sprintf("setup_fee: at most %d decimal places, got %s", RateDecimals, r.SetupFee)
	}
	if msg := CheckText(r.CodeName, MaxText); msg != "" {
		return "code_name: " + msg
	}
	if !profileNameRE.MatchString(r.Profile) && r.Profile != codedeck.AllProfile {
		return fmt.Sprintf("time_profile: %q is not a profile name", clip(r.Profile))
	}
	return ""
}

// ImportRow names one rate of an import report.
type ImportRow struct {
	Line          int    `json:"line"`
	Code          string `json:"code"`
	EffectiveFrom string `json:"effective_from"`
	TimeProfile   string `json:"time_profile"`
}

// RejectedRow is one deck line an import refused, with the reason.
type RejectedRow struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// ImportResult is what a deck import did (or, dry, would do). The counts
// are exact; Added and Changed list at most MaxListed rows each; Rejected
// lists every refused line once.
type ImportResult struct {
	RateTableID int64         `json:"rate_table_id"`
	Mode        ImportMode    `json:"mode"`
	DryRun      bool          `json:"dry_run"`
	Applied     bool          `json:"applied"`
	AddedN      int           `json:"added_count"`
	ChangedN    int           `json:"changed_count"`
	RemovedN    int           `json:"removed_count"`
	Unchanged   int           `json:"unchanged_count"`
	RejectedN   int           `json:"rejected_count"`
	Added       []ImportRow   `json:"added"`
	Changed     []ImportRow   `json:"changed"`
	Rejected    []RejectedRow `json:"rejected"`
}

// ChangedAny reports whether the import changes any rate.
func (r *ImportResult) ChangedAny() bool { return r.AddedN+r.ChangedN+r.RemovedN > 0 }

// MaxListed bounds the Added and Changed lists of an ImportResult.
const MaxListed = 10000

// ImportRates loads parsed deck rows into rate table id (operator only):
// rows are checked (CheckRateRow, known time profiles) and the bad ones
// rejected by line, the good ones staged with COPY and compared with the
// stored rates in a few set-based statements, and only what differs is
// written, so an unchanged deck writes nothing and moves no catalog
// version. pre lists rows the caller's parser rejected already. dry
// computes the same report and writes nothing. One audit row records an
// import that changed something, with its counts.
func (w *Writer) ImportRates(ctx context.Context, id int64, rows []codedeck.Row, pre []RejectedRow, mode ImportMode, dry bool) (*ImportResult, error) {
	if !w.actor.IsOperator() {
		return nil, &FieldError{Kind: Forbidden, Msg: "only the operator imports rates"}
	}
	if mode != Merge && mode != Replace {
		return nil, malformed("mode", "must be merge or replace, got %q", clip(string(mode)))
	}
	var status string
	err := w.tx.QueryRow(ctx, "SELECT status FROM rate_tables WHERE id = $1 FOR UPDATE", id).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(RateTables.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("lock rate table %d: %w", id, err)
	}
	if status != string(RateTableActive) {
		return nil, conflict("", "rate table %d is archived", id)
	}
	profiles, err := TimeProfileNames(ctx, w.tx)
	if err != nil {
		return nil, err
	}
	res := &ImportResult{RateTableID: id, Mode: mode, DryRun: dry, Added: []ImportRow{}, Changed: []ImportRow{}, Rejected: append([]RejectedRow{}, pre...)}
	rejected := map[int]bool{}
	for _, r := range pre {
		rejected[r.Line] = true
	}
	good := make([]codedeck.Row, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		reason := CheckRateRow(r)
		if reason == "" && !profiles[r.Profile] {
			reason = fmt.Sprintf("unknown time profile %q", r.Profile)
		}
		if reason != "" {
			if !rejected[r.Line] { // a list cell expands to many codes: one reason per line
				rejected[r.Line] = true
				res.Rejected = append(res.Rejected, RejectedRow{Line: r.Line, Reason: reason})
			}
			continue
		}
		if !rejected[r.Line] {
			good = append(good, *r)
		}
	}
	sort.SliceStable(res.Rejected, func(i, j int) bool { return res.Rejected[i].Line < res.Rejected[j].Line })
	res.RejectedN = len(res.Rejected)

	if err := w.stage(ctx, good); err != nil {
		return nil, err
	}
	if err := w.compare(ctx, id, mode, res); err != nil {
		return nil, err
	}
	if dry || (mode == Replace && res.RejectedN > 0) || !res.ChangedAny() {
		res.Applied = !dry && !(mode == Replace && res.RejectedN > 0)
		return res, nil
	}
	if err := w.applyDeck(ctx, id, mode, res); err != nil {
		return nil, err
	}
	res.Applied = true
	summary, _ := json.Marshal(map[string]any{"mode": mode, "added": res.AddedN, "changed": res.ChangedN,
		"removed": res.RemovedN, "unchanged": res.Unchanged, "rejected": res.RejectedN})
	var owner *int64
	if err := w.tx.QueryRow(ctx, "SELECT reseller_id FROM rate_tables WHERE id = $1", id).Scan(&owner); err != nil {
		return nil, fmt.Errorf("audit owner of rate table %d: %w", id, err)
	}
	return res, w.auditOwned(ctx, "import_rates", RateTables.Name, id, owner, nil, summary)
}

// stage copies rows into the transaction's staging table catalog_deck.
func (w *Writer) stage(ctx context.Context, rows []codedeck.Row) error {
	if _, err := w.tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS catalog_deck (
		line integer, code text, code_name text, rate text, effective_from timestamptz, end_date timestamptz,
		min_volume integer, "interval" integer, grace_volume integer, setup_fee text, time_profile text
	) ON COMMIT DROP`); err != nil {
		return fmt.Errorf("create deck staging table: %w", err)
	}
	if _, err := w.tx.Exec(ctx, "TRUNCATE catalog_deck"); err != nil {
		return fmt.Errorf("empty deck staging table: %w", err)
	}
	_, err := w.tx.CopyFrom(ctx, pgx.Identifier{"catalog_deck"},
		[]string{"line", "code", "code_name", "rate", "effective_from", "end_date", "min_volume", "interval", "grace_volume", "setup_fee", "time_profile"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := &rows[i]
			var end any
			if !r.EndDate.IsZero() {
				end = r.EndDate.UTC()
			}
			return []any{int32(r.Line), r.Code, r.CodeName, r.Rate.String(), r.EffectiveFrom.UTC(), end,
				int32(r.MinVolume), int32(r.Interval), int32(r.GraceVolume), r.SetupFee.String(), r.Profile}, nil
		}))
	if err != nil {
		return w.dbError("copy deck", err)
	}
	if _, err := w.tx.Exec(ctx, "ANALYZE catalog_deck"); err != nil {
		return fmt.Errorf("analyze deck staging table: %w", err)
	}
	return nil
}

// rateDiffers is true when a stored rate r differs from the staged deck row
// d with the same code, effective_from and time_profile.
const rateDiffers = `ROW(r.code_name, r.rate, r.end_date, r.min_volume, r."interval", r.grace_volume, r.setup_fee, r.status)
	IS DISTINCT FROM ROW(d.code_name, d.rate::numeric, d.end_date, d.min_volume, d."interval", d.grace_volume, d.setup_fee::numeric, 'active')`

const rateMatches = `r.code = d.code AND r.effective_from = d.effective_from AND r.time_profile = d.time_profile`

// compare fills res's counts and lists from the staged deck and table id.
func (w *Writer) compare(ctx context.Context, id int64, mode ImportMode, res *ImportResult) error {
	err := w.tx.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE r.id IS NULL),
		       count(*) FILTER (WHERE r.id IS NOT NULL AND `+rateDiffers+`),
		       count(*) FILTER (WHERE r.id IS NOT NULL AND NOT (`+rateDiffers+`))
		FROM catalog_deck d LEFT JOIN rates r ON r.rate_table_id = $1 AND `+rateMatches, id).
		Scan(&res.AddedN, &res.ChangedN, &res.Unchanged)
	if err != nil {
		return fmt.Errorf("compare deck: %w", err)
	}
	if mode == Replace {
		err := w.tx.QueryRow(ctx, `SELECT count(*) FROM rates r
			WHERE r.rate_table_id = $1 AND NOT EXISTS (SELECT 1 FROM catalog_deck d WHERE `+rateMatches+`)`, id).Scan(&res.RemovedN)
		if err != nil {
			return fmt.Errorf("compare deck: %w", err)
		}
	}
	list := func(cond string, dst *[]ImportRow) error {
		rows, err := w.tx.Query(ctx, `SELECT d.line, d.code, d.effective_from, d.time_profile
			FROM catalog_deck d LEFT JOIN rates r ON r.rate_table_id = $1 AND `+rateMatches+`
			WHERE `+cond+` ORDER BY d.line, d.code LIMIT $2`, id, MaxListed)
		if err != nil {
			return fmt.Errorf("list deck changes: %w", err)
		}
		out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ImportRow, error) {
			var ir ImportRow
			var from time.Time
			err := r.Scan(&ir.Line, &ir.Code, &from, &ir.TimeProfile)
			ir.EffectiveFrom = from.UTC().Format(time.RFC3339)
			return ir, err
		})
		if err != nil {
			return fmt.Errorf("list deck changes: %w", err)
		}
		*dst = append(*dst, out...)
		return nil
	}
	if res.AddedN > 0 {
		if err := list("r.id IS NULL", &res.Added); err != nil {
			return err
		}
	}
	if res.ChangedN > 0 {
		if err := list("r.id IS NOT NULL AND "+rateDiffers, &res.Changed); err != nil {
			return err
		}
	}
	return nil
}

// applyDeck writes what compare found, one statement per kind of change
// and only when there is such a change (every statement on rates bumps the
// catalog version).
func (w *Writer) applyDeck(ctx context.Context, id int64, mode ImportMode, res *ImportResult) error {
	if mode == Replace && res.RemovedN > 0 {
		if _, err := w.tx.Exec(ctx, `DELETE FROM rates r
			WHERE r.rate_table_id = $1 AND NOT EXISTS (SELECT 1 FROM catalog_deck d WHERE `+rateMatches+`)`, id); err != nil {
			return w.dbError("remove rates", err)
		}
	}
	if res.ChangedN > 0 {
		if _, err := w.tx.Exec(ctx, `
			UPDATE rates r SET code_name = d.code_name, rate = d.rate::numeric, end_date = d.end_date,
			       min_volume = d.min_volume, "interval" = d."interval", grace_volume = d.grace_volume,
			       setup_fee = d.setup_fee::numeric, status = 'active', updated_at = now()
			FROM catalog_deck d
			WHERE r.rate_table_id = $1 AND `+rateMatches+` AND `+rateDiffers, id); err != nil {
			return w.dbError("update rates", err)
		}
	}
	if res.AddedN > 0 {
		if _, err := w.tx.Exec(ctx, `
			INSERT INTO rates (rate_table_id, code, code_name, rate, effective_from, end_date,
			                   min_volume, "interval", grace_volume, setup_fee, time_profile)
			SELECT $1, d.code, d.code_name, d.rate::numeric, d.effective_from, d.end_date,
			       d.min_volume, d."interval", d.grace_volume, d.setup_fee::numeric, d.time_profile
			FROM catalog_deck d
			WHERE NOT EXISTS (SELECT 1 FROM rates r WHERE r.rate_table_id = $1 AND `+rateMatches+`)
			ORDER BY d.code, d.effective_from, d.time_profile`, id); err != nil {
			return w.dbError("add rates", err)
		}
	}
	return nil
}

// ParseDeckError turns what codedeck.ParseCSV reports into rejected rows;
// ok is false when err is no *codedeck.ParseError (a read error).
func ParseDeckError(err error) (rows []RejectedRow, ok bool) {
	var pe *codedeck.ParseError
	if !errors.As(err, &pe) {
		return nil, false
	}
	for _, r := range pe.Rows {
		rows = append(rows, RejectedRow{Line: r.Line, Reason: r.Reason})
	}
	return rows, true
}
