package ratelimit_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/userservice/userservice/adapters/ratelimit"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// The 51st search from one address in a minute is refused, with the
// headers and body of docs/api.md, Rate limits; another address still passes.
func TestSearchLimitedPerIP(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, ratelimit.Config{Dir: shipped, RedisURL: b.redisURL(t)})
			const search, peer = "/api/v1/users/search", "192.0.2.1:40000"
			for i := range 50 {
				rec := h.get(search, peer)
				if rec.Code != http.StatusOK {
					t.Fatalf("search %d: status %d, want 200", i+1, rec.Code)
				}
				if got := headerInt(t, rec, ratelimit.HeaderLimit); got != 50 {
					t.Fatalf("search %d: %s %d, want 50", i+1, ratelimit.HeaderLimit, got)
				}
				if got := headerInt(t, rec, ratelimit.HeaderRemaining); got != 49-i {
					t.Fatalf("search %d: %s %d, want %d", i+1, ratelimit.HeaderRemaining, got, 49-i)
				}
				if got := headerInt(t, rec, ratelimit.HeaderReset); got < 1 || got > 60 {
					t.Fatalf("search %d: %s %d, want 1..60 seconds", i+1, ratelimit.HeaderReset, got)
				}
				if rec.Header().Get(ratelimit.HeaderRetryAfter) != "" {
					t.Fatalf("search %d: Retry-After on a request let through", i+1)
				}
			}

			rec := h.get(search, peer)
			if rec.Code != http.StatusTooManyRequests {
				t.Fatalf("search 51: status %d, want 429", rec.Code)
			}
			if got := headerInt(t, rec, ratelimit.HeaderRemaining); got != 0 {
				t.Fatalf("search 51: %s %d, want 0", ratelimit.HeaderRemaining, got)
			}
			if got := headerInt(t, rec, ratelimit.HeaderLimit); got != 50 {
				t.Fatalf("search 51: %s %d, want 50", ratelimit.HeaderLimit, got)
			}
			retry := headerInt(t, rec, ratelimit.HeaderRetryAfter)
			if reset := headerInt(t, rec, ratelimit.HeaderReset); retry < 1 || retry > 60 || reset < 1 || reset > 60 {
				t.Fatalf("search 51: Retry-After %d, %s %d, want both 1..60 seconds", retry, ratelimit.HeaderReset, reset)
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("429 body %q: %v", rec.Body, err)
			}
			if body["detail"] != "rate limit exceeded" || body["code"] != "rate_limited" || len(body) != 2 {
				t.Fatalf("429 body %v, want detail and code rate_limited", body)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("429 Content-Type %q, want JSON", ct)
			}

			if rec := h.get(search, "192.0.2.2:40000"); rec.Code != http.StatusOK || headerInt(t, rec, ratelimit.HeaderRemaining) != 49 {
				t.Fatalf("another address: status %d, remaining %s; want 200 and a full bucket", rec.Code, rec.Header().Get(ratelimit.HeaderRemaining))
			}
			// Search has its own budget: the same address may still list.
			if rec := h.get("/api/v1/users/list", peer); rec.Code != http.StatusOK || headerInt(t, rec, ratelimit.HeaderLimit) != 100 {
				t.Fatalf("list after search was exhausted: status %d, limit %s", rec.Code, rec.Header().Get(ratelimit.HeaderLimit))
			}
			if n := h.counter(t, "userservice_ratelimit_limited_total", map[string]string{"rule": "search", "route": "GET /api/v1/users/search"}); n != 1 {
				t.Fatalf("limited_total{rule=search} = %v, want 1", n)
			}
		})
	}
}

// exhaust sends r until it is refused and returns how many passed; it fails
// the test past max.
func exhaust(t *testing.T, h *harness, max int, r func(i int) request) int {
	t.Helper()
	for i := range max + 1 {
		rec := h.do(r(i))
		switch rec.Code {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			return i
		default:
			t.Fatalf("request %d: status %d: %s", i+1, rec.Code, rec.Body)
		}
	}
	t.Fatalf("still allowed after %d requests", max+1)
	return 0
}

