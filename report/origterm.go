package report

import (
	"context"
	"fmt"
	"strconv"
)

// OrigTermQuery selects the orig-term report.
type OrigTermQuery struct {
	Period Period
	Filter Filter
	Limit  int  // the first Limit rows by descending revenue; 0 for all
	Exact  bool // read xdrs FINAL, not the rollups
}

// OrigTerm is the orig-term report (DOMAIN.md "Reports"): per orig client
// × term client × code name, the calls, minutes and money of each side,
// profit and margin — where the margin is made and lost.
type OrigTerm struct {
	Query  OrigTermQuery
	Groups []Group // by descending revenue, then the groups
	Count  int
	Totals []Group
	Source Source
	cat    *Catalog
	scope  Scope
}

// OrigTerm runs the orig-term report in scope; a client's scope may not
// see it (it shows the vendors and the carrier's margin).
func (r *Reports) OrigTerm(ctx context.Context, s Scope, q OrigTermQuery) (*OrigTerm, error) {
	if err := q.Period.Validate(); err != nil {
		return nil, err
	}
	if s.Client != 0 {
		return nil, &ParamError{Param: "scope", Msg: "the orig-term report shows vendors and margins: not for a client"}
	}
	if q.Limit < 0 {
		return nil, &ParamError{Param: "limit", Msg: "must not be negative"}
	}
	cat, err := LoadCatalog(ctx, r.pg)
	if err != nil {
		return nil, err
	}
	conds, err := where(cat, s, q.Filter)
	if err != nil {
		return nil, err
	}
	by := []string{"orig_client", "term_client", "code_name"}
	groups, src, err := r.aggregate(ctx, aggQuery{Period: q.Period, By: by, Conds: conds, Exact: q.Exact})
	if err != nil {
		return nil, err
	}
	_, vendor := withVendorKey(s, by)
	groups = withheldVendors(cat, s, by, vendor, groups)
	ot := &OrigTerm{Query: q, Count: len(groups), Totals: currencyTotals(groups), Source: src, cat: cat, scope: s}
	sortByRevenue(groups)
	if q.Limit > 0 && len(groups) > q.Limit {
		groups = groups[:q.Limit]
	}
	ot.Groups = groups
	return ot, nil
}

// sortByRevenue orders groups by descending revenue, ties by their keys
// (already sorted so), stably.
func sortByRevenue(gs []Group) {
	sortGroups(gs)
	for i := 1; i < len(gs); i++ { // insertion sort keeps equal revenues in key order
		for j := i; j > 0 && gs[j].Revenue.GreaterThan(gs[j-1].Revenue); j-- {
			gs[j], gs[j-1] = gs[j-1], gs[j]
		}
	}
}

var origTermColumns = []Column{
	{Name: "orig_client"}, {Name: "term_client"}, {Name: "code_name"},
	{Name: "orig_currency"}, {Name: "term_currency"},
	{Name: "orig_calls", Kind: Int}, {Name: "orig_minutes", Kind: Decimal}, {Name: "revenue", Kind: Decimal, Money: true},
	{Name: "term_calls", Kind: Int}, {Name: "term_minutes", Kind: Decimal}, {Name: "cost", Kind: Decimal, Money: true},
	{Name: "profit", Kind: Decimal, Money: true}, {Name: "margin_pct", Kind: Decimal, Money: true},
}

// Table renders the orig-term report.
func (o *OrigTerm) Table() *Table {
	t := &Table{
		Title: "Orig-term: where the margin is made and lost, " + o.Query.Period.String() + ", event time in [from, to)",
		Note: "Rated calls per customer, vendor and destination; term_client - is calls without a rated vendor side " +
			"(see the mismatches report). " + o.Source.String() + ".",
		Columns:      origTermColumns,
		CurrencyKeys: []string{"orig_currency", "term_currency"},
	}
	if o.scope.Resellers != nil {
		t.Note += " Calls carried by vendors outside your scope show no vendor, cost, profit or margin."
	}
	if o.Query.Limit > 0 && o.Count > len(o.Groups) {
		t.Note += fmt.Sprintf(" The first %d of %d rows by revenue; totals over all of them.", len(o.Groups), o.Count)
	}
	row := func(g Group, total bool) []string {
		r := []string{"", "", ""}
		if !total {
			r = []string{o.cat.ClientName(atoi(g.Keys[0])), keyName(o.cat, "term_client", g.Keys[1]), g.Keys[2]}
		}
		profit, margin := "", ""
		if !g.Withheld && (g.TermCurrency == "" || g.TermCurrency == g.OrigCurrency) {
			profit = fixed(g.Profit(), 6)
			if m, ok := g.Margin(); ok {
				margin = fixed(m, 2)
			}
		}
		return append(r, g.OrigCurrency, g.TermCurrency,
			strconv.FormatUint(g.Calls, 10), fixed(g.Minutes(), 2), fixed(g.Revenue, 6),
			strconv.FormatUint(g.TermCalls, 10), fixed(g.TermMinutes(), 2), fixed(g.Cost, 6), profit, margin)
	}
	for _, g := range o.Groups {
		t.Rows = append(t.Rows, row(g, false))
	}
	var all Figures
	for _, g := range o.Totals {
		all.Add(g.Figures)
		t.CurrencyTotals = append(t.CurrencyTotals, row(g, true))
	}
	if len(o.Totals) > 0 {
		t.Total = row(Group{Figures: all}, true)
	}
	return t
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
