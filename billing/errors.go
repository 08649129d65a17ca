package billing

import (
	"errors"
	"fmt"
)

// FieldError is a setting or a request the caller got wrong, naming the
// field: the API answers it 422 with the field, the CLI and the catalog
// file print it with their context.
type FieldError struct {
	Field string
	Msg   string
}

// Error is "field: message".
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ErrNotFound is an invoice, client, payment terms or tax profile that does
// not exist, or lies outside the caller's scope.
var ErrNotFound = errors.New("not found")

// ConflictError is a request that stored state refuses: an invoice in the
// wrong state for a transition, a period that another invoice already
// covers, a name taken. The API answers it 409.
type ConflictError struct {
	Msg string
}

// Error is the message.
func (e *ConflictError) Error() string { return e.Msg }

func conflictErr(format string, args ...any) *ConflictError {
	return &ConflictError{Msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrNotFound)
}
