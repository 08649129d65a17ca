package api

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tarifa/tarifa/report"
)

// The reports of DESIGN.md "Reports" under /v1/reports/…, with the CLI's
// parameters (from, to, tz, format, and per report by, client, vendor,
// reseller, tag, code_name, sort, limit, mode, exact; lists comma
// separated or repeated) and the same JSON. They are scoped: a reseller
// token reports on the clients of its subtree, a client token on its own
// traffic, balance and mismatches only (no vendors, costs or margins; no
// orig-term report).

func (s *Server) reportRoutes() []route {
	const ar, arc = admin | reseller, admin | reseller | client
	return []route{
		{"GET", "/v1/reports/summary", arc, "summary report (?from, ?to, ?tz, ?by, ?client, ?vendor, ?reseller, ?tag, ?code_name, ?sort, ?limit, ?exact, ?format=json|csv|table)", s.reportSummary},
		{"GET", "/v1/reports/origterm", ar, "orig-term report: per customer, vendor and code name (?from, ?to, ?tz, ?client, ?vendor, ?reseller, ?tag, ?code_name, ?limit, ?format)", s.reportOrigTerm},
		{"GET", "/v1/reports/mismatches", arc, "mismatch report per reason (?from, ?to, ?tz, ?by, ?client, ?reseller, ?tag, ?format)", s.reportMismatches},
		{"GET", "/v1/reports/balance", arc, "balance report per client and day or month (?from, ?to, ?tz, ?mode=live|fixed, ?by=day|month, ?client, ?reseller, ?tag, ?format)", s.reportBalance},
	}
}

func reportScope(p *principal) report.Scope {
	switch p.role {
	case RoleReseller:
		return report.Scope{Resellers: p.subtree}
	case RoleClient:
		return report.Scope{Client: p.clientID}
	}
	return report.Scope{}
}

// list reads a parameter given repeated or comma separated.
func list(v url.Values, name string) []string {
	var out []string
	for _, s := range v[name] {
		for _, x := range strings.Split(s, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	}
	return out
}

type reportParams struct {
	period report.Period
	filter report.Filter
	format string
	limit  int
	exact  bool
}

func (s *Server) reportParams(r *http.Request) (reportParams, error) {
	var rp reportParams
	if s.cfg.Reports == nil {
		return rp, &apiError{Status: http.StatusServiceUnavailable, Msg: "reports need ClickHouse, which this server was started without"}
	}
	v := r.URL.Query()
	var err error
	if rp.period, err = report.ParsePeriod(v.Get("from"), v.Get("to"), v.Get("tz")); err != nil {
		return rp, err
	}
	rp.filter = report.Filter{Clients: list(v, "client"), Vendors: list(v, "vendor"), Resellers: list(v, "reseller"),
		Tags: list(v, "tag"), CodeNames: list(v, "code_name")}
	rp.format = v.Get("format")
	if rp.format == "" {
		rp.format = "json"
	}
	if l := v.Get("limit"); l != "" {
		if rp.limit, err = strconv.Atoi(l); err != nil {
			return rp, badRequest("limit", "must be an integer")
		}
	}
	switch v.Get("exact") {
	case "", "false":
	case "true":
		rp.exact = true
	default:
		return rp, badRequest("exact", "must be true or false")
	}
	return rp, nil
}

// answerReport renders t as the asked format, or maps a report's
// parameter error to 400.
func answerReport(w http.ResponseWriter, t *report.Table, format string, err error) error {
	var pe *report.ParamError
	if errors.As(err, &pe) {
		return badRequest(pe.Param, "%s", pe.Msg)
	}
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := t.Render(&b, format); err != nil {
		if errors.As(err, &pe) {
			return badRequest(pe.Param, "%s", pe.Msg)
		}
		return err
	}
	ct := map[string]string{"json": "application/json", "csv": "text/csv; charset=utf-8", "table": "text/plain; charset=utf-8"}[format]
	w.Header().Set("Content-Type", ct)
	_, _ = w.Write(b.Bytes())
	return nil
}

func (s *Server) reportSummary(w http.ResponseWriter, r *http.Request, p *principal) error {
	rp, err := s.reportParams(r)
	if err != nil {
		return reportErr(err)
	}
	v := r.URL.Query()
	sum, err := s.cfg.Reports.Summary(r.Context(), reportScope(p), report.SummaryQuery{Period: rp.period, By: list(v, "by"),
		Filter: rp.filter, Sort: v.Get("sort"), Limit: rp.limit, Exact: rp.exact})
	if err != nil {
		return answerReport(w, nil, rp.format, err)
	}
	return answerReport(w, sum.Table(), rp.format, nil)
}

func (s *Server) reportOrigTerm(w http.ResponseWriter, r *http.Request, p *principal) error {
	rp, err := s.reportParams(r)
	if err != nil {
		return reportErr(err)
	}
	ot, err := s.cfg.Reports.OrigTerm(r.Context(), reportScope(p), report.OrigTermQuery{Period: rp.period, Filter: rp.filter, Limit: rp.limit, Exact: rp.exact})
	if err != nil {
		return answerReport(w, nil, rp.format, err)
	}
	return answerReport(w, ot.Table(), rp.format, nil)
}

func (s *Server) reportMismatches(w http.ResponseWriter, r *http.Request, p *principal) error {
	rp, err := s.reportParams(r)
	if err != nil {
		return reportErr(err)
	}
	m, err := s.cfg.Reports.Mismatches(r.Context(), reportScope(p), report.MismatchQuery{Period: rp.period, By: list(r.URL.Query(), "by"), Filter: rp.filter})
	if err != nil {
		return answerReport(w, nil, rp.format, err)
	}
	return answerReport(w, m.Table(), rp.format, nil)
}

func (s *Server) reportBalance(w http.ResponseWriter, r *http.Request, p *principal) error {
	rp, err := s.reportParams(r)
	if err != nil {
		return reportErr(err)
	}
	v := r.URL.Query()
	b, err := s.cfg.Reports.Balance(r.Context(), reportScope(p), report.BalanceQuery{Period: rp.period, Mode: v.Get("mode"),
		By: v.Get("by"), Filter: rp.filter, Exact: rp.exact})
	if err != nil {
		return answerReport(w, nil, rp.format, err)
	}
	return answerReport(w, b.Table(), rp.format, nil)
}

// reportErr maps a parameter error of the report package to 400.
func reportErr(err error) error {
	var pe *report.ParamError
	if errors.As(err, &pe) {
		return badRequest(pe.Param, "%s", pe.Msg)
	}
	return fmt.Errorf("report: %w", err)
}
