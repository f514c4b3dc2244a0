package application

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// SubscriptionsConfig gives real-time delivery its driven ports beyond Deps and
// tunes it; zero durations and sizes take the defaults.
type SubscriptionsConfig struct {
	// Notifier wakes the change-log reader (required).
	Notifier ports.ChangeNotifier
	// Retention bounds the change log (required).
	Retention ports.ChangeLogRetention
	// KeepFor is how long change-log entries are kept for resuming
	// (default 24h; docs/websocket.md promises at least that). Older entries are
	// pruned in the background.
	KeepFor time.Duration
	// ResumeWindow is how far back a since_seq may reach (default 24h, at
	// most KeepFor). A resume is not a history: a catch-up replays changes
	// of the window only, and a since_seq whose next change is older is
	// ErrResumeTooOld, however long the log is kept for /audit.
	ResumeWindow time.Duration
	// PruneEvery is how often old entries are pruned (default 10m).
	PruneEvery time.Duration
	// PollEvery bounds how late a change is seen when its wake-up is lost
	// (default 1s).
	PollEvery time.Duration
	// RecheckEvery is how long an authorization decision is reused for
	// events before the Authorizer is asked again (default 2s), so a policy
	// reload reaches live subscriptions within that time.
	RecheckEvery time.Duration
	// SweepEvery is how often expired tokens are looked for (default 1s).
	SweepEvery time.Duration
	// MaxSubscriptions caps the subscriptions of one connection (default 100).
	MaxSubscriptions int
	// BatchSize is how many change-log entries are read at once (default 500).
	BatchSize int
}

// Defaults of SubscriptionsConfig.
const (
	DefaultKeepChangesFor   = 24 * time.Hour
	DefaultResumeWindow     = 24 * time.Hour
	defaultPruneEvery       = 10 * time.Minute
	defaultPollEvery        = time.Second
	defaultRecheckEvery     = 2 * time.Second
	defaultSweepEvery       = time.Second
	DefaultMaxSubscriptions = 100
	defaultBatchSize        = 500
	// retryEvery spaces attempts after a database error in the background.
	retryEvery = time.Second
)

// ErrResumeTooOld answers a since_seq older than the resume window, or than
// what the change log keeps. Its message is the contract's detail.
var ErrResumeTooOld = &domain.Error{Kind: domain.KindInvalid, Code: "resume_too_old", Message: "resume_too_old"}

// Subscriptions implements ports.RealtimeService: connections and their
// subscriptions, and the fan-out that follows the change log and hands each
// committed change to the subscriptions it matches.
//
// One reader per instance follows the log in seq order (ChangesAfter from
// the last seq it fanned out), woken by the Notifier and by a poll, so every
// instance delivers every committed change, once per subscription, in order.
// A subscription with since_seq first catches up on its own from the log,
// up to the reader's position, and then joins the reader's fan-out under the
// registry lock, which leaves neither a gap nor a duplicate at the handover.
// A catch-up costs what it returns: one by id reads its user's entries only;
// one by search reads the window a page at a time. Its first page comes
// with the resume check, in one read. A connection runs one catch-up at a
// time; the others wait their turn.
type Subscriptions struct {
	changes   ports.ChangeLog
	retention ports.ChangeLogRetention
	notifier  ports.ChangeNotifier
	repo      ports.UserRepository
	authz     ports.Authorizer
	verifier  ports.TokenVerifier
	clock     ports.Clock
	log       *slog.Logger
	cfg       SubscriptionsConfig

	// ctx is Start's: catch-ups and background work end with it.
	ctx     context.Context
	started atomic.Bool

	// head is the last seq fanned out. Only the reader advances it, while
	// holding mu for reading, so a holder of mu for writing sees it still.
	head atomic.Int64

	// mu guards the registry. The reader holds it for reading during the
	// fan-out of one change; registry changes take it for writing, so they
	// fall between two changes.
	mu       sync.RWMutex
	conns    map[*subscriberConn]struct{}
	byUser   map[int64]map[*subscriberConn]struct{}       // connections by their user (revocation)
	byTarget map[int64]map[*subscription]struct{}         // id subscriptions by watched user
	byFilter map[domain.Filter]map[*subscription]struct{} // search subscriptions, grouped by filter so each filter is tested once per change

	decisions decisionCache
	// reached is fanOut's scratch (the reader's alone): the connections the
	// change being fanned out reaches.
	reached []*subscriberConn

	// recheckMu guards recheck: users whose token versions could not be
	// read after a change, tried again by the sweep.
	recheckMu sync.Mutex
	recheck   map[int64]struct{}
}

