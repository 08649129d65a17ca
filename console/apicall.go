package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// APIError is a refusal of the API, shown on the page as the API wrote it:
// its HTTP status, its message and the field it names.
type APIError struct {
	Status int
	Msg    string
	Field  string
}

// Error is the field and the message.
func (e *APIError) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Msg
	}
	return e.Msg
}

// errSignedOut means the API no longer accepts the session's token
// (revoked, expired, its reseller archived or its client deleted): the
// session ends and the browser goes back to the sign-in page.
var errSignedOut = errors.New("the API no longer accepts this session's token")

// maxAnswer bounds an API answer the console reads into memory (a page of
// at most 1,000 rows, a report). Downloads are streamed instead.
const maxAnswer = 64 << 20

// reply is one answer of the API.
type reply struct {
	status int
	header http.Header
	body   bytes.Buffer
	over   bool
}

// Header is the answer's header.
func (r *reply) Header() http.Header { return r.header }

// WriteHeader records the status.
func (r *reply) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

// Write keeps the body, up to maxAnswer bytes.
func (r *reply) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len()+len(b) > maxAnswer {
		r.over = true
		return 0, errors.New("answer too large for the console")
	}
	return r.body.Write(b)
}

// apiRequest builds a request to the API for the session's token. The
// client's address is passed on, so the API's logs still name it.
func apiRequest(ctx context.Context, from *http.Request, token, method, path string, body io.Reader, contentType string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://console"+path, body)
	if err != nil {
		return nil, fmt.Errorf("api request %s %s: %w", method, path, err)
	}
	req.RemoteAddr = from.RemoteAddr
	req.Header.Set("User-Agent", "tarifa-console")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req, nil
}

// call sends one request to the API in process and reads the whole answer.
// A 401 is errSignedOut; any other status is the caller's to judge.
func (c *Console) call(r *http.Request, token, method, path string, body io.Reader, contentType string) (*reply, error) {
	req, err := apiRequest(r.Context(), r, token, method, path, body, contentType)
	if err != nil {
		return nil, err
	}
	rep := &reply{header: http.Header{}}
	c.api.ServeHTTP(rep, req)
	if rep.status == 0 {
		rep.status = http.StatusOK
	}
	if rep.over {
		return nil, fmt.Errorf("api %s %s: answer above %d bytes", method, path, maxAnswer)
	}
	if rep.status == http.StatusUnauthorized && token != "" {
		return nil, errSignedOut
	}
	return rep, nil
}

// asError turns an answer that is not a success into an APIError carrying
// the API's own words ({"error", "field"}, or its text).
func (rep *reply) asError() error {
	if rep.status < 300 {
		return nil
	}
	e := &APIError{Status: rep.status}
	var body struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	if json.Unmarshal(rep.body.Bytes(), &body) == nil && body.Error != "" {
		e.Msg, e.Field = body.Error, body.Field
	} else {
		e.Msg = strings.TrimSpace(rep.body.String())
	}
	if e.Msg == "" {
		e.Msg = http.StatusText(rep.status)
	}
	return e
}

// decode reads JSON keeping numbers as their text (json.Number): money is
// a string in the API already, and counts and ids stay exact too.
func decode(b []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("decode api answer: %w", err)
	}
	return nil
}

// get reads path with query q into out; an answer that is not a success is
// an APIError.
func (c *Console) get(r *http.Request, s *session, path string, q url.Values, out any) error {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	rep, err := c.call(r, s.token, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	if err := rep.asError(); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return decode(rep.body.Bytes(), out)
}

// send sends in as JSON (nil for no body) and reads the answer into out
// (nil to drop it); it returns the status of a success.
func (c *Console) send(r *http.Request, s *session, method, path string, in, out any) (int, error) {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	rep, err := c.call(r, s.token, method, path, body, ct)
	if err != nil {
		return 0, err
	}
	if err := rep.asError(); err != nil {
		return rep.status, err
	}
	if out != nil && rep.body.Len() > 0 {
		if err := decode(rep.body.Bytes(), out); err != nil {
			return rep.status, err
		}
	}
	return rep.status, nil
}

// stream hands the API's answer to path straight to the browser (CSV
// exports, PDFs): the API writes to w itself, with its own deadlines per
// page, and nothing is held in memory. A refusal is not passed on but
// returned as an APIError, for the console to show as a page.
func (c *Console) stream(w http.ResponseWriter, r *http.Request, s *session, path string, q url.Values) error {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	req, err := apiRequest(r.Context(), r, s.token, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	sw := &streamWriter{w: w, header: http.Header{}, failed: reply{header: http.Header{}}}
	c.api.ServeHTTP(sw, req)
	switch {
	case sw.status == http.StatusUnauthorized:
		return errSignedOut
	case sw.status >= 300:
		sw.failed.status = sw.status
		return sw.failed.asError()
	}
	return nil
}

// streamHeaders are the headers of an API answer a download keeps; the
// console's own security headers stay as they are.
var streamHeaders = []string{"Content-Type", "Content-Disposition", "Content-Length", "Last-Modified"}

// streamWriter passes a successful API answer through and keeps a refusal
// for the console to show.
type streamWriter struct {
	w      http.ResponseWriter
	header http.Header
	status int
	failed reply // the body of a refusal
}

// Header is the API's view of the answer's header.
func (sw *streamWriter) Header() http.Header { return sw.header }

// WriteHeader sends the status and the download's headers, unless the API
// refused.
func (sw *streamWriter) WriteHeader(code int) {
	if sw.status != 0 {
		return
	}
	sw.status = code
	if code >= 300 {
		return
	}
	for _, h := range streamHeaders {
		if v := sw.header.Get(h); v != "" {
			sw.w.Header().Set(h, v)
		}
	}
	sw.w.WriteHeader(code)
}

// Write sends part of the body (or keeps a refusal's).
func (sw *streamWriter) Write(b []byte) (int, error) {
	if sw.status == 0 {
		sw.WriteHeader(http.StatusOK)
	}
	if sw.status >= 300 {
		return sw.failed.Write(b)
	}
	return sw.w.Write(b)
}

// Flush flushes what the API wrote so far.
func (sw *streamWriter) Flush() {
	if f, ok := sw.w.(http.Flusher); ok && sw.status < 300 {
		f.Flush()
	}
}

// Unwrap lets the API set its write deadlines on the connection.
func (sw *streamWriter) Unwrap() http.ResponseWriter { return sw.w }

// page is one page of a list answer of the API.
type page struct {
	Items  []obj       `json:"items"`
	Total  json.Number `json:"total"`
	Limit  json.Number `json:"limit"`
	Offset json.Number `json:"offset"`
}

// obj is a JSON object of the API, numbers kept as text.
type obj = map[string]any

// str is v as the text the API wrote ("" for null or absent).
func str(v any) string {
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
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, str(e))
		}
		return strings.Join(parts, ", ")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// idOf reads an id the API wrote (0 when absent or not a number).
func idOf(v any) int64 {
	n, err := strconv.ParseInt(str(v), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// asAPIError reports whether err is a refusal of the API.
func asAPIError(err error) (*APIError, bool) {
	var ae *APIError
	ok := errors.As(err, &ae)
	return ae, ok
}
