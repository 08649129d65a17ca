package api

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/tarifa/tarifa/catalog"
)

// createTransaction posts a payment (credit), charge (debit) or adjustment
// (either sign) through catalog.Writer.Post: amounts of at most 10^12 with
// at most 6 decimals, the client's currency, and a ref that makes a retry
// idempotent (the same ref with the same kind, amount and currency answers
// 200 with the stored transaction; with anything else, 409).
func (s *Server) createTransaction(w http.ResponseWriter, r *http.Request, p *principal) error {
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	t, err := catalog.TxnFromJSON(body)
	if err != nil {
		return err
	}
	var out json.RawMessage
	var replayed bool
	err = catalog.Write(r.Context(), s.pool, p.catalogActor(), func(cw *catalog.Writer) error {
		var err error
		out, replayed, err = cw.Post(r.Context(), t)
		return err
	})
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if replayed {
		status = http.StatusOK
	}
	writeJSON(w, status, out)
	return nil
}

// listTransactions lists a client's transactions, newest first:
// ?from / ?to (RFC 3339 or YYYY-MM-DD, from inclusive, to exclusive),
// ?kind.
func (s *Server) listTransactions(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := s.scopedClientID(r, p)
	if err != nil {
		return err
	}
	v := r.URL.Query()
	q := &query{}
	q.add("t.client_id = %s", id)
	if err := timeRange(q, v.Get("from"), v.Get("to"), "t.at"); err != nil {
		return err
	}
	if err := q.oneOf(v, "kind", "t.kind", string(catalog.TxnPayment), string(catalog.TxnAdjustment), string(catalog.TxnCharge)); err != nil {
		return err
	}
	pg, err := s.list(r.Context(), catalog.Transactions, q, "t.at DESC, t.id DESC", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}

// timeRange applies ?from (inclusive) and ?to (exclusive) to col.
func timeRange(q *query, from, to, col string) error {
	if from != "" {
		t, err := catalog.ParseTime(from)
		if err != nil {
			return badRequest("from", "must be RFC 3339 or YYYY-MM-DD")
		}
		q.add(col+" >= %s", t)
	}
	if to != "" {
		t, err := catalog.ParseTime(to)
		if err != nil {
			return badRequest("to", "must be RFC 3339 or YYYY-MM-DD")
		}
		q.add(col+" < %s", t)
	}
	return nil
}

// parseTime reads RFC 3339 or a date (midnight UTC).
var parseTime = catalog.ParseTime

// balance answers DOMAIN.md "Balances" from the client_balances view:
// available is null for unlimited (postpaid) clients. Amounts have 6
// decimals, whatever their size.
func (s *Server) balance(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := s.scopedClientID(r, p)
	if err != nil {
		return err
	}
	var out string
	err = s.pool.QueryRow(r.Context(), `SELECT json_build_object(
			'client_id', client_id, 'currency', currency::text, 'live', `+catalog.MoneyText("live")+`, 'fixed', `+catalog.MoneyText("fixed")+`,
			'credit', `+catalog.MoneyText("credit")+`, 'unlimited', unlimited, 'available', `+catalog.MoneyText("available")+`)::text
		FROM client_balances WHERE client_id = $1`, id).Scan(&out)
	if err != nil {
		return fmt.Errorf("read balance of client %d: %w", id, err)
	}
	writeJSON(w, http.StatusOK, json.RawMessage(out))
	return nil
}
