package report

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// SummaryQuery selects and shapes the summary report.
type SummaryQuery struct {
	Period Period
	By     []string // any of Dimensions; none means one total row per currency
	Filter Filter
	// Sort names the column to sort by ("-revenue" for descending); empty
	// sorts by the groups.
	Sort  string
	Limit int  // the first Limit rows after sorting; 0 for all
	Exact bool // read xdrs FINAL, not the rollups (the same figures, slower)
}

// Summary is the summary report (DOMAIN.md "Reports"): the rated calls of
// the period grouped as asked, per currency.
type Summary struct {
	Query  SummaryQuery
	Groups []Group // sorted and limited as asked
	Count  int     // groups before the limit
	Totals []Group // over every group (before the limit), one per currency pair
	Source Source
	scope  Scope
	cat    *Catalog
}

// Summary runs the summary report in scope. Mismatched calls are not in it
// (see Mismatches). A client's scope sees its own orig traffic without the
// vendor side: no cost, profit or margin, no term_client grouping.
func (r *Reports) Summary(ctx context.Context, s Scope, q SummaryQuery) (*Summary, error) {
	if err := q.Period.Validate(); err != nil {
		return nil, err
	}
	if s.Client != 0 && (contains(q.By, "term_client") || len(q.Filter.Vendors) > 0) {
		return nil, &ParamError{Param: "by", Msg: "a client's report does not show vendors"}
	}
	cols := summaryColumns(q.By, s)
	if q.Sort != "" && !hasColumn(cols, strings.TrimPrefix(q.Sort, "-")) {
		return nil, &ParamError{Param: "sort", Msg: fmt.Sprintf("no column %q", strings.TrimPrefix(q.Sort, "-"))}
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
	by, vendor := withVendorKey(s, q.By)
	groups, src, err := r.aggregate(ctx, aggQuery{Period: q.Period, By: by, Conds: conds, Exact: q.Exact})
	if err != nil {
		return nil, err
	}
	groups = withheldVendors(cat, s, q.By, vendor, groups)
	if s.Client != 0 {
		groups = withoutVendor(groups)
	}
	sum := &Summary{Query: q, Count: len(groups), Source: src, scope: s, cat: cat}
	sum.Totals = currencyTotals(groups)
	sum.Groups = groups
	t := sum.Table() // rows as shown, for sorting by any column
	if q.Sort != "" {
		idx := columnIndex(t.Columns, strings.TrimPrefix(q.Sort, "-"))
		desc := strings.HasPrefix(q.Sort, "-")
		order := make([]int, len(groups))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool {
			c := compareCells(t.Columns[idx].Kind, t.Rows[order[a]][idx], t.Rows[order[b]][idx])
			if desc {
				return c > 0
			}
			return c < 0
		})
		sorted := make([]Group, len(groups))
		for i, o := range order {
			sorted[i] = groups[o]
		}
		sum.Groups = sorted
	}
	if q.Limit > 0 && len(sum.Groups) > q.Limit {
		sum.Groups = sum.Groups[:q.Limit]
	}
	return sum, nil
}

// withoutVendor merges groups that differ only by the vendor's currency
// and drops the vendor side: a client's summary shows neither, and two
// rows of one group and currency would be rows it cannot tell apart.
func withoutVendor(groups []Group) []Group {
	m := map[string]*Group{}
	for _, g := range groups {
		g.dropVendorSide()
		mergeGroup(m, g)
	}
	return sortedGroups(m)
}

// currencyTotals adds up groups per currency pair, sorted by currency.
func currencyTotals(groups []Group) []Group {
	m := map[string]*Group{}
	for _, g := range groups {
		mergeGroup(m, Group{OrigCurrency: g.OrigCurrency, TermCurrency: g.TermCurrency, Figures: g.Figures})
	}
	return sortedGroups(m)
}

