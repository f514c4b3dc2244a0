// Package realtime_test drives the WebSocket subscriptions of docs/websocket.md
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
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/userservice/userservice/adapters/gormstore"
	"github.com/userservice/userservice/tests/harness"
)

func TestAuthenticationPaths(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		ping := map[string]any{"action": "ping"}

		// Authorization header: no "authenticated" message, straight to work.
		c := dial(t, s, harness.WSOptions{Token: root.Access})
		c.Send(ping)
		c.Expect("pong")

		// The access_token query parameter.
		c = dial(t, s, harness.WSOptions{Query: url.Values{"access_token": {root.Access}}})
		c.Send(ping)
		c.Expect("pong")

		// The first message.
		c = dial(t, s, harness.WSOptions{})
		c.Send(map[string]any{"action": "auth", "token": root.Access})
		c.Expect("authenticated")
		c.Send(ping)
		c.Expect("pong")
		c.Send(map[string]any{"action": "auth", "token": root.Access})
		if m := c.Expect("error"); m.Str("detail") != "already authenticated" {
			t.Errorf("a second auth: %v", m)
		}

		// Failures close with 4401.
		expired := mint(t, s, root.ID, 0, time.Now().Add(-2*accessTTL))
		for name, o := range map[string]harness.WSOptions{
			"bad header":     {Token: "not-a-token"},
			"expired header": {Token: expired},
			"bad query":      {Query: url.Values{"access_token": {"not-a-token"}}},
		} {
			c := dial(t, s, o)
			if got := c.CloseCode(); got != 4401 {
				t.Errorf("%s: closed with %d (%v), want 4401", name, got, c.Err())
			}
		}
		for name, first := range map[string]any{
			"bad token":         map[string]any{"action": "auth", "token": "not-a-token"},
			"another action":    ping,
			"not JSON":          "hello",
			"auth without one":  map[string]any{"action": "auth"},
			"a revoked version": map[string]any{"action": "auth", "token": mint(t, s, root.ID, 7, time.Now())},
		} {
			c := dial(t, s, harness.WSOptions{})
			c.Send(first)
			if got := c.CloseCode(); got != 4401 {
				t.Errorf("first message %s: closed with %d (%v), want 4401", name, got, c.Err())
			}
		}
		// Nothing within 10 s.
		start := time.Now()
		c = dial(t, s, harness.WSOptions{})
		select {
		case <-c.Done():
		case <-time.After(15 * time.Second):
			t.Fatal("a silent connection stayed open")
		}
		if got := c.CloseCode(); got != 4401 {
			t.Errorf("a silent connection ended with %v, want 4401", c.Err())
		}
		if waited := time.Since(start); waited < 9*time.Second {
			t.Errorf("a silent connection was closed after %v, before its 10 s", waited)
		}
	})
}

func TestTokenExpiryClosesTheSocket(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		// A token with two seconds left.
		tok := mint(t, s, root.ID, 0, time.Now().Add(2*time.Second-accessTTL))
		c := dial(t, s, harness.WSOptions{Token: tok})
		c.Send(map[string]any{"action": "ping"})
		c.Expect("pong")
		c.ExpectClose(4401)
	})
}

