package domain_test

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/userservice/userservice/domain"
)

func sentinels() map[string]*domain.Error {
	return map[string]*domain.Error{
		"ErrNotFound": domain.ErrNotFound, "ErrEmailTaken": domain.ErrEmailTaken, "ErrIDTaken": domain.ErrIDTaken,
		"ErrLastSuperadmin": domain.ErrLastSuperadmin, "ErrOwnRoleChange": domain.ErrOwnRoleChange,
		"ErrForbidden": domain.ErrForbidden, "ErrUnauthenticated": domain.ErrUnauthenticated,
		"ErrBadCredentials": domain.ErrBadCredentials, "ErrPasswordChange": domain.ErrPasswordChange,
		"ErrStale": domain.ErrStale, "ErrUnavailable": domain.ErrUnavailable,
		"ErrPasswordRequired": domain.ErrPasswordRequired, "ErrPasswordIncorrect": domain.ErrPasswordIncorrect,
		"ErrUnsupportedTokenType": domain.ErrUnsupportedTokenType,
	}
}

func TestSentinelsAreDistinct(t *testing.T) {
	t.Parallel()
	all := sentinels()
	for na, a := range all {
		if a.Err != nil || a.Message == "" || a.Code == "" || a.Kind == domain.KindInternal {
			t.Errorf("%s = %+v: want a message, a code, a client-facing kind and no cause", na, a)
		}
		for nb, b := range all {
			if got := errors.Is(a, b); got != (na == nb) {
				t.Errorf("errors.Is(%s, %s) = %v", na, nb, got)
			}
		}
	}
}

func TestWrap(t *testing.T) {
	t.Parallel()
	cause := io.ErrUnexpectedEOF
	for name, s := range sentinels() {
		w := s.Wrap(cause)
		chained := fmt.Errorf("repository: %w", w)
		for _, err := range []error{w, chained} {
			if !errors.Is(err, s) {
				t.Errorf("%s: errors.Is(%v, sentinel) = false", name, err)
			}
			if !errors.Is(err, cause) {
				t.Errorf("%s: the cause is lost from %v", name, err)
			}
			if domain.KindOf(err) != s.Kind {
				t.Errorf("%s: KindOf(%v) = %v, want %v", name, err, domain.KindOf(err), s.Kind)
			}
			if domain.AsError(err) != w {
				t.Errorf("%s: AsError(%v) is not the wrapped copy", name, err)
			}
		}
		if w == s || s.Err != nil {
			t.Errorf("%s: Wrap changed the sentinel instead of copying it", name)
		}
		if want := s.Message + ": " + cause.Error(); w.Error() != want {
			t.Errorf("%s: Wrap(...).Error() = %q, want %q", name, w.Error(), want)
		}
	}
}

func TestErrorIs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"same kind and code, other message", domain.Errorf(domain.KindNotFound, "not_found", "user %d not found", 7), domain.ErrNotFound, true},
		{"same code, other kind", domain.Errorf(domain.KindConflict, "not_found", "x"), domain.ErrNotFound, false},
		{"same kind, other code", domain.Errorf(domain.KindNotFound, "no_such_audit_entry", "x"), domain.ErrNotFound, false},
		{"plain target", domain.ErrNotFound, io.EOF, false},
		{"plain error", io.EOF, domain.ErrNotFound, false},
		{"nil", nil, domain.ErrNotFound, false},
		{"validation errors are alike", invalidEmail(), &domain.Error{Kind: domain.KindInvalid, Code: "validation_failed"}, true},
	}
	for _, tt := range tests {
		if got := errors.Is(tt.err, tt.target); got != tt.want {
			t.Errorf("%s: errors.Is(%v, %v) = %v, want %v", tt.name, tt.err, tt.target, got, tt.want)
		}
	}
}

func invalidEmail() error {
	_, err := domain.ParseEmail("nope")
	return err
}

