package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// TxnKind is the kind of a transaction (DOMAIN.md "Transaction").
type TxnKind string

// The kinds of transaction: a payment credits the balance, a charge debits
// it, an adjustment moves it either way.
const (
	TxnPayment    TxnKind = "payment"
	TxnCharge     TxnKind = "charge"
	TxnAdjustment TxnKind = "adjustment"
)

// Transactions is the read shape of a transaction. Transactions are never
// edited or deleted: a mistake is corrected by an adjustment.
var Transactions = &Entity{
	Name:  "transaction",
	Table: "transactions",
	extra: []string{"t.client_id", "t.kind", MoneyText("t.amount") + " AS amount", "t.currency::text AS currency",
		TimeText("t.at") + " AS at", "t.ref", "t.notes", TimeText("t.created_at") + " AS created_at"},
	noStamps: true,
	scope:    scopeByClient("t.client_id"),
	owner:    "(SELECT reseller_id FROM clients WHERE id = t.client_id)",
}

// Txn is a transaction to post: a payment, a charge or an adjustment of a
// client's balance.
type Txn struct {
	ClientID int64
	Kind     TxnKind
	Amount   decimal.Decimal
	Currency string // "" means the client's
	At       time.Time
	Ref      string // "" for none; a retry with the same ref is answered with the stored transaction
	Notes    string
}

// MaxRef is the longest transaction reference, in bytes.
const MaxRef = 200

// TxnFromJSON reads the JSON body of a new transaction: client_id
// (integer), kind, amount (a decimal string), currency, at (RFC 3339 or
// YYYY-MM-DD), ref, notes. The first problem is the error.
func TxnFromJSON(body map[string]json.RawMessage) (*Txn, error) {
	names := make([]string, 0, len(body))
	for name := range body {
		names = append(names, name)
	}
	sort.Strings(names)
	vals := map[string]any{}
	for _, name := range names {
		raw := body[name]
		switch name {
		case "client_id":
			n, ok := jsonInt(raw)
			if !ok {
				return nil, malformed(name, "must be an integer")
			}
			vals[name] = n
		case "kind", "amount", "currency", "at", "ref", "notes":
			var s string
			if t := strings.TrimSpace(string(raw)); t == "" || t[0] != '"' || json.Unmarshal(raw, &s) != nil {
				if name == "amount" {
					return nil, malformed(name, `must be a decimal string such as "12.50"`)
				}
				return nil, malformed(name, "must be a string")
			}
			vals[name] = s
		default:
			return nil, malformed(name, "unknown field")
		}
	}
	t, problems := ParseTxn(vals)
	if t.ClientID == 0 {
		problems = append([]*FieldError{invalid("client_id", "required")}, problems...)
	}
	if len(problems) > 0 {
		return nil, problems[0]
	}
	return t, nil
}

// ParseTxn checks a new transaction given as values (client_id int64, the
// others strings, as TxnFromJSON or a catalog file gives them) without the
// database, and returns it with every problem found. The client is checked
// by Writer.Post.
func ParseTxn(vals map[string]any) (*Txn, []*FieldError) {
	t := &Txn{}
	var problems []*FieldError
	str := func(name string) string {
		s, _ := vals[name].(string)
		return strings.TrimSpace(s)
	}
	t.ClientID, _ = vals["client_id"].(int64) // a catalog file names the client instead
	switch k := TxnKind(str("kind")); k {
	case TxnPayment, TxnCharge, TxnAdjustment:
		t.Kind = k
	case "":
		problems = append(problems, invalid("kind", "required"))
	default:
		problems = append(problems, invalid("kind", "must be one of payment, adjustment, charge, got %q", clip(string(k))))
	}
	if s := str("amount"); s == "" {
		problems = append(problems, invalid("amount", "required"))
	} else if d, err := parseAmount("amount", s); err != nil {
		problems = append(problems, err)
	} else {
		t.Amount = d
		switch {
		case t.Kind == TxnAdjustment && d.IsZero():
			problems = append(problems, invalid("amount", "an adjustment may not be zero"))
		case t.Kind != TxnAdjustment && t.Kind != "" && d.Sign() <= 0:
			problems = append(problems, invalid("amount", "a %s must be positive; use an adjustment to lower a balance the other way", t.Kind))
		}
	}
	if c := str("currency"); c != "" {
		if !ValidCurrency(c) {
			problems = append(problems, invalid("currency", "unknown currency %q: want an ISO 4217 code such as USD", clip(c)))
		}
		t.Currency = c
	}
	if s := str("at"); s != "" {
		at, err := ParseTime(s)
		switch {
		case err != nil:
			problems = append(problems, invalid("at", "must be an RFC 3339 time such as 2024-01-01T00:00:00Z or a date YYYY-MM-DD"))
		case at.Before(MinTxnTime) || at.After(MaxTxnTime):
			// Year 1 read as "now" (the zero time), year 9999 moved the
			// balance but lay outside every report's and invoice's period.
			problems = append(problems, invalid("at", "must lie in 1970-01-01 .. 2105-12-31, got %s", s))
		}
		t.At = at
	}
	if _, given := vals["ref"]; given {
		ref := str("ref")
		if err := checkText("ref", ref, MaxRef); err != nil {
			problems = append(problems, err)
		} else if ref == "" {
			problems = append(problems, invalid("ref", "must be 1 to %d bytes when given", MaxRef))
		}
		t.Ref = ref
	}
	t.Notes = str("notes")
	if err := checkText("notes", t.Notes, MaxNotes); err != nil {
		problems = append(problems, err)
	}
	return t, problems
}