var _ ports.RealtimeService = (*Subscriptions)(nil)

// NewSubscriptions returns the real-time service; Start must run before it
// accepts connections. It uses Changes, Repo, Authz, Verifier, Clock and Log
// from deps. A missing Notifier or Retention is a wiring mistake and panics.
func NewSubscriptions(deps Deps, cfg SubscriptionsConfig) *Subscriptions {
	if cfg.Notifier == nil || cfg.Retention == nil {
		panic("application.NewSubscriptions: Notifier and Retention are required")
	}
	setDefault(&cfg.KeepFor, DefaultKeepChangesFor)
	setDefault(&cfg.ResumeWindow, DefaultResumeWindow)
	// Past KeepFor, what the window promises may already be pruned.
	cfg.ResumeWindow = min(cfg.ResumeWindow, cfg.KeepFor)
	setDefault(&cfg.PruneEvery, defaultPruneEvery)
	setDefault(&cfg.PollEvery, defaultPollEvery)
	setDefault(&cfg.RecheckEvery, defaultRecheckEvery)
	setDefault(&cfg.SweepEvery, defaultSweepEvery)
	setDefault(&cfg.MaxSubscriptions, DefaultMaxSubscriptions)
	setDefault(&cfg.BatchSize, defaultBatchSize)
	log := deps.logger()
	return &Subscriptions{
		changes: deps.Changes, retention: cfg.Retention, notifier: cfg.Notifier,
		repo: deps.Repo, authz: deps.Authz, verifier: deps.Verifier, clock: deps.Clock,
		log: log, cfg: cfg,
		ctx:       context.Background(),
		conns:     map[*subscriberConn]struct{}{},
		byUser:    map[int64]map[*subscriberConn]struct{}{},
		byTarget:  map[int64]map[*subscription]struct{}{},
		byFilter:  map[domain.Filter]map[*subscription]struct{}{},
		decisions: decisionCache{ttl: cfg.RecheckEvery, entries: map[decisionKey]cachedDecision{}},
		recheck:   map[int64]struct{}{},
	}
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// followLog calls read at once, then whenever wake fires and at least
// every poll, until ctx ends: a reader of the change log, whose wake-ups
// are hints that can be lost, so a lost one only delays.
func followLog(ctx context.Context, wake <-chan struct{}, poll time.Duration, read func()) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		read()
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
	}
}

// every calls fn every d, the first time after d, until ctx ends: the
// background chores of the use cases (sweeps).
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// Start positions the reader at the end of the change log (a new instance
// delivers what commits from now on; older changes are had with since_seq)
// and starts the background work: following the log, expiring tokens and
// pruning old entries, until ctx ends. Call it once.
func (sv *Subscriptions) Start(ctx context.Context) error {
	_, last, err := sv.retention.SeqBounds(ctx)
	if err != nil {
		return fmt.Errorf("realtime: reading the change log's position: %w", err)
	}
	sv.head.Store(last)
	sv.ctx = ctx
	wake := sv.notifier.Changes(ctx)
	sv.started.Store(true)
	go sv.follow(ctx, wake)
	go every(ctx, sv.cfg.SweepEvery, func() { sv.sweep(ctx) })
	go sv.prune(ctx)
	return nil
}

// Head is the last seq this instance has fanned out.
func (sv *Subscriptions) Head() int64 { return sv.head.Load() }

// Connect authenticates accessToken and opens a connection for sink.
func (sv *Subscriptions) Connect(ctx context.Context, accessToken string, sink ports.EventSink) (ports.RealtimeConn, error) {
	if !sv.started.Load() {
		return nil, domain.ErrUnavailable.Wrap(errors.New("real-time delivery has not started"))
	}
	claims, err := sv.verifier.VerifyAccess(accessToken, sv.clock.Now())
	if err != nil {
		return nil, fmt.Errorf("verify access token: %w", err)
	}
	c := &subscriberConn{
		sv: sv, sink: sink,
		userID: claims.UserID, version: claims.TokenVersion, expires: claims.ExpiresAt,
		subs: map[string]*subscription{},
	}
	// Registered before the user is read: a revocation committed after the
	// read below is then seen by the reader, which finds c registered; one
	// committed before it is seen by the read.
	sv.register(c)
	u, err := sv.repo.Get(ctx, claims.UserID)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		sv.unregister(c)
		return nil, domain.ErrUnauthenticated.Wrap(err)
	case err != nil:
		sv.unregister(c)
		return nil, fmt.Errorf("load user %d: %w", claims.UserID, err)
	case u.TokenVersion() != claims.TokenVersion:
		sv.unregister(c)
		return nil, domain.ErrUnauthenticated
	}
	c.actor = domain.Actor{ID: u.ID(), Role: u.Role(), PasswordChangeRequired: u.MustChangePassword()}
	return c, nil
}

