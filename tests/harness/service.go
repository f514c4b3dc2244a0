package harness

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userservice/userservice/bootstrap"
	"github.com/userservice/userservice/tests/testdb"
	"github.com/userservice/userservice/tests/testutil"
)

// WaitFor bounds every poll of the suites: policy reloads, log lines,
// WebSocket messages.
const WaitFor = testutil.WaitFor

// generousBudgets finds the budget of every rate-limit rule.
var generousBudgets = regexp.MustCompile(`(?m)^(\s*tokens:\s*)\d+`)

// Backend is one database the service runs on.
type Backend struct {
	Name string
	URL  func(t testing.TB) string
}

// SQLite is a fresh SQLite file per test.
var SQLite = Backend{"sqlite", func(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "userservice.db")
}}

// Postgres is a fresh PostgreSQL database per test (tests/testdb).
var Postgres = Backend{"postgres", func(t testing.TB) string { return testdb.PostgresURL(t) }}

// Backends are the databases every suite runs on.
func Backends() []Backend { return []Backend{SQLite, Postgres} }

// Options adjust the service a test starts.
type Options struct {
	// PolicyRows are appended to the test's copy of policy.csv before start.
	PolicyRows []string
	// ShippedLimits keeps the shipped rate-limit budgets instead of raising
	// them out of reach.
	ShippedLimits bool
	// TrustedProxies and RedisURL are TRUSTED_PROXIES and REDIS_URL.
	TrustedProxies []netip.Prefix
	RedisURL       string
	// DBURL, PolicyDir, JWTSecret and KeysDir, when set, are shared with
	// another instance.
	DBURL     string
	PolicyDir string
	JWTSecret []byte
	// KeysDir is JWT_KEYS_DIR; unset, the test gets a directory of its own
	// with one Ed25519 key (Configure may clear cfg.JWTKeysDir to test
	// the other ways of signing).
	KeysDir string
	// Configure, when set, adjusts the configuration last (server
	// timeouts, allowed origins, token lifetimes).
	Configure func(*bootstrap.Config)
	// Quiet logs at warn level instead of debug, for long runs whose
	// access log would fill memory; the leak scan still reads what is logged.
	Quiet bool
}

// OnEachBackend runs test once per backend, in parallel, each against a
// service of its own.
func OnEachBackend(t *testing.T, opts Options, test func(t *testing.T, s *Service)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			test(t, Start(t, b, opts))
		})
	}
}

// Service is one running instance of the service and everything the test
// saw of it: every answer, its log, and the secrets that must not show up
// in either.
type Service struct {
	// Base is the service's URL, http://127.0.0.1:port.
	Base      string
	DBURL     string
	PolicyDir string
	// JWTSecret is JWT_SECRET, which still verifies HS256 tokens beside the
	// keys of KeysDir (JWT_KEYS_DIR), which sign.
	JWTSecret []byte
	KeysDir   string
	// Client sends the suites' requests; it follows no redirect.
	Client *http.Client
	Logs   *SyncBuffer
	Leaks  *LeakScan

	stop func() error
}

// Start boots the service on a loopback port as bootstrap.New and Run do in
// production, with a JSON log captured for the leak scan. When the test ends
// the service is stopped (unless Stop did it already) and everything it
// answered or logged is scanned for secrets.
func Start(t testing.TB, b Backend, opts Options) *Service {
	t.Helper()
	s := &Service{
		DBURL:     opts.DBURL,
		PolicyDir: opts.PolicyDir,
		JWTSecret: opts.JWTSecret,
		KeysDir:   opts.KeysDir,
		Logs:      &SyncBuffer{},
		Leaks:     &LeakScan{},
	}
	if s.DBURL == "" {
		s.DBURL = b.URL(t)
	}
	if s.JWTSecret == nil {
		s.JWTSecret = []byte("jwt-" + rand.Text() + rand.Text())
	}
	if s.PolicyDir == "" {
		s.PolicyDir = CopyPolicies(t, opts.PolicyRows, !opts.ShippedLimits)
	}
	s.Leaks.SecretJWT(s.JWTSecret)
	if s.KeysDir == "" {
		s.KeysDir = t.TempDir()
		s.AddKey(t, "2026-01-01.pem")
	}
	level := slog.LevelDebug
	if opts.Quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewJSONHandler(s.Logs, &slog.HandlerOptions{Level: level}))
	cfg := bootstrap.Config{
		DatabaseURL:    s.DBURL,
		HTTPAddr:       "127.0.0.1:0",
		JWTSecret:      s.JWTSecret,
		JWTKeysDir:     s.KeysDir,
		JWTIssuer:      "userservice",
		JWTAudience:    "userservice",
		AccessTTL:      15 * time.Minute,
		RefreshTTL:     720 * time.Hour,
		PolicyDir:      s.PolicyDir,
		RedisURL:       opts.RedisURL,
		LogLevel:       level,
		LogFormat:      "json",
		TrustedProxies: opts.TrustedProxies,
	}
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	app, err := bootstrap.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("bootstrap.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()

	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	s.Client = &http.Client{
		Transport: transport,
		Timeout:   30 * time.Second,
		// Every answer is the service's own, redirects included.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.Base = "http://" + app.Addr()
	var once sync.Once
	var runErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			app.Close()
			transport.CloseIdleConnections()
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		for _, f := range s.Leaks.Findings(s.Logs.String()) {
			t.Errorf("secret leaked: %s", f)
		}
		if t.Failed() {
			t.Logf("the service's log ended with:\n%s", LastLines(s.Logs.String(), 40))
		}
	})
	// Run starts the change fan-out before it serves; connections wait in
	// the listener's backlog meanwhile, so only the first answer is slow.
	return s
}

