package ratelimit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
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
	// Burst gives key's bucket tokens more until it is next full again: a
	// token taken for a request that turned out not to count goes back.
	Burst(ctx context.Context, key string, tokens uint64) error
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

// A Redis client's defaults are those of a cache that may be slow, not of a
// check made before every request: without a bound, an unreachable Redis would
// stall every request for seconds instead of letting it through.
const (
	// redisTimeout bounds one Take, dialling included.
	redisTimeout = 250 * time.Millisecond
	// redisBackoff is how long, after a failure, Take fails at once instead of
	// asking Redis again: one request a second pays for finding out whether
	// Redis is back, not every request.
	redisBackoff = time.Second
	// redisIdleTimeout closes connections a burst opened once it is over.
	redisIdleTimeout = 5 * time.Minute
	// redisKeyPrefix keeps the limiter's keys apart from anything else in the
	// database.
	redisKeyPrefix = "userservice:ratelimit:"
)

// takeScript is the bucket: a counter of tokens taken in the current
// interval, whose expiry is the end of the interval. Being one script, the
// increment and the expiry happen atomically, so concurrent takes from any
// number of instances never hand out more than the budget. A key with no
// expiry (only ever one written by hand, or one whose expiry was lost) is
// given one, so no bucket can stay empty forever. DoContext sends EVALSHA,
// and EVAL when Redis does not know the script yet (a fresh or restarted
// server).
var takeScript = redis.NewScript(1, `
local used = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
	ttl = tonumber(ARGV[1])
	redis.call('PEXPIRE', KEYS[1], ttl)
end
return {used, ttl}
`)

// giveBackScript returns tokens to a bucket (a counter of tokens taken):
// never below zero, and never to a bucket that has expired meanwhile (it is
// full again anyway); DECRBY keeps the expiry.
var giveBackScript = redis.NewScript(1, `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used > 0 then
	redis.call('DECRBY', KEYS[1], math.min(used, tonumber(ARGV[1])))
end
return 0
`)

// redisBackend keeps the buckets in Redis, so that every instance using the
// same Redis shares them. It fails fast while Redis is known to be down.
type redisBackend struct {
	pool *redis.Pool
	// downUntil is when (Unix nanoseconds) Redis may be asked again after a
	// failure; zero while it answers.
	downUntil atomic.Int64
	// staleBefore (Unix nanoseconds) condemns the pooled connections last
	// used before it: set when one of them turned out dead, because its
	// idle siblings, connected to the same Redis, are then as dead.
	staleBefore atomic.Int64
}

// errRedisDown is returned while Take is not asking Redis after a failure.
var errRedisDown = errors.New("redis failed a moment ago; not asking again yet")

// errStale is how the pool is told to drop a condemned idle connection.
var errStale = errors.New("connection idle since before Redis was last found gone")

func newRedisBackend(rawURL string) (*redisBackend, error) {
	addr, opts, err := parseRedisURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: REDIS_URL: %w", err)
	}
	b := &redisBackend{}
	// A Take holds a connection for one round trip, so a handful per core
	// serves any request rate the service reaches; ten per core is what
	// go-redis allowed before, so an instance opens no more connections to
	// Redis than it did. Beyond that Take waits for a connection, within
	// its time bound, so a flood of requests cannot open connections
	// without end. As many stay idle, so that steady traffic does not dial
	// and close one per request; redisIdleTimeout closes them after a burst.
	size := 10 * runtime.GOMAXPROCS(0)
	b.pool = &redis.Pool{
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr, opts...)
		},
		TestOnBorrowContext: func(_ context.Context, _ redis.Conn, lastUsed time.Time) error {
			if lastUsed.UnixNano() <= b.staleBefore.Load() {
				return errStale
			}
			return nil
		},
		MaxActive:   size,
		Wait:        true,
		MaxIdle:     size,
		IdleTimeout: redisIdleTimeout,
	}
	return b, nil
}

