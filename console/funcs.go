package console

import (
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// funcs are the helpers the templates use; none computes with money.
var funcs = template.FuncMap{
	"s":     str,
	"money": money,
	"label": label,
	"qs":    qs,
	"add":   func(a, b int) int { return a + b },
	"has":   func(list []string, s string) bool { return slices.Contains(list, s) },
	"chart": barChart,
	"json":  prettyJSON,
	"yesno": func(v any) string {
		if str(v) == "true" {
			return "yes"
		}
		return "no"
	},
	"num":  func(v string) bool { return numRE.MatchString(v) },
	"neg":  func(v any) bool { return strings.HasPrefix(str(v), "-") },
	"dict": dict,
	"id":   idOf,
	"list": func(v ...string) []string { return v },
	"tz":   func() []string { return commonZones },
}

// numRE matches a number as the API writes counts and amounts: such cells
// are right-aligned.
var numRE = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// money shows an amount exactly as the API wrote it, marked negative when
// it is; an absent amount is a dash.
func money(v any) template.HTML {
	s := str(v)
	if s == "" {
		return `<span class="money muted">—</span>`
	}
	cls := "money"
	if strings.HasPrefix(s, "-") {
		cls += " neg"
	}
	return template.HTML(fmt.Sprintf(`<span class="%s">%s</span>`, cls, html.EscapeString(s)))
}

// qs is the query base with the given keys set (an empty value drops the
// key), as "?…": the links of filters, tabs and pagers.
func qs(base url.Values, kv ...any) string {
	q := url.Values{}
	for k, v := range base {
		q[k] = slices.Clone(v)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k := fmt.Sprint(kv[i])
		v := fmt.Sprint(kv[i+1])
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
	}
	if len(q) == 0 {
		return "?"
	}
	return "?" + q.Encode()
}

func prettyJSON(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return str(v)
	}
	return string(b)
}

func dict(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = kv[i+1]
	}
	return m
}

// commonZones are offered in timezone inputs; any IANA name is accepted.
var commonZones = []string{"UTC", "Europe/London", "Europe/Madrid", "Europe/Berlin", "Europe/Moscow", "America/New_York",
	"America/Chicago", "America/Los_Angeles", "America/Sao_Paulo", "Asia/Dubai", "Asia/Kolkata", "Asia/Singapore",
	"Asia/Tokyo", "Australia/Sydney", "Africa/Johannesburg"}
