// Package realtime_test drives the WebSocket subscriptions of CONTRACT §5
// through the whole service (bootstrap.New and Run), on SQLite and on
// PostgreSQL, with real WebSocket clients.
package realtime_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/userservice/userservice/adapters/gormstore"
	"github.com/userservice/userservice/adapters/jwtauth"
)

func TestAuthenticationPaths(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, b backend) {
		s := newSetup(t, b)
		in := s.start(t)
		root := in.seedSuperadmin(t)
		ping := map[string]any{"action": "ping"}

		// Authorization header: no "authenticated" message, straight to work.
		c := in.dial(t, dialOpts{bearer: root.token})
		c.send(ping)
		c.expect("pong")

		// The access_token query parameter.
		c = in.dial(t, dialOpts{query: url.Values{"access_token": {root.token}}})
		c.send(ping)
		c.expect("pong")

		// The first message.
		c = in.dial(t, dialOpts{})
		c.send(map[string]any{"action": "auth", "token": root.token})
		c.expect("authenticated")
		c.send(ping)
		c.expect("pong")
		c.send(map[string]any{"action": "auth", "token": root.token})
		if m := c.expect("error"); m.str("detail") != "already authenticated" {
			t.Errorf("a second auth: %v", m)
		}

		// Failures close with 4401.
		expired := mint(t, s, root.id, 0, time.Now().Add(-2*s.accessTTL))
		for name, o := range map[string]dialOpts{
			"bad header":     {bearer: "not-a-token"},
			"expired header": {bearer: expired},
			"bad query":      {query: url.Values{"access_token": {"not-a-token"}}},
		} {
			c := in.dial(t, o)
			if got := c.closeCode(); got != 4401 {
				t.Errorf("%s: closed with %d (%v), want 4401", name, got, c.closeErr)
			}
		}
		for name, first := range map[string]any{
			"bad token":         map[string]any{"action": "auth", "token": "not-a-token"},
			"another action":    ping,
			"not JSON":          "hello",
			"auth without one":  map[string]any{"action": "auth"},
			"a revoked version": map[string]any{"action": "auth", "token": mint(t, s, root.id, 7, time.Now())},
		} {
			c := in.dial(t, dialOpts{})
			c.send(first)
			if got := c.closeCode(); got != 4401 {
				t.Errorf("first message %s: closed with %d (%v), want 4401", name, got, c.closeErr)
			}
		}
		// Nothing within 10 s.
		start := time.Now()
		c = in.dial(t, dialOpts{})
		select {
		case <-c.closed:
		case <-time.After(15 * time.Second):
			t.Fatal("a silent connection stayed open")
		}
		if ce, ok := c.closeErr.(*websocket.CloseError); !ok || ce.Code != 4401 {
			t.Errorf("a silent connection ended with %v, want 4401", c.closeErr)
		}
		if waited := time.Since(start); waited < 9*time.Second {
			t.Errorf("a silent connection was closed after %v, before its 10 s", waited)
		}
	})
}

// mint signs an access token for user id with the setup's secret, as if
// issued at issued.
func mint(t *testing.T, s *setup, id, version int64, issued time.Time) string {
	t.Helper()
	j, err := jwtauth.New(jwtauth.Config{Secret: s.secret, TTL: s.accessTTL})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := j.IssueAccess(id, version, issued)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenExpiryClosesTheSocket(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, b backend) {
		s := newSetup(t, b)
		in := s.start(t)
		root := in.seedSuperadmin(t)
		// A token with two seconds left.
		tok := mint(t, s, root.id, 0, time.Now().Add(2*time.Second-s.accessTTL))
		c := in.dial(t, dialOpts{bearer: tok})
		c.send(map[string]any{"action": "ping"})
		c.expect("pong")
		c.expectClose(4401)
	})
}

