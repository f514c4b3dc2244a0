package security

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/userservice/userservice/bootstrap"
	"github.com/userservice/userservice/tests/harness"
)

// hideLength hides a reader's length, so the request goes chunked.
type hideLength struct{ io.Reader }

// TestAPI4_ResourceConsumption_HugeBodies is API4:2023 Unrestricted
// Resource Consumption: bodies past the limit are 413 whether their length
// is declared or not (chunked), and so is an import declaring more than the
// import limit, at once, before anything is uploaded. Bodies within the
// limit that are hard to parse (deep nesting, a flood of keys) are a
// plain 4xx.
func TestAPI4_ResourceConsumption_HugeBodies(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		huge := `{"first_name":"` + strings.Repeat("a", 2<<20) + `"}`
		s.Expect(t, http.StatusRequestEntityTooLarge, http.MethodPost, signUp, "", harness.RawBody{ContentType: "application/json", Data: huge})
		s.Expect(t, http.StatusRequestEntityTooLarge, http.MethodPut, harness.UserPath(root.ID), root.Access, harness.RawBody{ContentType: "application/json", Data: huge})

		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.Base+signUp, hideLength{strings.NewReader(huge)})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := s.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("a chunked body over the limit: %d %s, want 413", res.StatusCode, body)
		}

		// An import may be large (64 MiB by default), not larger: the
		// declared length is refused before a byte of the body is read.
		status := rawRequest(t, s, "POST "+importPath+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+root.Access+
			"\r\nContent-Type: text/csv\r\nContent-Length: 10000000000\r\n\r\n")
		if status != http.StatusRequestEntityTooLarge {
			t.Errorf("an import declaring 10 GB: status %d, want 413", status)
		}

		deep := `{"first_name":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`
		r := s.Do(t, http.MethodPut, harness.UserPath(root.ID), root.Access, harness.RawBody{ContentType: "application/json", Data: deep})
		if r.Status < 400 || r.Status >= 500 {
			t.Errorf("%.200s: want a 4xx", r)
		}
		var flood strings.Builder
		flood.WriteString(`{"first_name":"Ann"`)
		for i := range 30000 {
			fmt.Fprintf(&flood, `,"k%d":0`, i)
		}
		flood.WriteString("}")
		r = s.Do(t, http.MethodPut, harness.UserPath(root.ID), root.Access, harness.RawBody{ContentType: "application/json", Data: flood.String()})
		if r.Status != http.StatusUnprocessableEntity {
			t.Errorf("%.200s: want 422", r)
		}
		if len(r.Body) > flood.Len() {
			t.Errorf("a %d-byte body got a %d-byte answer: the error list amplifies", flood.Len(), len(r.Body))
		}
	})
}

// rawRequest writes head on a new connection and returns the answer's
// status; the body the head may declare is never sent.
func rawRequest(t *testing.T, s *harness.Service, head string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.Base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(harness.WaitFor)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	res.Body.Close()
	s.Record(t, harness.Response{Method: "RAW", Path: head[:strings.Index(head, " HTTP/")], Status: res.StatusCode, Header: res.Header, Body: b})
	return res.StatusCode
}

