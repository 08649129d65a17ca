package report

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Dimensions are the groupings of the summary, in the order DOMAIN.md
// lists them.
var Dimensions = []string{"day", "hour", "month", "reseller", "orig_client", "term_client", "account", "code", "code_name"}

// dimension is how one grouping reads in ClickHouse: {t} stands for the
// event time column (event_time in xdrs, event_hour in the rollup) and
// {tz} for the quoted timezone. raw marks a grouping the rollup lacks.
type dimension struct {
	expr string
	raw  bool
}

var dimensions = map[string]dimension{
	"day":         {expr: "toString(toDate({t}, {tz}))"},
	"hour":        {expr: "substring(toString(toStartOfHour({t}, {tz}), {tz}), 1, 16)"},
	"month":       {expr: "substring(toString(toStartOfMonth({t}, {tz})), 1, 7)"},
	"reseller":    {expr: "toString(reseller_id)"},
	"orig_client": {expr: "toString(orig_client_id)"},
	"term_client": {expr: "toString(term_client_id)"},
	"account":     {expr: "toString(orig_account_id)"},
	"code":        {expr: "orig_code", raw: true},
	"code_name":   {expr: "orig_code_name"},
}

// Figures are the sums over a group of rated calls, exact. Answered calls
// have a connect time or a duration. Revenue sums orig costs (in the orig
// client's currency), Cost sums term costs (in the vendor's); TermCalls are
// the calls whose term side was rated.
type Figures struct {
	Calls, Answered, AnsweredMs, OrigBilled uint64
	Revenue                                 decimal.Decimal
	TermCalls, TermBilled                   uint64
	Cost                                    decimal.Decimal
}

// Add adds o to f.
func (f *Figures) Add(o Figures) {
	f.Calls += o.Calls
	f.Answered += o.Answered
	f.AnsweredMs += o.AnsweredMs
	f.OrigBilled += o.OrigBilled
	f.Revenue = f.Revenue.Add(o.Revenue)
	f.TermCalls += o.TermCalls
	f.TermBilled += o.TermBilled
	f.Cost = f.Cost.Add(o.Cost)
}

// ASR is answered / calls × 100, rounded to 2 decimals.
func (f Figures) ASR() decimal.Decimal {
	if f.Calls == 0 {
		return decimal.Zero
	}
	return decimal.NewFromInt(int64(f.Answered)).Mul(decimal.NewFromInt(100)).DivRound(decimal.NewFromInt(int64(f.Calls)), 2)
}

// ACD is the average answered call duration in seconds, rounded to 1
// decimal.
func (f Figures) ACD() decimal.Decimal {
	if f.Answered == 0 {
		return decimal.Zero
	}
	return decimal.New(int64(f.AnsweredMs), -3).DivRound(decimal.NewFromInt(int64(f.Answered)), 1)
}

// Minutes are the orig billed minutes, rounded to 2 decimals.
func (f Figures) Minutes() decimal.Decimal { return minutes(f.OrigBilled) }

// TermMinutes are the term billed minutes, rounded to 2 decimals.
func (f Figures) TermMinutes() decimal.Decimal { return minutes(f.TermBilled) }

func minutes(s uint64) decimal.Decimal {
	return decimal.NewFromInt(int64(s)).DivRound(decimal.NewFromInt(60), 2)
}

// Profit is revenue − cost, exact.
func (f Figures) Profit() decimal.Decimal { return f.Revenue.Sub(f.Cost) }

// Margin is profit / revenue × 100, rounded to 2 decimals; ok is false
// when there is no revenue.
func (f Figures) Margin() (m decimal.Decimal, ok bool) {
	if f.Revenue.IsZero() {
		return decimal.Zero, false
	}
	return f.Profit().Mul(decimal.NewFromInt(100)).DivRound(f.Revenue, 2), true
}

// Group is one group of rated calls: its keys (one per grouping: a date,
// hour "2006-01-02 15:00" or month "2006-01" in the period's timezone, an
// id — "0" for none — or a code or code name), the currencies of its
// money, and its figures. A group never mixes currencies: OrigCurrency is
// the revenue's, TermCurrency the cost's ("" for calls without a vendor).
type Group struct {
	Keys         []string
	OrigCurrency string
	TermCurrency string
	Figures
	// Withheld: some of the group's calls were carried by vendors outside
	// the caller's scope, whose side is not shown (see withheldVendors):
	// its cost is its own vendors' alone, so it has no profit nor margin.
	Withheld bool
}

