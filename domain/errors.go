package domain

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind classifies an error for every adapter: HTTP maps it to a status once,
// WebSocket and CSV reuse it for their own replies.
type Kind int

const (
	// KindInternal is anything unexpected; its text never reaches a client.
	KindInternal Kind = iota
	// KindMalformed is input that cannot be read at all (HTTP 400).
	KindMalformed
	// KindInvalid is well-formed input with invalid values (HTTP 422).
	KindInvalid
	// KindUnauthenticated is a missing, invalid, expired or revoked credential (HTTP 401).
	KindUnauthenticated
	// KindForbidden is an authenticated actor that may not do this (HTTP 403).
	KindForbidden
	// KindNotFound is a user (or other resource) that does not exist (HTTP 404).
	KindNotFound
	// KindConflict is a state conflict such as a taken email (HTTP 409).
	KindConflict
	// KindPreconditionFailed is a stale conditional request (HTTP 412).
	KindPreconditionFailed
	// KindTooLarge is a body or file over its limit (HTTP 413).
	KindTooLarge
	// KindRateLimited is a request over its budget (HTTP 429).
	KindRateLimited
	// KindUnavailable is a dependency (the database) that cannot be reached (HTTP 503).
	KindUnavailable
)

var kindNames = [...]string{
	KindInternal:           "internal",
	KindMalformed:          "malformed",
	KindInvalid:            "invalid",
	KindUnauthenticated:    "unauthenticated",
	KindForbidden:          "forbidden",
	KindNotFound:           "not_found",
	KindConflict:           "conflict",
	KindPreconditionFailed: "precondition_failed",
	KindTooLarge:           "too_large",
	KindRateLimited:        "rate_limited",
	KindUnavailable:        "unavailable",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// FieldError names one invalid field of a request or row.
type FieldError struct {
	Field   string
	Message string
}

// Error is the one error type of the service. Message is safe to show to a
// client; Err (the cause) is for logs only.
type Error struct {
	Kind    Kind
	Code    string // stable machine-readable code, e.g. "email_taken"
	Message string
	Fields  []FieldError
	Err     error
	// RetryAfter, when positive, is how long a refused client should wait
	// before trying again (KindRateLimited).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	for _, f := range e.Fields {
		b.WriteString("; ")
		b.WriteString(f.Field)
		b.WriteString(": ")
		b.WriteString(f.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotFound) match any *Error with the same Kind and
// Code, so adapters may wrap causes into copies of the sentinels.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return e.Kind == t.Kind && e.Code == t.Code
}

// Wrap returns a copy of the sentinel e carrying cause for the logs.
func (e *Error) Wrap(cause error) *Error {
	c := *e
	c.Err = cause
	return &c
}

// Errorf builds an Error of the given kind whose message is safe for clients.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// KindOf reports the Kind of err; errors that are not *Error are internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// AsError returns the *Error in err's chain, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// Sentinels shared across the service. Compare with errors.Is.
var (
	ErrNotFound          = &Error{Kind: KindNotFound, Code: "not_found", Message: "user not found"}
	ErrEmailTaken        = &Error{Kind: KindConflict, Code: "email_taken", Message: "email already registered"}
	ErrIDTaken           = &Error{Kind: KindConflict, Code: "id_taken", Message: "id already in use"}
	ErrLastSuperadmin    = &Error{Kind: KindConflict, Code: "last_superadmin", Message: "the last superadmin can be neither demoted nor deleted"}
	ErrOwnRoleChange     = &Error{Kind: KindForbidden, Code: "own_role_change", Message: "nobody may change their own role"}
	ErrForbidden         = &Error{Kind: KindForbidden, Code: "forbidden", Message: "not allowed"}
	ErrUnauthenticated   = &Error{Kind: KindUnauthenticated, Code: "unauthenticated", Message: "not authenticated"}
	ErrBadCredentials    = &Error{Kind: KindUnauthenticated, Code: "bad_credentials", Message: "Incorrect email or password"}
	ErrPasswordChange    = &Error{Kind: KindForbidden, Code: "password_change_required", Message: "you must change your password first"}
	ErrStale             = &Error{Kind: KindPreconditionFailed, Code: "stale", Message: "the user changed since it was read"}
	ErrUnavailable       = &Error{Kind: KindUnavailable, Code: "unavailable", Message: "the database is unreachable"}
	ErrPasswordRequired  = &Error{Kind: KindInvalid, Code: "current_password_required", Message: "current_password is required to change your own email or password"}
	ErrPasswordIncorrect = &Error{Kind: KindInvalid, Code: "current_password_incorrect", Message: "current_password is incorrect"}
	// ErrTooManyFailures refuses a password check after too many failed ones
	// for the account (from the client's network, or from everywhere).
	ErrTooManyFailures = &Error{Kind: KindRateLimited, Code: "rate_limited", Message: "too many failed password attempts; try again later"}
	// ErrUnsupportedTokenType answers a revocation of an access token, which
	// cannot be revoked alone (RFC 7009 §2.2.1).
	ErrUnsupportedTokenType = &Error{Kind: KindMalformed, Code: "unsupported_token_type",
		Message: "access tokens cannot be revoked one by one; they expire (ACCESS_TOKEN_TTL). Revoke the refresh token"}
)

// ValidationError collects field problems and reports them all at once.
type ValidationError struct {
	fields []FieldError
}

// Add records a problem with field.
func (v *ValidationError) Add(field, message string) {
	v.fields = append(v.fields, FieldError{Field: field, Message: message})
}

// Check records err (if not nil) under field; err's message is used.
func (v *ValidationError) Check(field string, err error) {
	if err == nil {
		return
	}
	if e := AsError(err); e != nil {
		if len(e.Fields) > 0 {
			v.fields = append(v.fields, e.Fields...)
			return
		}
		v.Add(field, e.Message)
		return
	}
	v.Add(field, err.Error())
}

// Err returns nil when nothing was recorded, otherwise a KindInvalid *Error.
func (v *ValidationError) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return &Error{Kind: KindInvalid, Code: "validation_failed", Message: "validation failed", Fields: v.fields}
}

// invalid is the error of one value constructor.
func invalid(field, message string) error {
	return &Error{Kind: KindInvalid, Code: "validation_failed", Message: "validation failed",
		Fields: []FieldError{{Field: field, Message: message}}}
}
