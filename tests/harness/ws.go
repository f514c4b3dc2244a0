package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// WSPath is the WebSocket endpoint (docs/websocket.md).
const WSPath = "/api/v1/users/ws"

// Message is one server message of the WebSocket protocol.
type Message map[string]any

// Type is the message's "type".
func (m Message) Type() string { return m.Str("type") }

// Str is the string member k ("" when absent).
func (m Message) Str(k string) string {
	s, _ := m[k].(string)
	return s
}

// Num is the number member k (0 when absent).
func (m Message) Num(k string) int64 {
	f, _ := m[k].(float64)
	return int64(f)
}

// User is the "user" of an event.
func (m Message) User() Message {
	u, _ := m["user"].(map[string]any)
	return u
}

// WSOptions say how to open a connection.
type WSOptions struct {
	// Token is sent as Authorization: Bearer when set.
	Token string
	// Query is added to the URL (e.g. access_token).
	Query url.Values
	// Header holds more handshake headers (e.g. Origin).
	Header http.Header
	// Buffer is how many messages may wait unread (default 4096); past
	// that the reader stops reading, as a slow client would.
	Buffer int
}

// WS is a WebSocket client of the service. A goroutine reads every message
// into a queue; each is kept for the leak scan (no secret in any event).
type WS struct {
	t    testing.TB
	Conn *websocket.Conn
	msgs chan Message
	// held are messages read past while waiting for another (events that
	// came before a subscription's acknowledgement); Next gives them first.
	held   []Message
	closed chan struct{}
	// closeErr is how the connection ended; read after closed.
	closeErr error
}

// WSURL is the endpoint's ws:// address, with query when not empty.
func (s *Service) WSURL(query url.Values) string {
	u := "ws" + strings.TrimPrefix(s.Base, "http") + WSPath
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

// DialWS opens a connection. A refused handshake returns the error and the
// service's answer (its body read and recorded).
func (s *Service) DialWS(t testing.TB, o WSOptions) (*WS, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	for k, vs := range o.Header {
		h[k] = vs
	}
	if o.Token != "" {
		h.Set("Authorization", "Bearer "+o.Token)
	}
	d := websocket.Dialer{HandshakeTimeout: WaitFor}
	conn, resp, err := d.DialContext(t.Context(), s.WSURL(o.Query), h)
	if err != nil {
		if resp != nil {
			s.Leaks.Capture(fmt.Sprintf("the refused WebSocket handshake (%d), headers", resp.StatusCode), fmt.Sprint(resp.Header))
		}
		return nil, resp, err
	}
	if o.Buffer <= 0 {
		o.Buffer = 4096
	}
	c := &WS{t: t, Conn: conn, msgs: make(chan Message, o.Buffer), closed: make(chan struct{})}
	t.Cleanup(func() { conn.Close() })
	go func() {
		defer close(c.closed)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				c.closeErr = err
				return
			}
			s.Leaks.Capture("a WebSocket message", string(data))
			var m Message
			if err := json.Unmarshal(data, &m); err != nil {
				c.closeErr = fmt.Errorf("a message that is not JSON: %q", data)
				return
			}
			c.msgs <- m
		}
	}()
	return c, resp, nil
}

// ConnectWS opens a connection authenticated with token; it must succeed.
func (s *Service) ConnectWS(t testing.TB, token string) *WS {
	t.Helper()
	c, resp, err := s.DialWS(t, WSOptions{Token: token})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dialing the WebSocket: %v (status %d)", err, status)
	}
	return c
}

// Send writes one text frame: a string as is, anything else as JSON.
func (c *WS) Send(v any) {
	c.t.Helper()
	data, ok := v.(string)
	if !ok {
		b, err := json.Marshal(v)
		if err != nil {
			c.t.Fatal(err)
		}
		data = string(b)
	}
	if err := c.Conn.WriteMessage(websocket.TextMessage, []byte(data)); err != nil {
		c.t.Fatalf("sending %.80s: %v", data, err)
	}
}

// NextWithin returns the next message, or false when none came within d
// or the connection ended.
func (c *WS) NextWithin(d time.Duration) (Message, bool) {
	if len(c.held) > 0 {
		m := c.held[0]
		c.held = c.held[1:]
		return m, true
	}
	return c.fromWire(d)
}

// fromWire is the next message read from the connection, past the held ones.
func (c *WS) fromWire(d time.Duration) (Message, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case m := <-c.msgs:
		return m, true
	case <-c.closed:
		select {
		case m := <-c.msgs:
			return m, true
		default:
			return nil, false
		}
	case <-timer.C:
		return nil, false
	}
}

// Next returns the next message, failing the test after WaitFor.
func (c *WS) Next() Message {
	c.t.Helper()
	m, ok := c.NextWithin(WaitFor)
	if !ok {
		c.t.Fatalf("no message within %v (connection: %v)", WaitFor, c.ended())
	}
	return m
}

// Expect returns the next message, which must have type typ.
func (c *WS) Expect(typ string) Message {
	c.t.Helper()
	m := c.Next()
	if m.Type() != typ {
		c.t.Fatalf("got %v, want a %q message", m, typ)
	}
	return m
}

// Subscribe sends msg and returns the subscription's acknowledgement.
// Events of earlier subscriptions that arrive meanwhile are kept for Next.
func (c *WS) Subscribe(msg map[string]any) Message {
	c.t.Helper()
	c.Send(msg)
	for {
		m, ok := c.fromWire(WaitFor)
		if !ok {
			c.t.Fatalf("no acknowledgement of %v within %v (connection: %v)", msg, WaitFor, c.ended())
		}
		switch m.Type() {
		case "subscribed":
			return m
		case "created", "updated", "deleted":
			c.held = append(c.held, m)
		default:
			c.t.Fatalf("got %v, want a \"subscribed\" message", m)
		}
	}
}

// CloseCode waits for the connection to end and returns the close code the
// server sent (0 when it sent none), once the messages before it are read.
func (c *WS) CloseCode() int {
	c.t.Helper()
	select {
	case <-c.closed:
	case <-time.After(WaitFor):
		c.t.Fatalf("the connection is still open after %v", WaitFor)
	}
	var ce *websocket.CloseError
	if errors.As(c.closeErr, &ce) {
		return ce.Code
	}
	return 0
}

// ExpectClose waits for the server to close with code.
func (c *WS) ExpectClose(code int) {
	c.t.Helper()
	if got := c.CloseCode(); got != code {
		c.t.Fatalf("closed with %d (%v), want %d", got, c.Err(), code)
	}
}

// Event returns the next message, which must be an event of type typ for
// subscription sub.
func (c *WS) Event(typ, sub string) Message {
	c.t.Helper()
	m := c.Next()
	if m.Type() != typ || m.Str("subscription_id") != sub {
		c.t.Fatalf("got %v, want a %s event of %s", m, typ, sub)
	}
	return m
}

// Pending is how many messages have arrived that Next has not returned yet.
func (c *WS) Pending() int { return len(c.held) + len(c.msgs) }

// Err is how the connection ended, nil while it is open.
func (c *WS) Err() error {
	select {
	case <-c.closed:
		return c.closeErr
	default:
		return nil
	}
}

// Done is closed when the connection has ended.
func (c *WS) Done() <-chan struct{} { return c.closed }

func (c *WS) ended() string {
	select {
	case <-c.closed:
		return fmt.Sprintf("ended: %v", c.closeErr)
	default:
		return "open"
	}
}

// Close closes the connection as a client leaving does.
func (c *WS) Close() {
	_ = c.Conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = c.Conn.Close()
}
