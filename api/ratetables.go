package api

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopspring/decimal"
	"github.com/tarifa/tarifa/sinks"

	"github.com/tarifa/tarifa/codedeck"
)

// rateTables are shared by all resellers: resellers read them and assign
// them to their clients; only admins create, edit or import into them.
// Deleting archives (status deleted); clients keep using an archived table
// until an operator moves them, but it cannot be newly assigned.
var rateTables = &entity{
	name:  "rate table",
	table: "rate_tables",
	fields: []field{
		{name: "name", kind: kName, required: true, doc: "unique name"},
		{name: "currency", kind: kCurrency, required: true, fixed: true, doc: "ISO 4217 code"},
		{name: "parent_id", kind: kRef, ref: "rate_tables", doc: "parent table of the same currency"},
		{name: "status", kind: kEnum, enum: []string{"active", "deleted"}, doc: "deleted = archived"},
		{name: "notes", kind: kText},
	},
	extra: []string{"(SELECT count(*) FROM rates r WHERE r.rate_table_id = t.id) AS rates"},
	check: checkRateTableRow,
}

func checkRateTableRow(ctx context.Context, tx pgx.Tx, _ *principal, old, vals map[string]any) error {
	v, given := vals["parent_id"]
	if !given || v == nil {
		return nil
	}
	parent := idValue(v)
	currency := strValue(value(old, vals, "currency"))
	if err := checkRateTable(ctx, tx, "parent_id", parent, currency); err != nil {
		return err
	}
	if old == nil {
		return nil
	}
	id := idValue(old["id"])
	cycle, err := sinks.RateTableCycle(ctx, tx, id, parent)
	if err != nil {
		return err
	}
	if cycle {
		return invalid("parent_id", "rate table %d is %d itself or below it: that would make a cycle", parent, id)
	}
	return nil
}