func TestAuthorizationPerRoleAndPolicyEdits(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		user := s.CreateAndLogin(t, root, "user")
		admin := s.CreateAndLogin(t, root, "admin")

		uc, ac := s.ConnectWS(t, user.Access), s.ConnectWS(t, admin.Access)
		subscribe(uc, map[string]any{"action": "subscribe_id", "user_id": admin.ID})
		uc.Send(map[string]any{"action": "subscribe_search", "email": "@example.com"})
		if m := uc.Expect("error"); m.Str("detail") != "not allowed" {
			t.Errorf("a user's search subscription: %v", m)
		}
		uc.Send(map[string]any{"action": "ping"})
		uc.Expect("pong") // still open
		search := subscribe(ac, map[string]any{"action": "subscribe_search", "email": "@example.com"}).Str("subscription_id")

		// Take search subscriptions away from admins (and superadmins, who
		// inherit them).
		policyFile := filepath.Join(s.PolicyDir, "policy.csv")
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
		harness.Poll(t, "the edited policy to refuse an admin's search subscription", func() bool {
			ac.Send(map[string]any{"action": "subscribe_search", "email": "@example.com"})
			m := ac.Next()
			if m.Type() == "subscribed" {
				live[m.Str("subscription_id")] = true
			}
			return m.Type() == "error" && m.Str("detail") == "not allowed"
		})
		// The admin's live search subscriptions end at their next event,
		// within the 2 s a decision is reused.
		deadline := time.Now().Add(harness.WaitFor)
		for i := 0; len(live) > 0; i++ {
			update(t, s, root, user.ID, map[string]any{"last_name": "Edit" + strings.Repeat("a", i+1)})
			for m := ac.Next(); ; m = ac.Next() {
				if m.Type() == "unsubscribed" && live[m.Str("subscription_id")] && m.Str("detail") == "not allowed" {
					delete(live, m.Str("subscription_id"))
				} else if m.Type() != "updated" {
					t.Fatalf("waiting for the search subscriptions to end: %v", m)
				}
				if ac.Pending() == 0 {
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
		harness.Poll(t, "the edited policy to let a user subscribe by search", func() bool {
			uc.Send(map[string]any{"action": "subscribe_search", "email": "@example.com"})
			return uc.Next().Type() == "subscribed"
		})
	})
}

func TestFilterMatching(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		admin := s.CreateAndLogin(t, root, "admin")
		c := s.ConnectWS(t, admin.Access)
		gmail := subscribe(c, map[string]any{"action": "subscribe_search", "email": "@GMAIL.com", "gender": "FEMALE"})
		if f, _ := gmail["filters"].(map[string]any); f["email"] != "@gmail.com" || f["gender"] != "Female" || gmail.Str("action") != "subscribe_search" {
			t.Errorf("acknowledgement %v", gmail)
		}
		g := gmail.Str("subscription_id")
		net10 := subscribe(c, map[string]any{"action": "subscribe_search", "ip_address": "10.0.0.0/8", "role": "user"}).Str("subscription_id")

		// A user created inside both filters.
		zoe := s.CreateWithEmail(t, root, "user", strings.Replace(harness.Email("zoe"), "@example.com", "@Gmail.com", 1))
		first := c.Next()
		second := c.Next()
		got := map[string]harness.Message{first.Str("subscription_id"): first, second.Str("subscription_id"): second}
		if got[g].Type() != "created" || got[net10].Type() != "created" || got[g].User().Num("id") != zoe.ID {
			t.Fatalf("creation events %v", got)
		}
		if got[g].Num("seq") != got[net10].Num("seq") || got[g].Num("seq") <= gmail.Num("seq") {
			t.Errorf("seqs %d, %d after %d", got[g].Num("seq"), got[net10].Num("seq"), gmail.Num("seq"))
		}
		// The event shows the public fields of GET /users/{id}, no more.
		var rest map[string]any
		must(t, s, http.StatusOK, http.MethodGet, harness.UserPath(zoe.ID), root.Access, nil).Decode(t, &rest)
		if k1, k2 := keys(rest), keys(got[g].User()); !slices.Equal(k1, k2) {
			t.Errorf("event user fields %v, REST user fields %v", k2, k1)
		}
		if _, err := time.Parse(time.RFC3339Nano, got[g].Str("at")); err != nil {
			t.Errorf("at %q: %v", got[g].Str("at"), err)
		}

		// Moving out of the email filter is seen (matched before), and out of the CIDR too.
		update(t, s, root, zoe.ID, map[string]any{"email": harness.Email("moved"), "ip_address": "192.168.1.1"})
		for range 2 {
			if m := c.Next(); m.Type() != "updated" || m.User().Str("ip_address") != "192.168.1.1" {
				t.Fatalf("the move out: %v", m)
			}
		}
		// Now outside both: nothing, as the next event shows.
		update(t, s, root, zoe.ID, map[string]any{"first_name": "Zoey"})
		update(t, s, root, zoe.ID, map[string]any{"ip_address": "10.9.9.9"})
		if m := c.Event("updated", net10); m.User().Str("first_name") != "Zoey" {
			t.Fatalf("after a change outside the filters: %v", m)
		}
		// A role filter: an admin is not a user.
		s.CreateNamed(t, root, "admin", "other")
		s.CreateNamed(t, root, "user", "plain")
		if m := c.Event("created", net10); m.User().Str("role") != "user" {
			t.Fatalf("the role filter let through %v", m)
		}
		// Deletion: the deleted user's last state.
		must(t, s, http.StatusNoContent, http.MethodDelete, harness.UserPath(zoe.ID), root.Access, nil)
		if m := c.Event("deleted", net10); m.User().Num("id") != zoe.ID || m.User().Str("first_name") != "Zoey" {
			t.Fatalf("deletion %v", m)
		}
	})
}