// A forged X-Forwarded-For from a client that is not a trusted proxy does
// not change whose budget a request spends; from a trusted proxy it names
// the client.
func TestForwardedFor(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ratelimit.Config{Dir: shipped})
	search := func(peer string, xff ...string) func(int) request {
		return func(i int) request {
			r := request{method: "GET", target: "/api/v1/users/search", peer: peer, header: http.Header{}}
			for _, v := range xff {
				r.header.Add("X-Forwarded-For", strings.ReplaceAll(v, "{i}", fmt.Sprint(i)))
			}
			r.header.Set("X-Real-IP", strings.ReplaceAll("203.0.113.{i}", "{i}", fmt.Sprint(i%250)))
			return r
		}
	}

	// An untrusted client inventing a new address for every request.
	if n := exhaust(t, h, 50, search("198.51.100.7:1234", "198.18.{i}.1")); n != 50 {
		t.Fatalf("a client forging X-Forwarded-For got %d searches, want 50", n)
	}

	// Through the trusted proxy: the client named by the proxy is counted,
	// and what that client wrote itself (left of it) is not believed.
	viaProxy := search("10.0.0.1:1234", "198.18.{i}.1, 203.0.113.50")
	if n := exhaust(t, h, 50, viaProxy); n != 50 {
		t.Fatalf("a client behind the proxy got %d searches, want 50", n)
	}
	if rec := h.do(search("10.0.0.1:1234", "203.0.113.51")(0)); rec.Code != http.StatusOK {
		t.Fatalf("another client behind the same proxy: status %d, want 200", rec.Code)
	}
	// The proxy's client is the same client when it connects directly.
	if rec := h.get("/api/v1/users/search", "203.0.113.50:1234"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("the exhausted client connecting directly: status %d, want 429", rec.Code)
	}
}

// Logins are limited per address (10 a minute), whatever account they
// name, and the handler still reads the body: the limiter reads none.
func TestTokenLimitedPerIP(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, ratelimit.Config{Dir: shipped, RedisURL: b.redisURL(t)})
			n := exhaust(t, h, 10, func(i int) request { return formLogin(fmt.Sprintf("user%d@example.com", i), "192.0.2.1:1") })
			if n != 10 {
				t.Fatalf("one address got %d logins, want 10", n)
			}
			// One account from many addresses: the route limits nothing per
			// account (failed checks are counted by Attempt instead).
			for i := range 8 {
				rec := h.do(jsonLogin(`{"email":"victim@example.com","password":"x"}`, fmt.Sprintf("192.0.2.%d:1", 10+i)))
				if rec.Code != http.StatusOK || rec.Body.String() != "victim@example.com" {
					t.Fatalf("login %d for one account from a new address: status %d, handler read %q", i+1, rec.Code, rec.Body)
				}
			}
			if n := h.counter(t, "userservice_ratelimit_limited_total", map[string]string{"rule": "token-ip", "route": "POST /api/v1/auth/token"}); n != 1 {
				t.Fatalf("limited_total{rule=token-ip} = %v, want 1", n)
			}
		})
	}
}

// fakeVerifier accepts "token-N" as an access token of user N.
type fakeVerifier struct{}

func (fakeVerifier) VerifyAccess(token string, _ time.Time) (ports.AccessClaims, error) {
	var id int64
	if _, err := fmt.Sscanf(token, "token-%d", &id); err != nil {
		return ports.AccessClaims{}, domain.ErrUnauthenticated
	}
	return ports.AccessClaims{UserID: id}, nil
}

const userLimits = `
rules:
  - name: me-user
    routes: [GET /api/v1/users/me]
    key: user
    tokens: 2
    interval: 1m
  - name: me-ip
    routes: [GET /api/v1/users/me]
    tokens: 4
    interval: 1m
`

