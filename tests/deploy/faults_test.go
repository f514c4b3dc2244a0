package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

const (
	// answerBound is how long any answer may take while PostgreSQL is away: the
	// service's request deadline (10 s) and some slack. Past it a client would be
	// left hanging.
	answerBound = 15 * time.Second
	// recoveryBound is how soon after PostgreSQL is back the service must serve
	// again, by itself.
	recoveryBound = 15 * time.Second
	// writePause spaces one writer's requests, so a load is a steady trickle that
	// two shared cores sustain beside the containers.
	writePause = 20 * time.Millisecond
)

// generousLimits replaces the image's rate limits with the same rules and budgets
// no load of these tests reaches: the write loads come from one address. Its
// reader is spent by one container: call it for each.
func generousLimits(t *testing.T) []testcontainers.ContainerFile {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join(root, "policies", "ratelimits.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	generous := regexp.MustCompile(`(?m)^(\s*tokens:\s*)\d+`).ReplaceAll(shipped, []byte("${1}30000"))
	if bytes.Equal(generous, shipped) {
		t.Fatal("policies/ratelimits.yaml has no tokens: lines to raise")
	}
	return []testcontainers.ContainerFile{{
		Reader: bytes.NewReader(generous), ContainerFilePath: policyDir + "/ratelimits.yaml", FileMode: 0o644,
	}}
}

// load is a write load: one writer per user, each setting its user's IP address
// to 10.W.N/256.N%256 for N = 1, 2, ..., one request at a time.
type load struct {
	c      *api
	token  string
	users  []*account
	client *http.Client

	mu       sync.Mutex
	acked    map[int64][]string // per user, the addresses acknowledged with 2xx, in order
	statuses map[int]int        // answers by status
	failures []string           // requests that got no answer, or a wrong one
	slowest  time.Duration
	// marks counts 2xx answers and 503s since mark was called.
	sinceOK, since503 int

	cancel context.CancelFunc
	done   sync.WaitGroup
}

func startLoad(c *api, token string, users []*account) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{c: c, token: token, users: users, acked: map[int64][]string{}, statuses: map[int]int{},
		cancel: cancel, client: &http.Client{Timeout: answerBound}}
	for w, u := range users {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			l.write(ctx, w, u)
		}()
	}
	return l
}

func (l *load) write(ctx context.Context, w int, u *account) {
	writer := &api{base: l.c.base, http: l.client}
	for n := 1; ctx.Err() == nil; n++ {
		ip := fmt.Sprintf("10.%d.%d.%d", w, n/256, n%256)
		r, err := writer.try(ctx, http.MethodPut, userPath(u.id), l.token, map[string]any{"ip_address": ip})
		l.mu.Lock()
		switch {
		case ctx.Err() != nil: // stopped in the middle: neither acknowledged nor failed
		case err != nil:
			l.failures = append(l.failures, fmt.Sprintf("PUT %s (%s) got no answer after %s: %v", userPath(u.id), ip, r.elapsed, err))
		default:
			l.statuses[r.status]++
			l.slowest = max(l.slowest, r.elapsed)
			switch r.status {
			case http.StatusOK:
				l.acked[u.id] = append(l.acked[u.id], ip)
				l.sinceOK++
			case http.StatusServiceUnavailable:
				l.since503++
			default:
				l.failures = append(l.failures, fmt.Sprintf("PUT %s (%s): %s", userPath(u.id), ip, r))
			}
		}
		l.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(writePause):
		}
	}
}

// mark restarts the counts of sinceOK and since503.
func (l *load) mark() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sinceOK, l.since503 = 0, 0
}

func (l *load) counts() (ok, unavailable int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sinceOK, l.since503
}

// stop ends the load and reports the answers that break the rules: anything but
// 200 or 503, or no answer within answerBound.
func (l *load) stop(t *testing.T) {
	t.Helper()
	l.cancel()
	l.done.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("write load: answers %v, slowest %s", l.statuses, l.slowest.Round(time.Millisecond))
	for _, f := range l.failures {
		t.Error(f)
	}
}

