package application

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// TokenStatesConfig gives TokenStates its driven ports beyond Deps and
// tunes it; zero values take the defaults.
type TokenStatesConfig struct {
	// Notifier wakes the reader when changes commit (required). When it is
	// a ports.ChangeWatcher, memory is trusted only while its feed is up
	// and has been read since it (re)connected.
	Notifier ports.ChangeNotifier
	// Retention tells where the log starts, and whether entries the reader
	// had not seen were pruned (required).
	Retention ports.ChangeLogRetention
	// MaxEntries bounds the accounts held (default 1,000,000: about 55 MB;
	// see TestTokenStatesMemory). Past it the least recently used half is
	// dropped, and those accounts are read again when they next call.
	MaxEntries int
	// PollEvery is how often the log is read when no wake-up comes
	// (default 200ms): each read renews the lease below.
	PollEvery time.Duration
	// Lease is how long after the start of its last complete read of the
	// log memory is trusted (default 600ms). A change committed on another
	// instance is therefore refused here within Lease, whatever happens to
	// the feed: a lost wake-up, a lost connection, a database that stops
	// answering all end in reading the row on every request instead.
	Lease time.Duration
	// BatchSize is how many change-log entries are read at once (default 500).
	BatchSize int
}

// Defaults of TokenStatesConfig.
const (
	DefaultTokenStatesEntries = 1_000_000
	defaultTokenStatesPoll    = 200 * time.Millisecond
	defaultTokenStatesLease   = 600 * time.Millisecond
)

// tokenState is what checking an access token needs of its account, in 16
// bytes: the role is its index in domain.Roles().
type tokenState struct {
	version            int64
	role               uint8
	mustChangePassword bool
}

func stateOf(u *domain.User) tokenState {
	st := tokenState{version: u.TokenVersion(), mustChangePassword: u.MustChangePassword()}
	for i, r := range domain.Roles() {
		if r == u.Role() {
			st.role = uint8(i)
		}
	}
	return st
}

// actor is the account id holding st.
func (st tokenState) actor(id int64) domain.Actor {
	return domain.Actor{ID: id, Role: domain.Roles()[st.role], PasswordChangeRequired: st.mustChangePassword}
}

// syncMark is the last complete read of the change log: when it began (on
// the monotonic clock, since the cache started) and under which connection
// of the feed.
type syncMark struct {
	at   time.Duration
	conn uint64
}

// epochStripes spreads the eviction counters that guard lazy loads, so a
// write to one account rarely spoils a load of another.
const epochStripes = 64

// TokenStates keeps, in memory, each calling account's token version, role
// and forced-password-change flag, so checking an access token reads no
// row (docs/architecture.md). An account is loaded from its row the
// first time it calls; any change-log entry about it evicts it, on this
// instance as the write returns (Repository) and on every instance from
// the change log, which it follows from the last seq it applied, woken by
// the notifier and polled every PollEvery. Memory is trusted only within
// Lease of the last complete read of the log and while the notifier's feed
// is up; otherwise every check reads the row, so a stale token is never
// accepted because the feed is down.
//
// The bound is two generations of a plain map rather than a linked-list
// LRU (such as hashicorp/golang-lru): a hit is a read under a shared lock,
// with no list to reorder, and an entry costs its map slot alone (under
// half what a list-based LRU's entry and map slot take); dropping the older generation when the
// newer fills keeps the recently used accounts, which is all the bound is
// for.
type TokenStates struct {
	repo      ports.UserRepository
	changes   ports.ChangeLog
	retention ports.ChangeLogRetention
	notifier  ports.ChangeNotifier
	log       *slog.Logger
	cfg       TokenStatesConfig

	// start is the monotonic origin of syncMark.at.
	start     time.Time
	listening func() (conn uint64, up bool)
	synced    atomic.Pointer[syncMark]

	// applied is the last seq evicted; only the reader touches it.
	applied int64
	failing bool // the reader's last attempt failed (logged once)

	mu        sync.RWMutex
	cur, prev map[int64]tokenState
	epochs    [epochStripes]atomic.Uint64 // bumped under mu by every eviction
}

