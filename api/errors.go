package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/tarifa/tarifa/catalog"
)

// apiError is an error answered to the client as {"error", "field"} with
// its HTTP status. Handlers return it (or a catalog.FieldError) for
// everything the caller can fix.
type apiError struct {
	Status int    `json:"-"`
	Msg    string `json:"error"`
	Field  string `json:"field,omitempty"`
}

// Error is the field and the message.
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
	errUnauthorized = &apiError{Status: http.StatusUnauthorized, Msg: "missing, invalid, expired or revoked bearer token"}
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

// statusOf is the HTTP status of each kind of catalog error.
var statusOf = map[catalog.ErrorKind]int{
	catalog.Malformed: http.StatusBadRequest,
	catalog.Invalid:   http.StatusUnprocessableEntity,
	catalog.Conflict:  http.StatusConflict,
	catalog.NotFound:  http.StatusNotFound,
	catalog.Forbidden: http.StatusForbidden,
}

// toAPIError maps err to what the client is told; ok is false for an
// internal error, which the caller logs and answers 500.
func toAPIError(err error) (*apiError, bool) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae, true
	}
	if fe, ok := catalog.AsFieldError(err); ok {
		return &apiError{Status: statusOf[fe.Kind], Field: fe.Field, Msg: fe.Msg}, true
	}
	return nil, false
}

// decodeObject reads a JSON object body into its fields, raw and exact. A
// body that is not one JSON object answers 400, and so does a body above
// Config.MaxBody (413), a field given twice, or text that is not UTF-8
// (naming the field): JSON decoders would otherwise keep the last of two
// keys and turn bad bytes into U+FFFD, storing something the caller never
// sent. A NUL (\u0000) anywhere answers 422 naming the field, as no text
// column can hold it.
func decodeObject(r *http.Request) (map[string]json.RawMessage, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("request body above %d bytes", mbe.Limit)}
		}
		return nil, badRequest("", "read body: %v", err)
	}
	return parseObject(body)
}

// parseObject is decodeObject for a body already read.
func parseObject(body []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	notObject := badRequest("", "body must be a JSON object")
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, notObject
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, notObject
		}
		key, _ := tok.(string)
		if !validJSONText(body[start:dec.InputOffset()]) {
			return nil, badRequest("", "a field name is not valid UTF-8")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, notObject
		}
		if _, dup := m[key]; dup {
			return nil, badRequest(key, "given twice")
		}
		if !validJSONText(raw) {
			return nil, badRequest(key, "not valid UTF-8 text")
		}
		if hasNUL(raw) {
			return nil, invalid(key, "must be valid UTF-8 text without NUL bytes")
		}
		m[key] = raw
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, notObject
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, notObject
	}
	return m, nil
}

// validJSONText reports whether raw JSON is valid UTF-8 and escapes no
// lone UTF-16 surrogate (which decoders also turn into U+FFFD).
func validJSONText(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	for i := 0; i+5 < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if raw[i+1] != 'u' {
			i++ // an escaped character, such as \\ before a u
			continue
		}
		hi, ok := hex4(raw[i+2 : i+6])
		switch {
		case !ok:
			return false
		case hi >= 0xD800 && hi < 0xDC00:
			lo, ok := uint16(0), false
			if i+11 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
				lo, ok = hex4(raw[i+8 : i+12])
			}
			if !ok || lo < 0xDC00 || lo >= 0xE000 {
				return false
			}
			i += 11
		case hi >= 0xDC00 && hi < 0xE000:
			return false
		default:
			i += 5
		}
	}
	return true
}

func hex4(b []byte) (uint16, bool) {
	var v uint16
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint16(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint16(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint16(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// hasNUL reports whether a JSON value holds a string with a NUL.
func hasNUL(raw json.RawMessage) bool {
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return false // the only way JSON text can carry a NUL
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return false
	}
	var walk func(v any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case string:
			return strings.IndexByte(x, 0) >= 0
		case []any:
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		case map[string]any:
			for k, e := range x {
				if strings.IndexByte(k, 0) >= 0 || walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

// reportLists are the query parameters of /v1/reports that may be
// repeated (each a list; see list).
var reportLists = []string{"by", "client", "vendor", "reseller", "tag", "code_name"}

// checkQuery refuses query parameters PostgreSQL could not compare with
// text (NUL, invalid UTF-8), naming the parameter: they would otherwise
// fail deep in a statement. A parameter given twice is refused too, as a
// body field is (?mode=merge&mode=replace, ?dry_run=true&dry_run=false
// would otherwise mean the first), except the lists of the reports.
func checkQuery(r *http.Request) error {
	lists := strings.HasPrefix(r.URL.Path, "/v1/reports/")
	for name, vals := range r.URL.Query() {
		if !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0 {
			return badRequest("", "a query parameter name is not valid UTF-8 text")
		}
		if len(vals) > 1 && !(lists && slices.Contains(reportLists, name)) {
			return badRequest(name, "given twice")
		}
		for _, v := range vals {
			if msg := catalog.CheckText(v, catalog.MaxText); msg != "" {
				return badRequest(name, "%s", msg)
			}
		}
	}
	return nil
}