// TestAPI4_ResourceConsumption_PageSizes is API4:2023: a page holds at most
// 100 users; any larger size, or a nonsensical page, is refused (422, 400
// when not a number) rather than clamped into a heavy query, and a page
// far past the end, or a cursor, costs no more than the first page.
func TestAPI4_ResourceConsumption_PageSizes(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		a := c.byRole[admin]
		for _, path := range []string{list, search, audit} {
			token := a.Access
			if path == audit {
				token = c.root.Access
			}
			for q, want := range map[string]int{
				"size=101":                  http.StatusUnprocessableEntity,
				"size=1000000":              http.StatusUnprocessableEntity,
				"size=9223372036854775807":  http.StatusUnprocessableEntity,
				"size=99999999999999999999": http.StatusBadRequest,
				"size=0":                    http.StatusUnprocessableEntity,
				"size=-1":                   http.StatusUnprocessableEntity,
				"size=1e9":                  http.StatusBadRequest,
				"size=100":                  http.StatusOK,
			} {
				s.Expect(t, want, http.MethodGet, path+"?"+q, token, nil)
			}
		}
		for _, path := range []string{list, search} {
			s.Expect(t, http.StatusUnprocessableEntity, http.MethodGet, path+"?page=0", a.Access, nil)
			s.Expect(t, http.StatusUnprocessableEntity, http.MethodGet, path+"?page=-5", a.Access, nil)
			// Offset pages stop 10,000 rows deep (cursors go further).
			for _, q := range []string{"page=1000000&size=100", "page=9223372036854775807&size=100", "page=92233720368547758&size=100"} {
				r := s.Expect(t, http.StatusBadRequest, http.MethodGet, path+"?"+q, a.Access, nil)
				if r.Status == http.StatusBadRequest && r.Error(t).Code != "page_too_deep" {
					t.Errorf("%s: want code page_too_deep", r)
				}
			}
		}

		// Cursors: walking one user at a time works to the end; a cursor
		// is opaque and signed, so a forged or altered one is a 400.
		var p harness.PageDTO
		s.Expect(t, http.StatusOK, http.MethodGet, list+"?size=1", a.Access, nil).Decode(t, &p)
		seen := len(p.Items)
		for p.NextCursor != nil && seen < 100 {
			cursor := *p.NextCursor
			p = harness.PageDTO{}
			s.Expect(t, http.StatusOK, http.MethodGet, list+"?size=1&cursor="+url.QueryEscape(cursor), a.Access, nil).Decode(t, &p)
			seen += len(p.Items)
			if p.NextCursor == nil {
				// The cursor of the last page, replayed, is a page past the end.
				if n := countItems(t, s.Expect(t, http.StatusOK, http.MethodGet, list+"?size=1&cursor="+url.QueryEscape(cursor), a.Access, nil)); n != 1 {
					t.Errorf("the last cursor replayed gave %d items, want the same last page", n)
				}
				for _, bad := range []string{cursor + "A", "A" + cursor, strings.ToUpper(cursor), "eyJpZCI6MX0", strings.Repeat("A", 4000), "%00", "..%2F"} {
					s.Expect(t, http.StatusBadRequest, http.MethodGet, list+"?size=1&cursor="+url.QueryEscape(bad), a.Access, nil)
				}
			}
		}
		if seen != 4 {
			t.Errorf("walking by cursor saw %d users, want the 4 of the test", seen)
		}
	})
}

// TestAPI4_ResourceConsumption_WebSocketLimits is API4:2023 on the
// WebSocket: a connection holds at most 100 subscriptions (the 101st is
// refused and the connection lives on), and a frame over 4 KiB ends the
// connection with 1009.
func TestAPI4_ResourceConsumption_WebSocketLimits(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		ws := s.ConnectWS(t, root.Access)
		for i := range 100 {
			ws.Subscribe(map[string]any{"action": "subscribe_id", "user_id": 10000 + i})
		}
		ws.Send(map[string]any{"action": "subscribe_id", "user_id": 101})
		if m := ws.Next(); m.Type() != "error" {
			t.Errorf("the 101st subscription: %v, want an error", m)
		}
		ws.Send(map[string]any{"action": "ping"})
		ws.Expect("pong")

		big := s.ConnectWS(t, root.Access)
		big.Send(`{"action":"ping","pad":"` + strings.Repeat("x", 5000) + `"}`)
		if code := big.CloseCode(); code != websocket.CloseMessageTooBig {
			t.Errorf("a 5 KB frame: closed with %d, want 1009", code)
		}
	})
}

