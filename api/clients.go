package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tarifa/tarifa/catalog"
)

// clientQuery builds the WHERE of a client list or export from the query
// string: ?name (starts with, any case), ?email (the main email; * is a
// wildcard, otherwise an exact match in any case), ?status (active by
// default; a comma list, or "all"), ?tag, ?reseller_id, ?manager_id.
func clientQuery(p *principal, v url.Values) (*query, error) {
	q := &query{}
	q.scope(catalog.Clients, p)
	if err := nameFilter(q, v); err != nil {
		return nil, err
	}
	if email := strings.TrimSpace(v.Get("email")); email != "" {
		q.add("t.email_main ILIKE %s", strings.ReplaceAll(escapeLike(email), "*", "%"))
	}
	switch st := v.Get("status"); st {
	case "all":
	case "":
		q.conds = append(q.conds, "t.status = 'active'")
	default:
		var list []string
		for s := range strings.SplitSeq(st, ",") {
			switch catalog.ClientStatus(s) {
			case catalog.ClientActive, catalog.ClientStop, catalog.ClientDeleted:
				list = append(list, s)
			default:
				return nil, badRequest("status", "must be active, stop, deleted (comma separated) or all")
			}
		}
		q.add("t.status = ANY(%s)", list)
	}
	if tag := strings.TrimSpace(v.Get("tag")); tag != "" {
		q.add("t.tags @> ARRAY[%s]::text[]", tag)
	}
	if err := idFilter(q, v, "reseller_id", "t.reseller_id"); err != nil {
		return nil, err
	}
	if err := idFilter(q, v, "manager_id", "t.manager_id"); err != nil {
		return nil, err
	}
	return q, nil
}

func (s *Server) listClients(w http.ResponseWriter, r *http.Request, p *principal) error {
	v := r.URL.Query()
	q, err := clientQuery(p, v)
	if err != nil {
		return err
	}
	pg, err := s.list(r.Context(), catalog.Clients, q, "lower(t.name), t.id", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}

// exportPage is how many clients an export reads per statement.
const exportPage = 1000

// exportClients streams every client the filters select as CSV, one
// column per field, in id order. It reads a page of rows, gives the
// connection back to the pool, and only then writes the page to the
// client, with a write deadline of Config.WriteTimeout per page: a client
// that stops reading holds no database connection, and is cut off after
// the deadline. A client created while an export runs may or may not be
// in it; none appears twice. Text cells that a spreadsheet would run as a
// formula (starting with = + - @) are prefixed with a quote.
func (s *Server) exportClients(w http.ResponseWriter, r *http.Request, p *principal) error {
	q, err := clientQuery(p, r.URL.Query())
	if err != nil {
		return err
	}
	cols := []string{"id"}
	textual := map[string]bool{}
	for _, f := range catalog.Clients.Fields {
		cols = append(cols, f.Name)
		switch f.Kind {
		case catalog.KText, catalog.KName, catalog.KEmail, catalog.KTags:
			textual[f.Name] = true
		}
	}
	cols = append(cols, "created_at", "updated_at")
	ctx := r.Context()
	rc := http.NewResponseController(w)
	cw := csv.NewWriter(w)
	rec := make([]string, len(cols))
	after := int64(0)
	for first := true; ; first = false {
		pq := &query{conds: slices.Clone(q.conds), args: slices.Clone(q.args)}
		pq.add("t.id > %s", after)
		sql := fmt.Sprintf("SELECT x.id, row_to_json(x)::text FROM (SELECT %s FROM clients t%s ORDER BY t.id LIMIT %d) x ORDER BY x.id",
			catalog.Clients.SelectList(), pq.where(), exportPage)
		rows, err := s.pool.Query(ctx, sql, pq.args...)
		if err != nil {
			return fmt.Errorf("export clients: %w", err)
		}
		type row struct {
			id  int64
			raw string
		}
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.id, &x.raw)
		})
		if err != nil {
			if first {
				return fmt.Errorf("export clients: %w", err)
			}
			s.log.Error("export clients", "err", err) // the header has gone out; the CSV ends short
			return nil
		}
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if first {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", `attachment; filename="clients.csv"`)
			_ = cw.Write(cols)
		}
		for _, x := range page {
			m := catalog.DecodeRow(json.RawMessage(x.raw))
			for i, c := range cols {
				rec[i] = csvCell(m[c])
				if textual[c] && rec[i] != "" && strings.ContainsRune("=+-@", rune(rec[i][0])) {
					rec[i] = "'" + rec[i]
				}
			}
			_ = cw.Write(rec)
			after = x.id
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			s.log.Debug("export clients: client stopped reading", "err", err)
			return nil
		}
		_ = rc.Flush()
		if len(page) < exportPage {
			return nil
		}
	}
}

func csvCell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = csvCell(e)
		}
		return strings.Join(parts, ";")
	}
	return fmt.Sprint(v)
}

// massLastInvoiced sets last_invoiced_at of every listed client in one
// transaction: all or none, one audit row per client that changed. A
// client listed twice is set once.
func (s *Server) massLastInvoiced(w http.ResponseWriter, r *http.Request, p *principal) error {
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	var listed []int64
	raw, ok := body["client_ids"]
	if !ok {
		return invalid("client_ids", "required")
	}
	if err := json.Unmarshal(raw, &listed); err != nil {
		return badRequest("client_ids", "must be a list of client ids")
	}
	if len(listed) == 0 || len(listed) > 10000 {
		return invalid("client_ids", "must list 1 to 10000 clients")
	}
	ids := make([]int64, 0, len(listed))
	for _, id := range listed {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for k := range body {
		if k != "client_ids" && k != "last_invoiced_at" {
			return badRequest(k, "unknown field")
		}
	}
	dateRaw, ok := body["last_invoiced_at"]
	if !ok {
		return invalid("last_invoiced_at", "required")
	}
	in, err := catalog.Clients.FromJSON(map[string]json.RawMessage{"last_invoiced_at": dateRaw}, false)
	if err != nil {
		return err
	}
	ctx := r.Context()
	updated := 0
	err = catalog.Write(ctx, s.pool, p.catalogActor(), func(cw *catalog.Writer) error {
		for _, id := range ids {
			if _, err := cw.Get(ctx, catalog.Clients, id); err != nil {
				return invalid("client_ids", "client %d not found", id)
			}
		}
		for _, id := range ids {
			_, ch, err := cw.Update(ctx, catalog.Clients, id, in)
			if err != nil {
				return err
			}
			if ch == catalog.Updated {
				updated++
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"updated": updated, "client_ids": ids})
	return nil
}

// fullDeleteClient answers DELETE /v1/clients/{id}: without ?full=true it
// sets status deleted (accounts kept, orig and term off); with it, it
// removes a deleted client for good, refused while it has transactions or
// xDRs.
func (s *Server) fullDeleteClient(w http.ResponseWriter, r *http.Request, p *principal) error {
	switch r.URL.Query().Get("full") {
	case "", "false":
		return s.archiveH(catalog.Clients, string(catalog.ClientDeleted))(w, r, p)
	case "true":
	default:
		return badRequest("full", "must be true or false")
	}
	id, err := pathID(r, "id", "client")
	if err != nil {
		return err
	}
	var counter func(ctx context.Context, id int64) (int64, error)
	if s.xdrs != nil {
		counter = s.xdrs
	}
	err = catalog.Write(r.Context(), s.pool, p.catalogActor(), func(cw *catalog.Writer) error {
		return cw.DeleteClient(r.Context(), id, counter)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
