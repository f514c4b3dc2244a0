package security

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/userservice/userservice/tests/harness"
)

// TestAPI6_BusinessFlows_MassSignUpAndDeletionAreThrottled is API6:2023
// Unrestricted Access to Sensitive Business Flows, with the shipped limits:
// a script creating accounts gets 5 sign-ups a minute per address (which
// also bounds probing for taken emails, whose 409 the contract requires),
// and a stolen superadmin token deletes at most 10 users a minute.
func TestAPI6_BusinessFlows_MassSignUpAndDeletionAreThrottled(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{ShippedLimits: true}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		for i := range 5 {
			s.Expect(t, http.StatusCreated, http.MethodPost, signUp, "", harness.NewUserBody(harness.Email(fmt.Sprint("bot", i)), s.Password(), ""))
		}
		r := s.Expect(t, http.StatusTooManyRequests, http.MethodPost, signUp, "", harness.NewUserBody(harness.Email("bot"), s.Password(), ""))
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", r)
		}
		// Probing whether root's email is taken is throttled the same way.
		s.Expect(t, http.StatusTooManyRequests, http.MethodPost, signUp, "", harness.NewUserBody(root.Email, s.Password(), ""))

		// Eleven users, made cheaply by an import (no passwords to hash).
		var csv strings.Builder
		csv.WriteString(csvHeader)
		emails := make([]string, 11)
		for i := range emails {
			emails[i] = harness.Email("victim")
			fmt.Fprintf(&csv, "Ann,Lee,%s,female,10.0.0.%d\n", emails[i], i+1)
		}
		s.Expect(t, http.StatusOK, http.MethodPost, importPath, root.Access, csvBody(csv.String()))
		var p harness.PageDTO
		s.Expect(t, http.StatusOK, http.MethodGet, search+"?email=victim-&size=100", root.Access, nil).Decode(t, &p)
		if len(p.Items) != 11 {
			t.Fatalf("want the 11 imported users, got %d", len(p.Items))
		}
		for i, u := range p.Items {
			want := http.StatusNoContent
			if i == 10 {
				want = http.StatusTooManyRequests
			}
			s.Expect(t, want, http.MethodDelete, harness.UserPath(u.ID), root.Access, nil)
		}
	})
}
