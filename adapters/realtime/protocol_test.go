package realtime

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

func TestDecodeMessage(t *testing.T) {
	t.Parallel()
	since := int64(7)
	for _, tc := range []struct {
		in   string
		want clientMessage
	}{
		{`{"action":"ping"}`, clientMessage{Action: "ping"}},
		{` {"action":"auth","token":"abc"} `, clientMessage{Action: "auth", Token: "abc"}},
		{`{"action":"subscribe_id","user_id":17}`, clientMessage{Action: "subscribe_id", UserID: 17}},
		{`{"action":"subscribe_id","user_id":17,"since_seq":7}`, clientMessage{Action: "subscribe_id", UserID: 17, SinceSeq: &since}},
		{`{"action":"subscribe_id","user_id":17,"since_seq":null}`, clientMessage{Action: "subscribe_id", UserID: 17}},
		{`{"action":"subscribe_search","email":"@gmail.com","gender":"female"}`,
			clientMessage{Action: "subscribe_search", Filter: domain.FilterParams{Email: "@gmail.com", Gender: "female"}}},
		{`{"action":"subscribe_search","first_name":"Zoë","last_name":"O'Neil","role":"admin","ip_address":"10.0.0.0/8","since_seq":0,"email":null}`,
			clientMessage{Action: "subscribe_search", Filter: domain.FilterParams{FirstName: "Zoë", LastName: "O'Neil", Role: "admin", IPAddress: "10.0.0.0/8"}, SinceSeq: new(int64)}},
		{`{"action":"subscribe_search"}`, clientMessage{Action: "subscribe_search"}},
		{`{"action":"subscribe_search","email_exact":"Ann@Example.com","role":"user"}`,
			clientMessage{Action: "subscribe_search", Filter: domain.FilterParams{EmailExact: "Ann@Example.com", Role: "user"}}},
		{`{"action":"unsubscribe","subscription_id":"s1"}`, clientMessage{Action: "unsubscribe", SubscriptionID: "s1"}},
	} {
		got, err := decodeMessage([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got.Action != tc.want.Action || got.Token != tc.want.Token || got.UserID != tc.want.UserID ||
			got.SubscriptionID != tc.want.SubscriptionID || got.Filter != tc.want.Filter ||
			(got.SinceSeq == nil) != (tc.want.SinceSeq == nil) || (got.SinceSeq != nil && *got.SinceSeq != *tc.want.SinceSeq) {
			t.Errorf("%s: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestDecodeMessageRefuses(t *testing.T) {
	t.Parallel()
	for in, detail := range map[string]string{
		``:                       "bad JSON",
		`{`:                      "bad JSON",
		`[1]`:                    "bad JSON",
		`null`:                   "bad JSON",
		`"ping"`:                 "bad JSON",
		`{"action":"ping"} {}`:   "bad JSON",
		`{"action":"ping"}x`:     "bad JSON",
		`{}`:                     "action is required",
		`{"action":1}`:           "action must be a string",
		`{"action":"subscribe"}`: `unknown action "subscribe"`,
		`{"action":"` + strings.Repeat("x", 100) + `"}`:            `unknown action "` + strings.Repeat("x", 40) + `…"`,
		`{"action":"ping","user_id":1}`:                            `unknown field for ping: "user_id"`,
		`{"action":"subscribe_search","emial":"x","genre":"y"}`:    `unknown field for subscribe_search: "emial", "genre"`,
		`{"action":"subscribe_id","user_id":17,"email":"x"}`:       `unknown field for subscribe_id: "email"`,
		`{"action":"subscribe_id"}`:                                "user_id is required",
		`{"action":"subscribe_id","user_id":"17"}`:                 "user_id must be an integer",
		`{"action":"subscribe_id","user_id":1.5}`:                  "user_id must be an integer",
		`{"action":"subscribe_id","user_id":1e3}`:                  "user_id must be an integer",
		`{"action":"subscribe_id","user_id":0}`:                    "user_id must be at least 1",
		`{"action":"subscribe_id","user_id":99999999999999999999}`: "user_id must be an integer",
		`{"action":"subscribe_id","user_id":1,"since_seq":-1}`:     "since_seq must be at least 0",
		`{"action":"subscribe_search","email":5}`:                  "email must be a string",
		`{"action":"subscribe_search","gender":["female"]}`:        "gender must be a string",
		`{"action":"auth"}`:                                        "token is required",
		`{"action":"auth","token":null}`:                           "token is required",
		`{"action":"unsubscribe"}`:                                 "subscription_id is required",
		`{"action":"unsubscribe","subscription_id":1}`:             "subscription_id must be a string",
	} {
		_, err := decodeMessage([]byte(in))
		e := domain.AsError(err)
		if e == nil || e.Kind != domain.KindMalformed {
			t.Errorf("%s: %v, want a malformed message", in, err)
			continue
		}
		if !strings.HasPrefix(e.Message, detail) {
			t.Errorf("%s: detail %q, want %q", in, e.Message, detail)
		}
	}
}

// FuzzDecodeMessage holds the decoder to its promises on any input: no
// panic, and an accepted message is a known action whose fields obey it.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"action":"ping"}`, `{"action":"auth","token":"t"}`, `{"action":"subscribe_id","user_id":17,"since_seq":3}`,
		`{"action":"subscribe_search","email":"@gmail.com","gender":"female","ip_address":"10.0.0.0/8"}`,
		`{"action":"unsubscribe","subscription_id":"s1"}`, `{"action":"x"}`, `[]`, `{"action":"ping","a":1}`,
		`{"action":"subscribe_id","user_id":-1}`, "{\"action\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := decodeMessage(data)
		if err != nil {
			e := domain.AsError(err)
			if e == nil || e.Kind != domain.KindMalformed {
				t.Fatalf("error %v is not a malformed-message error", err)
			}
			if !utf8.ValidString(e.Message) || len(e.Message) > 400 {
				t.Fatalf("detail %q: not valid UTF-8 or too long", e.Message)
			}
			return
		}
		if _, ok := allowedKeys[msg.Action]; !ok {
			t.Fatalf("accepted unknown action %q", msg.Action)
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		switch msg.Action {
		case actionSubscribeID:
			if msg.UserID < 1 {
				t.Fatalf("accepted user_id %d", msg.UserID)
			}
		case actionAuth:
			if msg.Token == "" && !strings.Contains(string(data), `"token"`) {
				t.Fatalf("accepted auth without a token: %q", data)
			}
		}
		if msg.SinceSeq != nil && *msg.SinceSeq < 0 {
			t.Fatalf("accepted since_seq %d", *msg.SinceSeq)
		}
	})
}

func TestEventEncoding(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)
	u, err := domain.RestoreUser(domain.StoredUser{
		ID: 17, FirstName: "Zoë", LastName: "O'Neil", Email: "zoe@gmail.com", Gender: "Female",
		IPAddress: "10.1.2.3", Role: "admin", PasswordHash: "$argon2id$secret", TokenVersion: 9,
		MustChangePassword: true, Version: 4, CreatedAt: at, UpdatedAt: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	noIP, err := domain.RestoreUser(domain.StoredUser{
		ID: 18, FirstName: "Ann", LastName: "Lee", Email: "ann@gmail.com", Gender: "Female",
		Role: "user", CreatedAt: at, UpdatedAt: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	var enc eventEncoder
	for _, tc := range []struct {
		action domain.ChangeAction
		before *domain.User
		after  *domain.User
		typ    string
	}{
		{domain.ActionCreated, nil, u, "created"},
		{domain.ActionCreated, nil, noIP, "created"}, // ip_address null, not absent
		{domain.ActionUpdated, u, u, "updated"},
		{domain.ActionRoleChanged, u, u, "updated"},
		{domain.ActionPasswordChanged, u, u, "updated"},
		{domain.ActionDeleted, u, nil, "deleted"},
	} {
		c := &domain.Change{Seq: 42, At: at, Action: tc.action, TargetID: 17, Before: tc.before, After: tc.after}
		for _, ev := range []*ports.Event{{Change: c}, {Change: c, Replay: true}} {
			for _, id := range []string{"s1", `s"2`} {
				raw := enc.message(ev, id)
				var got map[string]any
				if err := json.Unmarshal(raw, &got); err != nil {
					t.Fatalf("%s: %v", raw, err)
				}
				if got["type"] != tc.typ || got["subscription_id"] != id || got["seq"] != float64(42) || got["at"] != "2025-03-01T12:00:00.123456Z" {
					t.Errorf("%s: envelope %v", tc.action, got)
				}
				user, _ := got["user"].(map[string]any)
				keys := make([]string, 0, len(user))
				for k := range user {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				want := []string{"created_at", "email", "first_name", "gender", "id", "ip_address", "last_name", "role", "updated_at"}
				if !slices.Equal(keys, want) {
					t.Errorf("user fields %v, want %v", keys, want)
				}
				if strings.Contains(string(raw), "argon2id") || strings.Contains(string(raw), "version") {
					t.Errorf("a secret leaked: %s", raw)
				}
			}
		}
	}
}

// TestEventEncodedOncePerEvent: every connection an event reaches shares
// its messages, a replay in between included; the next event is encoded
// anew.
func TestEventEncodedOncePerEvent(t *testing.T) {
	t.Parallel()
	u, err := domain.RestoreUser(domain.StoredUser{ID: 17, FirstName: "Ann", LastName: "Lee", Email: "ann@example.com", Gender: "Female", Role: "user"})
	if err != nil {
		t.Fatal(err)
	}
	var enc eventEncoder
	live := &ports.Event{Change: &domain.Change{Seq: 7, Action: domain.ActionUpdated, TargetID: 17, Before: u, After: u}}
	first := enc.message(live, "s1")
	replay := enc.message(&ports.Event{Change: &domain.Change{Seq: 3, Action: domain.ActionCreated, TargetID: 17, After: u}, Replay: true}, "s1")
	if bytes.Equal(replay, first) {
		t.Fatalf("the replay got the live event's message %s", replay)
	}
	for range 3 {
		if again := enc.message(live, "s1"); &again[0] != &first[0] {
			t.Fatalf("a later connection got a message of its own: %s", again)
		}
	}
	if other := enc.message(live, "s2"); bytes.Equal(other, first) || !bytes.HasSuffix(other, []byte(`"subscription_id":"s2"}`)) {
		t.Errorf("subscription s2 got %s", other)
	}
	next := &ports.Event{Change: &domain.Change{Seq: 8, Action: domain.ActionDeleted, TargetID: 17, Before: u}}
	if msg := enc.message(next, "s1"); !bytes.Contains(msg, []byte(`"type":"deleted"`)) || !bytes.Contains(msg, []byte(`"seq":8`)) {
		t.Errorf("the next event got %s", msg)
	}
}

func TestSubscribedReply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sub  ports.Subscription
		want string
	}{
		{ports.Subscription{ID: "s1", UserID: 17, Seq: 5}, `{"type":"subscribed","subscription_id":"s1","action":"subscribe_id","filters":{"user_id":17},"seq":5}`},
		{ports.Subscription{ID: "s2", Search: true, Filter: domain.FilterParams{Email: "@gmail.com", Gender: "Female"}},
			`{"type":"subscribed","subscription_id":"s2","action":"subscribe_search","filters":{"email":"@gmail.com","gender":"Female"},"seq":0}`},
		{ports.Subscription{ID: "s3", Search: true}, `{"type":"subscribed","subscription_id":"s3","action":"subscribe_search","filters":{},"seq":0}`},
	} {
		if got := string(replySubscribed(tc.sub)); got != tc.want {
			t.Errorf("got %s\nwant %s", got, tc.want)
		}
	}
}
