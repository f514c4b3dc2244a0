package integration

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/userservice/userservice/tests/harness"
)

// TestSecretsStayOutOfAnswersAndLogs drives the paths where a secret would
// most likely slip out: mistakes clients make with their credentials,
// rejected passwords, unreadable bodies that hold a password, and the audit
// log of password changes. The leak scan that ends every test (see harness.Start)
// then finds no password, hash, token or JWT secret in any answer or line
// of the log.
func TestSecretsStayOutOfAnswersAndLogs(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		u := s.CreateAndLogin(t, root, user)

		// Credentials in the wrong fields or places.
		s.Expect(t, http.StatusBadRequest, http.MethodPost, "/api/v1/auth/token", "", url.Values{"username": {u.Password}, "password": {u.Email}})
		s.Expect(t, http.StatusBadRequest, http.MethodPost, "/api/v1/auth/token", "", map[string]any{"email": u.Password, "password": u.Password})
		s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, u.Refresh, nil)
		s.Expect(t, http.StatusUnauthorized, http.MethodPost, "/api/v1/auth/refresh", "", map[string]any{"refresh_token": u.Access})
		s.Expect(t, http.StatusBadRequest, http.MethodGet, "/api/v1/users/list?cursor="+url.QueryEscape(u.Refresh), u.Access, nil)
		s.Expect(t, http.StatusBadRequest, http.MethodGet, "/api/v1/users/list?password="+url.QueryEscape(u.Password), u.Access, nil)
		s.Expect(t, http.StatusBadRequest, http.MethodGet, "/api/v1/users/list?access_token="+url.QueryEscape(u.Access), u.Access, nil)
		s.Expect(t, http.StatusUnprocessableEntity, http.MethodPost, "/api/v1/auth/sign-up", "", harness.NewUserBody(u.Password, u.Password, ""))

		// Passwords the service refuses.
		long := s.Password() + strings.Repeat("x", 128)
		s.Leaks.SecretPassword(long)
		s.Expect(t, http.StatusUnprocessableEntity, http.MethodPost, "/api/v1/auth/sign-up", "", harness.NewUserBody(harness.Email("long"), long, ""))
		s.Expect(t, http.StatusUnprocessableEntity, http.MethodPut, harness.UserPath(u.ID), u.Access, map[string]any{"password": long, "current_password": u.Password})
		s.Expect(t, http.StatusUnprocessableEntity, http.MethodPut, harness.UserPath(u.ID), u.Access, map[string]any{"password": s.Password(), "current_password": s.Password()})
		s.Expect(t, http.StatusUnprocessableEntity, http.MethodPut, harness.UserPath(u.ID), u.Access, map[string]any{"password": []string{s.Password()}, "current_password": u.Password})

		// Bodies that cannot be read, holding a password.
		s.Expect(t, http.StatusBadRequest, http.MethodPost, "/api/v1/auth/token", "",
			harness.RawBody{ContentType: "application/json", Data: `{"email":"` + u.Email + `","password":"` + u.Password + `"x}`})
		s.Expect(t, http.StatusBadRequest, http.MethodPost, "/api/v1/auth/token", "",
			harness.RawBody{ContentType: "application/x-www-form-urlencoded", Data: "username=" + url.QueryEscape(u.Email) + "&password=" + u.Password + "%zz"})
		s.Expect(t, http.StatusUnsupportedMediaType, http.MethodPost, "/api/v1/auth/token", "",
			harness.RawBody{ContentType: "text/plain", Data: "username=" + u.Email + "&password=" + u.Password})
		s.Expect(t, http.StatusBadRequest, http.MethodPost, "/api/v1/auth/sign-up", "",
			harness.RawBody{ContentType: "application/json", Data: `{"password":"` + s.Password() + `"`})

		// Password changes, then the audit log that records them.
		next := s.Password()
		s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(u.ID), u.Access, map[string]any{"password": next, "current_password": u.Password})
		u.Password = next
		s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(u.ID), root.Access, map[string]any{"password": s.Password(), "first_name": "Ada"})
		r := s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/audit?target_id="+strconv.FormatInt(u.ID, 10), root.Access, nil)
		var p struct {
			Items []struct {
				Action string         `json:"action"`
				Before map[string]any `json:"before"`
				After  map[string]any `json:"after"`
			} `json:"items"`
		}
		r.Decode(t, &p)
		actions := map[string]bool{}
		for _, e := range p.Items {
			actions[e.Action] = true
		}
		if !actions["created"] || !actions["password_changed"] || !actions["updated"] {
			t.Errorf("%s: want created, password_changed and updated entries", r)
		}
	})
}