// NewTokenStates returns the cache; Start must run before it serves from
// memory (until then every check reads the row). It uses Repo, Changes and
// Log from deps. A missing Notifier or Retention is a wiring mistake and
// panics.
func NewTokenStates(deps Deps, cfg TokenStatesConfig) *TokenStates {
	if cfg.Notifier == nil || cfg.Retention == nil {
		panic("application.NewTokenStates: Notifier and Retention are required")
	}
	setDefault(&cfg.MaxEntries, DefaultTokenStatesEntries)
	cfg.MaxEntries = max(cfg.MaxEntries, 2) // two generations of at least one
	setDefault(&cfg.PollEvery, defaultTokenStatesPoll)
	setDefault(&cfg.Lease, defaultTokenStatesLease)
	setDefault(&cfg.BatchSize, defaultBatchSize)
	return &TokenStates{
		repo: deps.Repo, changes: deps.Changes, retention: cfg.Retention, notifier: cfg.Notifier,
		log: deps.logger(), cfg: cfg, start: time.Now(),
		cur: map[int64]tokenState{}, prev: map[int64]tokenState{},
	}
}

// Start positions the reader at the end of the change log (nothing is held
// yet, so nothing older matters) and follows the log until ctx ends. Call
// it once.
func (t *TokenStates) Start(ctx context.Context) error {
	_, last, err := t.retention.SeqBounds(ctx)
	if err != nil {
		return fmt.Errorf("token states: reading the change log's position: %w", err)
	}
	t.applied = last
	var wake <-chan struct{}
	if w, ok := t.notifier.(ports.ChangeWatcher); ok {
		wake, t.listening = w.Watch(ctx)
	} else {
		wake = t.notifier.Changes(ctx)
	}
	go t.follow(ctx, wake)
	return nil
}

// Repository wraps repo so that its writes evict the account they touched
// as soon as they return: the instance that changes a password or a role,
// or deletes an account, refuses the old tokens at once.
func (t *TokenStates) Repository(repo ports.UserRepository) ports.UserRepository {
	return &evictingRepository{UserRepository: repo, states: t}
}

// state returns user id's token state: from memory when the feed vouches
// for it, else from the row (which then refreshes memory).
func (t *TokenStates) state(ctx context.Context, id int64) (tokenState, error) {
	if t.trusted() {
		if st, ok := t.lookup(id); ok {
			return st, nil
		}
	}
	stripe := &t.epochs[uint64(id)%epochStripes]
	epoch := stripe.Load()
	u, err := t.repo.Get(ctx, id)
	if err != nil {
		return tokenState{}, err
	}
	st := stateOf(u)
	t.mu.Lock()
	// An eviction since the read may concern a change the read missed.
	if stripe.Load() == epoch {
		t.put(id, st)
	}
	t.mu.Unlock()
	return st, nil
}

// trusted reports whether memory is current to within the lease.
func (t *TokenStates) trusted() bool {
	m := t.synced.Load()
	if m == nil || time.Since(t.start)-m.at >= t.cfg.Lease {
		return false
	}
	if t.listening != nil {
		conn, up := t.listening()
		return up && conn == m.conn
	}
	return true
}

func (t *TokenStates) lookup(id int64) (tokenState, bool) {
	t.mu.RLock()
	st, ok := t.cur[id]
	if ok {
		t.mu.RUnlock()
		return st, true
	}
	st, ok = t.prev[id]
	t.mu.RUnlock()
	if ok {
		t.mu.Lock()
		// Evicted meanwhile: then it is gone from prev too.
		if st, ok = t.prev[id]; ok {
			delete(t.prev, id)
			t.put(id, st)
		}
		t.mu.Unlock()
	}
	return st, ok
}

// put stores st under mu held for writing. When the newer generation is
// full it becomes the older one, and the older is dropped.
func (t *TokenStates) put(id int64, st tokenState) {
	if _, ok := t.cur[id]; !ok && len(t.cur) >= t.cfg.MaxEntries/2 {
		t.prev, t.cur = t.cur, map[int64]tokenState{}
	}
	t.cur[id] = st
}

