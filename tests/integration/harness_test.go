package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userservice/userservice/bootstrap"
	"github.com/userservice/userservice/tests/testdb"
)

// shippedPolicies is the repository's policy directory, seen from this package.
const shippedPolicies = "../../policies"

// generousBudgets finds the budget of every rate-limit rule.
var generousBudgets = regexp.MustCompile(`(?m)^(\s*tokens:\s*)\d+`)

// waitFor bounds every poll of the suite: policy reloads and log lines.
const waitFor = 10 * time.Second

// backend is one database the service runs on.
type backend struct {
	name string
	url  func(t *testing.T) string
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t *testing.T) string {
			return "sqlite:" + filepath.Join(t.TempDir(), "userservice.db")
		}},
		{"postgres", func(t *testing.T) string { return testdb.PostgresURL(t) }},
	}
}

// options adjust the service a test starts.
type options struct {
	// policyRows are appended to the test's copy of policy.csv before start.
	policyRows []string
	// shippedLimits keeps the shipped rate-limit budgets instead of raising
	// them out of reach.
	shippedLimits bool
	// trustedProxies and redisURL are TRUSTED_PROXIES and REDIS_URL.
	trustedProxies []netip.Prefix
	redisURL       string
	// dbURL, policyDir and jwtSecret, when set, are shared with another instance.
	dbURL     string
	policyDir string
	jwtSecret []byte
}

// onEachBackend runs test once per backend, in parallel, each against a
// service of its own.
func onEachBackend(t *testing.T, opts options, test func(t *testing.T, s *service)) {
	t.Helper()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, start(t, b, opts))
		})
	}
}

// service is one running instance of the service and everything the test
// saw of it: every response, its log, and the secrets that must not show up
// in either.
type service struct {
	base      string
	dbURL     string
	policyDir string
	jwtSecret []byte
	client    *http.Client
	logs      *syncBuffer
	leaks     *leakScan
}

// start boots the service on a loopback port as bootstrap.New and Run do in
// production, with a debug-level JSON log captured for the leak scan. When
// the test ends the service is stopped and everything it answered or logged
// is scanned for secrets.
func start(t *testing.T, b backend, opts options) *service {
	t.Helper()
	s := &service{
		dbURL:     opts.dbURL,
		policyDir: opts.policyDir,
		jwtSecret: opts.jwtSecret,
		logs:      &syncBuffer{},
		leaks:     &leakScan{},
	}
	if s.dbURL == "" {
		s.dbURL = b.url(t)
	}
	if s.jwtSecret == nil {
		s.jwtSecret = []byte("jwt-" + rand.Text() + rand.Text())
	}
	if s.policyDir == "" {
		s.policyDir = copyPolicies(t, opts.policyRows, !opts.shippedLimits)
	}
	s.leaks.secretJWT(s.jwtSecret)
	log := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := bootstrap.Config{
		DatabaseURL: s.dbURL,
		HTTPAddr:    "127.0.0.1:0",
		JWTSecret:   s.jwtSecret,
		AccessTTL:   15 * time.Minute,
		RefreshTTL:  720 * time.Hour,
		PolicyDir:   s.policyDir,
		RedisURL:    opts.redisURL,
		LogLevel:    slog.LevelDebug,
		LogFormat:   "json",

		TrustedProxies: opts.trustedProxies,
	}
	app, err := bootstrap.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("bootstrap.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()

	transport := &http.Transport{}
	s.client = &http.Client{
		Transport: transport,
		Timeout:   30 * time.Second,
		// Every answer is the service's own, redirects included.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.base = "http://" + app.Addr()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		app.Close()
		transport.CloseIdleConnections()
		for _, f := range s.leaks.findings(s.logs.String()) {
			t.Errorf("secret leaked: %s", f)
		}
		if t.Failed() {
			t.Logf("the service's log ended with:\n%s", lastLines(s.logs.String(), 40))
		}
	})
	return s
}

