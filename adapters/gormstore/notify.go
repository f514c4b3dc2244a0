package gormstore

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"
	"gorm.io/gorm"

	"github.com/userservice/userservice/ports"
)

// notifyChannel is the PostgreSQL channel every change-log append notifies.
const notifyChannel = "userservice_changes"

// Reconnection of the PostgreSQL listener: from listenBackoffMin, doubling
// to listenBackoffMax while the server stays unreachable.
const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 30 * time.Second
)

// Notifier implements ports.ChangeNotifier. Every write transaction of this
// Store wakes the subscribers in process once it has committed. On
// PostgreSQL each append also runs pg_notify in its transaction, which the
// server delivers at commit (and never for a rollback), and one listener
// per Store LISTENs for every subscriber (the fan-out and the token cache
// share it), so changes made by other instances wake them too. The
// listener is pgxlisten's: it reconnects after a lost connection, and wakes
// the subscribers on every (re)connection, since notifications sent while
// it was away are lost: the readers then catch up from the log itself.
type Notifier struct {
	s  *Store
	mu sync.Mutex
	// subs are the subscribers' channels; the listener runs while there
	// is one (stopListen ends it).
	subs       map[chan struct{}]struct{}
	stopListen context.CancelFunc
	// state is the running listener's (or the last one's); conns numbers
	// the connections of every listener, so a new listener's first
	// connection is new to a caller of Watch too.
	state atomic.Pointer[listenState]
	conns atomic.Uint64
}

var (
	_ ports.ChangeNotifier = (*Notifier)(nil)
	_ ports.ChangeWatcher  = (*Notifier)(nil)
)

// listenerAppName is the application_name of the LISTEN connection, so an
// operator (or a test) can tell it apart in pg_stat_activity.
const listenerAppName = "userservice-listen"

// listenState is what Watch reports of one run of the listener.
type listenState struct {
	conn atomic.Uint64 // the connection listening, numbered by Notifier.conns
	up   atomic.Bool
	// backoff is the wait before the next connection attempt (0 before
	// the first); only the listener's goroutine touches it.
	backoff time.Duration
}

func newNotifier(s *Store) *Notifier {
	n := &Notifier{s: s, subs: map[chan struct{}]struct{}{}}
	st := &listenState{}
	// On SQLite every write goes through this Store, which wakes its
	// subscribers after each commit, so the feed is always up (a write by
	// another process is seen by the reader's poll).
	st.up.Store(s.dialect != dialectPostgres)
	n.state.Store(st)
	return n
}

// ChangeNotifier returns the store's wake-up source for change-log readers.
func (s *Store) ChangeNotifier() *Notifier { return s.notifier }

// Changes returns a channel woken when change-log entries may have
// committed, until ctx ends.
func (n *Notifier) Changes(ctx context.Context) <-chan struct{} {
	ch, _ := n.Watch(ctx)
	return ch
}

// Watch is Changes with the state of the listener. A subscriber joining a
// listener that is up is woken at once, as if the listener had just
// connected for it.
func (n *Notifier) Watch(ctx context.Context) (<-chan struct{}, func() (uint64, bool)) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	n.subs[ch] = struct{}{}
	if n.s.dialect == dialectPostgres && n.stopListen == nil {
		n.startListener()
	}
	n.mu.Unlock()
	if _, up := n.listening(); up && n.s.dialect == dialectPostgres {
		signal(ch)
	}
	go func() {
		<-ctx.Done()
		n.mu.Lock()
		delete(n.subs, ch)
		if len(n.subs) == 0 && n.stopListen != nil {
			n.stopListen()
			n.stopListen = nil
		}
		n.mu.Unlock()
	}()
	return ch, n.listening
}

func (n *Notifier) listening() (uint64, bool) {
	st := n.state.Load()
	// up first: a reconnection between the two loads shows as a newer
	// conn, which a caller compares with the conn it synced under.
	up := st.up.Load()
	return st.conn.Load(), up
}

// wake signals every subscriber without blocking: a pending signal already
// covers this one.
func (n *Notifier) wake() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.subs {
		signal(ch)
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// startListener runs a listener until the last subscriber leaves; n.mu is
// held. pgxlisten keeps the connection; what it leaves to its caller is
// done here: Connect dials with the store's settings (keepalive, user
// timeout) under listenerAppName and waits out the backoff before a
// reconnection (ReconnectDelay < 0 turns pgxlisten's fixed delay off), and
// the handler tells the state and wakes the subscribers.
func (n *Notifier) startListener() {
	ctx, cancel := context.WithCancel(context.Background())
	n.stopListen = cancel
	st := &listenState{}
	n.state.Store(st)
	cfg := n.s.pgConfig.Copy()
	cfg.RuntimeParams["application_name"] = listenerAppName
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			if st.backoff == 0 {
				st.backoff = listenBackoffMin
			} else {
				t := time.NewTimer(st.backoff)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil, ctx.Err()
				case <-t.C:
				}
				st.backoff = min(2*st.backoff, listenBackoffMax)
			}
			return pgx.ConnectConfig(ctx, cfg)
		},
		// The handler never fails, so every error reported ended the
		// connection (or an attempt at one).
		LogError: func(ctx context.Context, err error) {
			st.up.Store(false)
			if ctx.Err() == nil {
				n.s.log.WarnContext(ctx, "change notifications: listener connection lost; reconnecting",
					slog.Duration("in", st.backoff), slog.Any("error", err))
			}
		},
		ReconnectDelay: -1,
	}
	l.Handle(notifyChannel, &listenHandler{n: n, st: st})
	go func() { _ = l.Listen(ctx) }() // it returns once ctx ends
}

// listenHandler wakes the subscribers for every notification, and for
// every connection once it LISTENs: whatever committed while none
// listened was not notified.
type listenHandler struct {
	n  *Notifier
	st *listenState
}

func (h *listenHandler) HandleNotification(context.Context, *pgconn.Notification, *pgx.Conn) error {
	h.n.wake()
	return nil
}

// HandleBacklog runs once LISTEN has succeeded on a new connection.
func (h *listenHandler) HandleBacklog(context.Context, string, *pgx.Conn) error {
	h.st.conn.Store(h.n.conns.Add(1))
	h.st.up.Store(true)
	h.st.backoff = listenBackoffMin
	h.n.wake()
	return nil
}

// notifyInTx queues the PostgreSQL notification of a change-log append in
// tx: the server delivers it when tx commits, never if it rolls back, and
// merges the identical notifications of one transaction.
func (s *Store) notifyInTx(tx *gorm.DB) error {
	if s.dialect != dialectPostgres {
		return nil
	}
	return tx.Exec("SELECT pg_notify(?, '')", notifyChannel).Error
}
