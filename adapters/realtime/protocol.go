package realtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// The client actions of docs/websocket.md.
const (
	actionAuth            = "auth"
	actionPing            = "ping"
	actionSubscribeID     = "subscribe_id"
	actionSubscribeSearch = "subscribe_search"
	actionUnsubscribe     = "unsubscribe"
)

// filterKeys are the search filters a subscribe_search may carry: those of
// GET /users/search.
var filterKeys = []string{"first_name", "last_name", "email", "gender", "role", "ip_address", "email_exact"}

// allowedKeys lists, per action, every member its message may have. Any
// other member is refused: a typo must not silently widen a subscription.
var allowedKeys = map[string][]string{
	actionAuth:            {"action", "token"},
	actionPing:            {"action"},
	actionUnsubscribe:     {"action", "subscription_id"},
	actionSubscribeID:     {"action", "user_id", "since_seq"},
	actionSubscribeSearch: append([]string{"action", "since_seq"}, filterKeys...),
}

// clientMessage is a decoded client message.
type clientMessage struct {
	Action         string
	Token          string
	UserID         int64
	SubscriptionID string
	SinceSeq       *int64
	Filter         domain.FilterParams
}

// maxEcho bounds how much of a client's own text an error repeats.
const maxEcho = 40

func malformed(format string, args ...any) error {
	return domain.Errorf(domain.KindMalformed, "bad_message", format, args...)
}

// decodeMessage reads one client message: a JSON object with a known
// action and only that action's members, of the right types.
func decodeMessage(data []byte) (clientMessage, error) {
	var msg clientMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var members map[string]json.RawMessage
	if err := dec.Decode(&members); err != nil || members == nil {
		return msg, malformed("bad JSON: a message is one JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return msg, malformed("bad JSON: a message is one JSON object")
	}
	action, ok := members["action"]
	if !ok {
		return msg, malformed("action is required")
	}
	if err := json.Unmarshal(action, &msg.Action); err != nil {
		return msg, malformed("action must be a string")
	}
	allowed, ok := allowedKeys[msg.Action]
	if !ok {
		return msg, malformed("unknown action %s", strconv.Quote(clip(msg.Action)))
	}
	var unknown []string
	for k := range members {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, strconv.Quote(clip(k)))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return msg, malformed("unknown field for %s: %s", msg.Action, strings.Join(unknown, ", "))
	}

	var err error
	switch msg.Action {
	case actionAuth:
		msg.Token, err = stringMember(members, "token", true)
	case actionUnsubscribe:
		msg.SubscriptionID, err = stringMember(members, "subscription_id", true)
	case actionSubscribeID:
		msg.UserID, err = intMember(members, "user_id", 1)
		if err == nil {
			msg.SinceSeq, err = sinceMember(members)
		}
	case actionSubscribeSearch:
		f := &msg.Filter
		for _, p := range []struct {
			key string
			dst *string
		}{
			{"first_name", &f.FirstName}, {"last_name", &f.LastName}, {"email", &f.Email},
			{"gender", &f.Gender}, {"role", &f.Role}, {"ip_address", &f.IPAddress},
			{"email_exact", &f.EmailExact},
		} {
			if *p.dst, err = stringMember(members, p.key, false); err != nil {
				break
			}
		}
		if err == nil {
			msg.SinceSeq, err = sinceMember(members)
		}
	}
	return msg, err
}

// stringMember reads a string member; null or absent is "" (an error when
// required).
func stringMember(members map[string]json.RawMessage, key string, required bool) (string, error) {
	raw, ok := members[key]
	var s *string
	if ok {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", malformed("%s must be a string", key)
		}
	}
	if s == nil {
		if required {
			return "", malformed("%s is required", key)
		}
		return "", nil
	}
	return *s, nil
}

// intMember reads a required integer member of at least lo.
func intMember(members map[string]json.RawMessage, key string, lo int64) (int64, error) {
	raw, ok := members[key]
	if !ok {
		return 0, malformed("%s is required", key)
	}
	var n json.Number
	// json.Number also takes a quoted number; the protocol does not.
	if err := json.Unmarshal(raw, &n); err != nil || bytes.HasPrefix(raw, []byte(`"`)) {
		return 0, malformed("%s must be an integer", key)
	}
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return 0, malformed("%s must be an integer", key)
	}
	if v < lo {
		return 0, malformed("%s must be at least %d", key, lo)
	}
	return v, nil
}

func sinceMember(members map[string]json.RawMessage) (*int64, error) {
	if raw, ok := members["since_seq"]; !ok || string(raw) == "null" {
		return nil, nil
	}
	v, err := intMember(members, "since_seq", 0)
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	cut := maxEcho
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// Server messages.

type typed struct {
	Type string `json:"type"`
}

type errorReply struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
}