// checkDurable checks that every acknowledged write is in the audit log, which
// records each change in the transaction that makes it, and that each user holds
// the last value the log records.
func (l *load) checkDurable(t *testing.T, c *api) {
	t.Helper()
	for _, u := range l.users {
		logged := auditAddresses(t, c, l.token, u.id)
		for _, ip := range l.acked[u.id] {
			if !slices.Contains(logged, ip) {
				t.Errorf("user %d: the write of %s was acknowledged with 200 but is not in the audit log", u.id, ip)
			}
		}
		var now user
		c.expect(t, http.StatusOK, http.MethodGet, userPath(u.id), l.token, nil).decode(t, &now)
		if len(logged) == 0 || now.IPAddress != logged[len(logged)-1] {
			t.Errorf("user %d holds %s; the audit log's last address is %v", u.id, now.IPAddress, logged[max(0, len(logged)-1):])
		}
	}
}

// auditAddresses walks the audit log of one user and returns the IP addresses
// its changes set, oldest first.
func auditAddresses(t *testing.T, c *api, token string, id int64) []string {
	t.Helper()
	var ips []string
	cursor := ""
	for {
		path := fmt.Sprintf("/api/v1/audit?target_id=%d&size=100", id)
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var page struct {
			Items []struct {
				Seq   int64 `json:"seq"`
				After *user `json:"after"`
			} `json:"items"`
			NextCursor *string `json:"next_cursor"`
		}
		c.expect(t, http.StatusOK, http.MethodGet, path, token, nil).decode(t, &page)
		for _, e := range page.Items {
			if e.After != nil {
				ips = append(ips, e.After.IPAddress)
			}
		}
		if page.NextCursor == nil || *page.NextCursor == "" {
			return ips
		}
		cursor = *page.NextCursor
	}
}

// follower keeps one subscription per user on a WebSocket and, when the socket
// ends, opens another (to any instance) that resumes with since_seq from the last
// event seen, as docs/websocket.md tells clients to.
type follower struct {
	token string
	users []*account
	ws    *wsClient
	subs  map[string]int64  // subscription id -> user id
	seen  map[int64][]int64 // user id -> seqs of its events, in arrival order
	ips   map[int64][]string
	last  int64 // the highest seq seen
}

func follow(t *testing.T, c *api, token string, users []*account) *follower {
	t.Helper()
	f := &follower{token: token, users: users, seen: map[int64][]int64{}, ips: map[int64][]string{}}
	f.connect(t, c)
	return f
}

func (f *follower) connect(t *testing.T, c *api) {
	t.Helper()
	f.ws = c.dialWS(t, f.token)
	f.subs = map[string]int64{}
	for _, u := range f.users {
		msg := map[string]any{"action": "subscribe_id", "user_id": u.id}
		if f.last > 0 {
			msg["since_seq"] = f.last
		}
		f.subs[f.ws.subscribe(t, msg)] = u.id
	}
}

// drain reads what has arrived; it reports false when the socket has ended.
func (f *follower) drain(t *testing.T, within time.Duration) bool {
	t.Helper()
	for {
		m, ok := f.ws.tryNext(within)
		if !ok {
			return !f.ws.isEnded()
		}
		switch m.typ() {
		case "created", "updated", "deleted":
			id, ok := f.subs[m.str("subscription_id")]
			if !ok {
				t.Errorf("an event for an unknown subscription: %v", m)
				continue
			}
			seq := m.num("seq")
			f.seen[id] = append(f.seen[id], seq)
			f.ips[id] = append(f.ips[id], m.user(t).IPAddress)
			f.last = max(f.last, seq)
		default:
			t.Errorf("unexpected message while following: %v", m)
		}
		within = 0
	}
}

