package harness

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/userservice/userservice/bootstrap"
)

// Response is one answer of the service.
type Response struct {
	Method, Path string
	Status       int
	Header       http.Header
	Body         []byte
}

func (r Response) String() string {
	return fmt.Sprintf("%s %s: %d %s", r.Method, r.Path, r.Status, bytes.TrimSpace(r.Body))
}

// Decode reads the body as JSON into v.
func (r Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("%s: body is not the expected JSON: %v", r, err)
	}
}

// User reads the body as one user.
func (r Response) User(t testing.TB) UserDTO {
	t.Helper()
	var u UserDTO
	r.Decode(t, &u)
	return u
}

// ErrorBody is the service's error shape.
type ErrorBody struct {
	Detail string `json:"detail"`
	Code   string `json:"code"`
	// Error and ErrorDescription are RFC 6749 §5.2's, on the OAuth
	// endpoints (/auth/token, /auth/revoke, /auth/introspect).
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	Errors           []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// Error reads the body as an error.
func (r Response) Error(t testing.TB) ErrorBody {
	t.Helper()
	var e ErrorBody
	r.Decode(t, &e)
	return e
}

// RawBody is a request body sent as is.
type RawBody struct {
	ContentType string
	Data        string
}

// Do sends one request and checks what every answer must satisfy: never a
// 5xx, and every error in the {"detail", "code"} shape. body is nil,
// url.Values (a form), RawBody, or anything else (sent as JSON). header
// holds name, value pairs.
func (s *Service) Do(t testing.TB, method, path, token string, body any, header ...string) Response {
	t.Helper()
	var rd io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, contentType = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case RawBody:
		rd, contentType = strings.NewReader(b.Data), b.ContentType
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd, contentType = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.Base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := s.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	data, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	r := Response{Method: method, Path: path, Status: res.StatusCode, Header: res.Header, Body: data}
	s.Record(t, r)

	if r.Status >= 500 {
		t.Errorf("%s: a 5xx answer to a client's request", r)
	}
	if r.Status >= 400 && method != http.MethodHead {
		var e ErrorBody
		if err := json.Unmarshal(r.Body, &e); err != nil || e.Detail == "" || e.Code == "" {
			t.Errorf("%s: an error body must be {\"detail\", \"code\"}", r)
		}
	}
	return r
}

// Expect sends one request and checks its status.
func (s *Service) Expect(t testing.TB, want int, method, path, token string, body any, header ...string) Response {
	t.Helper()
	r := s.Do(t, method, path, token, body, header...)
	if r.Status != want {
		t.Errorf("%s: want %d", r, want)
	}
	return r
}

// Record keeps an answer for the leak scan. The tokens of a token answer
// are the one place a token may appear: they are registered as secrets and
// blanked out of the recorded body.
func (s *Service) Record(t testing.TB, r Response) {
	t.Helper()
	body := string(r.Body)
	if r.Status == http.StatusOK && (r.Path == "/api/v1/auth/token" || r.Path == "/api/v1/auth/refresh") {
		var pair map[string]any
		r.Decode(t, &pair)
		for _, field := range []string{"access_token", "refresh_token"} {
			token, ok := pair[field].(string)
			if !ok || token == "" {
				t.Errorf("%s: no %s", r, field)
				continue
			}
			if field == "access_token" {
				s.Leaks.SecretAccessToken(token)
			} else {
				s.Leaks.SecretRefreshToken(token)
			}
			pair[field] = "(redacted by the test)"
		}
		b, err := json.Marshal(pair)
		if err != nil {
			t.Fatal(err)
		}
		body = string(b)
	}
	var head strings.Builder
	for name, values := range r.Header {
		fmt.Fprintf(&head, "%s: %s\n", name, strings.Join(values, ", "))
	}
	where := fmt.Sprintf("the answer to %s %s (%d)", r.Method, r.Path, r.Status)
	s.Leaks.Capture(where+", headers", head.String())
	s.Leaks.Capture(where+", body", body)
}

// UserDTO is a user as the API answers it.
type UserDTO struct {
	ID        int64   `json:"id"`
	FirstName string  `json:"first_name"`
	LastName  string  `json:"last_name"`
	Email     string  `json:"email"`
	Gender    string  `json:"gender"`
	IPAddress *string `json:"ip_address"`
	Role      string  `json:"role"`
	CreatedAt string  `json:"created_at"`
	UpdatedAt string  `json:"updated_at"`
}

// PageDTO is the page envelope of list and search.
type PageDTO struct {
	Items      []UserDTO `json:"items"`
	Total      *int64    `json:"total"`
	TotalExact *bool     `json:"total_exact"`
	Page       *int      `json:"page"`
	Size       *int      `json:"size"`
	Pages      *int64    `json:"pages"`
	NextCursor *string   `json:"next_cursor"`
}

// Account is a user the test can act as.
type Account struct {
	ID       int64
	Email    string
	Password string
	Role     string
	Access   string // the access token of the last login
	Refresh  string // the refresh token of the last login
}

// UserPath is the REST path of user id.
func UserPath(id int64) string { return "/api/v1/users/" + strconv.FormatInt(id, 10) }

// Password returns a new random password, registered as a secret.
func (s *Service) Password() string {
	p := "Pw-" + rand.Text()
	s.Leaks.SecretPassword(p)
	return p
}

// Email returns a new address no other user of the run has.
func Email(prefix string) string {
	return prefix + "-" + strings.ToLower(rand.Text()) + "@example.com"
}

// NewUserBody is a valid create-admin or sign-up body.
func NewUserBody(email, password, role string) map[string]any {
	b := map[string]any{
		"first_name": "Zoë", "last_name": "O'Test", "email": email,
		"gender": "female", "ip_address": "10.1.2.3", "password": password,
	}
	if role != "" {
		b["role"] = role
	}
	return b
}

// SeedSuperadmin creates a superadmin with the command an operator runs
// (userservice superadmin) against the service's database, and logs in.
func (s *Service) SeedSuperadmin(t testing.TB) *Account {
	t.Helper()
	a := &Account{Email: Email("root"), Password: s.Password(), Role: "superadmin"}
	vars := map[string]string{
		"DATABASE_URL":                    s.DBURL,
		"POLICY_DIR":                      s.PolicyDir,
		"USERSERVICE_SUPERADMIN_PASSWORD": a.Password,
		"LOG_LEVEL":                       "debug",
		"LOG_FORMAT":                      "json",
	}
	var out bytes.Buffer
	env := bootstrap.Env{
		Getenv: func(k string) string { return vars[k] },
		Stdin:  strings.NewReader(""),
		Stdout: &out,
		Stderr: s.Logs,
	}
	if code := bootstrap.Main(t.Context(), []string{"superadmin", "--email", a.Email}, env); code != bootstrap.ExitOK {
		t.Fatalf("userservice superadmin: exit status %d; output %q", code, out.String())
	}
	s.Leaks.Capture("the output of userservice superadmin", out.String())
	s.Login(t, a)
	me := s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", a.Access, nil).User(t)
	if me.Role != "superadmin" {
		t.Fatalf("the seeded superadmin has role %q", me.Role)
	}
	a.ID = me.ID
	return a
}

// Create makes a user with role through POST /users/create-admin as by.
func (s *Service) Create(t testing.TB, by *Account, role string) *Account {
	t.Helper()
	return s.CreateNamed(t, by, role, role)
}

// CreateNamed is Create with an email starting with prefix.
func (s *Service) CreateNamed(t testing.TB, by *Account, role, prefix string) *Account {
	t.Helper()
	return s.CreateWithEmail(t, by, role, Email(prefix))
}

// CreateWithEmail is Create with exactly this email, for tests about its
// spelling (case, domain).
func (s *Service) CreateWithEmail(t testing.TB, by *Account, role, email string) *Account {
	t.Helper()
	a := &Account{Email: email, Password: s.Password(), Role: role}
	r := s.Expect(t, http.StatusCreated, http.MethodPost, "/api/v1/users/create-admin", by.Access, NewUserBody(a.Email, a.Password, role))
	if r.Status != http.StatusCreated {
		t.FailNow()
	}
	u := r.User(t)
	if u.Role != role {
		t.Fatalf("%s: created with role %q, want %q", r, u.Role, role)
	}
	a.ID = u.ID
	return a
}

// Login logs a in with the OAuth2 password form and keeps the tokens.
func (s *Service) Login(t testing.TB, a *Account) {
	t.Helper()
	r := s.Expect(t, http.StatusOK, http.MethodPost, "/api/v1/auth/token", "",
		url.Values{"grant_type": {"password"}, "username": {a.Email}, "password": {a.Password}})
	if r.Status != http.StatusOK {
		t.FailNow()
	}
	var pair struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		TokenType    string `json:"token_type"`
	}
	r.Decode(t, &pair)
	if pair.TokenType != "bearer" {
		t.Errorf("%s: token_type %q, want bearer", r, pair.TokenType)
	}
	a.Access, a.Refresh = pair.AccessToken, pair.RefreshToken
}

// CreateAndLogin makes a user with role and logs in as it.
func (s *Service) CreateAndLogin(t testing.TB, by *Account, role string) *Account {
	t.Helper()
	a := s.Create(t, by, role)
	s.Login(t, a)
	return a
}

// Metric reads one unlabelled sample of the service's /metrics, 0 when the
// service exposes none by that name yet.
func (s *Service) Metric(t testing.TB, name string) float64 {
	t.Helper()
	r := s.Expect(t, http.StatusOK, http.MethodGet, "/metrics", "", nil)
	for line := range strings.SplitSeq(string(r.Body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return v
		}
	}
	return 0
}