// copyPolicies copies the shipped policy files to a directory of the test's
// own, appending rows to policy.csv and, with generous, raising every rate
// limit out of reach; it returns the directory.
func copyPolicies(t *testing.T, rows []string, generous bool) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(shippedPolicies)
	if err != nil {
		t.Fatalf("reading the shipped policies: %v", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(shippedPolicies, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		switch e.Name() {
		case "policy.csv":
			if len(rows) > 0 {
				b = append(b, []byte("\n# Added by the test.\n"+strings.Join(rows, "\n")+"\n")...)
			}
		case "ratelimits.yaml":
			if !generous {
				break
			}
			// Every request of a test comes from one address, far more of
			// them a minute than a client makes: the shipped rules stay,
			// with budgets no test reaches. Rate limits have tests of their own.
			b = generousBudgets.ReplaceAll(b, []byte("${1}1000000"))
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// writePolicy replaces policy.csv as editors do: a new file renamed over
// the old one, so the service never reads it half-written.
func (s *service) writePolicy(t *testing.T, text string) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "policy.csv")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.policyDir, "policy.csv")); err != nil {
		// t.TempDir and the policy directory may sit on different file
		// systems; then a plain write has to do.
		if err := os.WriteFile(filepath.Join(s.policyDir, "policy.csv"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// waitForLog polls the service's log until substr has appeared at least n
// times.
func (s *service) waitForLog(t *testing.T, substr string, n int) {
	t.Helper()
	poll(t, fmt.Sprintf("the log to say %q %d times", substr, n), func() bool {
		return strings.Count(s.logs.String(), substr) >= n
	})
}

// poll checks cond every few milliseconds until it holds, failing t when it
// still does not after waitFor.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", waitFor, what)
		}
		<-tick.C
	}
}

// response is one answer of the service.
type response struct {
	method, path string
	status       int
	header       http.Header
	body         []byte
}

func (r response) String() string {
	return fmt.Sprintf("%s %s: %d %s", r.method, r.path, r.status, bytes.TrimSpace(r.body))
}

// decode reads the body as JSON into v.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%s: body is not the expected JSON: %v", r, err)
	}
}

// user reads the body as one user.
func (r response) user(t *testing.T) userDTO {
	t.Helper()
	var u userDTO
	r.decode(t, &u)
	return u
}

// rawBody is a request body sent as is.
type rawBody struct {
	contentType string
	data        string
}

// do sends one request and checks what every answer must satisfy: never a
// 5xx, and every error in the {"detail", "code"} shape. body is nil,
// url.Values (a form), rawBody, or anything else (sent as JSON). header holds
// name, value pairs.
func (s *service) do(t *testing.T, method, path, token string, body any, header ...string) response {
	t.Helper()
	var rd io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, contentType = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case rawBody:
		rd, contentType = strings.NewReader(b.data), b.contentType
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd, contentType = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.base+path, rd)
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
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	data, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	r := response{method: method, path: path, status: res.StatusCode, header: res.Header, body: data}
	s.record(t, r)

	if r.status >= 500 {
		t.Errorf("%s: a 5xx answer to a client's request", r)
	}
	if r.status >= 400 && method != http.MethodHead {
		var e struct {
			Detail string `json:"detail"`
			Code   string `json:"code"`
		}
		if err := json.Unmarshal(r.body, &e); err != nil || e.Detail == "" || e.Code == "" {
			t.Errorf("%s: an error body must be {\"detail\", \"code\"}", r)
		}
	}
	return r
}

// expect sends one request and checks its status.
func (s *service) expect(t *testing.T, want int, method, path, token string, body any, header ...string) response {
	t.Helper()
	r := s.do(t, method, path, token, body, header...)
	if r.status != want {
		t.Errorf("%s: want %d", r, want)
	}
	return r
}