// TestEmailExactSubscription: subscribe_search takes email_exact (docs/
// websocket.md) with the other filters: the one user with that address, in
// any letter case, including the update that moves it away; a bad address
// is an error reply.
func TestEmailExactSubscription(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		admin := s.CreateAndLogin(t, root, "admin")
		c := s.ConnectWS(t, admin.Access)
		c.Send(map[string]any{"action": "subscribe_search", "email_exact": "not-an-address"})
		if m := c.Expect("error"); !strings.HasPrefix(m.Str("detail"), "validation failed; email_exact: ") {
			t.Errorf("a bad address: %v", m)
		}
		addr := harness.Email("exact")
		ack := subscribe(c, map[string]any{"action": "subscribe_search", "email_exact": strings.ToUpper(addr), "gender": "female"})
		if f, _ := ack["filters"].(map[string]any); f["email_exact"] != addr || f["gender"] != "Female" {
			t.Errorf("acknowledgement %v", ack)
		}
		sub := ack.Str("subscription_id")
		// Someone else, then the address: only the address is seen.
		s.CreateWithEmail(t, root, "user", "x"+addr)
		target := s.CreateWithEmail(t, root, "user", addr)
		if m := c.Event("created", sub); m.User().Num("id") != target.ID {
			t.Fatalf("first event %v, want the creation of %d", m, target.ID)
		}
		update(t, s, root, target.ID, map[string]any{"email": harness.Email("moved")})
		if m := c.Event("updated", sub); m.User().Num("id") != target.ID {
			t.Fatalf("the move away: %v", m)
		}
		// Away now: its changes are not seen; the next holder of the address is.
		update(t, s, root, target.ID, map[string]any{"first_name": "Zoey"})
		next := s.CreateWithEmail(t, root, "user", addr)
		if m := c.Event("created", sub); m.User().Num("id") != next.ID {
			t.Fatalf("after the move: %v, want the creation of %d", m, next.ID)
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
	onEachBackend(t, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		user := s.CreateAndLogin(t, root, "user")
		other := s.CreateNamed(t, root, "user", "other")
		c := s.ConnectWS(t, user.Access)
		mine := subscribe(c, map[string]any{"action": "subscribe_id", "user_id": user.ID})
		if f, _ := mine["filters"].(map[string]any); f["user_id"] != float64(user.ID) || mine.Str("action") != "subscribe_id" {
			t.Errorf("acknowledgement %v", mine)
		}
		a := mine.Str("subscription_id")
		o := subscribe(c, map[string]any{"action": "subscribe_id", "user_id": other.ID}).Str("subscription_id")
		// An id nobody has yet.
		future := subscribe(c, map[string]any{"action": "subscribe_id", "user_id": other.ID + 1}).Str("subscription_id")
		update(t, s, user, user.ID, map[string]any{"first_name": "Ann"})
		c.Event("updated", a)
		created := s.CreateNamed(t, root, "user", "next")
		if m := c.Event("created", future); m.User().Num("id") != created.ID {
			t.Fatalf("the future user's creation: %v", m)
		}

		c.Send(map[string]any{"action": "unsubscribe", "subscription_id": a})
		if m := c.Expect("unsubscribed"); m.Str("subscription_id") != a {
			t.Errorf("unsubscribe: %v", m)
		}
		c.Send(map[string]any{"action": "unsubscribe", "subscription_id": a})
		c.Expect("error")
		update(t, s, user, user.ID, map[string]any{"first_name": "Bea"})
		update(t, s, root, other.ID, map[string]any{"first_name": "Cat"})
		c.Event("updated", o) // and nothing for a before it
	})
}