// MinTxnTime and MaxTxnTime bound the time of a transaction: the range
// xDRs, reports and invoice periods can hold (ingest.MinTime … MaxTime).
var (
	MinTxnTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTxnTime = time.Date(2105, 12, 31, 23, 59, 59, 0, time.UTC)
)

// ParseTime reads RFC 3339, or a date YYYY-MM-DD as midnight UTC.
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

// Post records transaction t (checked by ParseTxn) with its audit row; the
// trigger on transactions moves live and fixed at once. The client must
// lie in the Writer's scope and not be deleted; the currency defaults to
// the client's and must equal it; At defaults to now. A ref makes a retry
// idempotent: the same ref with the same kind, amount and currency is
// answered with the stored transaction and replayed true; with anything
// else it is a Conflict.
func (w *Writer) Post(ctx context.Context, t *Txn) (out json.RawMessage, replayed bool, err error) {
	q := &query{}
	q.add("t.id = %s", t.ClientID)
	scopeClients(q, w.actor)
	var currency, status string
	err = w.tx.QueryRow(ctx, "SELECT t.currency::text, t.status FROM clients t"+q.where(), q.args...).Scan(&currency, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, invalid("client_id", "client %d not found", t.ClientID)
	}
	if err != nil {
		return nil, false, fmt.Errorf("read client %d: %w", t.ClientID, err)
	}
	if t.Currency == "" {
		t.Currency = currency
	}
	if t.Ref != "" { // a retry is answered whatever happened to the client since
		var exists bool
		if err := w.tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM transactions WHERE client_id = $1 AND ref = $2)", t.ClientID, t.Ref).Scan(&exists); err != nil {
			return nil, false, fmt.Errorf("read transaction by ref: %w", err)
		}
		if exists {
			out, err := w.replay(ctx, t)
			return out, err == nil, err
		}
	}
	if status == string(ClientDeleted) {
		return nil, false, invalid("client_id", "client %d is deleted", t.ClientID)
	}
	if t.Currency != currency {
		return nil, false, invalid("currency", "client %d is billed in %s, not %s", t.ClientID, currency, t.Currency)
	}
	var at, ref any
	if !t.At.IsZero() {
		at = t.At
	}
	if t.Ref != "" {
		ref = t.Ref
	}
	var id int64
	err = w.tx.QueryRow(ctx, `INSERT INTO transactions (client_id, kind, amount, currency, at, ref, notes)
		VALUES ($1, $2, $3::numeric, $4, coalesce($5, now()), $6, $7)
		ON CONFLICT (client_id, ref) DO NOTHING RETURNING id`,
		t.ClientID, string(t.Kind), t.Amount.String(), t.Currency, at, ref, t.Notes).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		out, err := w.replay(ctx, t)
		return out, err == nil, err
	}
	if err != nil {
		return nil, false, w.dbError("record transaction", err)
	}
	if out, err = Get(ctx, w.tx, Operator(""), Transactions, id); err != nil {
		return nil, false, err
	}
	return out, false, w.audit(ctx, "create", Transactions, id, nil, out)
}

// replay answers a transaction whose ref is stored already.
func (w *Writer) replay(ctx context.Context, t *Txn) (json.RawMessage, error) {
	var id int64
	var same bool
	var kind, amount string
	err := w.tx.QueryRow(ctx, `SELECT id, kind, `+MoneyText("amount")+`, kind = $3 AND amount = $4::numeric AND currency = $5
		FROM transactions WHERE client_id = $1 AND ref = $2`,
		t.ClientID, t.Ref, string(t.Kind), t.Amount.String(), t.Currency).Scan(&id, &kind, &amount, &same)
	if err != nil {
		return nil, fmt.Errorf("read transaction by ref: %w", err)
	}
	if !same {
		return nil, conflict("ref", "ref %q is already used by transaction %d (a %s of %s): a recorded transaction is never changed", t.Ref, id, kind, amount)
	}
	return Get(ctx, w.tx, Operator(""), Transactions, id)
}
