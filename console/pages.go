package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// pathID reads the {name} path value as an id; anything else is no page.
func pathID(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, &APIError{Status: http.StatusNotFound, Msg: "no such page in the console"}
	}
	return id, nil
}

// pager is where a list page is in the API's list.
type pager struct {
	Total, Offset, Limit, First, Last int64
	Prev, Next                        string // query strings, "" at an end
}

func newPager(pg page, q url.Values) pager {
	total, _ := pg.Total.Int64()
	off, _ := pg.Offset.Int64()
	lim, _ := pg.Limit.Int64()
	p := pager{Total: total, Offset: off, Limit: lim, First: off + 1, Last: off + int64(len(pg.Items))}
	if len(pg.Items) == 0 {
		p.First = off
	}
	if off > 0 {
		p.Prev = qs(q, "offset", max(0, off-lim))
	}
	if off+int64(len(pg.Items)) < total {
		p.Next = qs(q, "offset", off+lim)
	}
	return p
}

// listQuery is the query of a list page as the API takes it: the page's
// own filters, a limit of Config.PageSize and the offset asked for.
func (c *Console) listQuery(q url.Values, keys ...string) url.Values {
	out := url.Values{"limit": {strconv.Itoa(c.cfg.PageSize)}}
	for _, k := range append(keys, "offset") {
		if v := strings.TrimSpace(q.Get(k)); v != "" {
			out.Set(k, v)
		}
	}
	return out
}

// period is the from / to / tz of a report or a dashboard, as the API's
// reports take them (dates are midnight in tz; to is exclusive).
type period struct {
	From, To, TZ string
	Quick        []quick
}

type quick struct {
	Name, From, To string
}

// periodOf reads ?from, ?to and ?tz, defaulting to today in the session's
// timezone, and offers the usual ranges.
func (c *Console) periodOf(r *http.Request, s *session) period {
	q := r.URL.Query()
	p := period{From: q.Get("from"), To: q.Get("to"), TZ: q.Get("tz")}
	if p.TZ == "" {
		p.TZ = c.sessions.timezone(s)
	}
	loc, err := time.LoadLocation(p.TZ)
	if err != nil {
		loc = time.UTC
	}
	now := time.Now().In(loc)
	day := func(t time.Time) string { return t.Format(time.DateOnly) }
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, loc)
	p.Quick = []quick{
		{"Today", day(today), day(today.AddDate(0, 0, 1))},
		{"Yesterday", day(today.AddDate(0, 0, -1)), day(today)},
		{"Last 7 days", day(today.AddDate(0, 0, -6)), day(today.AddDate(0, 0, 1))},
		{"This month", day(month), day(month.AddDate(0, 1, 0))},
		{"Last month", day(month.AddDate(0, -1, 0)), day(month)},
	}
	if p.From == "" {
		p.From = p.Quick[0].From
	}
	if p.To == "" {
		p.To = p.Quick[0].To
	}
	return p
}

// values is the period as API query parameters.
func (p period) values() url.Values {
	return url.Values{"from": {p.From}, "to": {p.To}, "tz": {p.TZ}}
}

// table is a report of the API with its columns in the API's order: the
// console shows the cells exactly as written.
type table struct {
	Columns []string
	Rows    [][]string
	Total   []string   // nil: none
	ByCur   [][]string // per-currency totals
	Num     []bool     // columns of numbers, right-aligned
}

// classify marks the columns whose cells are numbers.
func (t *table) classify() {
	t.Num = make([]bool, len(t.Columns))
	for _, rows := range [][][]string{t.Rows, t.ByCur, {t.Total}} {
		for _, row := range rows {
			for i, v := range row {
				if i < len(t.Num) && numRE.MatchString(v) {
					t.Num[i] = true
				}
			}
		}
	}
}

// index is the position of column name, or -1.
func (t *table) index(name string) int {
	for i, c := range t.Columns {
		if c == name {
			return i
		}
	}
	return -1
}

// column is the cells of column name.
func (t *table) column(name string) []string {
	i := t.index(name)
	if i < 0 {
		return nil
	}
	out := make([]string, len(t.Rows))
	for r, row := range t.Rows {
		out[r] = row[i]
	}
	return out
}