func TestBadMessagesKeepTheConnection(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		c := s.ConnectWS(t, root.Access)
		for msg, detail := range map[string]string{
			`{"action":`:                                             "bad JSON: a message is one JSON object",
			`{"action":"subscribe_everything"}`:                      `unknown action "subscribe_everything"`,
			`{"action":"subscribe_search","emial":"x"}`:              `unknown field for subscribe_search: "emial"`,
			`{"action":"subscribe_search","gender":"robot"}`:         "validation failed; gender: ",
			`{"action":"subscribe_search","ip_address":"10.0.0/99"}`: "validation failed; ip_address: ",
			`{"action":"subscribe_id","user_id":"x"}`:                "user_id must be an integer",
		} {
			c.Send(msg)
			if m := c.Expect("error"); !strings.HasPrefix(m.Str("detail"), detail) {
				t.Errorf("%s: detail %q, want %q", msg, m.Str("detail"), detail)
			}
		}
		if err := c.Conn.WriteMessage(websocket.BinaryMessage, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		c.Expect("error")
		c.Send(map[string]any{"action": "ping"})
		c.Expect("pong")
		// 4 KiB is the limit; an oversized frame ends the connection with 1009.
		const prefix = `{"action":"ping","pad":"`
		c.Send(prefix + strings.Repeat("x", 4096-len(prefix)-2) + `"}`)
		if m := c.Expect("error"); !strings.Contains(m.Str("detail"), "unknown field") {
			t.Errorf("a frame of exactly 4 KiB: %v", m)
		}
		c.Send(`{"action":"ping","pad":"` + strings.Repeat("x", 5000) + `"}`)
		c.ExpectClose(websocket.CloseMessageTooBig)
	})
}

func TestMaxSubscriptionsPerConnection(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.SQLite, options())
	root := s.SeedSuperadmin(t)
	c := s.ConnectWS(t, root.Access)
	// Ids nobody has: the superadmin's creation, made by the command
	// outside this instance, may reach it (by the poll) after these start.
	for i := range 100 {
		subscribe(c, map[string]any{"action": "subscribe_id", "user_id": 1<<40 + i})
	}
	c.Send(map[string]any{"action": "subscribe_id", "user_id": 1 << 40})
	if m := c.Expect("error"); m.Str("detail") != "at most 100 subscriptions per connection" {
		t.Fatalf("the 101st subscription: %v", m)
	}
	if got := s.Metric(t, "userservice_ws_subscriptions"); got != 100 {
		t.Errorf("userservice_ws_subscriptions = %v, want 100", got)
	}
}

func TestMessageRateLimit(t *testing.T) {
	t.Parallel()
	s := startWithMessageBudget(t, harness.SQLite, 3)
	root := s.SeedSuperadmin(t)
	c := s.ConnectWS(t, root.Access)
	for range 3 {
		c.Send(map[string]any{"action": "ping"})
	}
	c.Send(map[string]any{"action": "ping"})
	for range 3 {
		c.Expect("pong")
	}
	if m := c.Expect("error"); !strings.HasPrefix(m.Str("detail"), "rate limited") {
		t.Fatalf("the fourth message in a second: %v", m)
	}
}

// seqOf returns the seqs of the events in msgs.
func seqsOf(msgs []harness.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Num("seq")
	}
	return out
}

func TestReplayAfterReconnect(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		target := s.CreateNamed(t, root, "user", "target")
		c := s.ConnectWS(t, root.Access)
		sub := subscribe(c, map[string]any{"action": "subscribe_id", "user_id": target.ID}).Str("subscription_id")
		update(t, s, root, target.ID, map[string]any{"first_name": "Ann"})
		last := c.Event("updated", sub).Num("seq")
		c.Conn.Close()

		// Missed while away: three changes of the target, others between.
		for i, name := range []string{"Bea", "Cat", "Dee"} {
			update(t, s, root, target.ID, map[string]any{"first_name": name})
			s.CreateNamed(t, root, "user", fmt.Sprint("noise", i))
		}
		c = s.ConnectWS(t, root.Access)
		ack := subscribe(c, map[string]any{"action": "subscribe_id", "user_id": target.ID, "since_seq": last})
		if ack.Num("seq") != last {
			t.Errorf("the resumed subscription starts at %d, want %d", ack.Num("seq"), last)
		}
		sub = ack.Str("subscription_id")
		var got []harness.Message
		for range 3 {
			got = append(got, c.Event("updated", sub))
		}
		update(t, s, root, target.ID, map[string]any{"first_name": "Eve"})
		got = append(got, c.Event("updated", sub))
		var names []string
		for _, m := range got {
			names = append(names, m.User().Str("first_name"))
		}
		if !slices.Equal(names, []string{"Bea", "Cat", "Dee", "Eve"}) {
			t.Fatalf("after the reconnect: %v", names)
		}
		seqs := seqsOf(got)
		if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) || seqs[0] <= last {
			t.Fatalf("seqs %v after %d", seqs, last)
		}
		// A resume from the subscription's own start (no event seen) works too.
		c2 := s.ConnectWS(t, root.Access)
		subscribe(c2, map[string]any{"action": "subscribe_id", "user_id": target.ID, "since_seq": ack.Num("seq")})
		var again []int64
		for range 4 {
			again = append(again, c2.Next().Num("seq"))
		}
		if !slices.Equal(again, seqs) {
			t.Fatalf("a second resume: %v, want %v", again, seqs)
		}
	})
}