func TestAuthorizationPerRoleAndPolicyEdits(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, b backend) {
		s := newSetup(t, b)
		in := s.start(t)
		root := in.seedSuperadmin(t)
		user := in.createAndLogin(t, root, "user")
		admin := in.createAndLogin(t, root, "admin")

		uc, ac := in.connect(t, user), in.connect(t, admin)
		uc.subscribe(map[string]any{"action": "subscribe_id", "user_id": admin.id})
		uc.send(map[string]any{"action": "subscribe_search", "email": "@example.com"})
		if m := uc.expect("error"); m.str("detail") != "not allowed" {
			t.Errorf("a user's search subscription: %v", m)
		}
		uc.send(map[string]any{"action": "ping"})
		uc.expect("pong") // still open
		search := ac.subscribe(map[string]any{"action": "subscribe_search", "email": "@example.com"}).str("subscription_id")

		// Take search subscriptions away from admins (and superadmins, who
		// inherit them).
		policyFile := filepath.Join(s.policyDir, "policy.csv")
		policy, err := os.ReadFile(policyFile)
		if err != nil {
			t.Fatal(err)
		}
		adminRow := "p, admin, users.subscribe_search, *,     *,     *"
		edited := strings.Replace(string(policy), adminRow, "", 1)
		if edited == string(policy) {
			t.Fatal("the shipped policy changed: update this test's edit")
		}
		if err := os.WriteFile(policyFile, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		// New subscriptions follow the new policy as soon as it is reloaded
		// (until then, the admin's attempts succeed and are ended below).
		live := map[string]bool{search: true}
		poll(t, "the edited policy to refuse an admin's search subscription", func() bool {
			ac.send(map[string]any{"action": "subscribe_search", "email": "@example.com"})
			m := ac.next()
			if m.typ() == "subscribed" {
				live[m.str("subscription_id")] = true
			}
			return m.typ() == "error" && m.str("detail") == "not allowed"
		})
		// The admin's live search subscriptions end at their next event,
		// within the 2 s a decision is reused.
		deadline := time.Now().Add(waitFor)
		for i := 0; len(live) > 0; i++ {
			in.update(t, root, user.id, map[string]any{"last_name": "Edit" + strings.Repeat("a", i+1)})
			for m := ac.next(); ; m = ac.next() {
				if m.typ() == "unsubscribed" && live[m.str("subscription_id")] && m.str("detail") == "not allowed" {
					delete(live, m.str("subscription_id"))
				} else if m.typ() != "updated" {
					t.Fatalf("waiting for the search subscriptions to end: %v", m)
				}
				if len(ac.msgs) == 0 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("search subscriptions %v still live", live)
			}
		}

		// Grant them to users: a plain user may now subscribe by search.
		edited += "\np, user, users.subscribe_search, none, -, -\n"
		if err := os.WriteFile(policyFile, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		poll(t, "the edited policy to let a user subscribe by search", func() bool {
			uc.send(map[string]any{"action": "subscribe_search", "email": "@example.com"})
			return uc.next().typ() == "subscribed"
		})
	})
}

