package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/tarifa/tarifa/catalog"
	"github.com/tarifa/tarifa/codedeck"
)

// listRateTables lists the rate tables the caller sees (catalog.RateTables
// says which): ?archived, ?name, ?currency.
func (s *Server) listRateTables(w http.ResponseWriter, r *http.Request, p *principal) error {
	v := r.URL.Query()
	q := &query{}
	q.scope(catalog.RateTables, p)
	if err := archivedFilter(q, v); err != nil {
		return err
	}
	if err := nameFilter(q, v); err != nil {
		return err
	}
	if c := v.Get("currency"); c != "" {
		q.add("t.currency = %s", c)
	}
	pg, err := s.list(r.Context(), catalog.RateTables, q, "lower(t.name), t.id", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}

// listRates lists a table's rates by code and time: ?code (exact), ?prefix
// (codes starting with it), ?at (RFC 3339 or YYYY-MM-DD: only the rates in
// force then, per DOMAIN.md "Choosing the rate": the latest effective_from
// ≤ at of each code and profile, unless its end date has passed), ?status.
// The table must be one the caller sees.
func (s *Server) listRates(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "id", "rate table")
	if err != nil {
		return err
	}
	if _, err := catalog.Get(r.Context(), s.pool, p.catalogActor(), catalog.RateTables, id); err != nil {
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
	if err := q.oneOf(v, "status", "t.status", string(catalog.RateActive), string(catalog.RateStashed)); err != nil {
		return err
	}
	if a := v.Get("at"); a != "" {
		at, err := catalog.ParseTime(a)
		if err != nil {
			return badRequest("at", "must be RFC 3339 or YYYY-MM-DD")
		}
		q.add(`t.status = 'active' AND t.effective_from <= %[1]s AND (t.end_date IS NULL OR %[1]s < t.end_date)
			AND NOT EXISTS (SELECT 1 FROM rates n WHERE n.rate_table_id = t.rate_table_id AND n.code = t.code
				AND n.time_profile = t.time_profile AND n.status = 'active'
				AND n.effective_from <= %[1]s AND n.effective_from > t.effective_from)`, at)
	}
	pg, err := s.list(r.Context(), catalog.Rates, q, "t.code, t.effective_from, t.time_profile", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}

// limitedBody remembers that a body went over http.MaxBytesReader's
// limit, which the deck parser would report as a broken last line.
type limitedBody struct {
	r       io.Reader
	tooBig  *http.MaxBytesError
	readErr error
}

// Read reads the body, noting a read error.
func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.readErr = err
		errors.As(err, &b.tooBig)
	}
	return n, err
}

// importRates loads a deck CSV (DESIGN.md "Rate deck CSV") into a table
// through catalog.Writer.ImportRates, as the catalog file does. ?mode=merge
// (the default) adds and changes rates and leaves the others alone;
// ?mode=replace makes the table hold exactly the deck, and imports nothing
// (422, with the same report) when a row is rejected. In merge mode good
// rows are imported even when some are rejected, each named by its line.
// ?dry_run=true answers the same report and changes nothing. The body may
// be up to Config.MaxDeck bytes.
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
	v := r.URL.Query()
	var dry bool
	switch v.Get("dry_run") {
	case "", "false":
	case "true":
		dry = true
	default:
		return badRequest("dry_run", "must be true or false")
	}
	mode := catalog.Merge
	switch m := v.Get("mode"); m {
	case "", string(catalog.Merge):
	case string(catalog.Replace):
		mode = catalog.Replace
	default:
		return badRequest("mode", "must be merge or replace")
	}
	body := &limitedBody{r: r.Body}
	rows, perr := codedeck.ParseCSV(body)
	switch {
	case body.tooBig != nil:
		return &apiError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("deck above %d bytes", body.tooBig.Limit)}
	case body.readErr != nil:
		return badRequest("", "read deck: %v", body.readErr)
	}
	var pre []catalog.RejectedRow
	if perr != nil {
		var ok bool
		if pre, ok = catalog.ParseDeckError(perr); !ok {
			return badRequest("", "read deck: %v", perr)
		}
		if len(rows) == 0 && len(pre) > 0 && pre[0].Line <= 1 {
			return invalid("body", "%s", codedeck.RowError{Line: pre[0].Line, Reason: pre[0].Reason}.String())
		}
	}
	ctx := r.Context()
	var res *catalog.ImportResult
	err = catalog.Write(ctx, s.pool, p.catalogActor(), func(cw *catalog.Writer) error {
		var err error
		res, err = cw.ImportRates(ctx, id, rows, pre, mode, dry)
		return err
	})
	if err != nil {
		return err
	}
	if mode == catalog.Replace && res.RejectedN > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, struct {
			Error string `json:"error"`
			Field string `json:"field"`
			*catalog.ImportResult
		}{"rows rejected: a replace imports every row or none", "body", res})
		return nil
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