// aggQuery is one aggregation over the rated calls of a period.
type aggQuery struct {
	Period Period
	By     []string
	Conds  []string // on columns xdrs and xdrs_rollup share
	Exact  bool     // read xdrs FINAL only
}

// Source says where a report's figures were read from.
type Source struct {
	RollupHours int // setup hours read from the rollup
	RawHours    int // setup hours read from xdrs FINAL (-1: the whole period was)
}

func (s Source) String() string {
	if s.RawHours < 0 {
		return "Read from xdrs FINAL"
	}
	return fmt.Sprintf("Read from the rollups of %d setup hours and xdrs FINAL for %d more", s.RollupHours, s.RawHours)
}

// aggregate sums the rated calls of q.Period grouped by q.By and the two
// currencies. Closed hours come from xdrs_rollup, the others (and
// everything when the grouping, the period or q.Exact asks for it) from
// xdrs FINAL; both give the same sums, so the result is the same either
// way. The rollup state is read before and after the ClickHouse queries:
// an hour recomputed or marked in between makes the whole read start over.
func (r *Reports) aggregate(ctx context.Context, q aggQuery) ([]Group, Source, error) {
	useRollup := !q.Exact && q.Period.hourAligned()
	for i, by := range q.By {
		d, ok := dimensions[by]
		if !ok {
			return nil, Source{}, &ParamError{Param: "by", Msg: fmt.Sprintf("unknown grouping %q (want %s)", by, strings.Join(Dimensions, ", "))}
		}
		if contains(q.By[:i], by) {
			return nil, Source{}, &ParamError{Param: "by", Msg: fmt.Sprintf("grouping %q given twice", by)}
		}
		useRollup = useRollup && !d.raw
	}
	if !useRollup {
		gs, err := r.aggregateRaw(ctx, q, nil)
		sortGroups(gs)
		return gs, Source{RawHours: -1}, err
	}
	for attempt := 0; attempt < 3; attempt++ {
		before, err := readRollupState(ctx, r.pg, q.Period)
		if err != nil {
			return nil, Source{}, err
		}
		merged := map[string]*Group{}
		if len(before.gens) > 0 {
			if err := r.aggregateRollup(ctx, q, before, merged); err != nil {
				return nil, Source{}, err
			}
		}
		if len(before.dirty) > 0 {
			raw, err := r.aggregateRaw(ctx, q, before.dirty)
			if err != nil {
				return nil, Source{}, err
			}
			for i := range raw {
				mergeGroup(merged, raw[i])
			}
		}
		after, err := readRollupState(ctx, r.pg, q.Period)
		if err != nil {
			return nil, Source{}, err
		}
		if before.equal(after) {
			return sortedGroups(merged), Source{RollupHours: len(before.gens), RawHours: len(before.dirty)}, nil
		}
	}
	// The rollups kept moving under the reads (a refresh of many hours):
	// read everything from the source instead.
	gs, err := r.aggregateRaw(ctx, q, nil)
	sortGroups(gs)
	return gs, Source{RawHours: -1}, err
}

func groupKey(g *Group) string {
	return strings.Join(g.Keys, "\x00") + "\x00" + g.OrigCurrency + "\x00" + g.TermCurrency
}

func mergeGroup(m map[string]*Group, g Group) {
	k := groupKey(&g)
	if have, ok := m[k]; ok {
		have.Add(g.Figures)
		have.Withheld = have.Withheld || g.Withheld
		return
	}
	m[k] = &g
}

func sortedGroups(m map[string]*Group) []Group {
	out := make([]Group, 0, len(m))
	for _, g := range m {
		out = append(out, *g)
	}
	sortGroups(out)
	return out
}

func sortGroups(gs []Group) {
	sort.Slice(gs, func(i, j int) bool {
		a, b := gs[i], gs[j]
		for k := range a.Keys {
			if a.Keys[k] != b.Keys[k] {
				return a.Keys[k] < b.Keys[k]
			}
		}
		if a.OrigCurrency != b.OrigCurrency {
			return a.OrigCurrency < b.OrigCurrency
		}
		return a.TermCurrency < b.TermCurrency
	})
}