func TestFilterMatching(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, b backend) {
		s := newSetup(t, b)
		in := s.start(t)
		root := in.seedSuperadmin(t)
		admin := in.createAndLogin(t, root, "admin")
		c := in.connect(t, admin)
		gmail := c.subscribe(map[string]any{"action": "subscribe_search", "email": "@GMAIL.com", "gender": "FEMALE"})
		if f, _ := gmail["filters"].(map[string]any); f["email"] != "@gmail.com" || f["gender"] != "Female" || gmail.str("action") != "subscribe_search" {
			t.Errorf("acknowledgement %v", gmail)
		}
		g := gmail.str("subscription_id")
		net10 := c.subscribe(map[string]any{"action": "subscribe_search", "ip_address": "10.0.0.0/8", "role": "user"}).str("subscription_id")

		// A user created inside both filters.
		zoe := in.create(t, root, "user", strings.Replace(email("zoe"), "@example.com", "@Gmail.com", 1))
		first := c.next()
		second := c.next()
		got := map[string]message{first.str("subscription_id"): first, second.str("subscription_id"): second}
		if got[g].typ() != "created" || got[net10].typ() != "created" || got[g].user().num("id") != zoe.id {
			t.Fatalf("creation events %v", got)
		}
		if got[g].num("seq") != got[net10].num("seq") || got[g].num("seq") <= gmail.num("seq") {
			t.Errorf("seqs %d, %d after %d", got[g].num("seq"), got[net10].num("seq"), gmail.num("seq"))
		}
		// The event shows the public fields of GET /users/{id}, no more.
		var rest map[string]any
		in.must(t, http.StatusOK, http.MethodGet, "/api/v1/users/"+strconv.FormatInt(zoe.id, 10), root.token, nil, &rest)
		if k1, k2 := keys(rest), keys(got[g].user()); !slices.Equal(k1, k2) {
			t.Errorf("event user fields %v, REST user fields %v", k2, k1)
		}
		if _, err := time.Parse(time.RFC3339Nano, got[g].str("at")); err != nil {
			t.Errorf("at %q: %v", got[g].str("at"), err)
		}

		// Moving out of the email filter is seen (matched before), and out of the CIDR too.
		in.update(t, root, zoe.id, map[string]any{"email": email("moved"), "ip_address": "192.168.1.1"})
		for range 2 {
			if m := c.next(); m.typ() != "updated" || m.user().str("ip_address") != "192.168.1.1" {
				t.Fatalf("the move out: %v", m)
			}
		}
		// Now outside both: nothing, as the next event shows.
		in.update(t, root, zoe.id, map[string]any{"first_name": "Zoey"})
		in.update(t, root, zoe.id, map[string]any{"ip_address": "10.9.9.9"})
		if m := c.event("updated", net10); m.user().str("first_name") != "Zoey" {
			t.Fatalf("after a change outside the filters: %v", m)
		}
		// A role filter: an admin is not a user.
		in.create(t, root, "admin", email("other"))
		in.create(t, root, "user", email("plain"))
		if m := c.event("created", net10); m.user().str("role") != "user" {
			t.Fatalf("the role filter let through %v", m)
		}
		// Deletion: the deleted user's last state.
		in.must(t, http.StatusNoContent, http.MethodDelete, "/api/v1/users/"+strconv.FormatInt(zoe.id, 10), root.token, nil, nil)
		if m := c.event("deleted", net10); m.user().num("id") != zoe.id || m.user().str("first_name") != "Zoey" {
			t.Fatalf("deletion %v", m)
		}
	})
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestSubscriptionsByIDAndUnsubscribe(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, b backend) {
		s := newSetup(t, b)
		in := s.start(t)
		root := in.seedSuperadmin(t)
		user := in.createAndLogin(t, root, "user")
		other := in.create(t, root, "user", email("other"))
		c := in.connect(t, user)
		mine := c.subscribe(map[string]any{"action": "subscribe_id", "user_id": user.id})
		if f, _ := mine["filters"].(map[string]any); f["user_id"] != float64(user.id) || mine.str("action") != "subscribe_id" {
			t.Errorf("acknowledgement %v", mine)
		}
		a := mine.str("subscription_id")
		o := c.subscribe(map[string]any{"action": "subscribe_id", "user_id": other.id}).str("subscription_id")
		// An id nobody has yet.
		future := c.subscribe(map[string]any{"action": "subscribe_id", "user_id": other.id + 1}).str("subscription_id")
		in.update(t, user, user.id, map[string]any{"first_name": "Ann"})
		c.event("updated", a)
		created := in.create(t, root, "user", email("next"))
		if m := c.event("created", future); m.user().num("id") != created.id {
			t.Fatalf("the future user's creation: %v", m)
		}

		c.send(map[string]any{"action": "unsubscribe", "subscription_id": a})
		if m := c.expect("unsubscribed"); m.str("subscription_id") != a {
			t.Errorf("unsubscribe: %v", m)
		}
		c.send(map[string]any{"action": "unsubscribe", "subscription_id": a})
		c.expect("error")
		in.update(t, user, user.id, map[string]any{"first_name": "Bea"})
		in.update(t, root, other.id, map[string]any{"first_name": "Cat"})
		c.event("updated", o) // and nothing for a before it
	})
}