func (sv *Subscriptions) register(c *subscriberConn) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	sv.conns[c] = struct{}{}
	addTo(sv.byUser, c.userID, c)
}

// unregister removes c and its subscriptions; it is idempotent.
func (sv *Subscriptions) unregister(c *subscriberConn) {
	c.dead.Store(true)
	sv.mu.Lock()
	subs := make([]*subscription, 0, len(c.subs))
	if _, ok := sv.conns[c]; ok {
		delete(sv.conns, c)
		removeFrom(sv.byUser, c.userID, c)
		for id, s := range c.subs {
			sv.unindex(s)
			delete(c.subs, id)
			subs = append(subs, s)
		}
	}
	sv.mu.Unlock()
	for _, s := range subs {
		s.markRemoved()
	}
}

// index adds s to the fan-out's indexes; mu is held for writing.
func (sv *Subscriptions) index(s *subscription) {
	if s.search {
		addTo(sv.byFilter, s.filter, s)
	} else {
		addTo(sv.byTarget, s.userID, s)
	}
}

// unindex removes s from the fan-out's indexes; mu is held for writing.
func (sv *Subscriptions) unindex(s *subscription) {
	if s.search {
		removeFrom(sv.byFilter, s.filter, s)
	} else {
		removeFrom(sv.byTarget, s.userID, s)
	}
}

func addTo[K comparable, V comparable](m map[K]map[V]struct{}, k K, v V) {
	set := m[k]
	if set == nil {
		set = map[V]struct{}{}
		m[k] = set
	}
	set[v] = struct{}{}
}

