package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// apiError is an error answered to the client as {"error", "field"} with
// its HTTP status. Handlers return it for everything the caller can fix.
type apiError struct {
	Status int    `json:"-"`
	Msg    string `json:"error"`
	Field  string `json:"field,omitempty"`
}

func (e *apiError) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Msg
	}
	return e.Msg
}

func badRequest(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusUnprocessableEntity, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func conflict(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusConflict, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func notFound(what string) *apiError {
	return &apiError{Status: http.StatusNotFound, Msg: what + " not found"}
}

var (
	errUnauthorized = &apiError{Status: http.StatusUnauthorized, Msg: "missing or invalid bearer token"}
	errForbidden    = &apiError{Status: http.StatusForbidden, Msg: "this token's role may not use this endpoint"}
)

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing to do
}

// toAPIError maps err to what the client is told; ok is false for an
// internal error, which the caller logs and answers 500.
func toAPIError(err error) (*apiError, bool) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae, true
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("object"), true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		field := constraintField(pe.ConstraintName)
		switch pe.Code {
		case "23505": // unique_violation
			return conflict(field, "already exists (%s)", strings.TrimPrefix(pe.Detail, "Key ")), true
		case "23503": // foreign_key_violation
			return conflict(field, "referenced object is missing or still in use"), true
		case "23514", "23502", "22003", "22001", "22P02", "22007", "22008": // check, not null, out of range, too long, bad text, bad date
			return invalid(field, "value rejected by the database: %s", pe.Message), true
		}
	}
	return nil, false
}

// constraintField guesses the field a PostgreSQL constraint is about from
// its default name (table_column_key, table_column_fkey, table_column_check).
func constraintField(name string) string {
	for _, suffix := range []string{"_key", "_fkey", "_check"} {
		name = strings.TrimSuffix(name, suffix)
	}
	for _, table := range []string{"resellers_", "managers_", "clients_", "accounts_", "rate_tables_", "rates_", "transactions_"} {
		if rest, ok := strings.CutPrefix(name, table); ok {
			if rest == "reseller_id_name" {
				return "name"
			}
			if rest == "kind_ident_tech_prefix" {
				return "ident"
			}
			if rest == "client_id_ref" {
				return "ref"
			}
			return rest
		}
	}
	return ""
}

// decodeObject reads a JSON object body into raw fields, keeping numbers
// exact. An empty body, malformed JSON or a non-object answer 400.
func decodeObject(r *http.Request) (map[string]json.RawMessage, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("request body above %d bytes", mbe.Limit)}
		}
		return nil, badRequest("", "read body: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, badRequest("", "body must be a JSON object")
	}
	return m, nil
}