// record keeps a response for the leak scan. The tokens of a token response
// are the one place a token may appear: they are registered as secrets and
// blanked out of the recorded body.
func (s *service) record(t *testing.T, r response) {
	t.Helper()
	body := string(r.body)
	if r.status == http.StatusOK && (r.path == "/api/v1/auth/token" || r.path == "/api/v1/auth/refresh") {
		var pair map[string]any
		r.decode(t, &pair)
		for _, field := range []string{"access_token", "refresh_token"} {
			token, ok := pair[field].(string)
			if !ok || token == "" {
				t.Errorf("%s: no %s", r, field)
				continue
			}
			if field == "access_token" {
				s.leaks.secretAccessToken(token)
			} else {
				s.leaks.secretRefreshToken(token)
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
	for name, values := range r.header {
		fmt.Fprintf(&head, "%s: %s\n", name, strings.Join(values, ", "))
	}
	where := fmt.Sprintf("the answer to %s %s (%d)", r.method, r.path, r.status)
	s.leaks.capture(where+", headers", head.String())
	s.leaks.capture(where+", body", body)
}

// userDTO is a user as the API answers it.
type userDTO struct {
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

// pageDTO is the page envelope of list and search.
type pageDTO struct {
	Items      []userDTO `json:"items"`
	Total      *int64    `json:"total"`
	TotalExact *bool     `json:"total_exact"`
	Page       *int      `json:"page"`
	Size       *int      `json:"size"`
	Pages      *int64    `json:"pages"`
	NextCursor *string   `json:"next_cursor"`
}

// account is a user the test can act as.
type account struct {
	id       int64
	email    string
	password string
	role     string
	access   string // the access token of the last login
	refresh  string // the refresh token of the last login
}

func userPath(id int64) string { return "/api/v1/users/" + strconv.FormatInt(id, 10) }

// password returns a new random password, registered as a secret.
func (s *service) password() string {
	p := "Pw-" + rand.Text()
	s.leaks.secretPassword(p)
	return p
}

// email returns a new address no other user of the run has.
func email(prefix string) string {
	return prefix + "-" + strings.ToLower(rand.Text()) + "@example.com"
}

// newUserBody is a valid create-admin or sign-up body.
func newUserBody(email, password, role string) map[string]any {
	b := map[string]any{
		"first_name": "Zoë", "last_name": "O'Test", "email": email,
		"gender": "female", "ip_address": "10.1.2.3", "password": password,
	}
	if role != "" {
		b["role"] = role
	}
	return b
}

// seedSuperadmin creates a superadmin with the command an operator runs
// (userservice superadmin) against the service's database, and logs in.
func (s *service) seedSuperadmin(t *testing.T) *account {
	t.Helper()
	a := &account{email: email("root"), password: s.password(), role: "superadmin"}
	vars := map[string]string{
		"DATABASE_URL":                    s.dbURL,
		"POLICY_DIR":                      s.policyDir,
		"USERSERVICE_SUPERADMIN_PASSWORD": a.password,
		"LOG_LEVEL":                       "debug",
		"LOG_FORMAT":                      "json",
	}
	var out bytes.Buffer
	env := bootstrap.Env{
		Getenv: func(k string) string { return vars[k] },
		Stdin:  strings.NewReader(""),
		Stdout: &out,
		Stderr: s.logs,
	}
	if code := bootstrap.Main(t.Context(), []string{"superadmin", "--email", a.email}, env); code != bootstrap.ExitOK {
		t.Fatalf("userservice superadmin: exit status %d; output %q", code, out.String())
	}
	s.leaks.capture("the output of userservice superadmin", out.String())
	s.login(t, a)
	me := s.expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", a.access, nil).user(t)
	if me.Role != "superadmin" {
		t.Fatalf("the seeded superadmin has role %q", me.Role)
	}
	a.id = me.ID
	return a
}

// create makes a user with role through POST /users/create-admin as by.
func (s *service) create(t *testing.T, by *account, role string) *account {
	t.Helper()
	return s.createNamed(t, by, role, role)
}

// createNamed is create with an email starting with prefix.
func (s *service) createNamed(t *testing.T, by *account, role, prefix string) *account {
	t.Helper()
	a := &account{email: email(prefix), password: s.password(), role: role}
	r := s.expect(t, http.StatusCreated, http.MethodPost, "/api/v1/users/create-admin", by.access, newUserBody(a.email, a.password, role))
	if r.status != http.StatusCreated {
		t.FailNow()
	}
	u := r.user(t)
	if u.Role != role {
		t.Fatalf("%s: created with role %q, want %q", r, u.Role, role)
	}
	a.id = u.ID
	return a
}

// login logs a in with the OAuth2 password form and keeps the tokens.
func (s *service) login(t *testing.T, a *account) {
	t.Helper()
	r := s.expect(t, http.StatusOK, http.MethodPost, "/api/v1/auth/token", "",
		url.Values{"grant_type": {"password"}, "username": {a.email}, "password": {a.password}})
	if r.status != http.StatusOK {
		t.FailNow()
	}
	var pair struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		TokenType    string `json:"token_type"`
	}
	r.decode(t, &pair)
	if pair.TokenType != "bearer" {
		t.Errorf("%s: token_type %q, want bearer", r, pair.TokenType)
	}
	a.access, a.refresh = pair.AccessToken, pair.RefreshToken
}

// createAndLogin makes a user with role and logs in as it.
func (s *service) createAndLogin(t *testing.T, by *account, role string) *account {
	t.Helper()
	a := s.create(t, by, role)
	s.login(t, a)
	return a
}

// syncBuffer is a log destination safe for concurrent writers: the service
// and the superadmin command write to it at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
