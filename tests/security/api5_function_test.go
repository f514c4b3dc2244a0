package security

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/userservice/userservice/tests/harness"
)

// operation is one route of the served OpenAPI document.
type operation struct {
	method, path string
	secured      bool
}

// servedOperations reads the spec the service serves, so that a route
// added later is attacked without anyone listing it here.
func servedOperations(t *testing.T, s *harness.Service) []operation {
	t.Helper()
	// Read past the harness: the spec names hash formats ($2b$...), which
	// the leak scan would take for hashes.
	res, err := s.Client.Get(s.Base + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: %d %v", res.StatusCode, err)
	}
	spec, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatalf("the served spec does not load: %v", err)
	}
	var ops []operation
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			reqs := spec.Security
			if op.Security != nil {
				reqs = *op.Security
			}
			secured := len(reqs) > 0
			for _, r := range reqs {
				if len(r) == 0 {
					secured = false
				}
			}
			ops = append(ops, operation{method, path, secured})
		}
	}
	return ops
}

// TestAPI5_FunctionLevel_EveryPrivilegedRouteForEachLesserRole is API5:2023
// Broken Function Level Authorization. Every operation of the served spec
// that needs a token refuses anonymous callers and bad tokens (401); every
// privileged function refuses each role below it (403) and leaves nothing
// changed; and no spelling of a path, method override or rewrite header
// reaches a function around its check.
func TestAPI5_FunctionLevel_EveryPrivilegedRouteForEachLesserRole(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		victim := s.Create(t, c.root, user)
		vid := strconv.FormatInt(victim.ID, 10)

		ops := servedOperations(t, s)
		if len(ops) < 15 {
			t.Fatalf("the served spec has %d operations; it cannot be the service's", len(ops))
		}
		for _, op := range ops {
			if !op.secured {
				continue
			}
			path := strings.ReplaceAll(op.path, "{id}", vid)
			for name, header := range map[string]string{
				"no token": "", "garbage": "Bearer x", "basic": "Basic " + c.root.Access,
				"token in a cookie": "",
			} {
				extra := []string{"Authorization", header}
				if name == "token in a cookie" {
					extra = []string{"Cookie", "access_token=" + c.root.Access + "; token=" + c.root.Access}
				}
				if r := s.Do(t, op.method, path, "", nil, extra...); r.Status != http.StatusUnauthorized {
					t.Errorf("%s %s with %s: %s, want 401", op.method, op.path, name, r)
				}
			}
			// The token in the query is not a token either (nor logged).
			if r := s.Do(t, op.method, path+"?access_token="+url.QueryEscape(c.root.Access), "", nil); r.Status/100 == 2 {
				t.Errorf("%s %s with the token in the query: %s", op.method, op.path, r)
			}
		}

		csv := csvHeader + "Ann,Lee," + harness.Email("imp") + ",female,10.0.0.1\n"
		type call struct {
			name, method, path string
			body               any
			refused            []string // the roles refused
		}
		for _, tc := range []call{
			{"search users", http.MethodGet, search + "?email=example", nil, []string{user}},
			{"create a user", http.MethodPost, createUser, harness.NewUserBody(harness.Email("fn"), "a-long-password-1", user), []string{user, admin}},
			{"create an admin", http.MethodPost, createUser, harness.NewUserBody(harness.Email("fn"), "a-long-password-1", admin), []string{user, admin}},
			{"create a superadmin", http.MethodPost, createUser, harness.NewUserBody(harness.Email("fn"), "a-long-password-1", superadmin), []string{user, admin}},
			{"delete a user", http.MethodDelete, harness.UserPath(victim.ID), nil, []string{user, admin}},
			{"make a user admin", http.MethodPatch, harness.UserPath(victim.ID) + "/role", map[string]any{"role": admin}, []string{user}},
			{"make a user superadmin", http.MethodPatch, harness.UserPath(victim.ID) + "/role", map[string]any{"role": superadmin}, []string{user, admin}},
			{"import users", http.MethodPost, importPath, csvBody(csv), []string{user, admin}},
			{"dry-run an import", http.MethodPost, importPath + "?dry_run=true", csvBody(csv), []string{user, admin}},
			{"read the audit log", http.MethodGet, audit, nil, []string{user, admin}},
		} {
			for _, role := range tc.refused {
				t.Run(role+"/"+tc.name, func(t *testing.T) {
					s.Expect(t, http.StatusForbidden, tc.method, tc.path, c.byRole[role].Access, tc.body)
				})
			}
		}
		// Nobody changes their own role, whatever the policy (docs/api.md, Roles).
		for _, role := range roles {
			a := c.byRole[role]
			s.Expect(t, http.StatusForbidden, http.MethodPatch, harness.UserPath(a.ID)+"/role", a.Access, map[string]any{"role": superadmin})
		}

		// Spellings and overrides: never a success for a user.
		u := c.byRole[user]
		for _, tc := range []struct {
			method, path string
			header       []string
		}{
			{http.MethodHead, "/api/v1/audit", nil},
			{http.MethodGet, "/api/v1/audit/", nil},
			{http.MethodGet, "/api/v1//audit", nil},
			{http.MethodGet, "/api/v1/./audit", nil},
			{http.MethodGet, "/api/v1/users/../audit", nil},
			{http.MethodGet, "/API/V1/AUDIT", nil},
			{http.MethodGet, "/api/v1/%61udit", nil},
			{http.MethodGet, "/api/v1/audit%2f", nil},
			{http.MethodGet, "/api/v1/audit;x=1", nil},
			{http.MethodGet, "/api/v1/users/search/", nil},
			{http.MethodPost, harness.UserPath(victim.ID), []string{"X-HTTP-Method-Override", "DELETE"}},
			{http.MethodGet, harness.UserPath(victim.ID), []string{"X-HTTP-Method", "DELETE"}},
			{http.MethodPost, harness.UserPath(victim.ID) + "?_method=DELETE", nil},
			{http.MethodGet, list, []string{"X-Original-URL", "/api/v1/audit"}},
			{http.MethodGet, list, []string{"X-Rewrite-URL", "/api/v1/audit"}},
			{http.MethodGet, me, []string{"X-Forwarded-User", "root"}},
		} {
			r := s.Do(t, tc.method, tc.path, u.Access, nil, tc.header...)
			if r.Status/100 == 2 && strings.Contains(string(r.Body), `"seq"`) {
				t.Errorf("%s reached the audit log with %q", r, tc.header)
			} else if r.Status/100 == 2 && tc.method != http.MethodGet {
				t.Errorf("%s with %q: a user's request succeeded", r, tc.header)
			}
		}
		// And after all that the victim is still there, a user.
		if got := s.Expect(t, http.StatusOK, http.MethodGet, harness.UserPath(victim.ID), c.root.Access, nil).User(t); got.Role != user {
			t.Errorf("the victim is now %+v", got)
		}
	})
}