// A user rule counts the user of the token, from any address; requests
// without a valid token are not counted by it.
func TestUserKey(t *testing.T) {
	t.Parallel()
	dir := limitsDir(t, userLimits)
	if _, err := ratelimit.New(ratelimit.Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "token verifier") {
		t.Fatalf("New with a user rule and no verifier: %v, want an error naming the verifier", err)
	}
	h := newHarness(t, ratelimit.Config{Dir: dir, Verifier: fakeVerifier{}})
	me := func(token, peer string) request {
		return request{method: "GET", target: "/api/v1/users/me", peer: peer, header: http.Header{"Authorization": {"Bearer " + token}}}
	}
	if n := exhaust(t, h, 2, func(i int) request { return me("token-1", fmt.Sprintf("192.0.2.%d:1", i+1)) }); n != 2 {
		t.Fatalf("user 1 from several addresses got %d requests, want 2", n)
	}
	if rec := h.do(me("token-2", "192.0.2.1:1")); rec.Code != http.StatusOK {
		t.Fatalf("user 2: status %d, want 200", rec.Code)
	}
	// Without a valid token only the address counts (4 a minute).
	if n := exhaust(t, h, 4, func(int) request { return me("forged", "192.0.2.99:1") }); n != 4 {
		t.Fatalf("an invalid token got %d requests, want the address's 4", n)
	}
}

// Probes and scrapes are never limited and carry no limit headers; routes
// no rule lists fall under the default rule.
func TestExemptAndDefault(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ratelimit.Config{Dir: shipped})
	for i := range 400 {
		rec := h.get("/healthz", "192.0.2.1:1")
		if rec.Code != http.StatusOK || rec.Header().Get(ratelimit.HeaderLimit) != "" {
			t.Fatalf("probe %d: status %d, %s %q; want 200 and no limit", i+1, rec.Code, ratelimit.HeaderLimit, rec.Header().Get(ratelimit.HeaderLimit))
		}
	}
	for _, target := range []string{"/api/v1/users/17", "/no/such/route"} {
		rec := h.get(target, "192.0.2.1:1")
		if got := headerInt(t, rec, ratelimit.HeaderLimit); got != 300 {
			t.Fatalf("GET %s: %s %d, want the default 300", target, ratelimit.HeaderLimit, got)
		}
	}
	if rec := h.get("/api/v1/users/18", "192.0.2.1:1"); headerInt(t, rec, ratelimit.HeaderRemaining) != 297 {
		t.Fatalf("routes under the default rule do not share the address's bucket: remaining %s, want 297", rec.Header().Get(ratelimit.HeaderRemaining))
	}
}

// Allow applies a rule by name, for the WebSocket adapter.
func TestAllow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ratelimit.Config{Dir: shipped})
	ctx := t.Context()
	for i := range 20 {
		if ok, _ := h.l.Allow(ctx, "websocket-messages", "conn-1"); !ok {
			t.Fatalf("message %d of 20 a second refused", i+1)
		}
	}
	ok, retry := h.l.Allow(ctx, "websocket-messages", "conn-1")
	if ok || retry <= 0 || retry > time.Second {
		t.Fatalf("21st message: ok %v, retry after %v; want refused, retry within a second", ok, retry)
	}
	if ok, _ := h.l.Allow(ctx, "websocket-messages", "conn-2"); !ok {
		t.Fatal("another connection's first message refused")
	}
	if ok, _ := h.l.Allow(ctx, "no-such-rule", "conn-1"); !ok {
		t.Fatal("a rule the file does not define refused")
	}
	if n := h.counter(t, "userservice_ratelimit_limited_total", map[string]string{"rule": "websocket-messages", "route": "-"}); n != 1 {
		t.Fatalf("limited_total{rule=websocket-messages} = %v, want 1", n)
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	if _, err := ratelimit.New(ratelimit.Config{Dir: t.TempDir()}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("New without a limits file: %v, want ErrNotExist", err)
	}
	if _, err := ratelimit.New(ratelimit.Config{Dir: shipped, RedisURL: "http://example.com"}); err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Errorf("New with a bad Redis URL: %v, want an error naming REDIS_URL", err)
	}
	if _, err := ratelimit.New(ratelimit.Config{Dir: shipped, RedisURL: "redis://u:s3cret@host:port/0"}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("New with a malformed Redis URL: %v, want an error without the password", err)
	}
}
