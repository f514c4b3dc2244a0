package ratelimit

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/sethvargo/go-limiter"

	"github.com/userservice/userservice/tests/testdb"
)

// storeImpl opens a fresh store of one implementation for t, with exists
// reporting whether the store still holds a bucket for a key.
type storeImpl struct {
	name string
	open func(t *testing.T, tokens uint64, interval time.Duration) (s Store, exists func(key string) bool)
}

func storeImpls() []storeImpl {
	return []storeImpl{
		{"memory", func(t *testing.T, tokens uint64, interval time.Duration) (Store, func(string) bool) {
			s, err := memoryBackend{}.store(tokens, interval)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close(context.Background()) })
			exists := func(key string) bool {
				n, _, err := s.(limiter.Store).Get(context.Background(), key)
				if err != nil {
					t.Fatal(err)
				}
				return n != 0
			}
			return s, exists
		}},
		{"redis", func(t *testing.T, tokens uint64, interval time.Duration) (Store, func(string) bool) {
			b, err := newRedisBackend(testdb.RedisURL(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := b.close(); err != nil {
					t.Error(err)
				}
			})
			s, err := b.store(tokens, interval)
			if err != nil {
				t.Fatal(err)
			}
			exists := func(key string) bool {
				conn, err := b.pool.GetContext(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				n, err := redis.Int(redis.DoContext(conn, t.Context(), "EXISTS", redisKeyPrefix+key))
				if err != nil {
					t.Fatal(err)
				}
				return n == 1
			}
			return s, exists
		}},
	}
}

type taken struct {
	tokens, remaining uint64
	reset             time.Time
	ok                bool
}

func take(t *testing.T, s Store, key string) taken {
	t.Helper()
	tokens, remaining, reset, ok, err := s.Take(t.Context(), key)
	if err != nil {
		t.Fatalf("Take(%q): %v", key, err)
	}
	return taken{tokens, remaining, time.Unix(0, int64(reset)), ok}
}

