package security

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/userservice/userservice/tests/harness"
)

// The roles of docs/api.md, Roles.
const (
	user       = "user"
	admin      = "admin"
	superadmin = "superadmin"
)

var roles = []string{user, admin, superadmin}

const (
	me         = "/api/v1/users/me"
	list       = "/api/v1/users/list"
	search     = "/api/v1/users/search"
	createUser = "/api/v1/users/create-admin"
	importPath = "/api/v1/users/import"
	audit      = "/api/v1/audit"
	tokenPath  = "/api/v1/auth/token"
	refresh    = "/api/v1/auth/refresh"
	logout     = "/api/v1/auth/logout"
	signUp     = "/api/v1/auth/sign-up"
)

// publicUserKeys are the only members a user has in an answer or an event.
var publicUserKeys = []string{"id", "first_name", "last_name", "email", "gender", "ip_address", "role", "created_at", "updated_at"}

// cast is a superadmin seeded with the operator's command, and one signed-in
// user of each role made by it.
type cast struct {
	root   *harness.Account
	byRole map[string]*harness.Account
}

func newCast(t *testing.T, s *harness.Service) *cast {
	t.Helper()
	c := &cast{root: s.SeedSuperadmin(t), byRole: map[string]*harness.Account{}}
	for _, r := range roles {
		c.byRole[r] = s.CreateAndLogin(t, c.root, r)
	}
	return c
}

// snapshot is what a user looks like to a superadmin (the JSON answer and
// its ETag), to compare before and after an attack.
func snapshot(t *testing.T, s *harness.Service, root *harness.Account, id int64) string {
	t.Helper()
	r := s.Expect(t, http.StatusOK, http.MethodGet, harness.UserPath(id), root.Access, nil)
	return r.Header.Get("ETag") + " " + string(r.Body)
}

// loginStatus is the status of a login with a's password.
func loginStatus(t *testing.T, s *harness.Service, a *harness.Account) int {
	t.Helper()
	return s.Do(t, http.MethodPost, tokenPath, "", url.Values{"username": {a.Email}, "password": {a.Password}}).Status
}

// auditActions lists the actions the audit log holds about id.
func auditActions(t *testing.T, s *harness.Service, root *harness.Account, id int64) []string {
	t.Helper()
	r := s.Expect(t, http.StatusOK, http.MethodGet, audit+"?size=100&target_id="+strconv.FormatInt(id, 10), root.Access, nil)
	var p struct {
		Items []struct {
			Action string `json:"action"`
		} `json:"items"`
	}
	r.Decode(t, &p)
	out := make([]string, len(p.Items))
	for i, e := range p.Items {
		out[i] = e.Action
	}
	return out
}

// csvBody is a CSV upload.
func csvBody(data string) harness.RawBody {
	return harness.RawBody{ContentType: "text/csv", Data: data}
}

// csvHeader is the import's required columns.
const csvHeader = "first_name,last_name,email,gender,ip_address\n"

// wrongLogin is the token endpoint's answer to a wrong email or password:
// RFC 6749's invalid_grant, a 400.
const wrongLogin = http.StatusBadRequest
