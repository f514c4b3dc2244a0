package realtime

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/userservice/userservice/ports"
)

// recordingConn is a connection of user 7 that acknowledges every
// subscription and records the requests.
type recordingConn struct {
	sink ports.EventSink
	mu   sync.Mutex
	reqs []ports.SubscribeRequest
}

func (c *recordingConn) Subscribe(_ context.Context, req ports.SubscribeRequest) (ports.Subscription, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, req)
	c.mu.Unlock()
	sub := ports.Subscription{ID: "s1", UserID: req.UserID}
	c.sink.Subscribed(sub)
	return sub, nil
}

func (c *recordingConn) Unsubscribe(context.Context, string) error { return nil }
func (c *recordingConn) Close()                                    {}
func (c *recordingConn) UserID() int64                             { return 7 }

// Catch-ups (subscribes with since_seq) are counted per account under
// their own rule; a refused one is answered as any rate limit is, and
// reaches no service.
func TestCatchUpsAreLimitedPerAccount(t *testing.T) {
	t.Parallel()
	conn := &recordingConn{}
	var (
		mu    sync.Mutex
		asked []string
	)
	allow := func(_ context.Context, rule, key string) (bool, time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if rule == defaultMessageRule {
			return true, 0
		}
		asked = append(asked, rule+" "+key)
		return len(asked) <= 1, 1500 * time.Millisecond
	}
	url := serveWith(t, Config{Allow: allow,
		Service: connectFunc(func(_ context.Context, _ string, sink ports.EventSink) (ports.RealtimeConn, error) {
			conn.sink = sink
			return conn, nil
		})})
	c := dial(t, url, "token")
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	exchange := func(msg string) map[string]any {
		t.Helper()
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		var reply map[string]any
		if err := c.ReadJSON(&reply); err != nil {
			t.Fatal(err)
		}
		return reply
	}
	for _, msg := range []string{
		`{"action":"subscribe_id","user_id":3,"since_seq":5}`,
		`{"action":"subscribe_id","user_id":3}`, // no catch-up: not counted
	} {
		if r := exchange(msg); r["type"] != "subscribed" {
			t.Fatalf("%s: %v", msg, r)
		}
	}
	if r := exchange(`{"action":"subscribe_search","since_seq":0}`); r["type"] != "error" || r["detail"] != "rate limited: retry in 2 s" {
		t.Fatalf("a catch-up over the budget: %v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"websocket-catchups user:7", "websocket-catchups user:7"}
	if strings.Join(asked, "|") != strings.Join(want, "|") {
		t.Errorf("asked %q, want %q", asked, want)
	}
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if len(conn.reqs) != 2 || conn.reqs[0].SinceSeq == nil || conn.reqs[1].SinceSeq != nil {
		t.Errorf("the service got %+v, want the two allowed subscribes", conn.reqs)
	}
}