// evict forgets user id.
func (t *TokenStates) evict(id int64) {
	t.mu.Lock()
	delete(t.cur, id)
	delete(t.prev, id)
	t.epochs[uint64(id)%epochStripes].Add(1)
	t.mu.Unlock()
}

// clear forgets every account (the log lost entries this reader needed).
func (t *TokenStates) clear() {
	t.mu.Lock()
	t.cur, t.prev = map[int64]tokenState{}, map[int64]tokenState{}
	for i := range t.epochs {
		t.epochs[i].Add(1)
	}
	t.mu.Unlock()
}

// len counts the accounts held.
func (t *TokenStates) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.cur) + len(t.prev)
}

// follow reads the log whenever woken and every PollEvery.
func (t *TokenStates) follow(ctx context.Context, wake <-chan struct{}) {
	followLog(ctx, wake, t.cfg.PollEvery, func() {
		err := t.sync(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !t.failing:
			t.failing = true
			t.log.WarnContext(ctx, "token states: reading the change log failed; checking tokens against the database until it answers", slog.Any("error", err))
		case err == nil && t.failing:
			t.failing = false
			t.log.InfoContext(ctx, "token states: reading the change log again")
		}
	})
}

// sync evicts the account of every entry after applied, up to the end of
// the log, and then marks memory current as of the start of its last read.
// A jump in seq is checked against the log's start: entries pruned before
// this reader saw them empty the cache (rolled-back appends leave jumps
// too, which need nothing).
func (t *TokenStates) sync(ctx context.Context) error {
	for {
		var conn uint64
		if t.listening != nil {
			conn, _ = t.listening()
		}
		at := time.Since(t.start)
		// Whose account changed is all an eviction needs: not the entries'
		// snapshots, which the fan-out reads and decodes.
		batch, err := t.changes.TargetsAfter(ctx, t.applied, t.cfg.BatchSize)
		if err != nil {
			return fmt.Errorf("token states: reading the change log: %w", err)
		}
		if len(batch) > 0 && batch[0].Seq > t.applied+1 {
			first, _, err := t.retention.SeqBounds(ctx)
			if err != nil {
				return fmt.Errorf("token states: reading the change log's start: %w", err)
			}
			if first > t.applied+1 {
				t.log.WarnContext(ctx, "token states: change-log entries were pruned before they were read; forgetting every account",
					slog.Int64("applied_seq", t.applied), slog.Int64("first_seq", first))
				t.clear()
			}
		}
		for i := range batch {
			t.evict(batch[i].TargetID)
			t.applied = batch[i].Seq
		}
		if len(batch) < t.cfg.BatchSize {
			t.synced.Store(&syncMark{at: at, conn: conn})
			return nil
		}
	}
}

// evictingRepository evicts the account each write touched once the write
// returns, whatever it returns (a write whose answer was lost may still
// have committed).
type evictingRepository struct {
	ports.UserRepository
	states *TokenStates
}

func (r *evictingRepository) Create(ctx context.Context, u *domain.User, actor domain.Actor) (*domain.User, error) {
	created, err := r.UserRepository.Create(ctx, u, actor)
	if created != nil {
		r.states.evict(created.ID())
	}
	if u.ID() != 0 {
		r.states.evict(u.ID())
	}
	return created, err
}

func (r *evictingRepository) Update(ctx context.Context, id int64, actor domain.Actor, fn ports.UpdateFunc) (*domain.User, error) {
	defer r.states.evict(id)
	return r.UserRepository.Update(ctx, id, actor, fn)
}

func (r *evictingRepository) UpdateInternal(ctx context.Context, id int64, fn func(u *domain.User) error) error {
	defer r.states.evict(id)
	return r.UserRepository.UpdateInternal(ctx, id, fn)
}

func (r *evictingRepository) Delete(ctx context.Context, id int64, actor domain.Actor, check ports.DeleteCheck) (*domain.User, error) {
	defer r.states.evict(id)
	return r.UserRepository.Delete(ctx, id, actor, check)
}
