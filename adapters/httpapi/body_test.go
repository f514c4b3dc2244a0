package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/userservice/userservice/domain"
)

// A handler reading a key its operation's schema does not list is the
// spec and the code disagreeing: an internal error, not a client's 422.
func TestReadingAKeyTheSpecDoesNotListIsABug(t *testing.T) {
	t.Parallel()
	o := &jsonObject{raw: map[string]json.RawMessage{"nick": json.RawMessage(`"x"`)}, keys: operations["changeUserRole"].body}
	if v := o.str("nick"); v != nil {
		t.Errorf("str = %q, want nil", *v)
	}
	err := o.err()
	if err == nil || domain.AsError(err) != nil {
		t.Errorf("err = %v, want a plain (internal) error", err)
	}
}

// Every key the spec lists for a JSON body is read by its handler, except
// the sign-up's role, which the spec documents as ignored: a key added to
// the spec alone would otherwise be accepted and silently dropped. A number
// where the key's string belongs must be refused, naming the key.
func TestEveryDocumentedBodyKeyIsRead(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	routes := map[string]request{
		"authToken":      {method: http.MethodPost, path: "/api/v1/auth/token"},
		"authRefresh":    {method: http.MethodPost, path: "/api/v1/auth/refresh"},
		"authLogout":     {method: http.MethodPost, path: "/api/v1/auth/logout", token: userToken},
		"authSignUp":     {method: http.MethodPost, path: "/api/v1/auth/sign-up"},
		"createUser":     {method: http.MethodPost, path: "/api/v1/users/create-admin", token: adminToken},
		"updateUser":     {method: http.MethodPut, path: "/api/v1/users/7", token: userToken},
		"changeUserRole": {method: http.MethodPatch, path: "/api/v1/users/8/role", token: adminToken},
	}
	for id, op := range operations {
		if op.body == nil {
			continue
		}
		r, ok := routes[id]
		if !ok {
			t.Errorf("%s has a JSON body: add a request for it here", id)
			continue
		}
		for key := range op.body {
			if id == "authSignUp" && key == "role" {
				continue
			}
			r.body = `{"` + key + `":5}`
			status := http.StatusUnprocessableEntity
			if isOAuthRoute(r.path) {
				status = http.StatusBadRequest // RFC 6749 §5.2, in OAuthError's shape
			}
			rec := h.do(r)
			var body struct{ Errors []FieldError }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != status ||
				!slices.Contains(body.Errors, FieldError{Field: key, Message: "must be a string"}) {
				t.Errorf("%s: %s is not read: %d %s", id, key, rec.Code, rec.Body)
			}
		}
	}
}
