package application

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// Why a connection is ended; the Kind makes every adapter treat both as an
// authentication failure (4401 on a WebSocket).
var (
	errTokenExpired = &domain.Error{Kind: domain.KindUnauthenticated, Code: "token_expired", Message: "the access token expired"}
	errTokenRevoked = &domain.Error{Kind: domain.KindUnauthenticated, Code: "token_revoked", Message: "the access token was revoked"}
)

// follow is the instance's one reader of the change log: it fans out what
// committed since the last seq it saw, whenever woken and at least every
// PollEvery (a lost wake-up only delays).
func (sv *Subscriptions) follow(ctx context.Context, wake <-chan struct{}) {
	followLog(ctx, wake, sv.cfg.PollEvery, func() {
		if err := sv.drain(ctx); err != nil && ctx.Err() == nil {
			sv.log.WarnContext(ctx, "reading the change log failed; retrying", slog.Any("error", err))
		}
	})
}

// drain fans out every committed change after head, in seq order.
func (sv *Subscriptions) drain(ctx context.Context) error {
	for {
		batch, err := sv.changes.ChangesAfter(ctx, sv.head.Load(), sv.cfg.BatchSize)
		if err != nil {
			return fmt.Errorf("realtime: reading the change log: %w", err)
		}
		for i := range batch {
			c := &batch[i]
			sv.fanOut(c)
			sv.revoke(ctx, c)
		}
		if len(batch) < sv.cfg.BatchSize {
			return nil
		}
	}
}

// refusal is a subscription whose subscriber may no longer see its events.
type refusal struct {
	sub *subscription
	err error
}

// fanOut hands c to every live subscription it matches, with one Deliver
// per connection for all of its matching subscriptions and one Event for
// all connections, and advances head, all under mu held for reading, so no
// subscription starts or hands over in the middle.
func (sv *Subscriptions) fanOut(c *domain.Change) {
	var refused []refusal
	memo := map[decisionKey]error{}
	reached := sv.reached
	sv.mu.RLock()
	match := func(s *subscription) {
		if !s.live || c.Seq <= s.last {
			return
		}
		s.last = c.Seq
		if s.conn.dead.Load() {
			return
		}
		if err := sv.allowed(s, c, memo); err != nil {
			refused = append(refused, refusal{s, err})
			return
		}
		if len(s.conn.matched) == 0 {
			reached = append(reached, s.conn)
		}
		s.conn.matched = append(s.conn.matched, s.id)
	}
	if !c.Action.Internal() { // bookkeeping is never an event
		for s := range sv.byTarget[c.TargetID] {
			match(s)
		}
		for f, subs := range sv.byFilter {
			if !c.Matches(f) {
				continue
			}
			for s := range subs {
				match(s)
			}
		}
	}
	ev := &ports.Event{Change: c}
	for i, conn := range reached {
		if !conn.sink.Deliver(ev, conn.matched) {
			conn.dead.Store(true)
		}
		conn.matched = conn.matched[:0]
		reached[i] = nil // the scratch keeps no connection alive
	}
	sv.reached = reached[:0]
	sv.head.Store(c.Seq)
	sv.mu.RUnlock()
	for _, r := range refused {
		sv.endSubscription(r.sub, r.err)
	}
}

// runCatchUps runs the catch-ups queued on c, one after another, until
// none is left: a connection runs one catch-up at a time, so one client's
// resumes cost the database one reader, not a hundred.
func (sv *Subscriptions) runCatchUps(c *subscriberConn) {
	for {
		sv.mu.Lock()
		s := c.catchUps[0]
		sv.mu.Unlock()
		sv.runCatchUp(s)
		sv.mu.Lock()
		c.catchUps[0] = nil
		c.catchUps = c.catchUps[1:]
		done := len(c.catchUps) == 0
		if done {
			c.catchUps = nil
		}
		sv.mu.Unlock()
		if done {
			return
		}
	}
}

// runCatchUp runs s's catch-up, unless s ended while it waited its turn.
func (sv *Subscriptions) runCatchUp(s *subscription) {
	s.mu.Lock()
	if s.removed {
		s.mu.Unlock()
		return
	}
	ctx, stop := context.WithCancel(sv.ctx)
	s.stopCatchUp = stop
	s.mu.Unlock()
	defer stop()
	sv.catchUp(ctx, s)
}

