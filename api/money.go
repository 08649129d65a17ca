package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// transactions is the read shape of a transaction. Transactions are never
// edited or deleted: a mistake is corrected by an adjustment.
var transactions = &entity{
	name:  "transaction",
	table: "transactions",
	extra: []string{"t.client_id", "t.kind", "t.amount::text AS amount", "t.currency::text AS currency",
		ts("t.at") + " AS at", "t.ref", "t.notes", ts("t.created_at") + " AS created_at"},
	noStamps: true,
	scope:    scopeByClient("t.client_id"),
	owner:    "(SELECT reseller_id FROM clients WHERE id = t.client_id)",
}

// txnInput is the body of POST /v1/transactions.
type txnInput struct {
	ClientID int64
	Kind     string
	Amount   string
	Currency string
	At       *time.Time
	Ref      *string
	Notes    string
}

func parseTxn(body map[string]json.RawMessage) (*txnInput, error) {
	in := &txnInput{}
	str := func(name string) (string, error) {
		var s string
		if err := json.Unmarshal(body[name], &s); err != nil {
			return "", badRequest(name, "must be a string")
		}
		return strings.TrimSpace(s), nil
	}
	for name, raw := range body {
		var err error
		switch name {
		case "client_id":
			if err := json.Unmarshal(raw, &in.ClientID); err != nil {
				return nil, badRequest(name, "must be an integer")
			}
		case "kind":
			if in.Kind, err = str(name); err != nil {
				return nil, err
			}
			if in.Kind != "payment" && in.Kind != "adjustment" && in.Kind != "charge" {
				return nil, invalid(name, "must be one of payment, adjustment, charge")
			}
		case "amount":
			d, perr := parseAmount(raw)
			if perr != nil {
				return nil, badRequest(name, "must be a decimal string such as \"12.50\"")
			}
			if msg := checkAmount(d); msg != "" {
				return nil, invalid(name, "%s", msg)
			}
			in.Amount = d.String()
		case "currency":
			if in.Currency, err = str(name); err != nil {
				return nil, err
			}
			if !validCurrency(in.Currency) {
				return nil, invalid(name, "unknown currency %q: want an ISO 4217 code such as USD", in.Currency)
			}
		case "at":
			s, err := str(name)
			if err != nil {
				return nil, err
			}
			t, perr := time.Parse(time.RFC3339Nano, s)
			if perr != nil {
				return nil, invalid(name, "must be an RFC 3339 time such as 2024-01-01T00:00:00Z")
			}
			in.At = &t
		case "ref":
			s, err := str(name)
			if err != nil {
				return nil, err
			}
			if s == "" || len(s) > 200 {
				return nil, invalid(name, "must be 1 to 200 characters when given")
			}
			in.Ref = &s
		case "notes":
			if in.Notes, err = str(name); err != nil {
				return nil, err
			}
		default:
			return nil, badRequest(name, "unknown field")
		}
	}
	switch {
	case in.ClientID == 0:
		return nil, invalid("client_id", "required")
	case in.Kind == "":
		return nil, invalid("kind", "required")
	case in.Amount == "":
		return nil, invalid("amount", "required")
	case in.Kind == "adjustment" && (in.Amount == "0"):
		return nil, invalid("amount", "an adjustment may not be zero")
	case in.Kind != "adjustment" && (in.Amount == "0" || strings.HasPrefix(in.Amount, "-")):
		return nil, invalid("amount", "a %s must be positive; use an adjustment to lower a balance the other way", in.Kind)
	}
	return in, nil
}

