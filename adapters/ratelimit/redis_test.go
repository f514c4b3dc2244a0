package ratelimit_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userservice/userservice/adapters/ratelimit"
	"github.com/userservice/userservice/tests/testdb"
	"github.com/userservice/userservice/tests/testutil"
)

// Two instances sharing one Redis enforce one budget.
func TestInstancesShareOneBudget(t *testing.T) {
	t.Parallel()
	url := testdb.RedisURL(t)
	a := newHarness(t, ratelimit.Config{Dir: shipped, RedisURL: url})
	b := newHarness(t, ratelimit.Config{Dir: shipped, RedisURL: url})
	const peer = "192.0.2.1:1"
	for i := range 50 {
		h := a
		if i%2 == 1 {
			h = b
		}
		rec := h.get("/api/v1/users/search", peer)
		if rec.Code != http.StatusOK || headerInt(t, rec, ratelimit.HeaderRemaining) != 49-i {
			t.Fatalf("search %d: status %d, remaining %s; want 200 and %d", i+1, rec.Code, rec.Header().Get(ratelimit.HeaderRemaining), 49-i)
		}
	}
	for name, h := range map[string]*harness{"a": a, "b": b} {
		if rec := h.get("/api/v1/users/search", peer); rec.Code != http.StatusTooManyRequests {
			t.Fatalf("instance %s after 50 searches between them: status %d, want 429", name, rec.Code)
		}
	}
}

const oneSearch = `
rules:
  - name: search
    routes: [GET /api/v1/users/search]
    tokens: 1
    interval: 1m
`

// While Redis cannot be reached requests are let through, counted and
// logged (once, not per request); once it answers, limits apply again.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	p, url := newProxy(t, testdb.RedisURL(t))
	h := newHarness(t, ratelimit.Config{Dir: limitsDir(t, oneSearch), RedisURL: url})
	const peer = "192.0.2.1:1"
	search := func() *httpResult { return result(h.get("/api/v1/users/search", peer)) }

	if got := search(); got.code != http.StatusOK {
		t.Fatalf("first search: %v", got)
	}
	if got := search(); got.code != http.StatusTooManyRequests {
		t.Fatalf("second search with Redis up: %v, want 429", got)
	}

	p.setMode(proxyRefuse)
	for i := range 20 {
		if got := search(); got.code != http.StatusOK || got.limit != "" {
			t.Fatalf("search %d with Redis down: %v, want 200 without limit headers", i+1, got)
		}
	}
	if n := h.counter(t, "userservice_ratelimit_fail_open_total", nil); n != 20 {
		t.Fatalf("fail_open_total = %v, want 20", n)
	}
	if n := h.logs.count("level=WARN", "unreachable"); n != 1 {
		t.Fatalf("%d warnings for one outage, want 1", n)
	}

	p.setMode(proxyUp)
	// The bucket in Redis is still empty: the limit is back when Redis is.
	testutil.Poll(t, "limits to apply again", func() bool { return search().code == http.StatusTooManyRequests })
	testutil.Poll(t, "the recovery to be logged", func() bool { return h.logs.count("level=INFO", "answers again") == 1 })
}

// A Redis that accepts connections and never answers delays a request by
// the store's time bound, not by the client's default seconds.
// With rediss:// the bound covers the TLS handshake too.
func TestRedisHanging(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"redis", "rediss"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			p, url := newProxy(t, testdb.RedisURL(t))
			p.setMode(proxyHang)
			url = scheme + strings.TrimPrefix(url, "redis")
			h := newHarness(t, ratelimit.Config{Dir: limitsDir(t, oneSearch), RedisURL: url})
			for i := range 3 {
				start := time.Now()
				if got := result(h.get("/api/v1/users/search", "192.0.2.1:1")); got.code != http.StatusOK {
					t.Fatalf("search %d: %v, want 200", i+1, got)
				}
				// Generous, so a loaded machine cannot fail it; the client's
				// own defaults would take 5s and more (10s for a handshake).
				if d := time.Since(start); d > 3*time.Second {
					t.Fatalf("search %d took %v with Redis hanging", i+1, d)
				}
			}
		})
	}
}

// A restart of Redis closes every pooled connection. The first request
// after it is limited all the same, on a fresh connection, instead of being
// let through as if Redis were down.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	p, url := newProxy(t, testdb.RedisURL(t))
	h := newHarness(t, ratelimit.Config{Dir: limitsDir(t, oneSearch), RedisURL: url})
	// Concurrent takes leave several connections idle in the pool, so that
	// a retry on the next idle one would meet a dead one too.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { h.l.Allow(t.Context(), "search", "warm-up") })
	}
	wg.Wait()

	p.setMode(proxyRefuse) // cuts the pooled connections
	p.setMode(proxyUp)
	const peer = "192.0.2.1:1"
	if got := result(h.get("/api/v1/users/search", peer)); got.code != http.StatusOK || got.limit != "1" {
		t.Fatalf("first search after the restart: %v, want 200 with limit 1", got)
	}
	if got := result(h.get("/api/v1/users/search", peer)); got.code != http.StatusTooManyRequests {
		t.Fatalf("second search after the restart: %v, want 429", got)
	}
	if n := h.counter(t, "userservice_ratelimit_fail_open_total", nil); n != 0 {
		t.Fatalf("fail_open_total = %v after a restart, want 0", n)
	}
}

// An instance starts while Redis is down, lets requests through, and limits
// them once Redis comes.
func TestRedisDownAtStart(t *testing.T) {
	t.Parallel()
	p, url := newProxy(t, testdb.RedisURL(t))
	p.setMode(proxyRefuse)
	h := newHarness(t, ratelimit.Config{Dir: limitsDir(t, oneSearch), RedisURL: url})
	if h.logs.count("level=WARN", "Redis does not answer") != 1 {
		t.Fatal("starting without Redis was not logged")
	}
	for range 3 {
		if got := result(h.get("/api/v1/users/search", "192.0.2.1:1")); got.code != http.StatusOK {
			t.Fatalf("search with Redis down: %v", got)
		}
	}
	p.setMode(proxyUp)
	testutil.Poll(t, "limits to apply", func() bool {
		return result(h.get("/api/v1/users/search", "192.0.2.1:1")).code == http.StatusTooManyRequests
	})
}

type httpResult struct {
	code  int
	limit string
}

func (r *httpResult) String() string { return fmt.Sprintf("status %d, limit %q", r.code, r.limit) }

func result(rec *httptest.ResponseRecorder) *httpResult {
	res := rec.Result()
	defer res.Body.Close()
	return &httpResult{code: res.StatusCode, limit: res.Header.Get(ratelimit.HeaderLimit)}
}