type subscribedReply struct {
	Type           string         `json:"type"`
	SubscriptionID string         `json:"subscription_id"`
	Action         string         `json:"action"`
	Filters        map[string]any `json:"filters"`
	// Seq is where the subscription starts (an addition to the contract's
	// message): a client that saw no event yet may resume from it.
	Seq int64 `json:"seq"`
}

type unsubscribedReply struct {
	Type           string `json:"type"`
	SubscriptionID string `json:"subscription_id"`
	// Detail says why the service ended the subscription; absent when the
	// client asked.
	Detail string `json:"detail,omitempty"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only this package's own reply types reach here.
		panic("realtime: encoding a reply: " + err.Error())
	}
	return b
}

var (
	replyPong          = mustJSON(typed{Type: "pong"})
	replyAuthenticated = mustJSON(typed{Type: "authenticated"})
)

func replyError(detail string) []byte {
	return mustJSON(errorReply{Type: "error", Detail: detail})
}

func replySubscribed(sub ports.Subscription) []byte {
	r := subscribedReply{Type: "subscribed", SubscriptionID: sub.ID, Seq: sub.Seq, Filters: map[string]any{}}
	if !sub.Search {
		r.Action = actionSubscribeID
		r.Filters["user_id"] = sub.UserID
		return mustJSON(r)
	}
	r.Action = actionSubscribeSearch
	f := sub.Filter
	for key, v := range map[string]string{
		"first_name": f.FirstName, "last_name": f.LastName, "email": f.Email,
		"gender": f.Gender, "role": f.Role, "ip_address": f.IPAddress,
		"email_exact": f.EmailExact,
	} {
		if v != "" {
			r.Filters[key] = v
		}
	}
	return mustJSON(r)
}

// eventEncoder encodes events. The service hands one *ports.Event to every
// connection a change reaches, so the encoder keeps the encoding of the
// live event it saw last: every connection after the first shares it, and
// a client's event costs neither JSON nor a slice of its own (melody only
// reads what it is given).
type eventEncoder struct {
	mu   sync.Mutex
	ev   *ports.Event // held, so its address cannot come back as another Event
	last *eventEncoding
}

// eventEncoding is one event's messages: their common prefix, and the full
// message for each subscription id met. Connections number their
// subscriptions alike (s1, s2, ...), so a few messages serve them all.
type eventEncoding struct {
	prefix []byte            // {"type":..,"user":{..},"seq":N,"at":".."
	full   map[string][]byte // by subscription id
}

// maxSharedIDs bounds the messages kept per event: subscription ids are
// numbered per connection, up to its 100 subscriptions.
const maxSharedIDs = 128

// message returns ev's message to subscription id.
func (e *eventEncoder) message(ev *ports.Event, id string) []byte {
	if ev.Replay {
		// A replay reaches one subscription: there is nothing to share,
		// and keeping it would drop the live event's encoding.
		return eventMessage(eventPrefix(ev.Change), id)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ev != ev {
		e.ev, e.last = ev, &eventEncoding{prefix: eventPrefix(ev.Change), full: map[string][]byte{}}
	}
	if msg, ok := e.last.full[id]; ok {
		return msg
	}
	msg := eventMessage(e.last.prefix, id)
	if len(e.last.full) < maxSharedIDs {
		e.last.full[id] = msg
	}
	return msg
}

// eventMessage completes prefix into the message to subscription id.
func eventMessage(prefix []byte, id string) []byte {
	quoted, _ := json.Marshal(id)
	msg := make([]byte, 0, len(prefix)+len(quoted)+len(`,"subscription_id":}`))
	msg = append(msg, prefix...)
	msg = append(msg, `,"subscription_id":`...)
	msg = append(msg, quoted...)
	return append(msg, '}')
}

// eventType is the event a change action makes (docs/websocket.md):
// created, updated or deleted; a role or password change is an update.
func eventType(a domain.ChangeAction) string {
	switch a {
	case domain.ActionCreated, domain.ActionDeleted:
		return string(a)
	}
	return string(domain.ActionUpdated)
}

func eventPrefix(c *domain.Change) []byte {
	user := mustJSON(ports.ViewOf(c.User()))
	b := make([]byte, 0, len(user)+96)
	b = append(b, `{"type":"`...)
	b = append(b, eventType(c.Action)...)
	b = append(b, `","user":`...)
	b = append(b, user...)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, c.Seq, 10)
	b = append(b, `,"at":"`...)
	b = c.At.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}