// parseRedisURL reads redis://[[user]:password@]host[:port][/db] (rediss://
// for TLS) into the address and options to dial, the way go-redis read it
// before. It is read once, here, so that a bad URL stops the service at
// start rather than failing every dial, and no error quotes the URL, whose
// password would end up in the log.
func parseRedisURL(rawURL string) (string, []redis.DialOption, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the URL, password included
		}
		return "", nil, err
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return "", nil, fmt.Errorf("scheme %q: want redis or rediss", u.Scheme)
	}
	if u.Opaque != "" {
		return "", nil, errors.New("want redis://host:port/db, without an opaque part")
	}
	if len(u.Query()) > 0 {
		return "", nil, errors.New("query parameters are not supported")
	}
	db := 0
	switch f := strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' }); len(f) {
	case 0:
	case 1:
		if db, err = strconv.Atoi(f[0]); err != nil || db < 0 {
			return "", nil, fmt.Errorf("database %q is not a number", f[0])
		}
	default:
		return "", nil, errors.New("the path must be at most a database number")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "6379"
	}

	// The dial follows the context of the Take (redisTimeout), TLS
	// handshake included: redigo's own TLS would bound the handshake by a
	// separate timeout of its own.
	var tlsConfig *tls.Config
	if u.Scheme == "rediss" {
		tlsConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	dialer := &net.Dialer{Timeout: redisTimeout}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil || tlsConfig == nil {
			return c, err
		}
		tc := tls.Client(c, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close() // the handshake's error is the one to report
			return nil, err
		}
		return tc, nil
	}
	password, _ := u.User.Password()
	opts := []redis.DialOption{
		redis.DialContextFunc(dial),
		redis.DialReadTimeout(redisTimeout),
		redis.DialWriteTimeout(redisTimeout),
		redis.DialUsername(u.User.Username()), // sent only with a password
		redis.DialPassword(password),
		redis.DialDatabase(db),
	}
	return net.JoinHostPort(host, port), opts, nil
}

func (b *redisBackend) store(tokens uint64, interval time.Duration) (Store, error) {
	if interval < time.Millisecond {
		return nil, fmt.Errorf("ratelimit: interval %s is shorter than Redis's 1ms expiry resolution", interval)
	}
	return &redisStore{backend: b, tokens: tokens, interval: interval}, nil
}

func (b *redisBackend) close() error {
	if err := b.pool.Close(); err != nil {
		return fmt.Errorf("ratelimit: closing the Redis pool: %w", err)
	}
	return nil
}

// ping reports whether Redis answers, for the start-up log.
func (b *redisBackend) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = redis.DoContext(conn, ctx, "PING")
	return err
}

// take runs the take script on a pooled connection. A connection Redis
// closed while it sat in the pool (Redis restarted) fails on first use
// although Redis is back; so when a connection breaks, the idle ones as old
// are condemned and the script runs once more on a fresh one, within the
// same deadline. More than once would only spend the time budget of a
// request on a Redis that is gone. A connection that broke straight after
// being dialled is retried the same way: the pool does not say which it was,
// and it costs one more dial within the budget.
func (b *redisBackend) take(ctx context.Context, key string, interval time.Duration) ([]int64, error) {
	for retried := false; ; retried = true {
		conn, err := b.pool.GetContext(ctx)
		if err != nil {
			return nil, err
		}
		res, err := redis.Int64s(takeScript.DoContext(ctx, conn, key, interval.Milliseconds()))
		// Err reports a broken connection, not an error Redis answered; a
		// timeout breaks it too, but then Redis is slow, not restarted.
		broken := err != nil && conn.Err() != nil && !isTimeout(err) && ctx.Err() == nil
		_ = conn.Close() // a broken one is dropped; any error is err's
		if !broken || retried {
			return res, err
		}
		b.staleBefore.Store(time.Now().UnixNano())
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
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
	res, err := b.take(tctx, redisKeyPrefix+key, s.interval)
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

func (s *redisStore) Burst(ctx context.Context, key string, tokens uint64) error {
	b := s.backend
	if until := b.downUntil.Load(); until != 0 && time.Now().UnixNano() < until {
		return errRedisDown
	}
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("ratelimit: redis: %w", err)
	}
	defer conn.Close()
	if _, err := giveBackScript.DoContext(ctx, conn, redisKeyPrefix+key, tokens); err != nil {
		return fmt.Errorf("ratelimit: redis: %w", err)
	}
	return nil
}

func (s *redisStore) Close(context.Context) error { return nil }
