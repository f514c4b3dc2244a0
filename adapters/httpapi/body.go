package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/userservice/userservice/domain"
)

// jsonObject is a request body read strictly: one JSON object and nothing
// after it, with the keys its operation's schema in openapi.yaml lists
// (operations.gen.go). Keys are looked up one by one so that every problem
// (a wrong type, an unknown or missing key) is reported at once, each naming
// its field.
type jsonObject struct {
	raw  map[string]json.RawMessage
	keys map[string]bodyKey
	errs domain.ValidationError
	// misread is a handler reading a key its schema does not list: a bug,
	// answered 500, that the spec and the handler disagree.
	misread error
}

// bodyKey is what openapi.yaml says of one key of a JSON request body;
// every key is a string.
type bodyKey struct {
	// required: the schema lists it in required.
	required bool
	// nullable: null is a value (it clears), read as "".
	nullable bool
}

var (
	errNotJSON = &domain.Error{Kind: domain.KindMalformed, Code: "malformed_json",
		Message: "request body must be a single JSON object"}
	errEmptyBody = &domain.Error{Kind: domain.KindMalformed, Code: "malformed_json",
		Message: "request body is empty; a JSON object is required"}
)

// readObject reads the request body of the operation operationID as one
// JSON object. A missing Content-Type is read as JSON (clients that forget it
// still work); any other non-JSON type is refused with 415 rather than
// guessed at.
func readObject(c echo.Context, operationID string) (*jsonObject, error) {
	keys := operations[operationID].body
	if keys == nil {
		return nil, fmt.Errorf("httpapi: openapi.yaml gives %q no JSON request body", operationID)
	}
	if err := requireJSON(c.Request()); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return nil, readError(err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errEmptyBody
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, errNotJSON
		}
		return nil, malformedJSON(err)
	}
	if raw == nil { // the body was `null`
		return nil, errNotJSON
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &domain.Error{Kind: domain.KindMalformed, Code: "malformed_json",
			Message: "request body has data after the JSON object"}
	}
	return &jsonObject{raw: raw, keys: keys}, nil
}

// malformedJSON describes a syntax error by position, never echoing the body.
func malformedJSON(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return &domain.Error{Kind: domain.KindMalformed, Code: "malformed_json",
			Message: fmt.Sprintf("request body is not valid JSON (at byte %d)", syn.Offset), Err: err}
	}
	return &domain.Error{Kind: domain.KindMalformed, Code: "malformed_json",
		Message: "request body is not valid JSON", Err: err}
}

// readError turns a failed body read into 413 when the limit cut it short.
func readError(err error) error {
	return bodyReadError(err, "malformed_body", "request body could not be read")
}

// bodyReadError is 413 when the body limit cut the read short, else a
// malformed body with code and message.
func bodyReadError(err error, code, message string) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errBodyTooLarge(tooLarge.Limit)
	}
	return &domain.Error{Kind: domain.KindMalformed, Code: code, Message: message, Err: err}
}

func errBodyTooLarge(limit int64) *domain.Error {
	return &domain.Error{Kind: domain.KindTooLarge, Code: "too_large",
		Message: fmt.Sprintf("request body is larger than %d bytes", limit)}
}

func requireJSON(r *http.Request) error {
	ct := r.Header.Get(echo.HeaderContentType)
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == echo.MIMEApplicationJSON || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return errUnsupportedMediaType("application/json")
}

func errUnsupportedMediaType(want ...string) error {
	return &echo.HTTPError{Code: http.StatusUnsupportedMediaType,
		Message: "Content-Type must be " + strings.Join(want, " or ")}
}

// unknown records every key the schema does not list as an unknown field,
// so a misspelt key is an error rather than a silently ignored change.
func (o *jsonObject) unknown() {
	var unknown []string
	for _, k := range o.sortedKeys() {
		if _, ok := o.keys[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	for i, k := range unknown {
		if i == maxNamed {
			o.errs.Add("body", fmt.Sprintf("and %d more unknown fields", len(unknown)-maxNamed))
			break
		}
		o.errs.Add(clipName(k), "unknown field")
	}
}

// maxNamed bounds how many of a client's unknown names (keys, query
// parameters) an error lists, and maxNameLen how much of each it repeats:
// a request with thousands of keys, or one huge key, must not be answered
// with more than it sent.
const (
	maxNamed   = 20
	maxNameLen = 64
)

// clipName shortens a client's name for an error, at a rune boundary.
func clipName(s string) string {
	if len(s) <= maxNameLen {
		return s
	}
	cut := maxNameLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// reject records key, when present, as not accepted here, with a message
// more helpful than "unknown field", which it is then not also reported as.
func (o *jsonObject) reject(key, message string) {
	if _, ok := o.raw[key]; ok {
		o.errs.Add(key, message)
		delete(o.raw, key)
	}
}

func (o *jsonObject) sortedKeys() []string {
	keys := make([]string, 0, len(o.raw))
	for k := range o.raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// str returns key's value, nil when it is absent, as the schema says: a
// missing required key, or a value that is not a string (null, unless the
// key is nullable), is recorded as an error. A nullable key's null is "".
func (o *jsonObject) str(key string) *string {
	k, listed := o.keys[key]
	if !listed {
		o.misread = errors.Join(o.misread, fmt.Errorf("httpapi: a handler reads body key %q, which openapi.yaml does not list", key))
		return nil
	}
	v, ok := o.raw[key]
	switch {
	case !ok:
		if k.required {
			o.errs.Add(key, "is required")
		}
		return nil
	case k.nullable && bytes.Equal(v, []byte("null")):
		return new(string)
	}
	var s string
	if bytes.Equal(v, []byte("null")) || json.Unmarshal(v, &s) != nil {
		o.errs.Add(key, "must be a string")
		return nil
	}
	return &s
}

// value is str's value, "" when absent or wrong.
func (o *jsonObject) value(key string) string { return deref(o.str(key)) }

// err reports a handler reading a key the spec does not list, or else every
// problem recorded so far (422) followed by the keys the schema does not
// list, or nil. It is the last step of reading a body.
func (o *jsonObject) err() error {
	if o.misread != nil {
		return o.misread
	}
	o.unknown()
	return o.errs.Err()
}