func removeFrom[K comparable, V comparable](m map[K]map[V]struct{}, k K, v V) {
	if set := m[k]; set != nil {
		delete(set, v)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}

// subscriberConn is one subscriber's connection: its user, the token it
// was opened with, and its subscriptions.
type subscriberConn struct {
	sv   *Subscriptions
	sink ports.EventSink

	userID  int64
	version int64     // the token's version: the user's must stay equal
	expires time.Time // the token's expiry (zero: none)
	// actor is set by Connect before it returns, and read only by work on
	// subscriptions, which exist only after that.
	actor domain.Actor

	// dead is set once nothing more is to be sent: the connection was
	// ended, closed, or its sink refused an event.
	dead atomic.Bool
	// ended makes End happen at most once.
	ended atomic.Bool

	// matched is fanOut's scratch (the reader's alone): the ids of the
	// subscriptions the change being fanned out reaches.
	matched []string

	// Guarded by sv.mu.
	subs    map[string]*subscription
	nextSub uint64
	// catchUps are the subscriptions waiting to catch up, in subscribe
	// order; the first one's catch-up is running.
	catchUps []*subscription
}

var _ ports.RealtimeConn = (*subscriberConn)(nil)

// UserID is the id of the user the connection authenticated as.
func (c *subscriberConn) UserID() int64 { return c.userID }

// subscription is one subscription.
type subscription struct {
	conn   *subscriberConn
	id     string
	search bool
	userID int64
	filter domain.Filter
	perm   domain.Permission

	// live is set, under sv.mu held for writing, when the subscription's
	// events come from the reader's fan-out; before, its catch-up delivers
	// them and the fan-out passes it by.
	live bool
	// last is the last seq delivered or passed over. The catch-up owns it
	// until live, then the reader.
	last int64
	// resumed is the catch-up's first page, read by Subscribe with the
	// resume check (nil: none read); the catch-up takes it.
	resumed *catchUpPage

	// mu is held by the catch-up around each delivery and by the removal,
	// so no event of a catch-up follows the end of the subscription.
	mu      sync.Mutex
	removed bool
	// stopCatchUp ends the catch-up's reads (nil until it runs). A context
	// is made only for a running catch-up: one per connection would cost
	// every connection memory for the few that resume.
	stopCatchUp context.CancelFunc
}

func (s *subscription) markRemoved() {
	s.mu.Lock()
	s.removed = true
	if s.stopCatchUp != nil {
		s.stopCatchUp()
	}
	s.mu.Unlock()
}

// matches reports whether change c concerns the subscription: its user, or
// a user matching its filter before or after the change.
func (s *subscription) matches(c *domain.Change) bool {
	if s.search {
		return c.Matches(s.filter)
	}
	return c.TargetID == s.userID
}

// end closes the connection for reason, once, and unregisters it.
func (c *subscriberConn) end(reason error) {
	if c.ended.CompareAndSwap(false, true) {
		c.dead.Store(true)
		c.sink.End(reason)
		c.sv.unregister(c)
	}
}

// Close ends the connection: the client left.
func (c *subscriberConn) Close() { c.sv.unregister(c) }

// Subscribe authorizes req, registers the subscription and acknowledges it
// to the sink before any event; with SinceSeq it first catches up, after
// the connection's earlier catch-ups.
func (c *subscriberConn) Subscribe(ctx context.Context, req ports.SubscribeRequest) (ports.Subscription, error) {
	sv := c.sv
	if c.dead.Load() {
		return ports.Subscription{}, domain.ErrUnauthenticated
	}
	if err := requireNoPasswordChange(c.actor); err != nil {
		return ports.Subscription{}, err
	}
	s := &subscription{conn: c, search: req.Search}
	out := ports.Subscription{Search: req.Search}
	if req.Search {
		s.perm = domain.PermSubscribeSearch
		if err := authorize(ctx, sv.authz, c.actor, s.perm, nil, domain.Role{}); err != nil {
			return ports.Subscription{}, err
		}
		f, err := domain.ParseFilter(req.Filter)
		if err != nil {
			return ports.Subscription{}, err
		}
		s.filter, out.Filter = f, f.Params()
	} else {
		s.perm = domain.PermSubscribeID
		if req.UserID <= 0 {
			return ports.Subscription{}, domain.Errorf(domain.KindInvalid, "invalid_user_id", "user_id must be a positive integer")
		}
		if err := sv.authorizeWatch(ctx, c.actor, req.UserID); err != nil {
			return ports.Subscription{}, err
		}
		s.userID, out.UserID = req.UserID, req.UserID
	}
	// Without since_seq a subscription starts at the change log's committed
	// head, not at this instance's reader, which may lag behind it: a change
	// committed before the subscribe (say, the creation of the very user
	// watched) is history, not news.
	var committed int64
	var resumed *catchUpPage
	if req.SinceSeq != nil {
		var err error
		if resumed, err = sv.resume(ctx, s, *req.SinceSeq); err != nil {
			return ports.Subscription{}, err
		}
	} else {
		var err error
		if _, committed, err = sv.retention.SeqBounds(ctx); err != nil {
			return ports.Subscription{}, fmt.Errorf("read the change log's head: %w", err)
		}
	}

	sv.mu.Lock()
	if _, ok := sv.conns[c]; !ok {
		sv.mu.Unlock()
		return ports.Subscription{}, domain.ErrUnauthenticated
	}
	if len(c.subs) >= sv.cfg.MaxSubscriptions {
		sv.mu.Unlock()
		return ports.Subscription{}, domain.Errorf(domain.KindConflict, "too_many_subscriptions",
			"at most %d subscriptions per connection", sv.cfg.MaxSubscriptions)
	}
	c.nextSub++
	s.id = fmt.Sprintf("s%d", c.nextSub)
	head := sv.head.Load()
	// Live either way: past the reader's head, the fan-out skips up to s.last.
	s.last, s.live = max(head, committed), true
	if req.SinceSeq != nil {
		s.last = *req.SinceSeq
		s.live = s.last >= head // ahead of this reader: the fan-out skips up to it
	}
	out.ID, out.Seq = s.id, s.last
	startCatchUps := false
	if !s.live {
		s.resumed = resumed
		c.catchUps = append(c.catchUps, s)
		startCatchUps = len(c.catchUps) == 1
	}
	c.subs[s.id] = s
	// Acknowledged under the lock: no fan-out runs, so no event of s can
	// precede it.
	c.sink.Subscribed(out)
	sv.index(s)
	sv.mu.Unlock()
	if startCatchUps {
		go sv.runCatchUps(c)
	}
	return out, nil
}

// authorizeWatch asks whether actor may subscribe to user id: to the user
// as stored, or, for an id not taken yet, to a user with that id of some
// role (so the answer does not tell taken ids from free ones).
func (sv *Subscriptions) authorizeWatch(ctx context.Context, actor domain.Actor, id int64) error {
	u, err := sv.repo.Get(ctx, id)
	if err == nil {
		return authorize(ctx, sv.authz, actor, domain.PermSubscribeID, u, domain.Role{})
	}
	if !errors.Is(err, domain.ErrNotFound) {
		return fmt.Errorf("load user %d: %w", id, err)
	}
	return authorizeAnyRole(ctx, sv.authz, actor, domain.PermSubscribeID, id, domain.Role{})
}

// resume refuses a since_seq older than the resume window (tooOld) and,
// in the same read, reads the first page of the catch-up that follows: the
// entries after since that s may match, complete up to the reader's head
// as loaded before the read (entries fanned out have committed, so the read
// sees them all). The page is read only for a catch-up that starts at once:
// one waiting its turn behind the connection's others would hold it in
// memory meanwhile, and reads its pages when it runs.
func (sv *Subscriptions) resume(ctx context.Context, s *subscription, since int64) (*catchUpPage, error) {
	if since < 0 {
		return nil, domain.Errorf(domain.KindInvalid, "invalid_since_seq", "since_seq must not be negative")
	}
	head := sv.head.Load()
	q := sv.catchUpQuery(s, since)
	sv.mu.RLock()
	waiting := len(s.conn.catchUps) > 0
	sv.mu.RUnlock()
	if since >= head || waiting {
		q.Limit = 0
	}
	page, err := sv.changes.CatchUp(ctx, q)
	switch {
	case err != nil:
		return nil, fmt.Errorf("realtime: reading the change log after since_seq: %w", err)
	case sv.tooOld(since, page):
		return nil, ErrResumeTooOld
	case q.Limit == 0:
		return nil, nil
	}
	return &catchUpPage{changes: page.Changes, upTo: head}, nil
}

// tooOld tells whether a resume after since reaches back further than the
// window: its next change was made before the window began (the changes
// after that one are newer still: seq follows commit order, and each entry
// is stamped as it is appended), or its next changes may have been pruned.
// Pruning removes the oldest entries (and never the newest), so below the
// first seq held (less one) something may be gone. A gap left there by a
// rolled-back write is indistinguishable and is refused too, which only
// costs the client a fresh start.
func (sv *Subscriptions) tooOld(since int64, p ports.CatchUpPage) bool {
	if !p.NextAt.IsZero() && p.NextAt.Before(sv.clock.Now().Add(-sv.cfg.ResumeWindow)) {
		return true
	}
	return since+1 < p.FirstSeq
}

// catchUpQuery asks for a page of the entries after after that s may match.
// A subscription by id reads its user's entries only, through the change
// log's (target_id, seq) index, so its catch-up costs what it returns
// however long the log is; a search reads every entry, a page at a time
// (never the log at once), and tests each against its filter.
func (sv *Subscriptions) catchUpQuery(s *subscription, after int64) ports.CatchUpQuery {
	q := ports.CatchUpQuery{After: after, Limit: sv.cfg.BatchSize}
	if !s.search {
		q.TargetID = &s.userID
	}
	return q
}

// catchUpPage is a page of a catch-up read ahead, holding every entry the
// subscription may match after its since_seq up to upTo (within the page's
// size).
type catchUpPage struct {
	changes []domain.Change
	upTo    int64
}

// Unsubscribe ends subscription id; no event of it follows.
func (c *subscriberConn) Unsubscribe(_ context.Context, id string) error {
	sv := c.sv
	sv.mu.Lock()
	s, ok := c.subs[id]
	if ok {
		delete(c.subs, id)
		sv.unindex(s)
	}
	sv.mu.Unlock()
	if !ok {
		return domain.Errorf(domain.KindNotFound, "unknown_subscription", "no such subscription_id on this connection")
	}
	s.markRemoved()
	return nil
}

// endSubscription ends s because its subscriber may no longer receive its
// events, and tells the sink.
func (sv *Subscriptions) endSubscription(s *subscription, reason error) {
	c := s.conn
	sv.mu.Lock()
	_, ok := c.subs[s.id]
	if ok {
		delete(c.subs, s.id)
		sv.unindex(s)
	}
	sv.mu.Unlock()
	s.markRemoved()
	if ok {
		c.sink.SubscriptionEnded(s.id, reason)
	}
}