// TestHostileInputIsAnsweredPlainly sends what a careless or hostile client
// might: every answer is the documented 4xx (docs/api.md: no 500 for
// anything a client can send).
func TestHostileInputIsAnsweredPlainly(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		id := harness.UserPath(root.ID)
		huge := `{"first_name":"` + strings.Repeat("a", 2<<20) + `"}`
		for _, tc := range []struct {
			name, method, path string
			body               any
			want               int
		}{
			{"JSON array", http.MethodPost, "/api/v1/auth/sign-up", harness.RawBody{ContentType: "application/json", Data: `[]`}, http.StatusBadRequest},
			{"JSON after the object", http.MethodPut, id, harness.RawBody{ContentType: "application/json", Data: `{"first_name":"A"} {}`}, http.StatusBadRequest},
			{"not JSON", http.MethodPatch, id + "/role", harness.RawBody{ContentType: "application/json", Data: `role=admin`}, http.StatusBadRequest},
			{"unknown content type", http.MethodPut, id, harness.RawBody{ContentType: "application/xml", Data: `<user/>`}, http.StatusUnsupportedMediaType},
			{"body over the limit", http.MethodPut, id, harness.RawBody{ContentType: "application/json", Data: huge}, http.StatusRequestEntityTooLarge},
			{"unknown key", http.MethodPut, id, map[string]any{"nickname": "x"}, http.StatusUnprocessableEntity},
			{"wrong type", http.MethodPut, id, map[string]any{"first_name": 42}, http.StatusUnprocessableEntity},
			{"no role", http.MethodPatch, id + "/role", map[string]any{}, http.StatusUnprocessableEntity},
			{"bad address", http.MethodPut, id, map[string]any{"ip_address": "999.1.1.1"}, http.StatusUnprocessableEntity},
			{"bad name", http.MethodPut, id, map[string]any{"first_name": "<script>"}, http.StatusUnprocessableEntity},
			{"id not a number", http.MethodGet, "/api/v1/users/abc", nil, http.StatusBadRequest},
			{"id past int64", http.MethodGet, "/api/v1/users/99999999999999999999", nil, http.StatusBadRequest},
			{"negative id", http.MethodGet, "/api/v1/users/-1", nil, http.StatusNotFound},
			{"no such route", http.MethodGet, "/api/v1/nothing", nil, http.StatusNotFound},
			{"wrong method", http.MethodPut, "/api/v1/auth/token", nil, http.StatusMethodNotAllowed},
			{"wildcards are literal", http.MethodGet, "/api/v1/users/search?email=" + url.QueryEscape(`%_\`), nil, http.StatusOK},
			{"CIDR out of range", http.MethodGet, "/api/v1/users/search?ip_address=10.0.0.0/40", nil, http.StatusUnprocessableEntity},
			{"long filter", http.MethodGet, "/api/v1/users/search?last_name=" + strings.Repeat("z", 5000), nil, http.StatusUnprocessableEntity},
			{"bad time", http.MethodGet, "/api/v1/audit?since=yesterday", nil, http.StatusBadRequest},
			{"until before since", http.MethodGet, "/api/v1/audit?since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z", nil, http.StatusUnprocessableEntity},
			{"bad action", http.MethodGet, "/api/v1/audit?action=stolen", nil, http.StatusUnprocessableEntity},
			{"bad query string", http.MethodGet, "/api/v1/users/list?size=%zz", nil, http.StatusBadRequest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s.Expect(t, tc.want, tc.method, tc.path, root.Access, tc.body)
			})
		}
	})
}