// catchUp delivers to s the matching changes after its since_seq up to the
// reader's position, then hands s over to the reader's fan-out. The
// handover happens under mu held for writing, when head cannot move: the
// changes up to head were the catch-up's, those after it are the reader's.
func (sv *Subscriptions) catchUp(ctx context.Context, s *subscription) {
	// The page read by Subscribe holds the entries up to its upTo only: the
	// first round goes that far.
	first, h := s.resumed, sv.head.Load()
	s.resumed = nil
	if first != nil {
		h = first.upTo
	}
	for ctx.Err() == nil {
		for s.last < h {
			batch, err := sv.pending(ctx, s, first)
			first = nil
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				sv.log.WarnContext(ctx, "replaying the change log failed; retrying", slog.Any("error", err))
				if !sleep(ctx, retryEvery) {
					return
				}
				continue
			}
			reached := s.last
			for i := range batch {
				c := &batch[i]
				if c.Seq > h {
					break
				}
				if !sv.replay(s, c) {
					return
				}
				reached = c.Seq
			}
			if len(batch) < sv.cfg.BatchSize || batch[len(batch)-1].Seq >= h {
				// Every entry up to h that s may match was in the batch:
				// seq follows commit order, so none of them can still
				// appear.
				reached = h
			}
			s.last = reached
		}
		sv.mu.Lock()
		if s.last >= sv.head.Load() {
			s.live = true
			sv.mu.Unlock()
			return
		}
		sv.mu.Unlock()
		first, h = nil, sv.head.Load()
	}
}

// pending returns the page read ahead when there is one, else reads the
// next page of the entries after s.last that s may match, in seq order
// (catchUpQuery).
func (sv *Subscriptions) pending(ctx context.Context, s *subscription, ahead *catchUpPage) ([]domain.Change, error) {
	if ahead != nil {
		return ahead.changes, nil
	}
	page, err := sv.changes.CatchUp(ctx, sv.catchUpQuery(s, s.last))
	return page.Changes, err
}