func TestBadMessagesKeepTheConnection(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, b backend) {
		s := newSetup(t, b)
		in := s.start(t)
		root := in.seedSuperadmin(t)
		c := in.connect(t, root)
		for msg, detail := range map[string]string{
			`{"action":`:                                             "bad JSON: a message is one JSON object",
			`{"action":"subscribe_everything"}`:                      `unknown action "subscribe_everything"`,
			`{"action":"subscribe_search","emial":"x"}`:              `unknown field for subscribe_search: "emial"`,
			`{"action":"subscribe_search","gender":"robot"}`:         "validation failed; gender: ",
			`{"action":"subscribe_search","ip_address":"10.0.0/99"}`: "validation failed; ip_address: ",
			`{"action":"subscribe_id","user_id":"x"}`:                "user_id must be an integer",
		} {
			c.send(msg)
			if m := c.expect("error"); !strings.HasPrefix(m.str("detail"), detail) {
				t.Errorf("%s: detail %q, want %q", msg, m.str("detail"), detail)
			}
		}
		if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		c.expect("error")
		c.send(map[string]any{"action": "ping"})
		c.expect("pong")
		// 4 KiB is the limit; an oversized frame ends the connection with 1009.
		const prefix = `{"action":"ping","pad":"`
		c.send(prefix + strings.Repeat("x", 4096-len(prefix)-2) + `"}`)
		if m := c.expect("error"); !strings.Contains(m.str("detail"), "unknown field") {
			t.Errorf("a frame of exactly 4 KiB: %v", m)
		}
		c.send(`{"action":"ping","pad":"` + strings.Repeat("x", 5000) + `"}`)
		c.expectClose(websocket.CloseMessageTooBig)
	})
}

func TestMaxSubscriptionsPerConnection(t *testing.T) {
	t.Parallel()
	s := newSetup(t, sqlite)
	in := s.start(t)
	root := in.seedSuperadmin(t)
	c := in.connect(t, root)
	// Ids nobody has: the superadmin's creation, made by the command
	// outside this instance, may reach it (by the poll) after these start.
	for i := range 100 {
		c.subscribe(map[string]any{"action": "subscribe_id", "user_id": 1<<40 + i})
	}
	c.send(map[string]any{"action": "subscribe_id", "user_id": 1 << 40})
	if m := c.expect("error"); m.str("detail") != "at most 100 subscriptions per connection" {
		t.Fatalf("the 101st subscription: %v", m)
	}
	if got := in.metric(t, "userservice_ws_subscriptions"); got != 100 {
		t.Errorf("userservice_ws_subscriptions = %v, want 100", got)
	}
}

func TestMessageRateLimit(t *testing.T) {
	t.Parallel()
	s := newSetup(t, sqlite)
	s.messageBudget = 3
	in := s.start(t)
	root := in.seedSuperadmin(t)
	c := in.connect(t, root)
	for range 3 {
		c.send(map[string]any{"action": "ping"})
	}
	c.send(map[string]any{"action": "ping"})
	for range 3 {
		c.expect("pong")
	}
	if m := c.expect("error"); !strings.HasPrefix(m.str("detail"), "rate limited") {
		t.Fatalf("the fourth message in a second: %v", m)
	}
}

// seqOf returns the seqs of the events in msgs.
func seqsOf(msgs []message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.num("seq")
	}
	return out
}

