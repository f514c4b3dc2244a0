package httpapi

import (
	"net/http"
	"slices"
	"testing"
)

// A parameter that cannot be bound is answered naming it and what a valid
// value looks like, never with the binder's parser detail, and every
// operation's typed parameters are checked before the wrapper binds them.
func TestUnbindableParametersAreNamedWithTheirHint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	for _, tc := range []struct{ path, name, hint string }{
		{"/api/v1/audit?since=yesterday", "since", "must be an RFC 3339 date-time, such as 2024-01-31T08:00:00Z"},
		{"/api/v1/audit?target_id=1%20OR%201=1", "target_id", "must be an integer"},
		{"/api/v1/users/search?size=9999999999999999999999", "size", "must be an integer"},
		{"/api/v1/users/x1/permissions", "id", "must be an integer"},
	} {
		e := wantError(t, h.get(tc.path, adminToken), http.StatusBadRequest, "malformed")
		if want := `invalid value for parameter "` + tc.name + `": ` + tc.hint; e.Detail != want {
			t.Errorf("%s: detail = %q, want %q", tc.path, e.Detail, want)
		}
		if f := fieldErrors(e); len(f) != 1 || f[tc.name] != tc.hint {
			t.Errorf("%s: errors = %v", tc.path, f)
		}
	}
}

// Each typed parameter the spec documents is one checkParams binds to the
// Go type oapi-codegen generates: a kind it did not know would bind to a
// string, accept everything, and leave the wrapper's text answer.
func TestEveryTypedParameterHasItsGoType(t *testing.T) {
	t.Parallel()
	for id, op := range operations {
		for _, p := range op.params {
			if _, isString := p.target().(*string); isString && p.in != "path" {
				t.Errorf("%s: parameter %s (%s %s) binds as a string", id, p.name, p.typ, p.format)
			}
			if !slices.Contains([]string{"path", "query"}, p.in) {
				t.Errorf("%s: parameter %s in %s", id, p.name, p.in)
			}
		}
	}
}