func TestResumeTooOld(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		target := s.CreateNamed(t, root, "user", "target")
		update(t, s, root, target.ID, map[string]any{"first_name": "Ann"})

		// Prune as if a day had passed (the newest entry always stays).
		store, err := gormstore.Open(t.Context(), s.DBURL, slog.New(slog.DiscardHandler))
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
		c := s.ConnectWS(t, root.Access)
		c.Send(map[string]any{"action": "subscribe_id", "user_id": target.ID, "since_seq": 0})
		if m := c.Expect("error"); m.Str("detail") != "resume_too_old" {
			t.Fatalf("since_seq 0: %v", m)
		}
		subscribe(c, map[string]any{"action": "subscribe_id", "user_id": target.ID, "since_seq": first - 1})
		if m := c.Next(); m.Type() != "updated" || m.Num("seq") != first {
			t.Fatalf("since the last pruned entry: %v", m)
		}
	})
}

func TestRevocationClosesTheSocket(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		promoted := s.CreateAndLogin(t, root, "user")
		deleted := s.CreateAndLogin(t, root, "user")
		changer := s.CreateAndLogin(t, root, "user")
		bystander := s.CreateAndLogin(t, root, "user")
		pc, dc, cc, bc := s.ConnectWS(t, promoted.Access), s.ConnectWS(t, deleted.Access), s.ConnectWS(t, changer.Access), s.ConnectWS(t, bystander.Access)
		for _, c := range []*harness.WS{pc, dc, cc, bc} {
			c.Send(map[string]any{"action": "ping"})
			c.Expect("pong")
		}
		// A profile change keeps the socket.
		update(t, s, root, promoted.ID, map[string]any{"first_name": "Still"})

		must(t, s, http.StatusOK, http.MethodPatch, harness.UserPath(promoted.ID)+"/role", root.Access, map[string]any{"role": "admin"})
		pc.ExpectClose(4401)
		must(t, s, http.StatusNoContent, http.MethodDelete, harness.UserPath(deleted.ID), root.Access, nil)
		dc.ExpectClose(4401)
		update(t, s, changer, changer.ID, map[string]any{"password": "Pw-" + strings.Repeat("n", 12), "current_password": changer.Password})
		cc.ExpectClose(4401)

		bc.Send(map[string]any{"action": "ping"})
		bc.Expect("pong")
		// The promoted user's new token works.
		s.Login(t, promoted)
		c := s.ConnectWS(t, promoted.Access)
		c.Send(map[string]any{"action": "ping"})
		c.Expect("pong")
	})
}

// TestStalledReaderIsDropped: a client that reads nothing is disconnected
// with 1008 once its buffer fills, while a healthy client keeps receiving
// every event.
func TestStalledReaderIsDropped(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		target := s.CreateNamed(t, root, "user", "target")

		// The stalled client holds 100 subscriptions to the target, so each
		// change queues 100 events for it, and buffers little in its kernel.
		stalled := dialStalled(t, s, root.Access, 4096)
		for i := range 100 {
			if err := stalled.WriteJSON(map[string]any{"action": "subscribe_id", "user_id": target.ID}); err != nil {
				t.Fatal(err)
			}
			var ack harness.Message
			if err := stalled.ReadJSON(&ack); err != nil || ack.Type() != "subscribed" {
				t.Fatalf("subscription %d: %v %v", i, ack, err)
			}
		}
		healthy := s.ConnectWS(t, root.Access)
		sub := subscribe(healthy, map[string]any{"action": "subscribe_id", "user_id": target.ID}).Str("subscription_id")

		var want []int64
		for i := 0; s.Metric(t, "userservice_ws_slow_disconnects_total") < 1; i++ {
			if i == 400 {
				t.Fatal("400 changes and the stalled client is still connected")
			}
			update(t, s, root, target.ID, map[string]any{"first_name": "N" + strings.Repeat("a", i%90+1)})
			want = append(want, healthy.Event("updated", sub).Num("seq"))
		}
		t.Logf("the stalled client was dropped after %d changes", len(want))
		update(t, s, root, target.ID, map[string]any{"first_name": "After"})
		want = append(want, healthy.Event("updated", sub).Num("seq"))
		if !slices.IsSorted(want) {
			t.Errorf("the healthy client's seqs %v", want)
		}
		// The stalled client reads at last: queued events, then 1008.
		if err := stalled.SetReadDeadline(time.Now().Add(harness.WaitFor)); err != nil {
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
		if got := s.Metric(t, "userservice_ws_events_dropped_total"); got < 1 {
			t.Errorf("userservice_ws_events_dropped_total = %v", got)
		}
	})
}