func TestReplayAfterReconnect(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, b backend) {
		s := newSetup(t, b)
		in := s.start(t)
		root := in.seedSuperadmin(t)
		target := in.create(t, root, "user", email("target"))
		c := in.connect(t, root)
		sub := c.subscribe(map[string]any{"action": "subscribe_id", "user_id": target.id}).str("subscription_id")
		in.update(t, root, target.id, map[string]any{"first_name": "Ann"})
		last := c.event("updated", sub).num("seq")
		c.conn.Close()

		// Missed while away: three changes of the target, others between.
		for i, name := range []string{"Bea", "Cat", "Dee"} {
			in.update(t, root, target.id, map[string]any{"first_name": name})
			in.create(t, root, "user", email(fmt.Sprint("noise", i)))
		}
		c = in.connect(t, root)
		ack := c.subscribe(map[string]any{"action": "subscribe_id", "user_id": target.id, "since_seq": last})
		if ack.num("seq") != last {
			t.Errorf("the resumed subscription starts at %d, want %d", ack.num("seq"), last)
		}
		sub = ack.str("subscription_id")
		var got []message
		for range 3 {
			got = append(got, c.event("updated", sub))
		}
		in.update(t, root, target.id, map[string]any{"first_name": "Eve"})
		got = append(got, c.event("updated", sub))
		var names []string
		for _, m := range got {
			names = append(names, m.user().str("first_name"))
		}
		if !slices.Equal(names, []string{"Bea", "Cat", "Dee", "Eve"}) {
			t.Fatalf("after the reconnect: %v", names)
		}
		seqs := seqsOf(got)
		if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) || seqs[0] <= last {
			t.Fatalf("seqs %v after %d", seqs, last)
		}
		// A resume from the subscription's own start (no event seen) works too.
		c2 := in.connect(t, root)
		c2.subscribe(map[string]any{"action": "subscribe_id", "user_id": target.id, "since_seq": ack.num("seq")})
		var again []int64
		for range 4 {
			again = append(again, c2.next().num("seq"))
		}
		if !slices.Equal(again, seqs) {
			t.Fatalf("a second resume: %v, want %v", again, seqs)
		}
	})
}

func TestResumeTooOld(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, b backend) {
		s := newSetup(t, b)
		in := s.start(t)
		root := in.seedSuperadmin(t)
		target := in.create(t, root, "user", email("target"))
		in.update(t, root, target.id, map[string]any{"first_name": "Ann"})

		// Prune as if a day had passed (the newest entry always stays).
		store, err := gormstore.Open(t.Context(), s.dbURL, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		if n, err := store.ChangeLogRetention().Prune(t.Context(), time.Now().Add(time.Hour)); err != nil || n == 0 {
			t.Fatalf("Prune: %d, %v", n, err)
		}
		first, _, err := store.ChangeLogRetention().SeqBounds(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		c := in.connect(t, root)
		c.send(map[string]any{"action": "subscribe_id", "user_id": target.id, "since_seq": 0})
		if m := c.expect("error"); m.str("detail") != "resume_too_old" {
			t.Fatalf("since_seq 0: %v", m)
		}
		c.subscribe(map[string]any{"action": "subscribe_id", "user_id": target.id, "since_seq": first - 1})
		if m := c.next(); m.typ() != "updated" || m.num("seq") != first {
			t.Fatalf("since the last pruned entry: %v", m)
		}
	})
}

func TestRevocationClosesTheSocket(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, b backend) {
		s := newSetup(t, b)
		in := s.start(t)
		root := in.seedSuperadmin(t)
		promoted := in.createAndLogin(t, root, "user")
		deleted := in.createAndLogin(t, root, "user")
		changer := in.createAndLogin(t, root, "user")
		bystander := in.createAndLogin(t, root, "user")
		pc, dc, cc, bc := in.connect(t, promoted), in.connect(t, deleted), in.connect(t, changer), in.connect(t, bystander)
		for _, c := range []*client{pc, dc, cc, bc} {
			c.send(map[string]any{"action": "ping"})
			c.expect("pong")
		}
		// A profile change keeps the socket.
		in.update(t, root, promoted.id, map[string]any{"first_name": "Still"})

		in.must(t, http.StatusOK, http.MethodPatch, "/api/v1/users/"+strconv.FormatInt(promoted.id, 10)+"/role", root.token, map[string]any{"role": "admin"}, nil)
		pc.expectClose(4401)
		in.must(t, http.StatusNoContent, http.MethodDelete, "/api/v1/users/"+strconv.FormatInt(deleted.id, 10), root.token, nil, nil)
		dc.expectClose(4401)
		in.update(t, changer, changer.id, map[string]any{"password": "Pw-" + strings.Repeat("n", 12), "current_password": changer.password})
		cc.expectClose(4401)

		bc.send(map[string]any{"action": "ping"})
		bc.expect("pong")
		// The promoted user's new token works.
		in.login(t, promoted)
		c := in.connect(t, promoted)
		c.send(map[string]any{"action": "ping"})
		c.expect("pong")
	})
}

