package realtime

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/olahol/melody"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// session is one WebSocket connection. It is the service's EventSink for
// the connection: every method the service calls only queues bytes for
// melody's writer, never waits.
type session struct {
	srv   *Server
	ms    *melody.Session // set by onConnect, before anything else runs
	id    string          // unique in the process: the connection's rate-limit key
	token string          // from the handshake, if any, until onConnect
	// upgraded tells Handle how the upgrade went: nil once the connection
	// is established, or the error that kept it from being.
	upgraded chan error

	// queued counts the text messages given to melody and not yet written.
	queued atomic.Int32
	// closing is set once a close frame is queued (or the client left).
	closing   atomic.Bool
	mu        sync.Mutex
	conn      ports.RealtimeConn // nil until authenticated
	authTimer *time.Timer
	subs      int  // live subscriptions, for the gauge
	gone      bool // the client left: the gauge no longer counts subs
}

var _ ports.EventSink = (*session)(nil)

func (sess *session) connection() ports.RealtimeConn {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return sess.conn
}

// send queues msg for the writer. It refuses when the connection is
// closing, and when SendBuffer messages already wait: the client does not
// read, so it is disconnected (1008) instead of holding anyone up.
func (sess *session) send(msg []byte) bool {
	if sess.closing.Load() {
		return false
	}
	if sess.queued.Add(1) > int32(sess.srv.cfg.SendBuffer) {
		sess.queued.Add(-1)
		if sess.closeWith(ClosePolicyViolation, "too slow: messages were not read") {
			sess.srv.metrics.slowClosed.Inc()
		}
		return false
	}
	if err := sess.ms.Write(msg); err != nil {
		sess.queued.Add(-1)
		return false
	}
	return true
}

// closeWith queues the close frame, once; it reports whether this call did.
// The writer sends what was queued before it, then the frame, then closes
// the connection.
func (sess *session) closeWith(code int, reason string) bool {
	if !sess.closing.CompareAndSwap(false, true) {
		return false
	}
	sess.mu.Lock()
	if sess.authTimer != nil {
		sess.authTimer.Stop()
	}
	sess.mu.Unlock()
	sess.srv.metrics.closed.WithLabelValues(fmt.Sprint(code)).Inc()
	_ = sess.ms.CloseWithMsg(melody.FormatCloseMessage(code, reason))
	return true
}

// disconnected releases the connection once the client is gone.
func (sess *session) disconnected() {
	sess.closing.Store(true)
	sess.mu.Lock()
	if sess.authTimer != nil {
		sess.authTimer.Stop()
	}
	conn := sess.conn
	sess.gone = true
	sess.srv.metrics.subscriptions.Sub(float64(sess.subs))
	sess.subs = 0
	sess.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// countSubs moves the subscription gauge with the connection's count.
func (sess *session) countSubs(delta int) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if !sess.gone {
		sess.subs += delta
		sess.srv.metrics.subscriptions.Add(float64(delta))
	}
}

// authenticate opens the service connection with token; a refusal closes
// with 4401. viaMessage answers {"type":"authenticated"} (the first-message
// form of docs/websocket.md).
func (sess *session) authenticate(ctx context.Context, token string, viaMessage bool) {
	conn, err := sess.srv.svc.Connect(ctx, token, sess)
	if err != nil {
		if domain.KindOf(err) != domain.KindUnauthenticated {
			sess.srv.log.WarnContext(ctx, "websocket: authentication failed", "error", err)
			sess.closeWith(CloseUnauthenticated, detailOf(err))
			return
		}
		sess.closeWith(CloseUnauthenticated, "invalid or expired token")
		return
	}
	sess.mu.Lock()
	if sess.authTimer != nil {
		sess.authTimer.Stop()
	}
	sess.conn = conn
	sess.mu.Unlock()
	if sess.closing.Load() {
		// Closed meanwhile (the auth timeout, a shutdown, the client):
		// the service connection goes too.
		conn.Close()
		return
	}
	if viaMessage {
		sess.send(replyAuthenticated)
	}
}

