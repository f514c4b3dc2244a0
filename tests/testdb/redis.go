package testdb

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// redisFirstDB and redisLastDB bound the logical databases handed to tests:
	// Redis has 16 (0-15) unless configured otherwise, and database 0 keeps the claims.
	redisFirstDB = 1
	redisLastDB  = 15
	// redisClaimPrefix names the keys, in database 0, that say which test binary
	// holds which database; test binaries sharing one TEST_REDIS_URL server therefore
	// never share a database.
	redisClaimPrefix = "userservice:testdb:claim:"
	// redisClaimTTL frees the databases of a test binary that died without cleaning
	// up; it exceeds any sensible test timeout.
	redisClaimTTL = time.Hour
	// redisClaimWait bounds how long a test waits for a database when every one is
	// held by other tests (at most 15 run at once against one server).
	redisClaimWait = 2 * time.Minute
	// redisClaimPoll is how often a waiting test looks for a free database again.
	redisClaimPoll = 50 * time.Millisecond
)

// releaseScript deletes a claim only if it is still the caller's.
const releaseScript = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`

// RedisURL returns a redis:// URL whose path selects a logical database (1-15) that
// is empty and used by this test only until it ends, when it is emptied again.
// Redis has only 16 logical databases: when 15 tests hold one, the next waits.
func RedisURL(t testing.TB) string {
	t.Helper()
	base := servers.redis.server(t, startRedis)
	admin, err := url.Parse(base)
	if err != nil { // base was parsed when the server was chosen
		t.Fatalf("testdb: %v", err)
	}
	admin.Path, admin.RawPath = "", ""

	ctx, cancel := context.WithTimeout(context.Background(), redisClaimWait)
	defer cancel()
	token := rand.Text()
	db, err := claimRedisDB(ctx, admin.String(), token)
	if err != nil {
		t.Fatalf("testdb: claiming a Redis database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		if err := releaseRedisDB(ctx, admin.String(), db, token); err != nil {
			t.Errorf("testdb: releasing Redis database %d: %v", db, err)
		}
	})

	u := *admin
	u.Path = "/" + strconv.Itoa(db)
	return u.String()
}

// claimRedisDB takes the first free logical database, waiting for one to be freed
// when none is, and empties it.
func claimRedisDB(ctx context.Context, adminURL, token string) (db int, err error) {
	c, err := dialRedis(ctx, adminURL)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, c.Close()) }()

	ttl := strconv.Itoa(int(redisClaimTTL / time.Second))
	tick := time.NewTicker(redisClaimPoll)
	defer tick.Stop()
	for {
		for db := redisFirstDB; db <= redisLastDB; db++ {
			_, taken, err := c.do("SET", redisClaimPrefix+strconv.Itoa(db), token, "NX", "EX", ttl)
			if err != nil {
				return 0, err
			}
			if taken {
				continue
			}
			if err := c.flush(db); err != nil {
				return 0, err
			}
			return db, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("all Redis databases %d-%d stayed in use by other tests: %w", redisFirstDB, redisLastDB, ctx.Err())
		case <-tick.C:
		}
	}
}

// releaseRedisDB empties the database and gives it back.
func releaseRedisDB(ctx context.Context, adminURL string, db int, token string) (err error) {
	c, err := dialRedis(ctx, adminURL)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	if err := c.flush(db); err != nil {
		return err
	}
	_, _, err = c.do("EVAL", releaseScript, "1", redisClaimPrefix+strconv.Itoa(db), token)
	return err
}

// redisConn is the least of the Redis protocol (RESP2) this package needs: commands
// out, simple, error, integer and bulk-string replies in. It spares the project a
// Redis client library chosen only for test set-up.
type redisConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialRedis connects to a redis:// URL, authenticating with its user information and
// selecting the database in its path, as Redis clients do.
func dialRedis(ctx context.Context, rawURL string) (*redisConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parsing Redis URL: %w", err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("connecting to Redis: %w", err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return nil, errors.Join(fmt.Errorf("setting a deadline: %w", err), conn.Close())
		}
	}
	c := &redisConn{conn: conn, r: bufio.NewReader(conn)}
	if pw, ok := u.User.Password(); ok {
		args := []string{"AUTH", pw}
		if name := u.User.Username(); name != "" {
			args = []string{"AUTH", name, pw}
		}
		if _, _, err := c.do(args...); err != nil {
			return nil, errors.Join(err, c.Close())
		}
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		if _, _, err := c.do("SELECT", p); err != nil {
			return nil, errors.Join(err, c.Close())
		}
	}
	return c, nil
}

func (c *redisConn) Close() error { return c.conn.Close() }

// flush empties database db and leaves the connection on database 0.
func (c *redisConn) flush(db int) error {
	for _, cmd := range [][]string{{"SELECT", strconv.Itoa(db)}, {"FLUSHDB"}, {"SELECT", "0"}} {
		if _, _, err := c.do(cmd...); err != nil {
			return err
		}
	}
	return nil
}

// do sends one command and reads its reply; null reports a null bulk string (e.g. GET
// of a missing key, or SET NX of an existing one).
func (c *redisConn) do(args ...string) (reply string, null bool, err error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c.conn, b.String()); err != nil {
		return "", false, fmt.Errorf("redis %s: %w", args[0], err)
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", false, fmt.Errorf("redis %s: reading reply: %w", args[0], err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", false, fmt.Errorf("redis %s: empty reply", args[0])
	}
	switch kind, rest := line[0], line[1:]; kind {
	case '+', ':':
		return rest, false, nil
	case '-':
		return "", false, fmt.Errorf("redis %s: %s", args[0], rest)
	case '$':
		n, err := strconv.Atoi(rest)
		if err != nil {
			return "", false, fmt.Errorf("redis %s: bad bulk length %q", args[0], rest)
		}
		if n < 0 {
			return "", true, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return "", false, fmt.Errorf("redis %s: reading reply: %w", args[0], err)
		}
		return string(buf[:n]), false, nil
	default:
		return "", false, fmt.Errorf("redis %s: unsupported reply %q", args[0], line)
	}
}
