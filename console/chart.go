package console

import (
	"fmt"
	"html"
	"html/template"
	"strings"

	"github.com/shopspring/decimal"
)

// Chart geometry, in the SVG's own units (it scales to its box).
const (
	chartW, chartH = 720, 240
	chartLeft      = 8
	chartBottom    = 24 // room for the bar labels
	chartTop       = 22 // room for the scale's label
)

// barChart draws values (the API's exact decimal or integer text) as bars
// over labels. Heights are scaled with decimal arithmetic; each bar's
// tooltip carries the value exactly as the API wrote it. A value that is
// not a number is drawn as 0 and still shown in its tooltip.
func barChart(title string, labels, values []string) template.HTML {
	n := len(values)
	if n == 0 || len(labels) != n {
		return template.HTML(`<figure class="card chartbox"><figcaption>` + html.EscapeString(title) + `</figcaption><p class="muted">Nothing to chart.</p></figure>`)
	}
	nums := make([]decimal.Decimal, n)
	lo, hi := decimal.Zero, decimal.Zero
	for i, v := range values {
		d, err := decimal.NewFromString(strings.TrimSpace(v))
		if err != nil {
			d = decimal.Zero
		}
		nums[i] = d
		lo, hi = decimal.Min(lo, d), decimal.Max(hi, d)
	}
	span := hi.Sub(lo)
	plotH := decimal.NewFromInt(chartH - chartTop - chartBottom)
	y := func(d decimal.Decimal) int64 { // SVG y of value d
		if span.IsZero() {
			return chartH - chartBottom
		}
		return chartTop + hi.Sub(d).Mul(plotH).Div(span).Round(0).IntPart()
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<figure class="card chartbox"><figcaption>%s</figcaption>`, html.EscapeString(title))
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s">`, chartW, chartH, html.EscapeString(title))
	base := y(decimal.Zero)
	fmt.Fprintf(&b, `<line class="grid" x1="%d" y1="%d" x2="%d" y2="%d"/>`, chartLeft, y(hi), chartW, y(hi))
	fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, chartLeft, base, chartW, base)
	scale := "max " + hi.String()
	if lo.IsNegative() {
		scale += " · min " + lo.String()
	}
	fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d">%s</text>`, chartLeft, chartTop-8, html.EscapeString(scale))
	slot := (chartW - chartLeft) / n
	bar := max(1, slot*7/10)
	every := max(1, (n+11)/12) // at most about 12 labels
	for i, d := range nums {
		x := chartLeft + i*slot + (slot-bar)/2
		top, bottom := y(d), base
		if top > bottom {
			top, bottom = bottom, top
		}
		cls := "bar"
		if d.IsNegative() {
			cls = "bar neg"
		}
		fmt.Fprintf(&b, `<rect class="%s" x="%d" y="%d" width="%d" height="%d"><title>%s: %s</title></rect>`,
			cls, x, top, bar, max(bottom-top, 1), html.EscapeString(labels[i]), html.EscapeString(values[i]))
		if i%every == 0 {
			fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d" text-anchor="middle">%s</text>`,
				x+bar/2, chartH-8, html.EscapeString(shortLabel(labels[i])))
		}
	}
	b.WriteString(`</svg></figure>`)
	return template.HTML(b.String()) // every text in it is escaped above
}

// shortLabel keeps a bar's label legible under it: the time of an hour
// ("2026-12-01 13:00" → "13:00"), the day of a date, or the first letters.
func shortLabel(s string) string {
	if len(s) == 16 && s[10] == ' ' {
		return s[11:]
	}
	if len(s) == 10 && s[4] == '-' && s[7] == '-' {
		return s[5:]
	}
	if r := []rune(s); len(r) > 10 {
		return string(r[:9]) + "…"
	}
	return s
}