func TestKindOfAndAsError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		kind domain.Kind
		as   bool
	}{
		{"nil", nil, domain.KindInternal, false},
		{"plain", io.EOF, domain.KindInternal, false},
		{"plain wrapping plain", fmt.Errorf("x: %w", io.EOF), domain.KindInternal, false},
		{"sentinel", domain.ErrStale, domain.KindPreconditionFailed, true},
		{"wrapped sentinel", fmt.Errorf("a: %w", fmt.Errorf("b: %w", domain.ErrUnavailable)), domain.KindUnavailable, true},
		{"joined", errors.Join(io.EOF, domain.ErrEmailTaken), domain.KindConflict, true},
		{"Errorf", domain.Errorf(domain.KindTooLarge, "too_large", "over %d bytes", 10), domain.KindTooLarge, true},
		{"validation", invalidEmail(), domain.KindInvalid, true},
	}
	for _, tt := range tests {
		if got := domain.KindOf(tt.err); got != tt.kind {
			t.Errorf("%s: KindOf = %v, want %v", tt.name, got, tt.kind)
		}
		if got := domain.AsError(tt.err); (got != nil) != tt.as || got != nil && got.Kind != tt.kind {
			t.Errorf("%s: AsError = %v", tt.name, got)
		}
	}
}

func TestKindString(t *testing.T) {
	t.Parallel()
	want := map[domain.Kind]string{
		domain.KindInternal: "internal", domain.KindMalformed: "malformed", domain.KindInvalid: "invalid",
		domain.KindUnauthenticated: "unauthenticated", domain.KindForbidden: "forbidden", domain.KindNotFound: "not_found",
		domain.KindConflict: "conflict", domain.KindPreconditionFailed: "precondition_failed", domain.KindTooLarge: "too_large",
		domain.KindRateLimited: "rate_limited", domain.KindUnavailable: "unavailable", domain.Kind(99): "kind(99)",
	}
	for k, s := range want {
		if k.String() != s {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), k.String(), s)
		}
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *domain.Error
		want string
	}{
		{domain.ErrNotFound, "user not found"},
		{domain.Errorf(domain.KindTooLarge, "too_large", "body over %d MiB", 10), "body over 10 MiB"},
		{&domain.Error{Message: "validation failed", Fields: []domain.FieldError{{"first_name", "is required"}, {"email", "is not a valid email address"}}},
			"validation failed; first_name: is required; email: is not a valid email address"},
		{&domain.Error{Message: "validation failed", Fields: []domain.FieldError{{"id", "must be a positive integer"}}, Err: io.EOF},
			"validation failed; id: must be a positive integer: EOF"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// twoFields is a validation error reporting fields a and b.
func twoFields() error {
	var v domain.ValidationError
	v.Add("a", "1")
	v.Add("b", "2")
	return v.Err()
}

func TestValidationError(t *testing.T) {
	t.Parallel()
	var empty domain.ValidationError
	empty.Check("x", nil)
	if err := empty.Err(); err != nil {
		t.Fatalf("empty ValidationError.Err() = %v, want nil", err)
	}

	var v domain.ValidationError
	v.Add("id", "must be a positive integer")
	v.Check("ignored", invalidEmail())                          // its own field error is kept
	v.Check("ignored", fmt.Errorf("row 3: %w", invalidEmail())) // found through wrapping
	v.Check("current_password", domain.ErrPasswordIncorrect)    // no fields: the message is used
	v.Check("file", io.ErrUnexpectedEOF)                        // not an *Error: its text is used
	v.Check("name", nil)                                        // nothing
	v.Check("ignored", twoFields())                             // every field merged
	err := v.Err()
	want := []domain.FieldError{
		{"id", "must be a positive integer"},
		{"email", "is not a valid email address"},
		{"email", "is not a valid email address"},
		{"current_password", "current_password is incorrect"},
		{"file", "unexpected EOF"},
		{"a", "1"},
		{"b", "2"},
	}
	if got := fieldErrors(t, err); !slices.Equal(got, want) {
		t.Fatalf("fields = %v\nwant %v", got, want)
	}
	if e := domain.AsError(err); e.Code != "validation_failed" || e.Message != "validation failed" || e.Err != nil {
		t.Fatalf("Err() = %+v", e)
	}
	if !errors.Is(err, invalidEmail()) {
		t.Fatal("a collected validation error is not errors.Is another one")
	}
}