func (s *Server) listRateTables(w http.ResponseWriter, r *http.Request, p *principal) error {
	v := r.URL.Query()
	q := &query{}
	if err := archivedFilter(q, v); err != nil {
		return err
	}
	if err := nameFilter(q, v); err != nil {
		return err
	}
	if c := v.Get("currency"); c != "" {
		q.add("t.currency = %s", c)
	}
	pg, err := s.list(r.Context(), rateTables, q, "lower(t.name), t.id", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}

func (s *Server) archiveRateTable(w http.ResponseWriter, r *http.Request, p *principal) error {
	return s.archive(w, r, p, rateTables, "deleted")
}

// rates is the read shape of a rate.
var rates = &entity{
	name:  "rate",
	table: "rates",
	extra: []string{"t.rate_table_id", "t.code", "t.code_name", "t.rate::text AS rate",
		ts("t.effective_from") + " AS effective_from", ts("t.end_date") + " AS end_date",
		"t.min_volume", `t."interval"`, "t.grace_volume", "t.setup_fee::text AS setup_fee",
		"t.time_profile", "t.status", "t.notes", ts("t.updated_at") + " AS updated_at"},
	noStamps: true,
}

// listRates lists a table's rates by code and time: ?code (exact), ?prefix
// (codes starting with it), ?at (RFC 3339 or YYYY-MM-DD: only the rates in
// force then, per DOMAIN.md "Choosing the rate": the latest effective_from
// ≤ at of each code and profile, unless its end date has passed), ?status.
func (s *Server) listRates(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "id", "rate table")
	if err != nil {
		return err
	}
	if _, err := s.get(r.Context(), nil, rateTables, p, id); err != nil {
		return err
	}
	v := r.URL.Query()
	q := &query{}
	q.add("t.rate_table_id = %s", id)
	if c := v.Get("code"); c != "" {
		q.add("t.code = %s", c)
	}
	if c := v.Get("prefix"); c != "" {
		if strings.Trim(c, "0123456789") != "" {
			return badRequest("prefix", "must be digits")
		}
		q.add("t.code LIKE %s", c+"%")
	}
	if err := q.oneOf(v, "status", "t.status", "active", "stashed"); err != nil {
		return err
	}
	if a := v.Get("at"); a != "" {
		at, err := parseTime(a)
		if err != nil {
			return badRequest("at", "must be RFC 3339 or YYYY-MM-DD")
		}
		q.add(`t.status = 'active' AND t.effective_from <= %[1]s AND (t.end_date IS NULL OR %[1]s < t.end_date)
			AND NOT EXISTS (SELECT 1 FROM rates n WHERE n.rate_table_id = t.rate_table_id AND n.code = t.code
				AND n.time_profile = t.time_profile AND n.status = 'active'
				AND n.effective_from <= %[1]s AND n.effective_from > t.effective_from)`, at)
	}
	pg, err := s.list(r.Context(), rates, q, "t.code, t.effective_from, t.time_profile", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}

// parseTime reads RFC 3339 or a date (midnight UTC).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

// importRow is one row of an import answer.
type importRow struct {
	Line          int    `json:"line"`
	Code          string `json:"code"`
	EffectiveFrom string `json:"effective_from"`
	TimeProfile   string `json:"time_profile"`
}

// importResult answers a rates import. Added and Changed list at most
// maxListed rows each (the counts are exact); Rejected lists every bad row.
type importResult struct {
	RateTableID int64               `json:"rate_table_id"`
	DryRun      bool                `json:"dry_run"`
	AddedN      int                 `json:"added_count"`
	ChangedN    int                 `json:"changed_count"`
	Unchanged   int                 `json:"unchanged_count"`
	RejectedN   int                 `json:"rejected_count"`
	Added       []importRow         `json:"added"`
	Changed     []importRow         `json:"changed"`
	Rejected    []codedeckRowReason `json:"rejected"`
}

type codedeckRowReason struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

const maxListed = 10000

// importRates loads a deck CSV (DESIGN.md "Rate deck CSV") into a table:
// a row whose code, effective_from and time_profile exist replaces that
// rate (and re-activates it when stashed), others are added; rates absent
// from the file stay as they are. Good rows are imported even when some
// are rejected; ?dry_run=true answers the same report and changes nothing.
// The audit log gets one row per import with its counts, not every rate.
func (s *Server) importRates(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "id", "rate table")
	if err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := mime.ParseMediaType(ct)
		switch mt {
		case "text/csv", "text/plain", "application/csv", "application/octet-stream":
		default:
			return badRequest("Content-Type", "send the deck as text/csv, not %s", mt)
		}
	}
	var dry bool
	switch r.URL.Query().Get("dry_run") {
	case "", "false":
	case "true":
		dry = true
	default:
		return badRequest("dry_run", "must be true or false")
	}
	ctx := r.Context()
	var status string
	err = s.pool.QueryRow(ctx, "SELECT status FROM rate_tables WHERE id = $1", id).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("rate table")
	}
	if err != nil {
		return err
	}
	if status != "active" {
		return conflict("", "rate table %d is archived", id)
	}

	rows, perr := codedeck.ParseCSV(r.Body)
	res := &importResult{RateTableID: id, DryRun: dry, Added: []importRow{}, Changed: []importRow{}, Rejected: []codedeckRowReason{}}
	if perr != nil {
		var pe *codedeck.ParseError
		if !errors.As(perr, &pe) {
			return badRequest("", "read deck: %v", perr)
		}
		for _, re := range pe.Rows {
			if re.Line <= 1 && len(rows) == 0 {
				return invalid("body", "%s", re.String())
			}
			res.Rejected = append(res.Rejected, codedeckRowReason{Line: re.Line, Reason: re.Reason})
		}
	}
	profiles := map[string]bool{"all": true}
	prows, err := s.pool.Query(ctx, "SELECT name FROM time_profiles")
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(prows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, n := range names {
		profiles[n] = true
	}
	good := rows[:0]
	rejectedLine := map[int]bool{}
	for _, row := range rows {
		reason := ""
		switch {
		case !profiles[row.Profile]:
			reason = fmt.Sprintf("unknown time profile %q", row.Profile)
		case !row.EndDate.IsZero() && !row.EndDate.After(row.EffectiveFrom):
			reason = "end_date must be after effective_from"
		case !fitsRate(row.Rate):
			reason = "rate: at most 9 decimal places and below 1000000000000000"
		case !fitsRate(row.SetupFee):
			reason = "setup_fee: at most 9 decimal places and below 1000000000000000"
		}
		if reason != "" {
			if !rejectedLine[row.Line] { // a list cell expands to many codes: one reason per line
				rejectedLine[row.Line] = true
				res.Rejected = append(res.Rejected, codedeckRowReason{Line: row.Line, Reason: reason})
			}
			continue
		}
		good = append(good, row)
	}
	sortRejected(res.Rejected)
	res.RejectedN = len(res.Rejected)

	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT 1 FROM rate_tables WHERE id = $1 FOR UPDATE", id); err != nil {
			return err
		}
		const chunk = 5000
		for i := 0; i < len(good); i += chunk {
			if err := upsertRates(ctx, tx, id, good[i:min(i+chunk, len(good))], res); err != nil {
				return err
			}
		}
		res.Unchanged = len(good) - res.AddedN - res.ChangedN
		if dry {
			return errDryRun
		}
		summary := fmt.Sprintf(`{"added": %d, "changed": %d, "unchanged": %d, "rejected": %d}`, res.AddedN, res.ChangedN, res.Unchanged, res.RejectedN)
		return s.auditOwned(ctx, tx, p, "import_rates", rateTables.name, id, nil, nil, []byte(summary))
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