func summaryColumns(by []string, s Scope) []Column {
	var cols []Column
	for _, b := range by {
		cols = append(cols, Column{Name: b})
	}
	cols = append(cols, Column{Name: "orig_currency"})
	if s.Client == 0 {
		cols = append(cols, Column{Name: "term_currency"})
	}
	cols = append(cols, Column{Name: "calls", Kind: Int}, Column{Name: "answered", Kind: Int},
		Column{Name: "asr_pct", Kind: Decimal}, Column{Name: "acd_s", Kind: Decimal}, Column{Name: "minutes", Kind: Decimal},
		Column{Name: "revenue", Kind: Decimal, Money: true})
	if s.Client == 0 {
		cols = append(cols, Column{Name: "cost", Kind: Decimal, Money: true}, Column{Name: "profit", Kind: Decimal, Money: true},
			Column{Name: "margin_pct", Kind: Decimal, Money: true})
	}
	return cols
}

// Table renders the summary: group names instead of ids, one total per
// currency pair.
func (s *Summary) Table() *Table {
	t := &Table{
		Title: "Summary of rated calls, " + s.Query.Period.String() + ", event time in [from, to)",
		Note: "Mismatched calls are not here: see the mismatches report. Money is per currency (orig_currency for " +
			"revenue, term_currency for cost); profit and margin only where both are the same. " + s.Source.String() + ".",
		Columns:      summaryColumns(s.Query.By, s.scope),
		CurrencyKeys: []string{"orig_currency", "term_currency"},
	}
	if s.scope.Resellers != nil {
		t.Note += " Calls carried by vendors outside your scope show no vendor, cost, profit or margin."
	}
	if s.scope.Client != 0 {
		t.CurrencyKeys = []string{"orig_currency"}
		t.Note = "Your rated calls; calls that could not be rated are in the mismatches report. " + s.Source.String() + "."
	}
	if s.Query.Limit > 0 && s.Count > len(s.Groups) {
		t.Note += fmt.Sprintf(" The first %d of %d rows; totals over all of them.", len(s.Groups), s.Count)
	}
	for _, g := range s.Groups {
		t.Rows = append(t.Rows, s.row(g, false))
	}
	var all Figures
	for _, g := range s.Totals {
		all.Add(g.Figures)
		t.CurrencyTotals = append(t.CurrencyTotals, s.row(g, true))
	}
	if len(s.Totals) > 0 {
		t.Total = s.row(Group{Figures: all}, true)
	}
	return t
}

func (s *Summary) row(g Group, total bool) []string {
	var r []string
	for i, b := range s.Query.By {
		if total {
			r = append(r, "")
			continue
		}
		r = append(r, keyName(s.cat, b, g.Keys[i]))
	}
	r = append(r, g.OrigCurrency)
	client := s.scope.Client != 0
	if !client {
		r = append(r, g.TermCurrency)
	}
	f := g.Figures
	r = append(r, strconv.FormatUint(f.Calls, 10), strconv.FormatUint(f.Answered, 10),
		fixed(f.ASR(), 2), fixed(f.ACD(), 1), fixed(f.Minutes(), 2), fixed(f.Revenue, 6))
	if !client {
		profit, margin := "", ""
		if !g.Withheld && (g.TermCurrency == "" || g.TermCurrency == g.OrigCurrency) {
			profit = fixed(f.Profit(), 6)
			if m, ok := f.Margin(); ok {
				margin = fixed(m, 2)
			}
		}
		r = append(r, fixed(f.Cost, 6), profit, margin)
	}
	return r
}

// keyName shows a group key: names for ids, as they are for the rest.
func keyName(cat *Catalog, dim, key string) string {
	id, _ := strconv.ParseInt(key, 10, 64)
	switch dim {
	case "reseller":
		return cat.ResellerName(id)
	case "term_client":
		if key == OutsideScope {
			return "(outside your scope)"
		}
		return cat.ClientName(id)
	case "orig_client":
		return cat.ClientName(id)
	case "account":
		return cat.AccountLabel(id)
	}
	return key
}

func hasColumn(cols []Column, name string) bool { return columnIndex(cols, name) >= 0 }

func columnIndex(cols []Column, name string) int {
	for i, c := range cols {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// compareCells orders two cells of a column: numbers by value (an empty
// one first), text as text.
func compareCells(k Kind, a, b string) int {
	if k == Text {
		return strings.Compare(a, b)
	}
	if a == "" || b == "" {
		return strings.Compare(a, b)
	}
	da, err1 := decimal.NewFromString(a)
	db, err2 := decimal.NewFromString(b)
	if err1 != nil || err2 != nil {
		return strings.Compare(a, b)
	}
	return da.Cmp(db)
}