// TestAPI4_ResourceConsumption_WebSocketRates is API4:2023 with the shipped
// limits: one address opens at most 30 connections a minute (the 31st
// handshake is 429), and one connection sends at most 20 messages a second
// (the rest are answered "rate limited", and nothing else is done).
func TestAPI4_ResourceConsumption_WebSocketRates(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{ShippedLimits: true}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		first := s.ConnectWS(t, root.Access)
		for range 100 {
			first.Send(map[string]any{"action": "ping"})
		}
		pongs, limited := 0, 0
		for pongs+limited < 100 {
			m := first.Next()
			switch {
			case m.Type() == "pong":
				pongs++
			case m.Type() == "error" && strings.Contains(m.Str("detail"), "rate limited"):
				limited++
			default:
				t.Fatalf("unexpected %v", m)
			}
		}
		// 20 a second, counted as the server reads them: a slow machine
		// may spread the 100 over a few seconds' refills, never over five.
		if limited < 20 || pongs > 80 {
			t.Errorf("100 pings at once: %d answered, %d rate limited; want at most 20 a second answered", pongs, limited)
		}

		refused := 0
		for range 30 {
			c, res, err := s.DialWS(t, harness.WSOptions{Token: root.Access})
			if err != nil {
				if res == nil || res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
					t.Fatalf("a handshake failed otherwise than 429 with Retry-After: %v %v", err, res)
				}
				refused++
				continue
			}
			c.Close()
		}
		if refused == 0 {
			t.Error("31 handshakes from one address within a minute were all accepted")
		}
	})
}

// TestAPI4_ResourceConsumption_SlowClients is API4:2023 against slowloris:
// a client that sends its headers a byte at a time, or its body, is cut
// off by the server's timeouts (ReadHeaderTimeout, ReadTimeout; set short
// here, 5 s and 30 s in production) instead of holding a connection and a
// goroutine for as long as it likes.
func TestAPI4_ResourceConsumption_SlowClients(t *testing.T) {
	t.Parallel()
	const headerTimeout, readTimeout = 500 * time.Millisecond, 1500 * time.Millisecond
	opts := harness.Options{Configure: func(c *bootstrap.Config) {
		c.ReadHeaderTimeout, c.ReadTimeout = headerTimeout, readTimeout
	}}
	harness.OnEachBackend(t, opts, func(t *testing.T, s *harness.Service) {
		// The client would dribble for 20 s; the server must end it soon
		// after its timeout (the bound leaves room for a busy machine).
		const dribble, bound = 20 * time.Second, 8 * time.Second
		for _, tc := range []struct {
			name, head string
			drip       func(i int) string
		}{
			{"headers", "GET /healthz HTTP/1.1\r\nHost: x\r\n", func(i int) string { return "X" }},
			{"body", "POST " + signUp + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
				func(i int) string { return " " }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				conn, err := net.Dial("tcp", strings.TrimPrefix(s.Base, "http://"))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				start := time.Now()
				ended := make(chan string, 1)
				go func() {
					res, err := http.ReadResponse(bufio.NewReader(conn), nil)
					if err != nil {
						ended <- "closed (" + err.Error() + ")"
						return
					}
					res.Body.Close()
					ended <- "answered " + strconv.Itoa(res.StatusCode)
				}()
				if _, err := io.WriteString(conn, tc.head); err != nil {
					t.Fatal(err)
				}
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case how := <-ended:
						took := time.Since(start)
						t.Logf("slow %s: %s after %v", tc.name, how, took.Round(time.Millisecond))
						if took > bound {
							t.Errorf("slow %s held the connection for %v", tc.name, took)
						}
						if strings.HasPrefix(how, "answered 5") {
							t.Errorf("slow %s: %s, want a 4xx or the connection closed", tc.name, how)
						}
						return
					case <-tick.C:
						if time.Since(start) > dribble {
							t.Fatalf("slow %s: still connected after %v", tc.name, dribble)
						}
						// Writes fail once the server has closed; the reader reports it.
						_, _ = io.WriteString(conn, tc.drip(i))
					}
				}
			})
		}
	})
}