// TestStalledReaderIsDropped: a client that reads nothing is disconnected
// with 1008 once its buffer fills, while a healthy client keeps receiving
// every event.
func TestStalledReaderIsDropped(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, b backend) {
		s := newSetup(t, b)
		in := s.start(t)
		root := in.seedSuperadmin(t)
		target := in.create(t, root, "user", email("target"))

		// The stalled client holds 100 subscriptions to the target, so each
		// change queues 100 events for it, and buffers little in its kernel.
		stalled := in.dialRaw(t, dialOpts{bearer: root.token, rcvbuf: 4096})
		for i := range 100 {
			if err := stalled.WriteJSON(map[string]any{"action": "subscribe_id", "user_id": target.id}); err != nil {
				t.Fatal(err)
			}
			var ack message
			if err := stalled.ReadJSON(&ack); err != nil || ack.typ() != "subscribed" {
				t.Fatalf("subscription %d: %v %v", i, ack, err)
			}
		}
		healthy := in.connect(t, root)
		sub := healthy.subscribe(map[string]any{"action": "subscribe_id", "user_id": target.id}).str("subscription_id")

		var want []int64
		for i := 0; in.metric(t, "userservice_ws_slow_disconnects_total") < 1; i++ {
			if i == 400 {
				t.Fatal("400 changes and the stalled client is still connected")
			}
			in.update(t, root, target.id, map[string]any{"first_name": "N" + strings.Repeat("a", i%90+1)})
			want = append(want, healthy.event("updated", sub).num("seq"))
		}
		t.Logf("the stalled client was dropped after %d changes", len(want))
		in.update(t, root, target.id, map[string]any{"first_name": "After"})
		want = append(want, healthy.event("updated", sub).num("seq"))
		if !slices.IsSorted(want) {
			t.Errorf("the healthy client's seqs %v", want)
		}
		// The stalled client reads at last: queued events, then 1008.
		if err := stalled.SetReadDeadline(time.Now().Add(waitFor)); err != nil {
			t.Fatal(err)
		}
		var events int
		for {
			_, _, err := stalled.ReadMessage()
			if err == nil {
				events++
				continue
			}
			if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.ClosePolicyViolation {
				t.Fatalf("after %d events the stalled client got %v, want close 1008", events, err)
			}
			break
		}
		if got := in.metric(t, "userservice_ws_events_dropped_total"); got < 1 {
			t.Errorf("userservice_ws_events_dropped_total = %v", got)
		}
	})
}

func TestNothingForAFailedChange(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, b backend) {
		s := newSetup(t, b)
		in := s.start(t)
		root := in.seedSuperadmin(t)
		target := in.create(t, root, "user", email("target"))
		taken := in.create(t, root, "user", email("taken"))
		c := in.connect(t, root)
		sub := c.subscribe(map[string]any{"action": "subscribe_search"}).str("subscription_id")
		// Rolled back: the email is taken.
		if got := in.call(t, http.MethodPut, "/api/v1/users/"+strconv.FormatInt(target.id, 10), root.token,
			map[string]any{"first_name": "Nope", "email": taken.email}, nil); got != http.StatusConflict {
			t.Fatalf("PUT with a taken email: %d", got)
		}
		in.update(t, root, target.id, map[string]any{"first_name": "Yes"})
		// A subscription starts where this instance's reader stands, which
		// may be just before the set-up's own creations: those may come
		// first. The rolled-back change never does.
		for {
			m := c.next()
			if m.str("type") == "created" {
				continue
			}
			if m.str("type") != "updated" || m.str("subscription_id") != sub || m.user().str("first_name") != "Yes" {
				t.Fatalf("the first update event is %v, want the committed one", m)
			}
			break
		}
	})
}

