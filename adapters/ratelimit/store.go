package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sethvargo/go-limiter"
	"github.com/sethvargo/go-limiter/memorystore"
)

// Store holds the buckets of one rule: every key has its own bucket of the
// rule's size, refilled to full once per interval. It is the part of
// go-limiter's limiter.Store the limiter needs, so go-limiter's memory store
// is one as it is and the Redis store implements the same contract.
type Store interface {
	// Take takes a token from key's bucket. It returns the bucket's size, the
	// tokens left, when the bucket is full again (Unix nanoseconds), and
	// whether a token was taken. err is a failure of the store itself (Redis
	// unreachable), never a verdict about the bucket.
	Take(ctx context.Context, key string) (tokens, remaining, reset uint64, ok bool, err error)
	// Close releases what the store holds.
	Close(ctx context.Context) error
}

// go-limiter's own stores fit where a Store is expected.
var _ Store = limiter.Store(nil)

// backend makes the Store of each rule.
type backend interface {
	store(tokens uint64, interval time.Duration) (Store, error)
	close() error
}

// memoryBackend keeps each rule's buckets in this process, in a go-limiter
// memory store (which has one size per store, hence one store per rule).
type memoryBackend struct{}

// minSweep bounds how often a memory store scans its buckets for idle ones.
const minSweep = time.Second

func (memoryBackend) store(tokens uint64, interval time.Duration) (Store, error) {
	// A bucket idle for a whole interval is full again, so forgetting it then
	// changes nothing a client can see and keeps memory bounded by the
	// clients of the last interval (go-limiter's defaults keep them 12 hours).
	s, err := memorystore.New(&memorystore.Config{
		Tokens:        tokens,
		Interval:      interval,
		SweepInterval: max(interval, minSweep),
		SweepMinTTL:   interval,
	})
	if err != nil {
		return nil, fmt.Errorf("ratelimit: memory store: %w", err)
	}
	return s, nil
}

func (memoryBackend) close() error { return nil }

// The Redis client's defaults are those of a cache that may be slow, not of a
// check made before every request: without a bound, an unreachable Redis would
// stall every request for seconds instead of letting it through.
const (
	// redisTimeout bounds one Take, dialling included.
	redisTimeout = 250 * time.Millisecond
	// redisBackoff is how long, after a failure, Take fails at once instead of
	// asking Redis again: one request a second pays for finding out whether
	// Redis is back, not every request.
	redisBackoff = time.Second
	// redisKeyPrefix keeps the limiter's keys apart from anything else in the
	// database.
	redisKeyPrefix = "userservice:ratelimit:"
)

// takeScript is the bucket: a counter of tokens taken in the current
// interval, whose expiry is the end of the interval. Being one script, the
// increment and the expiry happen atomically, so concurrent takes from any
// number of instances never hand out more than the budget. A key with no
// expiry (only ever one written by hand, or one whose expiry was lost) is
// given one, so no bucket can stay empty forever.
var takeScript = redis.NewScript(`
local used = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
	ttl = tonumber(ARGV[1])
	redis.call('PEXPIRE', KEYS[1], ttl)
end
return {used, ttl}
`)

// redisBackend keeps the buckets in Redis, so that every instance using the
// same Redis shares them. It fails fast while Redis is known to be down.
type redisBackend struct {
	client *redis.Client
	// downUntil is when (Unix nanoseconds) Redis may be asked again after a
	// failure; zero while it answers.
	downUntil atomic.Int64
}

// errRedisDown is returned while Take is not asking Redis after a failure.
var errRedisDown = errors.New("redis failed a moment ago; not asking again yet")

func newRedisBackend(rawURL string) (*redisBackend, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the URL, password included
		}
		return nil, fmt.Errorf("ratelimit: REDIS_URL: %w", err)
	}
	opts.ContextTimeoutEnabled = true // so that redisTimeout bounds each Take
	if opts.DialTimeout == 0 {
		opts.DialTimeout = redisTimeout
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = redisTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = redisTimeout
	}
	if opts.MaxRetries == 0 {
		// One retry replaces a pooled connection Redis closed (a restart);
		// more would only spend the time budget of a request on a Redis
		// that is gone.
		opts.MaxRetries = 1
	}
	opts.DialerRetries = 1
	return &redisBackend{client: redis.NewClient(opts)}, nil
}

func (b *redisBackend) store(tokens uint64, interval time.Duration) (Store, error) {
	if interval < time.Millisecond {
		return nil, fmt.Errorf("ratelimit: interval %s is shorter than Redis's 1ms expiry resolution", interval)
	}
	return &redisStore{backend: b, tokens: tokens, interval: interval}, nil
}

func (b *redisBackend) close() error {
	if err := b.client.Close(); err != nil {
		return fmt.Errorf("ratelimit: closing the Redis client: %w", err)
	}
	return nil
}

// ping reports whether Redis answers, for the start-up log.
func (b *redisBackend) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	return b.client.Ping(ctx).Err()
}

// redisStore is one rule's view of the shared Redis: the rule's size applied
// to keys named after the rule. It holds nothing of its own to close.
type redisStore struct {
	backend  *redisBackend
	tokens   uint64
	interval time.Duration
}

var _ Store = (*redisStore)(nil)

func (s *redisStore) Take(ctx context.Context, key string) (tokens, remaining, reset uint64, ok bool, err error) {
	b := s.backend
	if until := b.downUntil.Load(); until != 0 && time.Now().UnixNano() < until {
		return 0, 0, 0, false, errRedisDown
	}
	tctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	res, err := takeScript.Run(tctx, b.client, []string{redisKeyPrefix + key},
		strconv.FormatInt(s.interval.Milliseconds(), 10)).Int64Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("the take script answered %d values, want 2", len(res))
	}
	if err != nil {
		if ctx.Err() == nil { // not merely the client giving up
			b.downUntil.Store(time.Now().Add(redisBackoff).UnixNano())
		}
		return 0, 0, 0, false, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if b.downUntil.Load() != 0 { // only then: a write on every request would be contended
		b.downUntil.Store(0)
	}

	used, ttl := uint64(max(res[0], 0)), time.Duration(res[1])*time.Millisecond
	if used < s.tokens {
		remaining = s.tokens - used
	}
	reset = uint64(time.Now().Add(ttl).UnixNano())
	return s.tokens, remaining, reset, used <= s.tokens, nil
}

func (s *redisStore) Close(context.Context) error { return nil }