// createTransaction posts a payment (credit), charge (debit) or adjustment
// (either sign). The trigger on transactions moves live and fixed at once.
// The currency defaults to the client's and must equal it. A ref makes a
// retry idempotent: the same ref with the same kind, amount and currency
// answers 200 with the stored transaction; with anything else, 409.
func (s *Server) createTransaction(w http.ResponseWriter, r *http.Request, p *principal) error {
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	in, err := parseTxn(body)
	if err != nil {
		return err
	}
	ctx := r.Context()
	status := http.StatusCreated
	var out json.RawMessage
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := &query{}
		q.add("t.id = %s", in.ClientID)
		clients.scope(q, p)
		var currency, clientStatus string
		err := tx.QueryRow(ctx, "SELECT currency::text, status FROM clients t"+q.where(), q.args...).Scan(&currency, &clientStatus)
		if errors.Is(err, pgx.ErrNoRows) {
			return invalid("client_id", "client %d not found", in.ClientID)
		}
		if err != nil {
			return err
		}
		if clientStatus == "deleted" {
			return invalid("client_id", "client %d is deleted", in.ClientID)
		}
		if in.Currency == "" {
			in.Currency = currency
		} else if in.Currency != currency {
			return invalid("currency", "client %d is billed in %s, not %s", in.ClientID, currency, in.Currency)
		}
		var id int64
		err = tx.QueryRow(ctx, `INSERT INTO transactions (client_id, kind, amount, currency, at, ref, notes)
			VALUES ($1, $2, $3::numeric, $4, coalesce($5, now()), $6, $7)
			ON CONFLICT (client_id, ref) DO NOTHING RETURNING id`,
			in.ClientID, in.Kind, in.Amount, in.Currency, in.At, in.Ref, in.Notes).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return s.replay(ctx, tx, in, &out, &status)
		}
		if err != nil {
			return err
		}
		if out, err = s.get(ctx, tx, transactions, adminPrincipal, id); err != nil {
			return err
		}
		return s.audit(ctx, tx, p, "create", transactions, id, nil, out)
	})
	if err != nil {
		return err
	}
	writeJSON(w, status, out)
	return nil
}

// replay answers a transaction whose ref is already stored.
func (s *Server) replay(ctx context.Context, tx pgx.Tx, in *txnInput, out *json.RawMessage, status *int) error {
	var id int64
	var same bool
	err := tx.QueryRow(ctx, `SELECT id, kind = $3 AND amount = $4::numeric AND currency = $5
		FROM transactions WHERE client_id = $1 AND ref = $2`,
		in.ClientID, in.Ref, in.Kind, in.Amount, in.Currency).Scan(&id, &same)
	if err != nil {
		return fmt.Errorf("read transaction by ref: %w", err)
	}
	if !same {
		return conflict("ref", "ref %q is already used by transaction %d with another kind, amount or currency", *in.Ref, id)
	}
	*status = http.StatusOK
	*out, err = s.get(ctx, tx, transactions, adminPrincipal, id)
	return err
}

func (s *Server) getTransaction(w http.ResponseWriter, r *http.Request, p *principal) error {
	return s.getH(transactions)(w, r, p)
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
	if err := q.oneOf(v, "kind", "t.kind", "payment", "adjustment", "charge"); err != nil {
		return err
	}
	pg, err := s.list(r.Context(), transactions, q, "t.at DESC, t.id DESC", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}

// timeRange applies ?from (inclusive) and ?to (exclusive) to col.
func timeRange(q *query, from, to, col string) error {
	if from != "" {
		t, err := parseTime(from)
		if err != nil {
			return badRequest("from", "must be RFC 3339 or YYYY-MM-DD")
		}
		q.add(col+" >= %s", t)
	}
	if to != "" {
		t, err := parseTime(to)
		if err != nil {
			return badRequest("to", "must be RFC 3339 or YYYY-MM-DD")
		}
		q.add(col+" < %s", t)
	}
	return nil
}

// balance answers DOMAIN.md "Balances" from the client_balances view:
// available is null for unlimited (postpaid) clients.
func (s *Server) balance(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := s.scopedClientID(r, p)
	if err != nil {
		return err
	}
	var out string
	err = s.pool.QueryRow(r.Context(), `SELECT json_build_object(
			'client_id', client_id, 'currency', currency::text, 'live', live::text, 'fixed', fixed::text,
			'credit', credit::text, 'unlimited', unlimited, 'available', available::text)::text
		FROM client_balances WHERE client_id = $1`, id).Scan(&out)
	if err != nil {
		return fmt.Errorf("read balance of client %d: %w", id, err)
	}
	writeJSON(w, http.StatusOK, json.RawMessage(out))
	return nil
}