// SigningKey is a key the test wrote to the keys directory.
type SigningKey struct {
	KID     string // the RFC 7638 thumbprint
	Private ed25519.PrivateKey
}

// AddKey writes a new Ed25519 key to the keys directory under name (the
// name that sorts last signs) and registers it with the leak scan. The
// file is written aside and renamed into place, so the service never reads
// half a key.
func (s *Service) AddKey(t testing.TB, name string) SigningKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	s.Leaks.SecretSigningKey(priv, der)
	tmp := filepath.Join(s.KeysDir, "."+name+".tmp")
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.KeysDir, name)); err != nil {
		t.Fatal(err)
	}
	return SigningKey{KID: Thumbprint(pub), Private: priv}
}

// JWKSKids reads the key ids the service publishes at /.well-known/jwks.json.
func (s *Service) JWKSKids(t testing.TB) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	s.Expect(t, http.StatusOK, http.MethodGet, "/.well-known/jwks.json", "", nil).Decode(t, &set)
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KID)
	}
	return kids
}

// RemoveKey deletes a key file of the keys directory.
func (s *Service) RemoveKey(t testing.TB, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(s.KeysDir, name)); err != nil {
		t.Fatal(err)
	}
}

// Thumbprint is the RFC 7638 thumbprint of an Ed25519 public key, computed
// here from the RFC rather than by the service's code.
func Thumbprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Stop shuts the service down as SIGTERM does (in-flight requests drain,
// WebSockets close with 1001) and returns Run's error. Later calls return
// the same; the test's cleanup still scans for leaks.
func (s *Service) Stop() error { return s.stop() }

// CopyPolicies copies the shipped policy files to a directory of the test's
// own, appending rows to policy.csv and, with generous, raising every rate
// limit out of reach; it returns the directory.
func CopyPolicies(t testing.TB, rows []string, generous bool) string {
	t.Helper()
	shipped := ShippedPolicies(t)
	dir := t.TempDir()
	entries, err := os.ReadDir(shipped)
	if err != nil {
		t.Fatalf("reading the shipped policies: %v", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(shipped, e.Name()))
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
			b = generousBudgets.ReplaceAll(b, []byte("${1}30000"))
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// PoliciesWithBudget is CopyPolicies with every budget out of reach but
// that of the rate-limit rule named rule, which allows tokens requests per
// its interval; it returns the directory.
func PoliciesWithBudget(t testing.TB, rule string, tokens int) string {
	t.Helper()
	dir := CopyPolicies(t, nil, true)
	file := filepath.Join(dir, "ratelimits.yaml")
	limits, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	budget := regexp.MustCompile(`(name: ` + regexp.QuoteMeta(rule) + `\s+tokens: )\d+`)
	edited := budget.ReplaceAll(limits, []byte("${1}"+strconv.Itoa(tokens)))
	if string(edited) == string(limits) {
		t.Fatalf("the shipped ratelimits.yaml has no %s rule: update this test", rule)
	}
	if err := os.WriteFile(file, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ShippedPolicies is the repository's policies directory, found from this
// source file, so that suites in any directory read the same files.
func ShippedPolicies(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the harness source to find policies/")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "policies")
}

// WritePolicy replaces policy.csv as editors do: a new file renamed over
// the old one, so the service never reads it half-written.
func (s *Service) WritePolicy(t testing.TB, text string) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "policy.csv")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.PolicyDir, "policy.csv")); err != nil {
		// t.TempDir and the policy directory may sit on different file
		// systems; then a plain write has to do.
		if err := os.WriteFile(filepath.Join(s.PolicyDir, "policy.csv"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// WaitForLog polls the service's log until substr has appeared at least n
// times.
func (s *Service) WaitForLog(t testing.TB, substr string, n int) {
	t.Helper()
	Poll(t, fmt.Sprintf("the log to say %q %d times", substr, n), func() bool {
		return strings.Count(s.Logs.String(), substr) >= n
	})
}

// Poll checks cond every few milliseconds until it holds, failing t when it
// still does not after WaitFor.
var Poll = testutil.Poll

// SyncBuffer is a log destination safe for concurrent writers: the service
// and the superadmin command write to it at once.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// LastLines is the end of a log, for failure messages.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
