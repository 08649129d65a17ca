package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/report"
)

// reportSpec is one of the API's reports as the console offers it: the
// filters its page has and the groupings it takes (the report package's
// own lists, so that the chooser offers what the API accepts).
type reportSpec struct {
	Name, Title string
	Filters     []string
	By          []string // groupings to choose from; nil for none
	Operator    bool     // not in a client token's portal
}

var reportSpecs = []reportSpec{
	{Name: "summary", Title: "Summary", Filters: []string{"client", "vendor", "reseller", "tag", "code_name", "sort", "limit"}, By: report.Dimensions},
	{Name: "origterm", Title: "Orig-term", Filters: []string{"client", "vendor", "reseller", "tag", "code_name", "limit"}, Operator: true},
	{Name: "mismatches", Title: "Mismatches", Filters: []string{"client", "reseller", "tag"}, By: report.MismatchDimensions},
	{Name: "balance", Title: "Balance", Filters: []string{"client", "reseller", "tag"}},
}

// chartMetrics are the summary columns a chart can show.
var chartMetrics = []string{"calls", "answered", "minutes", "revenue", "cost", "profit"}

type reportPage struct {
	reportData
	Spec       reportSpec
	Specs      []reportSpec
	Filters    []string
	Currencies []string
	Currency   string
}

func (c *Console) report(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	i := slices.IndexFunc(reportSpecs, func(sp reportSpec) bool { return sp.Name == name })
	if i < 0 {
		return &APIError{Status: http.StatusNotFound, Msg: "no such report"}
	}
	spec := reportSpecs[i]
	var specs []reportSpec
	for _, sp := range reportSpecs {
		if !sp.Operator || s.me.Operator() {
			specs = append(specs, sp)
		}
	}
	q := r.URL.Query()
	p := c.periodOf(r, s)
	aq := p.values()
	for _, f := range spec.Filters {
		if f == "vendor" && s.me.IsClient() {
			continue
		}
		if v := strings.TrimSpace(q.Get(f)); v != "" {
			aq.Set(f, v)
		}
	}
	if s.me.IsClient() {
		// A client's report has no vendor side: the API refuses its grouping.
		spec.By = slices.DeleteFunc(slices.Clone(spec.By), func(b string) bool { return b == "term_client" })
	}
	d := reportPage{reportData: reportData{Name: name, Period: p, Query: q, Action: "/reports/" + name}, Spec: spec, Specs: specs}
	for _, f := range spec.Filters {
		if f != "vendor" || !s.me.IsClient() {
			d.Filters = append(d.Filters, f)
		}
	}
	switch name {
	case "summary", "mismatches":
		d.By = q["by"]
		if len(d.By) == 0 && q.Get("grouped") == "" {
			d.By = []string{"day"}
			if name == "mismatches" {
				d.By = nil
			}
		}
		if len(d.By) > 0 {
			aq.Set("by", strings.Join(d.By, ","))
		}
	case "balance":
		d.Options = map[string][]string{"mode": {"live", "fixed"}, "by": {"day", "month"}}
		aq.Set("mode", orDefault(q.Get("mode"), "live"))
		aq.Set("by", orDefault(q.Get("by"), "day"))
		d.By = []string{aq.Get("mode"), aq.Get("by")}
	}
	t, err := c.reportOf(r, s, name, aq)
	if err != nil {
		if _, ok := asAPIError(err); !ok {
			return err
		}
		d.Err = err.Error()
	}
	d.Table = t
	if t != nil && name == "summary" {
		c.summaryChart(&d, q)
	}
	c.render(w, r, s, http.StatusOK, "report", &view{Title: spec.Title + " report", Section: "reports", Data: d})
	return nil
}

// summaryChart charts one column of the summary over its first grouping;
// a money column is charted for one currency at a time, never summed
// across currencies.
func (c *Console) summaryChart(d *reportPage, q url.Values) {
	t := d.Table
	for _, m := range chartMetrics {
		if t.index(m) >= 0 {
			d.Metrics = append(d.Metrics, m)
		}
	}
	d.Metric = q.Get("metric")
	if !slices.Contains(d.Metrics, d.Metric) {
		d.Metric = "calls"
	}
	if len(d.By) == 0 || t.index(d.Metric) < 0 {
		return
	}
	curCol := "orig_currency"
	if d.Metric == "cost" {
		curCol = "term_currency"
	}
	money := d.Metric == "revenue" || d.Metric == "cost" || d.Metric == "profit"
	ci := t.index(curCol)
	if money && ci >= 0 {
		for _, row := range t.Rows {
			if row[ci] != "" && !slices.Contains(d.Currencies, row[ci]) {
				d.Currencies = append(d.Currencies, row[ci])
			}
		}
		slices.Sort(d.Currencies)
		d.Currency = q.Get("currency")
		if !slices.Contains(d.Currencies, d.Currency) && len(d.Currencies) > 0 {
			d.Currency = d.Currencies[0]
		}
	}
	mi := t.index(d.Metric)
	var groups []int
	for _, b := range d.By {
		if gi := t.index(b); gi >= 0 {
			groups = append(groups, gi)
		}
	}
	if len(groups) == 0 {
		return
	}
	// A count (calls, answered, minutes) adds up over the currency pairs
	// the API splits a group into: one bar per group. Money stays one
	// currency's.
	var labels, values []string
	at := map[string]int{}
	for _, row := range t.Rows {
		if money && ci >= 0 && row[ci] != d.Currency {
			continue
		}
		parts := make([]string, len(groups))
		for k, gi := range groups {
			parts[k] = row[gi]
		}
		label := strings.Join(parts, " · ")
		if i, ok := at[label]; ok && !money {
			sum, err1 := decimal.NewFromString(values[i])
			v, err2 := decimal.NewFromString(row[mi])
			if err1 == nil && err2 == nil {
				values[i] = sum.Add(v).String()
				continue
			}
		}
		at[label] = len(labels)
		labels, values = append(labels, label), append(values, row[mi])
	}
	if len(labels) > 60 {
		labels, values = labels[:60], values[:60]
	}
	title := d.Metric + " by " + strings.Join(d.By, ", ")
	if money {
		title += " (" + d.Currency + ")"
	}
	d.Chart = barChart(title, labels, values)
}