var errDryRun = errors.New("dry run")

var maxRate = decimal.New(1, 15)

func fitsRate(d decimal.Decimal) bool {
	return d.Equal(d.Truncate(9)) && d.LessThan(maxRate)
}

func sortRejected(rs []codedeckRowReason) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].Line < rs[j-1].Line; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// upsertRates writes one chunk of rows and records which were added and
// which changed; rows equal to the stored rate are left alone.
func upsertRates(ctx context.Context, tx pgx.Tx, tableID int64, rows []codedeck.Row, res *importResult) error {
	n := len(rows)
	codes, names, rts, setups, profiles := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	froms, ends := make([]time.Time, n), make([]*time.Time, n)
	mins, ivs, graces := make([]int32, n), make([]int32, n), make([]int32, n)
	lines := make(map[string]int, n)
	for i, r := range rows {
		codes[i], names[i], rts[i], setups[i], profiles[i] = r.Code, r.CodeName, r.Rate.String(), r.SetupFee.String(), r.Profile
		froms[i] = r.EffectiveFrom.UTC()
		if !r.EndDate.IsZero() {
			e := r.EndDate.UTC()
			ends[i] = &e
		}
		mins[i], ivs[i], graces[i] = int32(r.MinVolume), int32(r.Interval), int32(r.GraceVolume)
		lines[rateKey(r.Code, froms[i], r.Profile)] = r.Line
	}
	out, err := tx.Query(ctx, `
		INSERT INTO rates AS r (rate_table_id, code, code_name, rate, effective_from, end_date,
		                        min_volume, "interval", grace_volume, setup_fee, time_profile)
		SELECT $1, u.code, u.code_name, u.rate::numeric, u.effective_from, u.end_date,
		       u.min_volume, u.iv, u.grace, u.setup::numeric, u.profile
		FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
		            $7::int[], $8::int[], $9::int[], $10::text[], $11::text[])
		     AS u(code, code_name, rate, effective_from, end_date, min_volume, iv, grace, setup, profile)
		ORDER BY u.code, u.effective_from, u.profile
		ON CONFLICT (rate_table_id, code, effective_from, time_profile) DO UPDATE
		SET code_name = excluded.code_name, rate = excluded.rate, end_date = excluded.end_date,
		    min_volume = excluded.min_volume, "interval" = excluded."interval",
		    grace_volume = excluded.grace_volume, setup_fee = excluded.setup_fee,
		    status = 'active', updated_at = now()
		WHERE (r.code_name, r.rate, r.end_date, r.min_volume, r."interval", r.grace_volume, r.setup_fee, r.status)
		      IS DISTINCT FROM
		      (excluded.code_name, excluded.rate, excluded.end_date, excluded.min_volume, excluded."interval",
		       excluded.grace_volume, excluded.setup_fee, 'active')
		RETURNING r.code, r.effective_from, r.time_profile, (r.xmax = 0) AS inserted`,
		tableID, codes, names, rts, froms, ends, mins, ivs, graces, setups, profiles)
	if err != nil {
		return fmt.Errorf("upsert rates: %w", err)
	}
	defer out.Close()
	for out.Next() {
		var code, profile string
		var from time.Time
		var inserted bool
		if err := out.Scan(&code, &from, &profile, &inserted); err != nil {
			return fmt.Errorf("upsert rates: %w", err)
		}
		row := importRow{Line: lines[rateKey(code, from, profile)], Code: code, EffectiveFrom: from.UTC().Format(time.RFC3339), TimeProfile: profile}
		if inserted {
			res.AddedN++
			if len(res.Added) < maxListed {
				res.Added = append(res.Added, row)
			}
		} else {
			res.ChangedN++
			if len(res.Changed) < maxListed {
				res.Changed = append(res.Changed, row)
			}
		}
	}
	return out.Err()
}

func rateKey(code string, from time.Time, profile string) string {
	return code + "|" + strconv.FormatInt(from.UnixMicro(), 10) + "|" + profile
}
