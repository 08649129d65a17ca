package catalog

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrorKind says what is wrong with a write, so that a front end can
// answer it: the API maps it to an HTTP status, the catalog file prints the
// message after the entry it is about.
type ErrorKind int

// The kinds of FieldError.
const (
	// Malformed: the value is not of the field's type at all (a number
	// where a decimal string belongs, text that is no decimal, an unknown
	// field). The API answers 400.
	Malformed ErrorKind = iota
	// Invalid: a well-formed value that breaks a rule (an empty name, an
	// unknown currency, a reference to nothing, a parent cycle). 422.
	Invalid
	// Conflict: the value contradicts stored state (a name taken, a ref used
	// for another transaction, an archive refused). 409.
	Conflict
	// NotFound: the object written to does not exist or lies outside the
	// actor's scope. 404.
	NotFound
	// Forbidden: the actor may not make this change at all. 403.
	Forbidden
)

// FieldError is a write the catalog refuses, naming the field it is about
// ("" when it is about the whole object). Msg is the same whichever front
// end made the write: the API answers it as {"error": Msg, "field":
// Field}, the catalog file as "entry: field: Msg".
type FieldError struct {
	Kind  ErrorKind
	Field string
	Msg   string
}

// Error is "field: message", or the message alone.
func (e *FieldError) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Msg
	}
	return e.Msg
}

func malformed(field, format string, args ...any) *FieldError {
	return &FieldError{Kind: Malformed, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Kind: Invalid, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func conflict(field, format string, args ...any) *FieldError {
	return &FieldError{Kind: Conflict, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func notFound(what string) *FieldError {
	return &FieldError{Kind: NotFound, Msg: what + " not found"}
}

// AsFieldError returns the FieldError err is or wraps, turning the
// PostgreSQL errors a write can meet (a unique or check constraint, a
// value out of range) into one that names the column; ok is false for
// anything else, which is an internal error.
func AsFieldError(err error) (*FieldError, bool) {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe, true
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("object"), true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		field := constraintField(pe.ConstraintName)
		switch pe.Code {
		case "23505": // unique_violation
			// PostgreSQL's detail reads "Key (a, b)=(x, y) already exists.".
			key := strings.TrimSuffix(strings.TrimPrefix(pe.Detail, "Key "), " already exists.")
			return conflict(field, "already exists: %s", key), true
		case "23503": // foreign_key_violation
			return conflict(field, "referenced object is missing or still in use"), true
		case "23514", "23502", "22003", "22001", "22P02", "22007", "22008", "22021": // check, not null, out of range, too long, bad text, bad date, bad bytes
			return invalid(field, "value rejected by the database: %s", pe.Message), true
		}
	}
	return nil, false
}

// constraintField names the field a PostgreSQL constraint is about from
// its default name (table_column_key, table_column_fkey, table_column_check).
func constraintField(name string) string {
	for _, suffix := range []string{"_key", "_fkey", "_check"} {
		name = strings.TrimSuffix(name, suffix)
	}
	for _, table := range []string{"resellers_", "managers_", "clients_", "accounts_", "rate_tables_", "rates_", "transactions_", "time_profiles_"} {
		if rest, ok := strings.CutPrefix(name, table); ok {
			switch rest {
			case "reseller_id_name":
				return "name"
			case "kind_ident_tech_prefix":
				return "ident"
			case "client_id_ref":
				return "ref"
			}
			return rest
		}
	}
	return ""
}