// decodeReport reads a report's JSON ({"rows": [...], "total": {…,
// "by_currency": [...]}}) keeping the order of its columns, which a map
// would lose.
func decodeReport(b []byte) (*table, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	t := &table{}
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("decode report: %w", err)
		}
		switch key {
		case "rows":
			if err := expectDelim(dec, '['); err != nil {
				return nil, err
			}
			for dec.More() {
				keys, vals, _, err := orderedObject(dec)
				if err != nil {
					return nil, err
				}
				if t.Columns == nil {
					t.Columns = keys
				}
				t.Rows = append(t.Rows, t.align(keys, vals))
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("decode report: %w", err)
			}
		case "total":
			keys, vals, byCur, err := orderedObject(dec)
			if err != nil {
				return nil, err
			}
			if t.Columns == nil {
				t.Columns = keys
			}
			if len(keys) > 0 {
				t.Total = t.align(keys, vals)
			}
			for _, bc := range byCur {
				t.ByCur = append(t.ByCur, t.align(bc.keys, bc.vals))
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, fmt.Errorf("decode report: %w", err)
			}
		}
	}
	t.classify()
	return t, nil
}

// align puts the values of keys under t's columns ("" where absent).
func (t *table) align(keys, vals []string) []string {
	row := make([]string, len(t.Columns))
	for i, k := range keys {
		if j := t.index(k); j >= 0 {
			row[j] = vals[i]
		}
	}
	return row
}

type keyed struct{ keys, vals []string }

// orderedObject reads one JSON object of scalars in order; a
// "by_currency" member (a list of such objects) is returned apart.
func orderedObject(dec *json.Decoder) (keys, vals []string, byCur []keyed, err error) {
	if err := expectDelim(dec, '{'); err != nil {
		return nil, nil, nil, err
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("decode report: %w", err)
		}
		name, _ := k.(string)
		if name == "by_currency" {
			if err := expectDelim(dec, '['); err != nil {
				return nil, nil, nil, err
			}
			for dec.More() {
				ks, vs, _, err := orderedObject(dec)
				if err != nil {
					return nil, nil, nil, err
				}
				byCur = append(byCur, keyed{ks, vs})
			}
			if _, err := dec.Token(); err != nil {
				return nil, nil, nil, fmt.Errorf("decode report: %w", err)
			}
			continue
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, nil, fmt.Errorf("decode report: %w", err)
		}
		keys, vals = append(keys, name), append(vals, str(v))
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, nil, fmt.Errorf("decode report: %w", err)
	}
	return keys, vals, byCur, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("decode report: %w", err)
	}
	if tok != d {
		return fmt.Errorf("decode report: want %v, got %v", d, tok)
	}
	return nil
}

// reportOf asks the API for report name (summary, origterm, mismatches,
// balance) with q.
func (c *Console) reportOf(r *http.Request, s *session, name string, q url.Values) (*table, error) {
	q.Set("format", "json")
	rep, err := c.call(r, s.token, http.MethodGet, "/v1/reports/"+name+"?"+q.Encode(), nil, "")
	if err != nil {
		return nil, err
	}
	if err := rep.asError(); err != nil {
		return nil, err
	}
	return decodeReport(rep.body.Bytes())
}

// names maps ids to names for a list the token sees (resellers, rate
// tables, payment terms); a list the API refuses maps nothing.
func (c *Console) names(r *http.Request, s *session, path string, q url.Values) map[string]string {
	out := map[string]string{}
	q.Set("limit", "1000")
	var pg page
	if err := c.get(r, s, path, q, &pg); err != nil {
		return out
	}
	for _, it := range pg.Items {
		out[str(it["id"])] = str(it["name"])
	}
	return out
}

// parallel runs f for 0…n-1 on a few goroutines (the API's pool serves
// them), and waits.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// readLimited reads at most limit bytes of r; tooBig is true when there
// was more.
func readLimited(r io.Reader, limit int64) (b []byte, tooBig bool, err error) {
	b, err = io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(b)) > limit {
		return nil, true, nil
	}
	return b, false, nil
}
