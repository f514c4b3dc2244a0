package ports

import (
	"context"
	"time"

	"github.com/userservice/userservice/domain"
)

// ChangeNotifier wakes the readers of the change log (driven).
type ChangeNotifier interface {
	// Changes returns a channel that receives a value whenever change-log
	// entries may have been committed, until ctx ends. Values coalesce (the
	// channel holds at most one) and are hints only: a reader learns what
	// changed by reading the log, and must also poll, since a hint can be
	// lost (a dropped database connection, another process writing).
	Changes(ctx context.Context) <-chan struct{}
}

// ChangeWatcher is a ChangeNotifier that also tells whether its wake-ups
// are complete (driven). Caches kept current from the change log trust
// what they hold only while it says so.
type ChangeWatcher interface {
	ChangeNotifier
	// Watch is Changes with the state of the feed behind the channel:
	// listening reports the number of the feed's current connection and
	// whether it is up. While the same connection stays up, every commit
	// wakes the channel; a wake-up is sent after each (re)connection, since
	// what committed while none was up was not announced.
	Watch(ctx context.Context) (wake <-chan struct{}, listening func() (conn uint64, up bool))
}

// ChangeLogRetention bounds the change log (driven).
type ChangeLogRetention interface {
	// SeqBounds returns the smallest and the largest seq held; both 0 when
	// the log is empty.
	SeqBounds(ctx context.Context) (first, last int64, err error)
	// Prune deletes the entries written before before, always keeping the
	// newest entry (so the log still tells how far seq has gone), and
	// returns how many it deleted.
	Prune(ctx context.Context, before time.Time) (int64, error)
}

// RealtimeService is the use case of real-time subscriptions (driving): an
// authenticated connection holds subscriptions, each of which receives the
// committed changes that match it, once each, in seq order.
type RealtimeService interface {
	// Connect authenticates accessToken and opens a connection whose
	// replies, events and end go to sink. The connection lasts until Close,
	// or until the service ends it through sink.End (token expired or
	// revoked). An invalid, expired or revoked token is
	// domain.ErrUnauthenticated.
	Connect(ctx context.Context, accessToken string, sink EventSink) (RealtimeConn, error)
}

// RealtimeConn is one authenticated connection. Its methods are safe for
// concurrent use.
type RealtimeConn interface {
	// Subscribe authorizes and starts a subscription. Its acknowledgement
	// reaches the sink (Subscribed) before any of its events.
	Subscribe(ctx context.Context, req SubscribeRequest) (Subscription, error)
	// Unsubscribe ends subscription id: once it returns, no event of it
	// reaches the sink. An unknown id is domain.ErrNotFound.
	Unsubscribe(ctx context.Context, id string) error
	// Close ends the connection and its subscriptions (the client left).
	Close()
	// UserID is the id of the user the connection authenticated as (what
	// per-account limits count by).
	UserID() int64
}

// SubscribeRequest asks for a subscription by user id or, with Search, by
// the search filters of Filter.
type SubscribeRequest struct {
	Search bool
	UserID int64               // without Search: the user watched (it may not exist yet)
	Filter domain.FilterParams // with Search
	// SinceSeq, when not nil, asks first for the matching changes after it
	// that the client missed: a resume within the resume window, not a
	// history (an older one is refused). A connection catches up one
	// subscription at a time; later ones wait their turn.
	SinceSeq *int64
}

// Subscription is a started subscription.
type Subscription struct {
	ID     string
	Search bool
	UserID int64
	Filter domain.FilterParams // canonical spellings, as matched
	// Seq is where the subscription starts: its events are the matching
	// changes after it (the SinceSeq asked for, or the position the
	// instance had reached). A client may resume from it.
	Seq int64
}

// Event is one change on its way to the subscriptions it matched. The
// service makes one per change it fans out and hands that same value to
// every connection the change reaches, so a sink can make what it derives
// from the change alone (its encoding) once per Event rather than once per
// subscriber.
type Event struct {
	// Change is shared by every delivery of the same change: read only.
	Change *domain.Change
	// Replay marks a change read to catch up after SinceSeq rather than as
	// it was committed.
	Replay bool
}

// EventSink is where the service sends one connection's messages. Its
// methods must not block and must not call back into the RealtimeConn: the
// service calls them while delivering to many connections.
type EventSink interface {
	// Subscribed acknowledges a subscription, before any of its events.
	Subscribed(sub Subscription)
	// Deliver hands ev over to the connection's subscriptions
	// subscriptionIDs (each of which it matched), as one event each. The
	// slice is the service's: the sink reads it during the call only. It
	// returns false when the sink cannot take them (a client that does not
	// read); the sink then ends the connection itself and the service stops
	// sending to it.
	Deliver(ev *Event, subscriptionIDs []string) bool
	// SubscriptionEnded tells that the service ended a subscription, with
	// the reason (domain.ErrForbidden: the subscriber's rights changed).
	SubscriptionEnded(id string, reason error)
	// End closes the connection because its credentials no longer hold
	// (reason is domain.ErrUnauthenticated: token expired or revoked).
	End(reason error)
}