// catchUp follows until every acknowledged write of l has arrived, reconnecting
// through c when the socket has ended, then checks that each subscription got its
// events exactly once and in seq order.
func (f *follower) catchUp(t *testing.T, c *api, l *load) {
	t.Helper()
	complete := func() bool {
		for _, u := range f.users {
			for _, ip := range l.acked[u.id] {
				if !slices.Contains(f.ips[u.id], ip) {
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(waitFor)
	for !complete() {
		if time.Now().After(deadline) {
			for _, u := range f.users {
				t.Errorf("user %d: %d writes acknowledged, %d events received", u.id, len(l.acked[u.id]), len(f.ips[u.id]))
			}
			t.Fatalf("not every acknowledged write reached the subscriber within %s", waitFor)
		}
		if !f.drain(t, 100*time.Millisecond) {
			t.Logf("the WebSocket ended (close code %d); resuming after seq %d", f.ws.closeCode(), f.last)
			f.connect(t, c)
		}
	}
	for id, seqs := range f.seen {
		if !sort.SliceIsSorted(seqs, func(i, j int) bool { return seqs[i] < seqs[j] }) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
			t.Errorf("user %d: events arrived out of order or twice: seqs %v", id, seqs)
		}
	}
}

// TestPostgresOutage takes PostgreSQL away in the middle of a write load and
// brings it back, in two ways: stopped (a fast shutdown, what `docker stop` does
// to the official image: clients are told) and killed (SIGKILL: connections
// never hear back, as in a crash or a network partition). While it is away the
// service answers 503 within its request deadline (never 500, never a hang) and
// /readyz fails; after it returns the service recovers by itself within seconds;
// no write acknowledged with 200 is lost, and a subscriber, resuming with
// since_seq if its socket ended, misses no change and gets none twice.
func TestPostgresOutage(t *testing.T) {
	t.Parallel()
	for _, fault := range []struct {
		name string
		// signal ends PostgreSQL: SIGINT is the official image's STOPSIGNAL (a
		// fast shutdown); the local test image has none, so it is sent here.
		signal string
	}{
		{"stopped", "SIGINT"},
		{"killed", "SIGKILL"},
	} {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			outage(t, fault.signal)
		})
	}
}

func outage(t *testing.T, signal string) {
	s := newStack(t, stackOptions{})
	a := s.app(t, "app", appOptions{files: generousLimits(t)})
	root := a.superadmin(t)
	users := []*account{a.newUser(t, root, "user"), a.newUser(t, root, "user"), a.newUser(t, root, "user")}
	f := follow(t, a.api, root.token, users)

	l := startLoad(a.api, root.token, users)
	defer l.cancel()
	poll(t, waitFor, "writes to succeed before the outage", func() bool { ok, _ := l.counts(); return ok >= 30 })

	ctx := context.Background()
	l.mark()
	timeout := 10 // seconds before Docker sends SIGKILL anyway
	if _, err := docker(t).ContainerStop(ctx, s.pg.GetContainerID(), client.ContainerStopOptions{Signal: signal, Timeout: &timeout}); err != nil {
		t.Fatalf("stopping PostgreSQL with %s: %v", signal, err)
	}
	poll(t, waitFor, "/readyz to fail", func() bool {
		return a.do(t, http.MethodGet, "/readyz", "", nil).status == http.StatusServiceUnavailable
	})
	poll(t, answerBound+waitFor, "writes to be answered 503", func() bool { _, n := l.counts(); return n >= 30 })
	if r := a.do(t, http.MethodGet, "/api/v1/users/list", root.token, nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("a read while PostgreSQL is down: %s, want 503", r)
	}

	if err := s.pg.Start(ctx); err != nil {
		t.Fatalf("starting PostgreSQL again: %v", err)
	}
	back := time.Now()
	l.mark()
	poll(t, recoveryBound, "/readyz to pass again", func() bool {
		return a.do(t, http.MethodGet, "/readyz", "", nil).status == http.StatusOK
	})
	poll(t, recoveryBound, "writes to succeed again", func() bool { ok, _ := l.counts(); return ok >= 1 })
	t.Logf("serving writes again %s after PostgreSQL was back", time.Since(back).Round(time.Millisecond))
	poll(t, waitFor, "more writes after the recovery", func() bool { ok, _ := l.counts(); return ok >= 30 })
	l.stop(t)

	l.checkDurable(t, a.api)
	f.catchUp(t, a.api, l)
}

// TestKilledInstance kills an instance with SIGKILL in the middle of a load of
// creations: every creation it acknowledged is there, read through another
// instance, and the killed one starts again (no lock or migration left behind).
func TestKilledInstance(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	a := s.app(t, "app-a", appOptions{files: generousLimits(t)})
	b := s.app(t, "app-b", appOptions{files: generousLimits(t)})
	root := a.superadmin(t)

	type created struct {
		id    int64
		email string
	}
	var (
		mu    sync.Mutex
		acked []created
		wrong []string // answers other than 201
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				email := fmt.Sprintf("killed-%d-%d-%s@example.com", w, n, randomHex(3))
				r, err := a.try(ctx, http.MethodPost, "/api/v1/users/create-admin", root.token, map[string]any{
					"first_name": "Grace", "last_name": "Hopper", "email": email, "gender": "female",
					"password": "a-long-password", "role": "user",
				})
				if err != nil {
					return // the instance is gone: nothing more is acknowledged
				}
				var u user
				mu.Lock()
				switch {
				case r.status != http.StatusCreated:
					wrong = append(wrong, r.String())
				case json.Unmarshal(r.body, &u) != nil || u.ID == 0:
					wrong = append(wrong, "a creation acknowledged without a user: "+r.String())
				default:
					acked = append(acked, created{u.ID, email})
				}
				mu.Unlock()
			}
		}()
	}
	poll(t, waitFor, "creations to be acknowledged", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 10 })
	a.signal(t, "SIGKILL")
	wg.Wait()
	if code := a.exited(t, waitFor); code != 137 {
		t.Errorf("the killed instance exited with %d, want 137 (SIGKILL)", code)
	}

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d creations acknowledged before the kill", len(acked))
	for _, w := range wrong {
		t.Errorf("a creation before the kill: %s", w)
	}
	for _, c := range acked {
		var u user
		b.expect(t, http.StatusOK, http.MethodGet, userPath(c.id), root.token, nil).decode(t, &u)
		if u.Email != c.email {
			t.Errorf("user %d: email %q, want %q", c.id, u.Email, c.email)
		}
	}

	if err := a.ctr.Start(context.Background()); err != nil {
		t.Fatalf("starting the killed instance again: %v", err)
	}
	a.api = a.endpoint(t)
	a.newUser(t, root, "user")
}

