// Package ratelimit limits how often clients may call the service: Echo
// middleware over go-limiter buckets, with the limits read from
// policies/ratelimits.yaml and reloaded when the file changes, like the
// Casbin policy. Each rule names the routes it applies to and what it counts
// by: the client's address (Echo's c.RealIP(), which believes forwarding
// headers only from trusted proxies) or the user of an access token. Failed
// password checks are counted apart, per account and client network
// (Attempt), by the use cases that check passwords.
//
// The buckets live in this process by default (go-limiter's memory store), so
// N instances allow N times the budget. Given a Redis URL they live in Redis
// instead, and every instance using it shares one budget; while Redis cannot
// be reached, requests are let through (with a logged warning and a metric)
// rather than refused, and limits apply again as soon as it answers.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sethvargo/go-limiter"

	"github.com/userservice/userservice/ports"
)

// Config is what the limiter needs from its environment.
type Config struct {
	// Dir is the policy directory (POLICY_DIR); the limits are Dir/ratelimits.yaml.
	Dir string
	// RedisURL (REDIS_URL, redis:// or rediss://) keeps the buckets in Redis,
	// shared by every instance using it. Empty: in this process.
	RedisURL string
	// Verifier reads the user of an access token, for rules keyed by user.
	// It may be nil when no rule is.
	Verifier ports.TokenVerifier
	// Log may be nil (nothing is logged).
	Log *slog.Logger
	// Registry receives the metrics; nil registers them nowhere.
	Registry prometheus.Registerer
}

// Limiter applies the limits in force. It is safe for concurrent use:
// requests read one immutable rule set through an atomic pointer, and a
// reload builds a new one beside it before swapping.
type Limiter struct {
	dir      string
	verifier ports.TokenVerifier
	log      *slog.Logger

	// shared holds the buckets of rules that are not local: Redis when
	// configured, else this process's memory.
	shared backend
	local  memoryBackend

	current atomic.Pointer[ruleSet]
	// reloading serialises reloads (and Close), so a slow reload that read an
	// older file cannot swap in after a quicker one that read a newer file.
	reloading sync.Mutex
	// failed records that the last reload was rejected, so the next good one
	// is logged even when it brings back exactly the limits in force.
	failed bool

	limited *prometheus.CounterVec
	outage  outage
}

// New reads the limits file and connects to Redis when a URL is given. A
// missing or invalid file is an error: the service must not start without
// its limits. An unreachable Redis is not: the service starts, letting
// requests through, and the limits apply once Redis answers.
func New(cfg Config) (*Limiter, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Limiter{
		dir:      cfg.Dir,
		verifier: cfg.Verifier,
		log:      log,
		shared:   memoryBackend{},
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "userservice", Subsystem: "ratelimit", Name: "limited_total",
			Help: "Requests refused with 429, by rule and route (\"METHOD /template\"; \"-\" for limits applied by code, such as WebSocket messages).",
		}, []string{"rule", "route"}),
	}
	l.outage = outage{log: log, failOpen: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "userservice", Subsystem: "ratelimit", Name: "fail_open_total",
		Help: "Requests let through unlimited because the rate-limit store (Redis) could not be reached.",
	})}
	if cfg.Registry != nil {
		for _, c := range []prometheus.Collector{l.limited, l.outage.failOpen} {
			if err := cfg.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("ratelimit: registering metrics: %w", err)
			}
		}
	}

	var redis *redisBackend
	if cfg.RedisURL != "" {
		var err error
		if redis, err = newRedisBackend(cfg.RedisURL); err != nil {
			return nil, err
		}
		l.shared = redis
	}
	set, err := readLimits(cfg.Dir)
	if err == nil {
		err = l.check(set)
	}
	if err == nil {
		err = l.attachStores(set, nil)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("ratelimit: loading the limits: %w", err), l.shared.close())
	}
	l.current.Store(set)

	if redis != nil {
		if err := redis.ping(context.Background()); err != nil {
			log.Warn("Redis does not answer: requests are let through unlimited until it does", "error", err)
		} else {
			log.Info("rate limits shared through Redis")
		}
	}
	return l, nil
}

// check rejects what the file asks and this limiter cannot do.
func (l *Limiter) check(set *ruleSet) error {
	for _, r := range set.rules {
		if r.key == keyUser && l.verifier == nil {
			return &ports.PolicyFileError{File: filepath.Join(l.dir, limitsFile),
				Err: fmt.Errorf("rule %q counts by user, and the service gave the limiter no token verifier", r.name)}
		}
	}
	return nil
}

