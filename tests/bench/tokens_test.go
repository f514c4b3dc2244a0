package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/userservice/userservice/adapters/jwtauth"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/tests/gen"
)

// tokenConns is the concurrency of the token-only comparison, as getConns.
const tokenConns = getConns

// BenchmarkTokenOnly measures a request decided by its token alone: GET
// /audit as an admin, whom the shipped policy refuses audit.read, so the
// answer (403) comes from the token check (signature, checked once a second
// per token, then the caller's token version and role from memory) and one
// policy decision, with no row read; beside a bare Echo handler that
// verifies the same token with the same verifier on every request and
// answers the same status.
func BenchmarkTokenOnly(b *testing.B) {
	e := setup(b)
	ctx := b.Context()
	c := httpClient(tokenConns)
	bareURL, stop, err := startBareJWT(e.secret, e.ttl)
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	get := func(name, u string) func(time.Duration) (Measurement, error) {
		return func(d time.Duration) (Measurement, error) {
			return load(ctx, name, tokenConns, d, func(ctx context.Context, _ *rand.Rand) error {
				_, err := call(ctx, c, http.MethodGet, u, e.token, "", "", http.StatusForbidden)
				return err
			})
		}
	}
	ms, err := compare(e.cfg.duration,
		get("GET /audit as admin (token only, 403)", e.base+"/audit"),
		get("bare Echo verifying the JWT", bareURL+"/audit"))
	if err != nil {
		b.Fatal(err)
	}
	svc, bare := ms[0], ms[1]
	record(Row{Scenario: svc, Baseline: &bare, Metric: ByRate, Target: 0.80,
		Note: "no route both succeeds and reads no user, so the token-only request is one the policy refuses: the service checks the token (its version and role from memory), asks Casbin, and answers 403 through its middleware (request id, security headers, metrics, rate limiter, access log)"})
	b.ReportMetric(svc.Rate(), "req/s")
}

// startBareJWT serves every GET with Echo after verifying the bearer token
// with the service's own verifier: 403 with a small JSON body for a valid
// token, 401 otherwise.
func startBareJWT(secret []byte, ttl time.Duration) (base string, stop func(), err error) {
	v, err := jwtauth.New(jwtauth.Config{Secret: secret, TTL: ttl})
	if err != nil {
		return "", nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/*", func(c echo.Context) error {
		token, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
		if !ok {
			return c.JSON(http.StatusUnauthorized, map[string]string{"detail": "missing token"})
		}
		if _, err := v.VerifyAccess(token, time.Now()); err != nil {
			return c.JSON(http.StatusUnauthorized, map[string]string{"detail": "invalid token"})
		}
		return c.JSON(http.StatusForbidden, map[string]string{"detail": "forbidden", "code": "forbidden"})
	})
	return serveBare(e, func() {})
}

// BenchmarkEmailExact compares GET /users/search?email_exact=ADDRESS (an
// address in another letter case than stored) with the statement the
// repository runs for it, run by pgbench: the page of at most one user, an
// equality on the unique email (no count: the match is the total).
func BenchmarkEmailExact(b *testing.B) {
	e := setup(b)
	ctx := b.Context()
	// A user from the middle of the table.
	g := gen.New(e.cfg.seed, e.cfg.users)
	var addr string
	var id int64
	for i := range e.cfg.users / 2 {
		addr, id = g.Next().Email, int64(i+1)
	}
	c := httpClient(1)
	path := e.base + "/users/search?" + url.Values{"email_exact": {strings.ToUpper(addr)}}.Encode()
	body, err := call(ctx, c, http.MethodGet, path, e.token, "", "", http.StatusOK)
	if err != nil {
		b.Fatal(err)
	}
	if !strings.Contains(string(body), fmt.Sprintf(`"id":%d,`, id)) || !strings.Contains(string(body), `"total":1,`) {
		b.Fatalf("email_exact=%s: %s, want user %d alone", addr, body, id)
	}
	folded := domain.Fold(addr)
	script := `SELECT * FROM "users" WHERE email = :addr LIMIT :pagelimit;` + "\n"
	ms, err := compare(e.cfg.duration,
		func(d time.Duration) (Measurement, error) {
			return load(ctx, "search, email_exact", 1, d, func(ctx context.Context, _ *rand.Rand) error {
				_, err := call(ctx, c, http.MethodGet, path, e.token, "", "", http.StatusOK)
				return err
			})
		},
		func(d time.Duration) (Measurement, error) {
			return e.pgbench(ctx, pgbenchRun{name: "pgbench: its SQL", script: script, mode: "extended", clients: 1,
				vars: map[string]string{"addr": folded, "pagelimit": "1"}}, d)
		})
	if err != nil {
		b.Fatal(err)
	}
	svc, raw := ms[0], ms[1]
	record(Row{Scenario: svc, Baseline: &raw, Metric: ByP50, Target: 1.2,
		Note: "email_exact in upper case finds the one user; pgbench runs the one statement the repository runs, an equality on the unique email"})
}
