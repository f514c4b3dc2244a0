package integration

import (
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"testing"

	"github.com/userservice/userservice/tests/harness"
	"github.com/userservice/userservice/tests/testdb"
)

// The shipped budget of GET /users/search, per client address and minute.
const searchBudget = 50

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// searchAs sends one search as client (an X-Forwarded-For address).
func searchAs(t *testing.T, s *harness.Service, token, client string) harness.Response {
	t.Helper()
	return s.Do(t, http.MethodGet, "/api/v1/users/search?email=example", token, nil, "X-Forwarded-For", client)
}

// checkLimitHeaders fails t unless r carries the three integer headers.
func checkLimitHeaders(t *testing.T, r harness.Response) {
	t.Helper()
	for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if _, err := strconv.Atoi(r.Header.Get(h)); err != nil {
			t.Errorf("%s: header %s = %q, want an integer", r, h, r.Header.Get(h))
		}
	}
}

// TestSearchIsLimitedPerClient: with the shipped limits, the 51st search in a
// minute from one client is refused with the headers and Retry-After, while
// another client still passes. Behind a trusted proxy the client is the
// forwarded address.
func TestSearchIsLimitedPerClient(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{ShippedLimits: true, TrustedProxies: loopback}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		for i := range searchBudget {
			r := searchAs(t, s, root.Access, "203.0.113.5")
			if r.Status != http.StatusOK {
				t.Fatalf("search %d: %s", i+1, r)
			}
			checkLimitHeaders(t, r)
		}
		r := searchAs(t, s, root.Access, "203.0.113.5")
		if r.Status != http.StatusTooManyRequests {
			t.Fatalf("search %d: %s, want 429", searchBudget+1, r)
		}
		checkLimitHeaders(t, r)
		if n, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("429 Retry-After %q", r.Header.Get("Retry-After"))
		}
		s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/search?email=example", root.Access, nil,
			"X-Forwarded-For", "198.51.100.7")
	})
}

// TestSpoofedForwardedForIsIgnored: without TRUSTED_PROXIES the peer's own
// address is the key, whatever X-Forwarded-For claims.
func TestSpoofedForwardedForIsIgnored(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Backends()[0], harness.Options{ShippedLimits: true})
	root := s.SeedSuperadmin(t)
	for i := range searchBudget {
		if r := searchAs(t, s, root.Access, "192.0.2."+strconv.Itoa(i+1)); r.Status != http.StatusOK {
			t.Fatalf("search %d: %s", i+1, r)
		}
	}
	s.Expect(t, http.StatusTooManyRequests, http.MethodGet, "/api/v1/users/search?email=example", root.Access, nil,
		"X-Forwarded-For", "192.0.2.250")
}

// TestLoginIsLimitedPerEmail: one account cannot be brute-forced from many
// addresses of one network: the sixth failed attempt on one email in a
// minute from that /24 is refused, however the email is spelt.
func TestLoginIsLimitedPerEmail(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Backends()[0], harness.Options{ShippedLimits: true, TrustedProxies: loopback})
	form := url.Values{"username": {"Victim@Example.com"}, "password": {"wrong-password"}}
	for i := range 5 {
		r := s.Do(t, http.MethodPost, "/api/v1/auth/token", "", form, "X-Forwarded-For", "198.51.100."+strconv.Itoa(i+1))
		if r.Status != http.StatusBadRequest {
			t.Fatalf("attempt %d: %s, want 400 invalid_grant", i+1, r)
		}
	}
	form.Set("username", "victim@example.com")
	s.Expect(t, http.StatusTooManyRequests, http.MethodPost, "/api/v1/auth/token", "", form, "X-Forwarded-For", "198.51.100.99")
}

// TestRefreshGrantsAreNotCountedAsLogins: a refresh_token grant names no
// email, so the per-email login rule does not apply to it; before, every
// refresh of every client fell into one shared "no email" bucket, and the
// sixth refresh in a minute anywhere was refused.
func TestRefreshGrantsAreNotCountedAsLogins(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Backends()[0], harness.Options{ShippedLimits: true, TrustedProxies: loopback})
	root := s.SeedSuperadmin(t)
	refresh := root.Refresh
	for i := range 8 {
		var pair struct {
			RefreshToken string `json:"refresh_token"`
		}
		s.Expect(t, http.StatusOK, http.MethodPost, "/api/v1/auth/token", "",
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}},
			"X-Forwarded-For", "203.0.113."+strconv.Itoa(i+1)).Decode(t, &pair)
		refresh = pair.RefreshToken
		s.Leaks.SecretRefreshToken(refresh)
	}
}

// TestInstancesShareOneBudgetThroughRedis: two instances on one database and
// one Redis allow one budget between them, not one each.
func TestInstancesShareOneBudgetThroughRedis(t *testing.T) {
	t.Parallel()
	redis := testdb.RedisURL(t)
	a := harness.Start(t, harness.Backends()[1], harness.Options{ShippedLimits: true, TrustedProxies: loopback, RedisURL: redis})
	b := harness.Start(t, harness.Backends()[1], harness.Options{TrustedProxies: loopback, RedisURL: redis, DBURL: a.DBURL, PolicyDir: a.PolicyDir, JWTSecret: a.JWTSecret, KeysDir: a.KeysDir})
	root := a.SeedSuperadmin(t)
	for i := range searchBudget {
		s := a
		if i%2 == 1 {
			s = b
		}
		if r := searchAs(t, s, root.Access, "203.0.113.9"); r.Status != http.StatusOK {
			t.Fatalf("search %d: %s", i+1, r)
		}
	}
	for _, s := range []*harness.Service{a, b} {
		s.Expect(t, http.StatusTooManyRequests, http.MethodGet, "/api/v1/users/search?email=example", root.Access, nil,
			"X-Forwarded-For", "203.0.113.9")
	}
}