// attachStores gives every rule of set a store: the one of the same rule in
// old when its size did not change (so an edit of one limit does not refill
// every other bucket), otherwise a new one.
func (l *Limiter) attachStores(set, old *ruleSet) error {
	for _, r := range set.rules {
		if old != nil {
			if o := old.byName[r.name]; o != nil && o.sameBuckets(r) {
				r.store = o.store
				continue
			}
		}
		var b backend = l.shared
		if r.local {
			b = l.local
		}
		s, err := b.store(r.tokens, r.interval)
		if err != nil {
			closeStores(set, old)
			return fmt.Errorf("rule %q: %w", r.name, err)
		}
		r.store = s
	}
	return nil
}

// closeStores closes the stores of set that keep is not using. Memory
// stores run a sweeper goroutine each, so a replaced one must be closed.
func closeStores(set, keep *ruleSet) {
	for _, r := range set.rules {
		if r.store == nil {
			continue
		}
		if keep != nil {
			if k := keep.byName[r.name]; k != nil && k.store == r.store {
				continue
			}
		}
		_ = r.store.Close(context.Background()) // neither store fails to close
	}
}

// Reload reads the limits file again and puts it in force if it is valid.
// When it is not, it logs one error line naming the file, the line when
// known and the reason, keeps the limits in force, and returns the error.
func (l *Limiter) Reload() error {
	l.reloading.Lock()
	defer l.reloading.Unlock()

	old := l.current.Load()
	if old == nil {
		return errors.New("ratelimit: the limiter is closed")
	}
	set, err := readLimits(l.dir)
	if err == nil && !l.failed && string(set.file) == string(old.file) {
		// Another file of the directory changed, or the same bytes were
		// written again: nothing to swap, nothing to tell the operator.
		return nil
	}
	if err == nil {
		err = l.check(set)
	}
	if err == nil {
		err = l.attachStores(set, old)
	}
	if err != nil {
		l.failed = true
		attrs := ports.FileErrorAttrs(err)
		l.log.Error("rate limits rejected; the previous limits stay in force", attrs...)
		return fmt.Errorf("ratelimit: reloading the limits: %w", err)
	}
	l.failed = false
	l.current.Store(set)
	// A request that picked up the old set may still take from a store
	// closed here; it is let through (see take), once.
	closeStores(old, set)
	l.log.Info("rate limits reloaded", "dir", l.dir, "rules", len(set.rules))
	return nil
}

// Close releases the stores and the Redis connection. Requests that still
// reach the middleware afterwards are let through.
func (l *Limiter) Close() error {
	l.reloading.Lock()
	defer l.reloading.Unlock()
	if set := l.current.Swap(nil); set != nil {
		closeStores(set, nil)
		return l.shared.close()
	}
	return nil
}

// Allow takes a token from key's bucket of the named rule, for limits that
// code applies rather than a route: the WebSocket adapter's messages per
// connection, for instance. A rule the limits file does not define limits
// nothing, and neither does a store that cannot be reached; both allow. When
// it refuses, retryAfter is how long until the bucket is full again.
func (l *Limiter) Allow(ctx context.Context, ruleName, key string) (ok bool, retryAfter time.Duration) {
	set := l.current.Load()
	if set == nil {
		return true, 0
	}
	r := set.byName[ruleName]
	if r == nil {
		return true, 0
	}
	b, err := l.take(ctx, r, "key:"+key)
	if err != nil || b.ok {
		return true, 0
	}
	l.limited.WithLabelValues(r.name, "-").Inc()
	return false, b.untilFull(time.Now())
}

// bucket is the state of one bucket after a take.
type bucket struct {
	tokens, remaining uint64
	reset             time.Time
	ok                bool
}

func (b bucket) untilFull(now time.Time) time.Duration {
	return max(b.reset.Sub(now), 0)
}

// take takes a token from key's bucket of rule r. An error means the store
// could not say, and the request is to be let through.
func (l *Limiter) take(ctx context.Context, r *rule, key string) (bucket, error) {
	tokens, remaining, reset, ok, err := r.store.Take(ctx, r.name+":"+key)
	switch {
	case err == nil:
		l.outage.ok()
		return bucket{tokens: tokens, remaining: remaining, reset: time.Unix(0, int64(reset)), ok: ok}, nil
	case errors.Is(err, limiter.ErrStopped), ctx.Err() != nil:
		// A reload replaced the store while this request was on its way,
		// or the client gave up: not a failure of the store.
	default:
		l.outage.failed(err)
	}
	return bucket{}, err
}