// replay delivers c to s if it matches and s still may see it; false means
// the catch-up is over (subscription or connection ended).
func (sv *Subscriptions) replay(s *subscription, c *domain.Change) bool {
	if c.Action.Internal() || !s.matches(c) {
		return true
	}
	if err := sv.allowed(s, c, nil); err != nil {
		sv.endSubscription(s, err)
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed || s.conn.dead.Load() {
		return false
	}
	if !s.conn.sink.Deliver(&ports.Event{Change: c, Replay: true}, []string{s.id}) {
		s.conn.dead.Store(true)
		return false
	}
	return true
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// revoke ends the connections whose token c invalidated: all of a deleted
// user's, and after any other change to a connected user, those whose
// token version is no longer the user's (a role or password change, a
// revocation). The version is read from the repository rather than from c,
// because the change log does not keep it (it is not public) and because a
// connection opened after the change with a fresh token must stay.
func (sv *Subscriptions) revoke(ctx context.Context, c *domain.Change) {
	if c.Action == domain.ActionCreated {
		return
	}
	conns := sv.connsOf(c.TargetID)
	if len(conns) == 0 {
		return
	}
	if c.Action == domain.ActionDeleted {
		for _, conn := range conns {
			conn.end(errTokenRevoked)
		}
		return
	}
	sv.verifyVersions(ctx, c.TargetID, conns)
}

// verifyVersions ends conns (all of user id) whose token version is no
// longer the user's. When the user cannot be read it is tried again by the
// sweep.
func (sv *Subscriptions) verifyVersions(ctx context.Context, id int64, conns []*subscriberConn) {
	u, err := sv.repo.Get(ctx, id)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		for _, conn := range conns {
			conn.end(errTokenRevoked)
		}
	case err != nil:
		if ctx.Err() == nil {
			sv.log.WarnContext(ctx, "checking a subscriber's token version failed; retrying", slog.Int64("user_id", id), slog.Any("error", err))
		}
		sv.recheckMu.Lock()
		sv.recheck[id] = struct{}{}
		sv.recheckMu.Unlock()
	default:
		for _, conn := range conns {
			if conn.version != u.TokenVersion() {
				conn.end(errTokenRevoked)
			}
		}
	}
}

func (sv *Subscriptions) connsOf(userID int64) []*subscriberConn {
	sv.mu.RLock()
	defer sv.mu.RUnlock()
	return slices.Collect(maps.Keys(sv.byUser[userID]))
}

// sweep (every SweepEvery) ends connections whose token expired, and retries token-version
// checks that failed.
func (sv *Subscriptions) sweep(ctx context.Context) {
	now := sv.clock.Now()
	var expired []*subscriberConn
	sv.mu.RLock()
	for c := range sv.conns {
		if !c.expires.IsZero() && !now.Before(c.expires) {
			expired = append(expired, c)
		}
	}
	sv.mu.RUnlock()
	for _, c := range expired {
		c.end(errTokenExpired)
	}

	sv.recheckMu.Lock()
	ids := slices.Collect(maps.Keys(sv.recheck))
	clear(sv.recheck)
	sv.recheckMu.Unlock()
	for _, id := range ids {
		if conns := sv.connsOf(id); len(conns) > 0 {
			sv.verifyVersions(ctx, id, conns)
		}
	}
}

// prune deletes change-log entries older than KeepFor, at start and every
// PruneEvery. Every instance prunes; deleting what another already deleted
// costs nothing.
func (sv *Subscriptions) prune(ctx context.Context) {
	t := time.NewTicker(sv.cfg.PruneEvery)
	defer t.Stop()
	for {
		n, err := sv.retention.Prune(ctx, sv.clock.Now().Add(-sv.cfg.KeepFor))
		switch {
		case err != nil && ctx.Err() == nil:
			sv.log.WarnContext(ctx, "pruning the change log failed", slog.Any("error", err))
		case n > 0:
			sv.log.InfoContext(ctx, "pruned the change log", slog.Int64("entries", n), slog.Duration("kept_for", sv.cfg.KeepFor))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// decisionKey is what an authorization decision on an event depends on:
// the subscriber's role, the permission, the subscriber's relation to the
// changed user and that user's role (the parts of ports.AuthzRequest a
// policy decides on; the actor's id matters only as that relation).
type decisionKey struct {
	role  domain.Role
	perm  domain.Permission
	rel   relation
	trole domain.Role
}

// relation is the subscriber's relation to the changed user; the zero
// value is none (a search subscription asks about no user).
type relation uint8

const (
	relSelf relation = iota + 1
	relOther
)

type cachedDecision struct {
	err error
	at  time.Time
}

// decisionCache reuses decisions on events for ttl, so a fan-out to many
// subscribers asks the Authorizer a few questions rather than one per
// delivery, while a policy reload still reaches live subscriptions within
// ttl. Only allow and forbid are kept; other errors are asked again.
type decisionCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[decisionKey]cachedDecision
}

func (d *decisionCache) decide(key decisionKey, now time.Time, ask func() error) error {
	d.mu.Lock()
	e, ok := d.entries[key]
	d.mu.Unlock()
	if ok && now.Sub(e.at) < d.ttl && !now.Before(e.at) {
		return e.err
	}
	err := ask()
	if err == nil || errors.Is(err, domain.ErrForbidden) {
		d.mu.Lock()
		d.entries[key] = cachedDecision{err: err, at: now}
		d.mu.Unlock()
	}
	return err
}

// allowed re-checks that s's subscriber may still receive c: the
// permission s was granted, asked again about the changed user (by id) or
// about no user (search). memo, when not nil, holds this fan-out's answers.
func (sv *Subscriptions) allowed(s *subscription, c *domain.Change, memo map[decisionKey]error) error {
	a := s.conn.actor
	key := decisionKey{role: a.Role, perm: s.perm}
	var target *domain.User
	if !s.search {
		target = c.User()
		key.rel, key.trole = relOther, target.Role()
		if a.IsSelf(target) {
			key.rel = relSelf
		}
	}
	if memo != nil {
		if err, ok := memo[key]; ok {
			return err
		}
	}
	err := sv.decisions.decide(key, sv.clock.Now(), func() error {
		return authorize(sv.ctx, sv.authz, a, s.perm, target, domain.Role{})
	})
	if memo != nil {
		memo[key] = err
	}
	return err
}