// TestGracefulStop sends SIGTERM to an instance with a request in flight and a
// subscriber connected: the socket is closed with 1001, the request still
// completes, the instance exits with status 0, and the subscriber, reconnecting to
// another instance with since_seq, gets the change made while the first drained.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	a := s.app(t, "app-a", appOptions{})
	b := s.app(t, "app-b", appOptions{})
	root := a.superadmin(t)
	u := a.newUser(t, root, "user")

	ws := a.dialWS(t, root.token)
	sub := ws.subscribe(t, map[string]any{"action": "subscribe_id", "user_id": u.id})
	a.expect(t, http.StatusOK, http.MethodPut, userPath(u.id), root.token, map[string]any{"last_name": "Before"})
	seq := ws.event(t, "updated", sub).num("seq")

	// A request in flight: its headers and half its body sent.
	addr := strings.TrimPrefix(a.base, "http://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("connecting to %s: %v", a.name, err)
	}
	defer conn.Close()
	const ip = "10.9.8.7"
	body := `{"ip_address":"` + ip + `"}`
	head := fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		userPath(u.id), addr, root.token, len(body))
	if _, err := conn.Write([]byte(head + body[:len(body)/2])); err != nil {
		t.Fatalf("sending the first half: %v", err)
	}

	a.signal(t, "SIGTERM")
	if code := ws.closed(t, waitFor); code != 1001 {
		t.Errorf("at SIGTERM the WebSocket closed with %d, want 1001 (going away)", code)
	}
	if _, err := conn.Write([]byte(body[len(body)/2:])); err != nil {
		t.Fatalf("sending the second half after SIGTERM: %v", err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(waitFor)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request in flight at SIGTERM got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the request in flight at SIGTERM: %s, want 200", resp.Status)
	}
	if code := a.exited(t, 30*time.Second); code != 0 {
		t.Errorf("after SIGTERM the instance exited with %d, want 0", code)
	}

	ws2 := b.dialWS(t, root.token)
	sub2 := ws2.subscribe(t, map[string]any{"action": "subscribe_id", "user_id": u.id, "since_seq": seq})
	ev := ws2.event(t, "updated", sub2)
	if got := ev.user(t); got.IPAddress != ip || ev.num("seq") <= seq {
		t.Errorf("resumed after seq %d on %s: %v, want the change to %s", seq, b.name, ev, ip)
	}
}