// TestTwoInstances: changes made through instance A reach a subscriber on
// instance B once each, in seq order, and a revocation through A closes a
// socket on B.
func TestTwoInstancesOnPostgres(t *testing.T) {
	t.Parallel()
	s := newSetup(t, postgres)
	a, b := s.start(t), s.start(t)
	root := a.seedSuperadmin(t)
	target := a.create(t, root, "user", email("target"))
	revoked := a.createAndLogin(t, root, "user")

	onB := b.connect(t, root)
	all := onB.subscribe(map[string]any{"action": "subscribe_search"}).str("subscription_id")
	byID := onB.subscribe(map[string]any{"action": "subscribe_id", "user_id": target.id}).str("subscription_id")
	onA := a.connect(t, root)
	allA := onA.subscribe(map[string]any{"action": "subscribe_search"}).str("subscription_id")
	victim := b.connect(t, revoked)
	victim.send(map[string]any{"action": "ping"})
	victim.expect("pong")

	// Concurrent writers through A, plus one through B.
	const writers, each = 4, 10
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				body, _ := json.Marshal(map[string]any{"first_name": fmt.Sprintf("W%c%c", 'a'+w, 'a'+i)})
				req, _ := http.NewRequest(http.MethodPut, a.base+"/api/v1/users/"+strconv.FormatInt(target.id, 10), strings.NewReader(string(body)))
				req.Header.Set("Authorization", "Bearer "+root.token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	b.update(t, root, target.id, map[string]any{"first_name": "Last"})

	n := writers*each + 1
	got := map[string][]int64{}
	for len(got[all]) < n || len(got[byID]) < n {
		m := onB.next()
		got[m.str("subscription_id")] = append(got[m.str("subscription_id")], m.num("seq"))
	}
	var gotA []int64
	for range n {
		gotA = append(gotA, onA.event("updated", allA).num("seq"))
	}
	for name, seqs := range map[string][]int64{"B search": got[all], "B by id": got[byID], "A search": gotA} {
		if len(seqs) != n || !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != n {
			t.Errorf("%s: seqs %v, want %d distinct in order", name, seqs, n)
		}
	}
	if !slices.Equal(got[all], gotA) {
		t.Errorf("A and B saw different seqs:\n%v\n%v", gotA, got[all])
	}

	// A revocation through A (a role change) closes the socket on B within 5 s.
	start := time.Now()
	a.must(t, http.StatusOK, http.MethodPatch, "/api/v1/users/"+strconv.FormatInt(revoked.id, 10)+"/role", root.token, map[string]any{"role": "admin"}, nil)
	victim.expectClose(4401)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the revocation took %v to reach instance B", took)
	}
}

func TestShutdownClosesWith1001(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, b backend) {
		s := newSetup(t, b)
		in := s.start(t)
		root := in.seedSuperadmin(t)
		c := in.connect(t, root)
		c.send(map[string]any{"action": "ping"})
		c.expect("pong")
		if in.metric(t, "userservice_ws_connections") != 1 {
			t.Errorf("userservice_ws_connections is not 1")
		}
		in.stop()
		c.expectClose(websocket.CloseGoingAway)
	})
}

func TestPlainRequestIsRefused(t *testing.T) {
	t.Parallel()
	in := newSetup(t, sqlite).start(t)
	var body struct{ Detail string }
	if got := in.call(t, http.MethodGet, "/api/v1/users/ws", "", nil, &body); got != http.StatusBadRequest || !strings.HasPrefix(body.Detail, "WebSocket handshake failed") {
		t.Fatalf("a GET without an upgrade: %d %+v", got, body)
	}
}