// keyList is the SELECT expression of the groupings and the GROUP BY list.
func keyList(q aggQuery, timeCol string) (sel, group string) {
	tz := tzLiteral(q.Period)
	if len(q.By) == 0 {
		return "emptyArrayString()", "orig_currency, term_currency"
	}
	exprs := make([]string, len(q.By))
	names := make([]string, len(q.By))
	for i, by := range q.By {
		e := strings.ReplaceAll(dimensions[by].expr, "{t}", timeCol)
		exprs[i] = strings.ReplaceAll(e, "{tz}", tz) + fmt.Sprintf(" AS k%d", i)
		names[i] = fmt.Sprintf("k%d", i)
	}
	return "[" + strings.Join(exprs, ", ") + "]", strings.Join(names, ", ") + ", orig_currency, term_currency"
}

// costCurrency is the currency of a call's cost: its vendor's, or its
// customer's when it has no rated vendor side (a cost of 0 is the same in
// any currency), so such calls group with the others of their customer.
const costCurrency = "if(term_currency = '', orig_currency, term_currency)"

// answered is the condition of an answered call in xdrs.
const answered = "(duration_ms > 0 OR isNotNull(connect_time))"

// termRated is the condition of a call whose vendor side was rated.
const termRated = "(term_client_id != 0 AND term_reason = '')"

// aggregateRaw sums from xdrs FINAL; hours, when not nil, limits it to
// calls set up in those hours.
func (r *Reports) aggregateRaw(ctx context.Context, q aggQuery, hours []time.Time) ([]Group, error) {
	sel, group := keyList(q, "event_time")
	conds := append([]string{"status = 'rated'", timeRange("event_time", q.Period.From, q.Period.To)}, q.Conds...)
	if hours != nil {
		conds = append(conds, hourRanges("setup_time", hours))
	}
	query := `SELECT ` + sel + ` AS keys, orig_currency, ` + costCurrency + ` AS cost_currency,
		count(), countIf(` + answered + `), sumIf(duration_ms, ` + answered + `), sum(toUInt64(orig_billed_seconds)),
		toString(sum(orig_cost)), countIf(` + termRated + `), sumIf(toUInt64(term_billed_seconds), ` + termRated + `),
		toString(sum(term_cost))
	FROM xdrs FINAL
	WHERE ` + strings.Join(conds, " AND ") + `
	GROUP BY ` + strings.Replace(group, "term_currency", "cost_currency", 1)
	return r.scanGroups(ctx, query, len(q.By))
}

// aggregateRollup sums the current generations of the clean hours of st
// into m.
func (r *Reports) aggregateRollup(ctx context.Context, q aggQuery, st rollupState, m map[string]*Group) error {
	sel, group := keyList(q, "event_hour")
	gens := make([]string, len(st.gens))
	lo, hi := st.gens[0].hour, st.gens[0].hour
	for i, g := range st.gens {
		gens[i] = strconv.FormatInt(g.gen, 10)
		lo, hi = minTime2(lo, g.hour), maxTime2(hi, g.hour)
	}
	conds := append([]string{
		"gen IN (" + strings.Join(gens, ", ") + ")",
		timeRange("setup_hour", lo, hi.Add(time.Hour)),
		timeRange("event_hour", q.Period.From, q.Period.To),
	}, q.Conds...)
	// The per-client rollup holds the same generations with fewer keys.
	table := "xdrs_rollup_clients"
	if contains(q.By, "account") || contains(q.By, "code_name") || strings.Contains(strings.Join(q.Conds, " "), "orig_code_name") {
		table = "xdrs_rollup"
	}
	query := `SELECT ` + sel + ` AS keys, orig_currency, term_currency,
		sum(calls), sum(answered), sum(answered_ms), sum(orig_billed_seconds), toString(sum(orig_cost)),
		sum(term_calls), sum(term_billed_seconds), toString(sum(term_cost))
	FROM ` + table + `
	WHERE ` + strings.Join(conds, " AND ") + `
	GROUP BY ` + group
	gs, err := r.scanGroups(ctx, query, len(q.By))
	if err != nil {
		return err
	}
	for i := range gs {
		mergeGroup(m, gs[i])
	}
	return nil
}

