package httpapi

import (
	"encoding/json"
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
