package console

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// rateWindow is the span the dashboard's CDRs/s is counted over: the calls
// set up in the last whole minutes.
const rateWindow = 5 * time.Minute

type card struct {
	Label, Value, Note string
	Money              bool
}

type dashData struct {
	Day    string
	TZ     string
	Cards  []card
	Money  *table // per currency pair: the summary's money totals
	Charts []template.HTML
	Err    string
	Bal    obj
	BalErr string
}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request, s *session) error {
	tz := c.sessions.timezone(s)
	loc, err := time.LoadLocation(tz)
	if err != nil {
		loc = time.UTC
	}
	now := time.Now().In(loc)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	tomorrow := today.AddDate(0, 0, 1)
	d := dashData{Day: today.Format("Monday 2 January 2006"), TZ: tz}
	q := url.Values{"from": {today.Format(time.DateOnly)}, "to": {tomorrow.Format(time.DateOnly)}, "tz": {tz}, "by": {"hour"}}
	if s.me.IsClient() {
		q.Set("client", fmt.Sprint(s.me.ClientID))
		if err := c.get(r, s, fmt.Sprintf("/v1/clients/%d/balance", s.me.ClientID), nil, &d.Bal); err != nil {
			if _, ok := asAPIError(err); !ok {
				return err
			}
			d.BalErr = err.Error()
		}
	}
	sum, err := c.reportOf(r, s, "summary", q)
	if err != nil {
		if _, ok := asAPIError(err); !ok {
			return err
		}
		d.Err = err.Error()
		c.render(w, r, s, http.StatusOK, "dashboard", &view{Title: "Dashboard", Section: "dashboard", Data: d})
		return nil
	}
	total := func(t *table, col string) string {
		if t == nil || t.Total == nil {
			return ""
		}
		if i := t.index(col); i >= 0 {
			return t.Total[i]
		}
		return ""
	}
	zero := func(v string) string {
		if v == "" {
			return "0"
		}
		return v
	}
	d.Cards = []card{
		{Label: "Calls", Value: zero(total(sum, "calls"))},
		{Label: "Answered", Value: zero(total(sum, "answered"))},
		{Label: "ASR", Value: orDefault(total(sum, "asr_pct"), "—"), Note: "%"},
		{Label: "ACD", Value: orDefault(total(sum, "acd_s"), "—"), Note: "s"},
		{Label: "Minutes", Value: zero(total(sum, "minutes"))},
	}
	mq := url.Values{"from": q["from"], "to": q["to"], "tz": q["tz"]}
	if s.me.IsClient() {
		mq.Set("client", q.Get("client"))
	}
	if mm, err := c.reportOf(r, s, "mismatches", mq); err == nil {
		d.Cards = append(d.Cards, card{Label: "Mismatches", Value: zero(total(mm, "calls")), Note: "calls, either side"})
	}
	end := time.Now().Truncate(time.Minute)
	rq := url.Values{"from": {end.Add(-rateWindow).UTC().Format(time.RFC3339)}, "to": {end.UTC().Format(time.RFC3339)}, "tz": {"UTC"}}
	if s.me.IsClient() {
		rq.Set("client", q.Get("client"))
	}
	if recent, err := c.reportOf(r, s, "summary", rq); err == nil {
		n, _ := decimal.NewFromString(zero(total(recent, "calls")))
		d.Cards = append(d.Cards, card{Label: "CDRs/s", Value: n.Div(decimal.NewFromInt(int64(rateWindow / time.Second))).StringFixed(2),
			Note: fmt.Sprintf("set up %s–%s UTC", end.Add(-rateWindow).UTC().Format("15:04"), end.UTC().Format("15:04"))})
	}
	// Money per currency pair, never added across currencies.
	d.Money = &table{}
	for _, col := range []string{"orig_currency", "term_currency", "revenue", "cost", "profit", "margin_pct"} {
		if sum.index(col) >= 0 {
			d.Money.Columns = append(d.Money.Columns, col)
		}
	}
	for _, row := range sum.ByCur {
		var cells []string
		for _, col := range d.Money.Columns {
			cells = append(cells, row[sum.index(col)])
		}
		d.Money.Rows = append(d.Money.Rows, cells)
	}
	d.Money.classify()
	// Calls per hour of the day (every hour, DST days included), and the
	// revenue per hour of each currency.
	hours := dayHours(today, tomorrow)
	hi := sum.index("hour")
	pairOf := func(row []string) string {
		var parts []string
		for _, col := range []string{"orig_currency", "term_currency"} {
			if i := sum.index(col); i >= 0 && row[i] != "" {
				parts = append(parts, row[i])
			}
		}
		return strings.Join(parts, " → ")
	}
	// Counts of calls add up across currency pairs; money never does: each
	// pair has a chart of its own, one row per hour.
	calls := map[string]decimal.Decimal{}
	money := map[string]map[string]string{}
	var pairs []string
	for _, row := range sum.Rows {
		if hi < 0 {
			break
		}
		n, _ := decimal.NewFromString(zero(row[sum.index("calls")]))
		calls[row[hi]] = calls[row[hi]].Add(n)
		if ri := sum.index("revenue"); ri >= 0 {
			p := pairOf(row)
			if money[p] == nil {
				money[p] = map[string]string{}
				pairs = append(pairs, p)
			}
			money[p][row[hi]] = row[ri]
		}
	}
	callSeries, moneySeries := make([]string, len(hours)), map[string][]string{}
	for i, h := range hours {
		callSeries[i] = calls[h].String()
	}
	d.Charts = append(d.Charts, barChart("Calls per hour, "+tz, hours, callSeries))
	name := "Revenue"
	if s.me.IsClient() {
		name = "Spend"
	}
	for _, p := range pairs {
		moneySeries[p] = make([]string, len(hours))
		for i, h := range hours {
			moneySeries[p][i] = zero(money[p][h])
		}
		d.Charts = append(d.Charts, barChart(fmt.Sprintf("%s per hour (%s), %s", name, p, tz), hours, moneySeries[p]))
	}
	c.render(w, r, s, http.StatusOK, "dashboard", &view{Title: "Dashboard", Section: "dashboard", Data: d})
	return nil
}

// dayHours are the labels of the hours of [from, to) as the summary's hour
// grouping writes them (local "2006-01-02 15:04"). The hour a DST change
// repeats has one label, and the API one row for it: it is one bar, not
// two bars each showing both hours.
func dayHours(from, to time.Time) []string {
	var hours []string
	for t := from; t.Before(to); t = t.Add(time.Hour) {
		h := t.Format("2006-01-02 15:04")
		if n := len(hours); n == 0 || hours[n-1] != h {
			hours = append(hours, h)
		}
	}
	return hours
}
