package deploy_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// message is one server message of the WebSocket protocol (docs/websocket.md).
type message map[string]any

func (m message) typ() string { s, _ := m["type"].(string); return s }

func (m message) str(k string) string { s, _ := m[k].(string); return s }

func (m message) num(k string) int64 { f, _ := m[k].(float64); return int64(f) }

// user decodes the user an event carries.
func (m message) user(t *testing.T) user {
	t.Helper()
	b, err := json.Marshal(m["user"])
	if err != nil {
		t.Fatalf("event %v: %v", m, err)
	}
	var u user
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatalf("event %v: %v", m, err)
	}
	return u
}

// wsClient is one subscriber connection. A goroutine reads every message into a
// queue, so the server never sees a client that does not read.
type wsClient struct {
	conn *websocket.Conn

	mu     sync.Mutex
	queue  []message
	ended  bool
	code   int // the close code the server sent; -1 when the connection broke without one
	signal chan struct{}
}

// dialWS connects to the instance's WebSocket endpoint with token in the query (one
// of the three ways docs/websocket.md allows).
func (c *api) dialWS(t *testing.T, token string) *wsClient {
	t.Helper()
	u := "ws" + strings.TrimPrefix(c.base, "http") + "/api/v1/users/ws?access_token=" + url.QueryEscape(token)
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(u, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("WebSocket to %s: %v (status %d)", c.base, err, status)
	}
	w := &wsClient{conn: conn, signal: make(chan struct{}, 1)}
	t.Cleanup(func() { conn.Close() })
	go w.read()
	return w
}

func (w *wsClient) read() {
	for {
		_, data, err := w.conn.ReadMessage()
		w.mu.Lock()
		if err != nil {
			w.ended, w.code = true, -1
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				w.code = ce.Code
			}
			w.mu.Unlock()
			w.wake()
			return
		}
		var m message
		if json.Unmarshal(data, &m) != nil {
			m = message{"type": "unparsable", "data": string(data)}
		}
		w.queue = append(w.queue, m)
		w.mu.Unlock()
		w.wake()
	}
}

func (w *wsClient) wake() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// send writes one client message.
func (w *wsClient) send(t *testing.T, v any) {
	t.Helper()
	if err := w.conn.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := w.conn.WriteJSON(v); err != nil {
		t.Fatalf("WebSocket send %v: %v", v, err)
	}
}

// next returns the next message other than a pong, failing t if none comes within
// waitFor or the connection ends.
func (w *wsClient) next(t *testing.T) message {
	t.Helper()
	m, ok := w.tryNext(waitFor)
	if !ok {
		t.Fatalf("no WebSocket message within %s (connection ended: %v, close code %d)", waitFor, w.isEnded(), w.closeCode())
	}
	return m
}

// tryNext returns the next message other than a pong, or false when none comes
// within d or the connection has ended and nothing is left.
func (w *wsClient) tryNext(d time.Duration) (message, bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		for len(w.queue) > 0 {
			m := w.queue[0]
			w.queue = w.queue[1:]
			if m.typ() != "pong" {
				w.mu.Unlock()
				return m, true
			}
		}
		ended := w.ended
		w.mu.Unlock()
		if ended {
			return nil, false
		}
		select {
		case <-w.signal:
		case <-deadline.C:
			return nil, false
		}
	}
}

// subscribe sends a subscribe message and returns the subscription's id.
func (w *wsClient) subscribe(t *testing.T, msg map[string]any) string {
	t.Helper()
	w.send(t, msg)
	m := w.next(t)
	if m.typ() != "subscribed" || m.str("subscription_id") == "" {
		t.Fatalf("subscribing with %v: got %v", msg, m)
	}
	return m.str("subscription_id")
}

// event waits for an event of type typ on subscription sub and returns it; other
// events on the way are skipped.
func (w *wsClient) event(t *testing.T, typ, sub string) message {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		m, ok := w.tryNext(time.Until(deadline))
		if !ok {
			t.Fatalf("no %s event on subscription %s within %s (connection ended: %v, close code %d)",
				typ, sub, waitFor, w.isEnded(), w.closeCode())
		}
		switch {
		case m.typ() == "error":
			t.Fatalf("waiting for a %s event: error %v", typ, m)
		case m.typ() == typ && m.str("subscription_id") == sub:
			return m
		}
	}
}

// closed waits for the server to end the connection and returns its close code.
func (w *wsClient) closed(t *testing.T, within time.Duration) int {
	t.Helper()
	poll(t, within, "the server to close the WebSocket", w.isEnded)
	return w.closeCode()
}

func (w *wsClient) isEnded() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ended
}

func (w *wsClient) closeCode() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.code
}
