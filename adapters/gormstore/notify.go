package gormstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
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
// server delivers at commit (and never for a rollback), and each Changes
// subscriber LISTENs on a dedicated connection, so changes made by other
// instances wake it too. The listener reconnects with backoff and wakes its
// subscriber on every (re)connection, since notifications sent while it
// was away are lost: the reader then catches up from the log itself.
type Notifier struct {
	s    *Store
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

var (
	_ ports.ChangeNotifier = (*Notifier)(nil)
	_ ports.ChangeWatcher  = (*Notifier)(nil)
)

// listenerAppName is the application_name of the LISTEN connections, so an
// operator (or a test) can tell them apart in pg_stat_activity.
const listenerAppName = "userservice-listen"

// listenState is what Watch reports of one subscriber's listener.
type listenState struct {
	conn atomic.Uint64 // bumped at each LISTEN reached
	up   atomic.Bool
}

func (st *listenState) listening() (uint64, bool) {
	// up first: a reconnection between the two loads shows as a newer
	// conn, which a caller compares with the conn it synced under.
	up := st.up.Load()
	return st.conn.Load(), up
}

func newNotifier(s *Store) *Notifier {
	return &Notifier{s: s, subs: map[chan struct{}]struct{}{}}
}

// ChangeNotifier returns the store's wake-up source for change-log readers.
func (s *Store) ChangeNotifier() *Notifier { return s.notifier }

// Changes returns a channel woken when change-log entries may have
// committed, until ctx ends.
func (n *Notifier) Changes(ctx context.Context) <-chan struct{} {
	ch, _ := n.Watch(ctx)
	return ch
}

// Watch is Changes with the state of its listener. On SQLite every write
// goes through this Store, which wakes its subscribers after each commit,
// so the feed is always up (a write by another process is seen by the
// reader's poll).
func (n *Notifier) Watch(ctx context.Context) (<-chan struct{}, func() (uint64, bool)) {
	ch := make(chan struct{}, 1)
	st := &listenState{}
	n.mu.Lock()
	n.subs[ch] = struct{}{}
	n.mu.Unlock()
	if n.s.dialect == dialectPostgres {
		go n.listen(ctx, ch, st)
	} else {
		st.up.Store(true)
	}
	go func() {
		<-ctx.Done()
		n.mu.Lock()
		delete(n.subs, ch)
		n.mu.Unlock()
	}()
	return ch, st.listening
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

// listen keeps a LISTEN connection open until ctx ends.
func (n *Notifier) listen(ctx context.Context, ch chan struct{}, st *listenState) {
	backoff := listenBackoffMin
	for {
		connected, err := n.listenOnce(ctx, ch, st)
		st.up.Store(false)
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = listenBackoffMin
		}
		n.s.log.WarnContext(ctx, "change notifications: listener connection lost; reconnecting",
			slog.Duration("in", backoff), slog.Any("error", err))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listenOnce connects, LISTENs and signals ch for every notification until
// the connection fails or ctx ends. connected reports whether LISTEN was
// reached.
func (n *Notifier) listenOnce(ctx context.Context, ch chan struct{}, st *listenState) (connected bool, err error) {
	cfg := n.s.pgConfig.Copy()
	cfg.RuntimeParams["application_name"] = listenerAppName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	// Whatever committed while no connection listened was not notified.
	st.conn.Add(1)
	st.up.Store(true)
	signal(ch)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if errors.Is(err, context.Canceled) || ctx.Err() != nil {
				return true, ctx.Err()
			}
			return true, fmt.Errorf("wait for notification: %w", err)
		}
		signal(ch)
	}
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