func (r *Reports) scanGroups(ctx context.Context, query string, nkeys int) ([]Group, error) {
	rows, err := r.ch.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("report query: %w", err)
	}
	defer rows.Close()
	var out []Group
	for rows.Next() {
		var g Group
		var revenue, cost string
		if err := rows.Scan(&g.Keys, &g.OrigCurrency, &g.TermCurrency, &g.Calls, &g.Answered, &g.AnsweredMs, &g.OrigBilled,
			&revenue, &g.TermCalls, &g.TermBilled, &cost); err != nil {
			return nil, fmt.Errorf("report scan: %w", err)
		}
		if g.Revenue, err = decimal.NewFromString(revenue); err != nil {
			return nil, fmt.Errorf("report revenue %q: %w", revenue, err)
		}
		if g.Cost, err = decimal.NewFromString(cost); err != nil {
			return nil, fmt.Errorf("report cost %q: %w", cost, err)
		}
		if nkeys == 0 {
			g.Keys = nil
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report query: %w", err)
	}
	return out, nil
}

// timeRange is col in [from, to), with the bounds as unix seconds (the
// only literal form ClickHouse 18.16 and current releases read alike).
func timeRange(col string, from, to time.Time) string {
	return fmt.Sprintf("%s >= toDateTime(%d) AND %s < toDateTime(%d)", col, from.Unix(), col, to.Unix())
}

// hourRanges is col within any of the hours (sorted), as ranges the
// primary key can select: consecutive hours merge into one range.
func hourRanges(col string, hours []time.Time) string {
	var parts []string
	for i := 0; i < len(hours); {
		j := i + 1
		for j < len(hours) && hours[j].Equal(hours[j-1].Add(time.Hour)) {
			j++
		}
		parts = append(parts, "("+timeRange(col, hours[i], hours[j-1].Add(time.Hour))+")")
		i = j
	}
	if len(parts) == 0 {
		return "0"
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

func minTime2(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime2(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// dropVendorSide clears what g says of the vendor side: term currency,
// term calls and seconds, cost.
func (g *Group) dropVendorSide() {
	g.TermCurrency = ""
	g.TermCalls, g.TermBilled, g.Cost = 0, 0, decimal.Decimal{}
}

// OutsideScope is the term_client key of the calls a reseller's customers
// made through vendors outside its subtree (the operator's, a sibling's):
// nobody sees upward or sideways (DOMAIN.md), so neither their names nor
// their costs are shown.
const OutsideScope = "outside"

// withVendorKey returns by with term_client added when s is a reseller's
// scope and by lacks it, and the index of term_client in what it returns
// (-1 for other scopes): the vendor of every group must be known to
// withhold the side of the vendors outside the scope.
func withVendorKey(s Scope, by []string) ([]string, int) {
	if s.Resellers == nil {
		return by, -1
	}
	for i, b := range by {
		if b == "term_client" {
			return by, i
		}
	}
	return append(slices.Clone(by), "term_client"), len(by)
}

// withheldVendors hides, in a reseller's scope, the vendor side of the
// calls carried by vendors outside its subtree: their term_client key
// becomes OutsideScope, their cost, term calls and term currency go, and
// their group is marked Withheld. The key at idx is dropped again when
// the caller did not group by it (want is the grouping asked for).
func withheldVendors(cat *Catalog, s Scope, want []string, idx int, groups []Group) []Group {
	if idx < 0 {
		return groups
	}
	drop := len(want) == idx
	m := map[string]*Group{}
	for _, g := range groups {
		g.Keys = slices.Clone(g.Keys)
		id, _ := strconv.ParseInt(g.Keys[idx], 10, 64)
		if cl, ok := cat.Clients[id]; id != 0 && (!ok || !containsID(s.Resellers, cl.ResellerID)) {
			g.Keys[idx] = OutsideScope
			g.dropVendorSide()
			g.Withheld = true
		}
		if drop {
			g.Keys = g.Keys[:idx]
		}
		mergeGroup(m, g)
	}
	return sortedGroups(m)
}