// TestAPI5_FunctionLevel_StaleAndRestrictedTokens is API5:2023 for tokens
// that should no longer carry a function: an admin demoted to user keeps
// no admin function (the old token is dead, the new one is a user's), and a
// user imported with a default password may do nothing but change it
// (docs/api.md).
func TestAPI5_FunctionLevel_StaleAndRestrictedTokens(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		a := s.CreateAndLogin(t, c.root, admin)
		s.Expect(t, http.StatusOK, http.MethodGet, search, a.Access, nil)
		s.Expect(t, http.StatusOK, http.MethodPatch, harness.UserPath(a.ID)+"/role", c.root.Access, map[string]any{"role": user})
		s.Expect(t, http.StatusUnauthorized, http.MethodGet, search, a.Access, nil)
		s.Expect(t, http.StatusUnauthorized, http.MethodPost, refresh, "", map[string]any{"refresh_token": a.Refresh})
		s.Login(t, a)
		s.Expect(t, http.StatusForbidden, http.MethodGet, search, a.Access, nil)

		// An imported user with the import's default password.
		email := harness.Email("imported")
		def := s.Password()
		r := s.Expect(t, http.StatusOK, http.MethodPost, importPath+"?default_password="+url.QueryEscape(def), c.root.Access,
			csvBody(csvHeader+"Ann,Lee,"+email+",female,10.0.0.1\n"))
		if !strings.Contains(string(r.Body), `"imported":1`) {
			t.Fatalf("%s: want one user imported", r)
		}
		r = s.Expect(t, http.StatusOK, http.MethodPost, tokenPath, "", url.Values{"username": {email}, "password": {def}})
		var pair struct {
			AccessToken string `json:"access_token"`
			MustChange  bool   `json:"password_change_required"`
		}
		r.Decode(t, &pair)
		if !pair.MustChange {
			t.Errorf("%s: want password_change_required", r)
		}
		var id int64
		for _, path := range []string{list, me, harness.UserPath(c.root.ID), search} {
			s.Expect(t, http.StatusForbidden, http.MethodGet, path, pair.AccessToken, nil)
		}
		page := s.Expect(t, http.StatusOK, http.MethodGet, search+"?email="+email, c.root.Access, nil)
		var p harness.PageDTO
		page.Decode(t, &p)
		if len(p.Items) != 1 {
			t.Fatalf("%s: want the imported user", page)
		}
		id = p.Items[0].ID
		s.Expect(t, http.StatusForbidden, http.MethodPut, harness.UserPath(id), pair.AccessToken, map[string]any{"first_name": "Eve"})
		s.Expect(t, http.StatusForbidden, http.MethodPut, harness.UserPath(c.root.ID), pair.AccessToken, map[string]any{"password": s.Password(), "current_password": def})
		next := s.Password()
		s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(id), pair.AccessToken, map[string]any{"password": next, "current_password": def})
		imported := &harness.Account{Email: email, Password: next}
		s.Login(t, imported)
		s.Expect(t, http.StatusOK, http.MethodGet, list, imported.Access, nil)
	})
}