func TestNothingForAFailedChange(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		target := s.CreateNamed(t, root, "user", "target")
		taken := s.CreateNamed(t, root, "user", "taken")
		c := s.ConnectWS(t, root.Access)
		sub := subscribe(c, map[string]any{"action": "subscribe_search"}).Str("subscription_id")
		// Rolled back: the email is taken.
		if r := s.Do(t, http.MethodPut, harness.UserPath(target.ID), root.Access,
			map[string]any{"first_name": "Nope", "email": taken.Email}); r.Status != http.StatusConflict {
			t.Fatalf("PUT with a taken email: %s", r)
		}
		update(t, s, root, target.ID, map[string]any{"first_name": "Yes"})
		// A subscription starts at the committed head: the set-up's own
		// creations are history, and the rolled-back change never comes.
		if m := c.Event("updated", sub); m.User().Str("first_name") != "Yes" {
			t.Fatalf("the first event is %v, want the committed update", m)
		}
	})
}

// TestTwoInstances: changes made through instance A reach a subscriber on
// instance B once each, in seq order, and a revocation through A closes a
// socket on B.
func TestTwoInstancesOnPostgres(t *testing.T) {
	t.Parallel()
	a := harness.Start(t, harness.Postgres, options())
	shared := options()
	shared.DBURL, shared.PolicyDir, shared.JWTSecret, shared.KeysDir = a.DBURL, a.PolicyDir, a.JWTSecret, a.KeysDir
	b := harness.Start(t, harness.Postgres, shared)
	root := a.SeedSuperadmin(t)
	target := a.CreateNamed(t, root, "user", "target")
	revoked := a.CreateAndLogin(t, root, "user")

	onB := b.ConnectWS(t, root.Access)
	all := subscribe(onB, map[string]any{"action": "subscribe_search"}).Str("subscription_id")
	byID := subscribe(onB, map[string]any{"action": "subscribe_id", "user_id": target.ID}).Str("subscription_id")
	onA := a.ConnectWS(t, root.Access)
	allA := subscribe(onA, map[string]any{"action": "subscribe_search"}).Str("subscription_id")
	victim := b.ConnectWS(t, revoked.Access)
	victim.Send(map[string]any{"action": "ping"})
	victim.Expect("pong")

	// Concurrent writers through A, plus one through B.
	const writers, each = 4, 10
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				body, _ := json.Marshal(map[string]any{"first_name": fmt.Sprintf("W%c%c", 'a'+w, 'a'+i)})
				req, _ := http.NewRequest(http.MethodPut, a.Base+harness.UserPath(target.ID), strings.NewReader(string(body)))
				req.Header.Set("Authorization", "Bearer "+root.Access)
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
	update(t, b, root, target.ID, map[string]any{"first_name": "Last"})

	n := writers*each + 1
	got := map[string][]int64{}
	for len(got[all]) < n || len(got[byID]) < n {
		m := onB.Next()
		got[m.Str("subscription_id")] = append(got[m.Str("subscription_id")], m.Num("seq"))
	}
	var gotA []int64
	for range n {
		gotA = append(gotA, onA.Event("updated", allA).Num("seq"))
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
	must(t, a, http.StatusOK, http.MethodPatch, harness.UserPath(revoked.ID)+"/role", root.Access, map[string]any{"role": "admin"})
	victim.ExpectClose(4401)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the revocation took %v to reach instance B", took)
	}
}

func TestShutdownClosesWith1001(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		c := s.ConnectWS(t, root.Access)
		c.Send(map[string]any{"action": "ping"})
		c.Expect("pong")
		if s.Metric(t, "userservice_ws_connections") != 1 {
			t.Errorf("userservice_ws_connections is not 1")
		}
		if err := s.Stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		c.ExpectClose(websocket.CloseGoingAway)
	})
}

func TestPlainRequestIsRefused(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.SQLite, options())
	r := s.Expect(t, http.StatusBadRequest, http.MethodGet, harness.WSPath, "", nil)
	if e := r.Error(t); !strings.HasPrefix(e.Detail, "WebSocket handshake failed") || e.Code != "websocket_handshake" {
		t.Fatalf("a GET without an upgrade: %s", r)
	}
}