// handle answers one client message.
func (sess *session) handle(ctx context.Context, data []byte) {
	if sess.closing.Load() {
		return
	}
	if !sess.allow(ctx, sess.srv.cfg.MessageRule, sess.id) {
		return
	}
	msg, err := decodeMessage(data)
	conn := sess.connection()
	if conn == nil {
		if err != nil || msg.Action != actionAuth {
			sess.closeWith(CloseUnauthenticated, "authentication required")
			return
		}
		sess.authenticate(ctx, msg.Token, true)
		return
	}
	if err != nil {
		sess.send(replyError(detailOf(err)))
		return
	}
	switch msg.Action {
	case actionAuth:
		sess.send(replyError("already authenticated"))
	case actionPing:
		sess.send(replyPong)
	case actionSubscribeID, actionSubscribeSearch:
		// A catch-up reads the change log: each account has a budget of
		// them, whichever connections and instances it uses.
		if msg.SinceSeq != nil && !sess.allow(ctx, sess.srv.cfg.CatchUpRule, "user:"+strconv.FormatInt(conn.UserID(), 10)) {
			return
		}
		// The acknowledgement comes through Subscribed.
		_, err := conn.Subscribe(ctx, ports.SubscribeRequest{
			Search: msg.Action == actionSubscribeSearch, UserID: msg.UserID,
			Filter: msg.Filter, SinceSeq: msg.SinceSeq,
		})
		if err != nil {
			sess.replyFailure(ctx, err)
		}
	case actionUnsubscribe:
		if err := conn.Unsubscribe(ctx, msg.SubscriptionID); err != nil {
			sess.replyFailure(ctx, err)
			return
		}
		sess.countSubs(-1)
		sess.send(mustJSON(unsubscribedReply{Type: "unsubscribed", SubscriptionID: msg.SubscriptionID}))
	}
}

// allow takes a token from key's bucket of the named rate-limit rule; when
// there is none left it answers the client and returns false.
func (sess *session) allow(ctx context.Context, rule, key string) bool {
	if sess.srv.cfg.Allow == nil {
		return true
	}
	ok, retry := sess.srv.cfg.Allow(ctx, rule, key)
	if !ok {
		sess.send(replyError(fmt.Sprintf("rate limited: retry in %d s", int(math.Ceil(retry.Seconds())))))
	}
	return ok
}

func (sess *session) replyFailure(ctx context.Context, err error) {
	if k := domain.KindOf(err); k == domain.KindInternal || k == domain.KindUnavailable {
		sess.srv.log.WarnContext(ctx, "websocket: a request failed", "error", err)
	}
	sess.send(replyError(detailOf(err)))
}

// detailOf is what a client is told of err: the message of a domain error
// with its fields, and nothing of anything unexpected.
func detailOf(err error) string {
	e := domain.AsError(err)
	if e == nil || e.Kind == domain.KindInternal {
		return "internal error"
	}
	d := e.Message
	for _, f := range e.Fields {
		d += "; " + f.Field + ": " + f.Message
	}
	return d
}

// Subscribed implements ports.EventSink.
func (sess *session) Subscribed(sub ports.Subscription) {
	sess.countSubs(1)
	sess.send(replySubscribed(sub))
}

// Deliver implements ports.EventSink: one message per subscription.
func (sess *session) Deliver(ev *ports.Event, ids []string) bool {
	m := sess.srv.metrics
	for i, id := range ids {
		if !sess.send(sess.srv.events.message(ev, id)) {
			m.dropped.Add(float64(len(ids) - i))
			return false
		}
	}
	m.delivered.Add(float64(len(ids)))
	if !ev.Replay {
		lag := time.Since(ev.Change.At).Seconds()
		for range ids {
			m.lag.Observe(lag)
		}
	}
	return true
}

// SubscriptionEnded implements ports.EventSink.
func (sess *session) SubscriptionEnded(id string, reason error) {
	sess.countSubs(-1)
	sess.send(mustJSON(unsubscribedReply{Type: "unsubscribed", SubscriptionID: id, Detail: detailOf(reason)}))
}

// End implements ports.EventSink.
func (sess *session) End(reason error) {
	sess.closeWith(CloseUnauthenticated, detailOf(reason))
}