// TestStoreContract holds both stores to the same behaviour.
func TestStoreContract(t *testing.T) {
	t.Parallel()
	for _, impl := range storeImpls() {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()

			t.Run("burst", func(t *testing.T) {
				t.Parallel()
				s, _ := impl.open(t, 5, time.Minute)
				for i := range 5 {
					got := take(t, s, "k")
					if !got.ok || got.tokens != 5 || got.remaining != uint64(4-i) {
						t.Fatalf("take %d: %+v, want ok with 5 tokens and %d remaining", i+1, got, 4-i)
					}
				}
				if got := take(t, s, "k"); got.ok || got.tokens != 5 || got.remaining != 0 {
					t.Fatalf("take 6: %+v, want refused with 5 tokens and 0 remaining", got)
				}
			})

			t.Run("reset time", func(t *testing.T) {
				t.Parallel()
				s, _ := impl.open(t, 2, time.Minute)
				before := time.Now()
				first := take(t, s, "k")
				after := time.Now()
				if first.reset.Before(before.Add(time.Minute-time.Second)) || first.reset.After(after.Add(time.Minute+time.Second)) {
					t.Fatalf("first take resets at %v, want about a minute after %v", first.reset, before)
				}
				take(t, s, "k")
				refused := take(t, s, "k")
				if refused.ok {
					t.Fatal("the third take of two tokens succeeded")
				}
				if d := refused.reset.Sub(first.reset).Abs(); d > 100*time.Millisecond {
					t.Fatalf("a refused take resets at %v, %v away from the bucket's reset %v", refused.reset, d, first.reset)
				}
			})

			t.Run("refill", func(t *testing.T) {
				t.Parallel()
				const interval = 300 * time.Millisecond
				s, _ := impl.open(t, 3, interval)
				var reset time.Time
				for range 3 {
					reset = take(t, s, "k").reset
				}
				if take(t, s, "k").ok {
					t.Fatal("a fourth take of three tokens succeeded")
				}
				deadline := time.Now().Add(10 * time.Second)
				for {
					got := take(t, s, "k")
					if got.ok {
						// Full again, and not before the time it announced.
						if got.remaining != 2 {
							t.Fatalf("after the refill: %d remaining, want 2", got.remaining)
						}
						if early := time.Until(reset); early > 50*time.Millisecond {
							t.Fatalf("refilled %v before the announced reset", early)
						}
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("no refill %v after a %v interval", time.Since(reset), interval)
					}
					time.Sleep(10 * time.Millisecond)
				}
			})

			t.Run("concurrency", func(t *testing.T) {
				t.Parallel()
				const tokens, workers, each = 50, 20, 10
				s, _ := impl.open(t, tokens, time.Minute)
				var granted atomic.Int64
				var wg sync.WaitGroup
				start := make(chan struct{})
				for range workers {
					wg.Go(func() {
						<-start
						for range each {
							_, _, _, ok, err := s.Take(context.Background(), "k")
							if err != nil {
								t.Error(err)
								return
							}
							if ok {
								granted.Add(1)
							}
						}
					})
				}
				close(start)
				wg.Wait()
				if n := granted.Load(); n != tokens {
					t.Fatalf("%d goroutines taking %d times each got %d tokens from a bucket of %d", workers, each, n, tokens)
				}
			})

			t.Run("give back", func(t *testing.T) {
				t.Parallel()
				s, _ := impl.open(t, 2, time.Minute)
				take(t, s, "k")
				take(t, s, "k")
				if err := s.Burst(t.Context(), "k", 1); err != nil {
					t.Fatal(err)
				}
				if got := take(t, s, "k"); !got.ok {
					t.Fatalf("a take after a token was given back: %+v, want ok", got)
				}
				if got := take(t, s, "k"); got.ok {
					t.Fatalf("a second take after one token was given back: %+v, want refused", got)
				}
			})

			t.Run("key isolation", func(t *testing.T) {
				t.Parallel()
				s, _ := impl.open(t, 1, time.Minute)
				if !take(t, s, "a").ok {
					t.Fatal("first take of a refused")
				}
				if take(t, s, "a").ok {
					t.Fatal("second take of a single-token bucket succeeded")
				}
				if got := take(t, s, "b"); !got.ok || got.remaining != 0 {
					t.Fatalf("take of b after a was emptied: %+v, want ok with 0 remaining", got)
				}
			})

			t.Run("expiry", func(t *testing.T) {
				t.Parallel()
				s, exists := impl.open(t, 1, 200*time.Millisecond)
				take(t, s, "k")
				if !exists("k") {
					t.Fatal("no bucket after a take")
				}
				// An idle bucket is full again after one interval; the store
				// must not keep it for ever.
				deadline := time.Now().Add(10 * time.Second)
				for exists("k") {
					if time.Now().After(deadline) {
						t.Fatal("the bucket of an idle key is still kept 10s after its interval")
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
		})
	}
}

// TestParseRedisURL: REDIS_URL as go-redis read it; a bad one is refused at
// start, without its password in the error.
func TestParseRedisURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"redis://":                            "localhost:6379",
		"redis://cache":                       "cache:6379",
		"rediss://:pw@cache.example:6380/3":   "cache.example:6380",
		"redis://user:pw@[::1]:7000/":         "[::1]:7000",
		"redis://cache:6379/0":                "cache:6379",
		"redis://u:p%40ss@cache:6379//2":      "cache:6379",
		"rediss://redis.internal.example/15":  "redis.internal.example:6379",
		"redis://127.0.0.1:6379?":             "127.0.0.1:6379",
		"redis://127.0.0.1:6379/12#fragment?": "127.0.0.1:6379",
	} {
		addr, _, err := parseRedisURL(raw)
		if err != nil || addr != want {
			t.Errorf("parseRedisURL(%q) = %q, %v; want %q", raw, addr, err, want)
		}
	}
	for _, raw := range []string{
		"http://u:s3cret@cache",
		"redis://u:s3cret@cache:port/0",
		"redis://u:s3cret@cache/db",
		"redis://u:s3cret@cache/-1",
		"redis://u:s3cret@cache/1/2",
		"redis://u:s3cret@cache/0?dial_timeout=1s",
		"redis:u:s3cret",
		"redis://u:s3cret@cache\n",
	} {
		if _, _, err := parseRedisURL(raw); err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("parseRedisURL(%q): %v, want an error without the password", raw, err)
		}
	}
}

// TestRedisCredentials: the password of the URL is sent (the test server
// has none, so Redis refuses it), alone or with a user (ACL).
func TestRedisCredentials(t *testing.T) {
	t.Parallel()
	base, err := url.Parse(testdb.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user   *url.Userinfo
		answer string // in Redis's error; empty: no error
	}{
		{nil, ""},
		{url.User("someone"), ""}, // a user without a password sends no AUTH
		{url.UserPassword("", "pw"), "AUTH"},
		{url.UserPassword("someone", "pw"), "WRONGPASS"},
	} {
		u := *base
		u.User = tc.user
		b, err := newRedisBackend(u.String())
		if err != nil {
			t.Fatal(err)
		}
		err = b.ping(t.Context())
		if err := b.close(); err != nil {
			t.Error(err)
		}
		if tc.answer == "" && err != nil || tc.answer != "" && (err == nil || !strings.Contains(err.Error(), tc.answer)) {
			t.Errorf("ping as %v: %v, want an error saying %q", tc.user, err, tc.answer)
		}
	}
}
