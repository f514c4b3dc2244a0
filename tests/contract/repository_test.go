package contract

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// repoCase is one behaviour of the repository ports.
type repoCase struct {
	name string
	// isolated cases get a database of their own because they count or
	// walk every row (superadmins, the whole change log, id sequences);
	// the others share one and keep to rows they create (unique emails).
	isolated bool
	run      func(t *testing.T, r repos)
}

func repoCases() []repoCase {
	return []repoCase{
		{"RoundTrip", false, testRoundTrip},
		{"NotFound", false, testNotFound},
		{"DuplicateEmail", false, testDuplicateEmail},
		{"ExplicitID", true, testExplicitID},
		{"Update", false, testUpdate},
		{"UpdateClosureError", false, testUpdateClosureError},
		{"ConcurrentUpdates", false, testConcurrentUpdates},
		{"LastSuperadminRace", true, testLastSuperadminRace},
		{"Delete", false, testDelete},
		{"DeletedIDNeverReused", false, testDeletedIDNeverReused},
		{"UpdateInternal", false, testUpdateInternal},
		{"ChangeLog", false, testChangeLog},
		{"SignUpActor", false, testSignUpActor},
		{"CommitOrder", true, testCommitOrder},
		{"SearchSortPage", false, testSearchSortPage},
		{"Count", false, testCount},
		{"RefreshTokens", false, testRefreshTokens},
	}
}

// TestRepository runs every case against every implementation.
func TestRepository(t *testing.T) {
	t.Parallel()
	for _, impl := range implementations() {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			shared := impl.open(t)
			for _, c := range repoCases() {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					r := shared
					if c.isolated {
						r = impl.open(t)
					}
					c.run(t, r)
				})
			}
		})
	}
}

func testRoundTrip(t *testing.T, r repos) {
	tg := tag()
	at := time.Date(2024, 2, 29, 23, 59, 58, 123456000, time.UTC)
	u := newUser(t, domain.NewUserParams{
		FirstName: "Σίσυφος", LastName: "O'Doireidh-Łukasz", Email: "Zoë." + tg + "@Example.COM",
		Gender: "NON-BINARY", IPAddress: "2001:DB8::1", Role: domain.RoleAdmin,
	}, at)
	u.SetInitialPassword("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", true)

	created, err := r.users.Create(t.Context(), u, domain.Operator())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if created.ID() <= 0 {
		t.Fatalf("Create assigned id %d", created.ID())
	}
	s := u.Stored()
	s.ID = created.ID()
	want, err := domain.RestoreUser(s)
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, "Create", created, want)
	got, err := r.users.Get(t.Context(), created.ID())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	sameUser(t, "Get", got, want)
	got, err = r.users.GetByEmail(t.Context(), u.Email())
	if err != nil {
		t.Fatalf("GetByEmail: %v", err)
	}
	sameUser(t, "GetByEmail", got, want)

	// The token version, the cleared forced change and a later time survive too.
	later := at.Add(90*time.Minute + time.Microsecond)
	updated, err := r.users.Update(t.Context(), created.ID(), domain.Operator(),
		func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
			u.SetPasswordHash("$2b$10$abcdefghijklmnopqrstuuZ0123456789abcdefghijklmnopqrs", later)
			return domain.ActionPasswordChanged, nil
		})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if updated.TokenVersion() != 1 || updated.MustChangePassword() || !updated.UpdatedAt().Equal(later) || updated.Version() != 2 {
		t.Errorf("Update returned token version %d, must change %v, updated %v, version %d",
			updated.TokenVersion(), updated.MustChangePassword(), updated.UpdatedAt(), updated.Version())
	}
	got, err = r.users.Get(t.Context(), created.ID())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	sameUser(t, "Get after Update", got, updated)

	// No address, no password; an IPv4-mapped address is stored as IPv4.
	p := params(tg, 2)
	p.IPAddress = ""
	bare := create(t, r, p)
	if got, err := r.users.Get(t.Context(), bare.ID()); err != nil || got.IP().IsValid() || got.HasPassword() {
		t.Errorf("Get(user without address or password) = %v, %v", got, err)
	}
	p = params(tg, 3)
	p.IPAddress = "::ffff:192.0.2.7"
	mapped := create(t, r, p)
	if got, err := r.users.Get(t.Context(), mapped.ID()); err != nil || got.IP().String() != "192.0.2.7" {
		t.Errorf("Get(user with mapped address) = %v, %v", got.Stored(), err)
	}
}

func testNotFound(t *testing.T, r repos) {
	const missing = int64(1) << 60
	_, err := r.users.Get(t.Context(), missing)
	wantErr(t, "Get", err, domain.ErrNotFound)
	email, err := domain.ParseEmail("nobody." + tag() + "@example.com")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.users.GetByEmail(t.Context(), email)
	wantErr(t, "GetByEmail", err, domain.ErrNotFound)
	called := false
	_, err = r.users.Update(t.Context(), missing, domain.Operator(),
		func(*domain.User, domain.SuperadminCount) (domain.ChangeAction, error) {
			called = true
			return domain.ActionUpdated, nil
		})
	wantErr(t, "Update", err, domain.ErrNotFound)
	if called {
		t.Error("Update called fn for a missing user")
	}
	_, err = r.users.Delete(t.Context(), missing, domain.Operator(), nil)
	wantErr(t, "Delete", err, domain.ErrNotFound)
}

func testDuplicateEmail(t *testing.T, r repos) {
	tg := tag()
	p := params(tg, 1)
	p.Email = "Case." + tg + "@Example.com"
	a := create(t, r, p)

	p.Email = "CASE." + tg + "@EXAMPLE.COM"
	_, err := r.users.Create(t.Context(), newUser(t, p, now()), domain.Operator())
	wantErr(t, "Create with the email in other case", err, domain.ErrEmailTaken)

	b := create(t, r, params(tg, 2))
	taken := "case." + tg + "@example.COM"
	_, err = r.users.Update(t.Context(), b.ID(), domain.Operator(),
		func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
			return domain.ActionUpdated, u.ApplyProfile(domain.ProfilePatch{Email: &taken}, now())
		})
	wantErr(t, "Update to a taken email", err, domain.ErrEmailTaken)
	got, err := r.users.Get(t.Context(), b.ID())
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, "user after the refused update", got, b)
	if n := len(auditOf(t, r, b.ID())); n != 1 {
		t.Errorf("change log of the refused update holds %d entries, want 1 (created)", n)
	}
	if got, err := r.users.GetByEmail(t.Context(), a.Email()); err != nil || got.ID() != a.ID() {
		t.Errorf("GetByEmail(first) = %v, %v", got, err)
	}
}

func testExplicitID(t *testing.T, r repos) {
	tg := tag()
	first := create(t, r, params(tg, 0))

	// Explicit ids right where the sequence would go next.
	for i, id := range []int64{first.ID() + 1, first.ID() + 2} {
		p := params(tg, 10+i)
		p.ID = id
		u := create(t, r, p)
		if u.ID() != id {
			t.Fatalf("Create with id %d stored id %d", id, u.ID())
		}
	}
	p := params(tg, 20)
	p.ID = first.ID() + 1
	_, err := r.users.Create(t.Context(), newUser(t, p, now()), domain.Operator())
	wantErr(t, "Create with a taken id", err, domain.ErrIDTaken)

	next := create(t, r, params(tg, 21))
	if next.ID() <= first.ID()+2 {
		t.Errorf("the next drawn id is %d, not past the explicit ids", next.ID())
	}

	// Explicit and drawn ids at once: a drawn id never collides; an
	// explicit one may lose its id to a concurrent draw, and says so. The
	// explicit ids sit just ahead of the sequence, in shuffled order, and
	// drawn ids after each round must not run into any of them.
	const rounds, explicit, drawn, after = 4, 8, 8, 12
	n := 1000
	for round := range rounds {
		base := create(t, r, params(tg, n)).ID() + 1
		n++
		order := rand.Perm(explicit)
		var wg sync.WaitGroup
		errs := make([]error, explicit+drawn)
		for i := range explicit + drawn {
			p := params(tg, n+i)
			if i < explicit {
				p.ID = base + int64(order[i])
			}
			wg.Go(func() {
				_, errs[i] = r.users.Create(t.Context(), newUser(t, p, now()), domain.Operator())
			})
		}
		n += explicit + drawn
		wg.Wait()
		for i, err := range errs {
			if err != nil && (i >= explicit || !errors.Is(err, domain.ErrIDTaken)) {
				t.Fatalf("round %d: concurrent create %d (explicit id: %v): %v", round, i, i < explicit, err)
			}
		}
		for range after {
			u := create(t, r, params(tg, n))
			n++
			if u.ID() < base+explicit {
				t.Fatalf("round %d: id %d drawn after explicit ids up to %d", round, u.ID(), base+explicit-1)
			}
		}
	}
}

func testUpdate(t *testing.T, r repos) {
	u := create(t, r, params(tag(), 1))
	actor := domain.Actor{ID: 42, Role: domain.RoleAdmin}
	later := u.UpdatedAt().Add(time.Second)
	first, ip := "Ølaf", "::ffff:192.0.2.9"
	got, err := r.users.Update(t.Context(), u.ID(), actor,
		func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
			return domain.ActionUpdated, u.ApplyProfile(domain.ProfilePatch{FirstName: &first, IPAddress: &ip}, later)
		})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got.FirstName() != first || got.IP().String() != "192.0.2.9" || !got.UpdatedAt().Equal(later) || got.LastName() != u.LastName() ||
		got.Version() != u.Version()+1 {
		t.Errorf("Update returned %+v", got.Stored())
	}
	stored, err := r.users.Get(t.Context(), u.ID())
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, "Get after Update", stored, got)

	// A closure that changes nothing, or sets what is there, writes nothing.
	for _, fn := range []ports.UpdateFunc{
		func(*domain.User, domain.SuperadminCount) (domain.ChangeAction, error) {
			return domain.ActionUpdated, nil
		},
		func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
			return domain.ActionUpdated, u.ApplyProfile(domain.ProfilePatch{FirstName: &first}, later)
		},
	} {
		same, err := r.users.Update(t.Context(), u.ID(), actor, fn)
		if err != nil {
			t.Fatalf("no-op Update: %v", err)
		}
		sameUser(t, "no-op Update", same, got)
	}
	changes := auditOf(t, r, u.ID())
	if len(changes) != 2 {
		t.Fatalf("change log holds %d entries, want 2 (created, updated)", len(changes))
	}
	c := changes[1]
	if c.Action != domain.ActionUpdated || c.ActorID != 42 || c.TargetID != u.ID() {
		t.Errorf("update entry %+v", c)
	}
	sameUser(t, "entry before", c.Before, public(u))
	sameUser(t, "entry after", c.After, public(got))

	// Clearing the address stores no address at all, not an empty one.
	none := ""
	cleared, err := r.users.Update(t.Context(), u.ID(), actor,
		func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
			return domain.ActionUpdated, u.ApplyProfile(domain.ProfilePatch{IPAddress: &none}, later.Add(time.Second))
		})
	if err != nil {
		t.Fatalf("Update clearing the address: %v", err)
	}
	stored, err = r.users.Get(t.Context(), u.ID())
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, "Get after clearing the address", stored, cleared)
	if stored.IP().IsValid() {
		t.Errorf("address %v left after clearing it", stored.IP())
	}
	if cleared.Version() != got.Version()+1 {
		t.Errorf("version %d after a second change, want %d", cleared.Version(), got.Version()+1)
	}
	everyAddress := mustFilter(t, domain.FilterParams{IPAddress: "::/0", Email: u.Email().String()})
	if us, err := r.users.Search(t.Context(), ports.SearchQuery{Filter: everyAddress}); err != nil || len(us) != 0 {
		t.Errorf("a user without an address matched ::/0: %v, %v", ids(us), err)
	}
}

func testUpdateClosureError(t *testing.T, r repos) {
	u := create(t, r, params(tag(), 1))
	boom := errors.New("boom")
	changed := "Changed"
	_, err := r.users.Update(t.Context(), u.ID(), domain.Operator(),
		func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
			if err := u.ApplyProfile(domain.ProfilePatch{FirstName: &changed}, now()); err != nil {
				return "", err
			}
			u.RevokeTokens(now())
			return domain.ActionUpdated, boom
		})
	if err != boom { // the very error fn returned, not a wrapped copy
		t.Errorf("Update returned %v, want fn's own error unchanged", err)
	}
	got, err := r.users.Get(t.Context(), u.ID())
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, "user after the failed update", got, u)
	if changes := auditOf(t, r, u.ID()); len(changes) != 1 {
		t.Errorf("change log holds %d entries after a failed update, want 1 (created)", len(changes))
	}
}

func testConcurrentUpdates(t *testing.T, r repos) {
	u := create(t, r, params(tag(), 1))
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = r.users.Update(t.Context(), u.ID(), domain.Operator(),
				func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
					u.RevokeTokens(now())
					return domain.ActionUpdated, nil
				})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent updates: %v", err)
	}
	got, err := r.users.Get(t.Context(), u.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got.TokenVersion() != n {
		t.Errorf("token version %d after %d concurrent increments: updates were lost", got.TokenVersion(), n)
	}
	if changes := auditOf(t, r, u.ID()); len(changes) != n+1 {
		t.Errorf("change log holds %d entries, want %d", len(changes), n+1)
	}
}

func testLastSuperadminRace(t *testing.T, r repos) {
	tg := tag()
	var ids [2]int64
	for i := range ids {
		p := params(tg, i)
		p.Role = domain.RoleSuperadmin
		ids[i] = create(t, r, p).ID()
	}
	superadmins := func() int {
		us, err := r.users.Search(t.Context(), ports.SearchQuery{Filter: domain.Filter{Role: domain.RoleSuperadmin}})
		if err != nil {
			t.Fatal(err)
		}
		return len(us)
	}
	// race runs op on both superadmins at once; exactly one may succeed.
	race := func(what string, op func(id int64) error) (winner int64) {
		t.Helper()
		start := make(chan struct{})
		var errs [2]error
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Go(func() {
				<-start
				errs[i] = op(id)
			})
		}
		close(start)
		wg.Wait()
		okCount := 0
		for i, err := range errs {
			switch {
			case err == nil:
				okCount++
				winner = ids[i]
			case !errors.Is(err, domain.ErrLastSuperadmin):
				t.Fatalf("%s: unexpected error %v", what, err)
			}
		}
		if okCount != 1 {
			t.Fatalf("%s: %d of 2 concurrent operations succeeded, want exactly 1", what, okCount)
		}
		if n := superadmins(); n != 1 {
			t.Fatalf("%s: %d superadmins left, want 1", what, n)
		}
		return winner
	}
	changeRole := func(id int64, to domain.Role) error {
		_, err := r.users.Update(t.Context(), id, domain.Operator(),
			func(u *domain.User, count domain.SuperadminCount) (domain.ChangeAction, error) {
				return domain.ActionRoleChanged, u.ChangeRole(domain.Operator(), to, count, now())
			})
		return err
	}
	for round := range 5 {
		demoted := race(fmt.Sprintf("demotion round %d", round), func(id int64) error {
			return changeRole(id, domain.RoleUser)
		})
		if err := changeRole(demoted, domain.RoleSuperadmin); err != nil {
			t.Fatalf("promoting %d again: %v", demoted, err)
		}
	}
	race("deletion", func(id int64) error {
		_, err := r.users.Delete(t.Context(), id, domain.Operator(),
			func(u *domain.User, count domain.SuperadminCount) error { return u.CheckDelete(count) })
		return err
	})
}

// testDeletedIDNeverReused: a token names its account by id, so a deleted
// user's id is never given to another account, drawn or asked for.
func testDeletedIDNeverReused(t *testing.T, r repos) {
	tg := tag()
	u := create(t, r, params(tg, 1))
	if _, err := r.users.Delete(t.Context(), u.ID(), domain.Operator(), nil); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	p := params(tg, 2)
	p.ID = u.ID()
	_, err := r.users.Create(t.Context(), newUser(t, p, now()), domain.Operator())
	wantErr(t, "Create with a deleted user's id", err, domain.ErrIDTaken)
	p.ID = 0
	drawn := create(t, r, p)
	if drawn.ID() == u.ID() {
		t.Fatalf("the deleted id %d was drawn again", u.ID())
	}
}

// testUpdateInternal: bookkeeping (a new hash, a token version) is saved
// with no audit entry; anything visible through it is refused whole. Ended
// tokens leave one internal entry in the log, which the instances' token
// checks follow and nothing else shows.
func testUpdateInternal(t *testing.T, r repos) {
	u := create(t, r, params(tag(), 1))
	logged := len(auditOf(t, r, u.ID()))
	err := r.users.UpdateInternal(t.Context(), u.ID(), func(u *domain.User) error {
		u.UpgradePasswordHash("$argon2id$rehashed")
		u.InvalidateTokens()
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateInternal: %v", err)
	}
	got, err := r.users.Get(t.Context(), u.ID())
	if err != nil {
		t.Fatal(err)
	}
	// Bookkeeping, not a change of the user: the version (the ETag) stays.
	if got.PasswordHash() != "$argon2id$rehashed" || got.TokenVersion() != u.TokenVersion()+1 || !got.UpdatedAt().Equal(u.UpdatedAt()) ||
		got.Version() != u.Version() {
		t.Errorf("after UpdateInternal: hash %q, token version %d (was %d), updated_at %v (was %v), version %d (was %d)",
			got.PasswordHash(), got.TokenVersion(), u.TokenVersion(), got.UpdatedAt(), u.UpdatedAt(), got.Version(), u.Version())
	}
	hidden := "Hidden"
	err = r.users.UpdateInternal(t.Context(), u.ID(), func(u *domain.User) error {
		u.InvalidateTokens()
		return u.ApplyProfile(domain.ProfilePatch{FirstName: &hidden}, now())
	})
	if err == nil {
		t.Error("UpdateInternal saved a visible change")
	}
	after, err := r.users.Get(t.Context(), u.ID())
	if err != nil {
		t.Fatal(err)
	}
	if after.FirstName() != u.FirstName() || after.TokenVersion() != got.TokenVersion() {
		t.Errorf("a refused UpdateInternal wrote: %q, token version %d", after.FirstName(), after.TokenVersion())
	}
	if n := len(auditOf(t, r, u.ID())); n != logged {
		t.Errorf("%d audit entries, want %d: internal writes are no changes", n, logged)
	}
	var internal []domain.Change
	all, err := r.changes.ChangesAfter(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		if c.TargetID == u.ID() && c.Action.Internal() {
			internal = append(internal, c)
		}
	}
	if len(internal) != 1 || internal[0].Action != domain.ActionTokensRevoked || internal[0].Before != nil || internal[0].After != nil {
		t.Errorf("the log after ending the tokens: %+v; want one tokens_revoked entry without snapshots", internal)
	}
	wantErr(t, "UpdateInternal of a missing user", r.users.UpdateInternal(t.Context(), 1<<50, func(*domain.User) error { return nil }), domain.ErrNotFound)
}

func testDelete(t *testing.T, r repos) {
	u := create(t, r, params(tag(), 1))
	no := errors.New("no")
	_, err := r.users.Delete(t.Context(), u.ID(), domain.Operator(),
		func(*domain.User, domain.SuperadminCount) error { return no })
	if err != no { // the very error check returned, not a wrapped copy
		t.Errorf("Delete returned %v, want check's own error unchanged", err)
	}
	if _, err := r.users.Get(t.Context(), u.ID()); err != nil {
		t.Fatalf("Get after a refused delete: %v", err)
	}
	actor := domain.Actor{ID: 9, Role: domain.RoleSuperadmin}
	deleted, err := r.users.Delete(t.Context(), u.ID(), actor,
		func(u *domain.User, count domain.SuperadminCount) error { return u.CheckDelete(count) })
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	sameUser(t, "Delete", deleted, u)
	_, err = r.users.Get(t.Context(), u.ID())
	wantErr(t, "Get after Delete", err, domain.ErrNotFound)
	_, err = r.users.Delete(t.Context(), u.ID(), actor, nil)
	wantErr(t, "Delete again", err, domain.ErrNotFound)
	changes := auditOf(t, r, u.ID())
	if len(changes) != 2 || changes[1].Action != domain.ActionDeleted || changes[1].ActorID != 9 || changes[1].After != nil {
		t.Fatalf("change log %+v, want created then deleted by 9", changes)
	}
	sameUser(t, "deleted entry before", changes[1].Before, public(u))
}

func testChangeLog(t *testing.T, r repos) {
	// An actor id no user of the shared database has: the role change
	// below must not be a change of one's own role.
	actor := domain.Actor{ID: 1 << 40, Role: domain.RoleSuperadmin}
	t0 := now()
	u, err := r.users.Create(t.Context(), newUser(t, params(tag(), 1), t0), actor)
	if err != nil {
		t.Fatal(err)
	}
	states := []*domain.User{u}
	update := func(action domain.ChangeAction, change func(u *domain.User, count domain.SuperadminCount) error) {
		t.Helper()
		got, err := r.users.Update(t.Context(), u.ID(), actor,
			func(u *domain.User, count domain.SuperadminCount) (domain.ChangeAction, error) {
				return action, change(u, count)
			})
		if err != nil {
			t.Fatalf("Update(%s): %v", action, err)
		}
		states = append(states, got)
	}
	last := "Ærøskøbing"
	update(domain.ActionUpdated, func(u *domain.User, _ domain.SuperadminCount) error {
		return u.ApplyProfile(domain.ProfilePatch{LastName: &last}, now())
	})
	update(domain.ActionRoleChanged, func(u *domain.User, count domain.SuperadminCount) error {
		return u.ChangeRole(actor, domain.RoleAdmin, count, now())
	})
	update(domain.ActionPasswordChanged, func(u *domain.User, _ domain.SuperadminCount) error {
		u.SetPasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$c2VjcmV0c2VjcmV0", now())
		return nil
	})
	// Neither a rolled-back nor an empty update leaves an entry.
	_, err = r.users.Update(t.Context(), u.ID(), actor,
		func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
			u.RevokeTokens(now())
			return domain.ActionUpdated, errors.New("rolled back")
		})
	if err == nil {
		t.Fatal("the failing update succeeded")
	}
	update(domain.ActionUpdated, func(*domain.User, domain.SuperadminCount) error { return nil })
	states = states[:len(states)-1]
	if _, err := r.users.Delete(t.Context(), u.ID(), actor, nil); err != nil {
		t.Fatal(err)
	}
	t1 := now()

	want := []struct {
		action        domain.ChangeAction
		before, after *domain.User
	}{
		{domain.ActionCreated, nil, states[0]},
		{domain.ActionUpdated, states[0], states[1]},
		{domain.ActionRoleChanged, states[1], states[2]},
		{domain.ActionPasswordChanged, states[2], states[3]},
		{domain.ActionDeleted, states[3], nil},
	}
	got := auditOf(t, r, u.ID())
	if len(got) != len(want) {
		t.Fatalf("change log holds %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		c := got[i]
		if c.Action != w.action || c.ActorID != actor.ID || c.TargetID != u.ID() {
			t.Errorf("entry %d: %s by %d on %d, want %s by %d on %d", i, c.Action, c.ActorID, c.TargetID, w.action, actor.ID, u.ID())
		}
		if i > 0 && c.Seq <= got[i-1].Seq {
			t.Errorf("entry %d: seq %d after %d", i, c.Seq, got[i-1].Seq)
		}
		if c.At.Before(t0) || c.At.After(t1) || c.At.Location() != time.UTC {
			t.Errorf("entry %d: at %v, not in [%v, %v] UTC", i, c.At, t0, t1)
		}
		// Snapshots hold public fields only: no hash, no token version.
		sameUser(t, fmt.Sprintf("entry %d before", i), c.Before, public(w.before))
		sameUser(t, fmt.Sprintf("entry %d after", i), c.After, public(w.after))
	}

	id := u.ID()
	other := actor.ID + 1
	for _, q := range []struct {
		name string
		q    ports.AuditQuery
		want []domain.Change
	}{
		{"action", ports.AuditQuery{TargetID: &id, Action: domain.ActionRoleChanged}, got[2:3]},
		{"actor", ports.AuditQuery{TargetID: &id, ActorID: &actor.ID}, got},
		{"other actor", ports.AuditQuery{TargetID: &id, ActorID: &other}, nil},
		{"window", ports.AuditQuery{TargetID: &id, Since: t0, Until: t1.Add(time.Microsecond)}, got},
		{"since after", ports.AuditQuery{TargetID: &id, Since: t1.Add(time.Microsecond)}, nil},
		{"until before", ports.AuditQuery{TargetID: &id, Until: t0}, nil},
		{"after seq", ports.AuditQuery{TargetID: &id, AfterSeq: got[1].Seq, Limit: 2}, got[2:4]},
	} {
		cs, err := r.changes.Audit(t.Context(), q.q)
		if err != nil {
			t.Fatalf("Audit(%s): %v", q.name, err)
		}
		if !slices.Equal(seqs(cs), seqs(q.want)) {
			t.Errorf("Audit(%s) = seqs %v, want %v", q.name, seqs(cs), seqs(q.want))
		}
	}

	for _, c := range []struct {
		q     ports.AuditQuery
		limit int64
		want  int64
	}{
		{ports.AuditQuery{TargetID: &id}, 100, 5},
		{ports.AuditQuery{TargetID: &id, AfterSeq: got[3].Seq, Limit: 1}, 5, 5}, // paging fields ignored
		{ports.AuditQuery{TargetID: &id, Action: domain.ActionUpdated}, 0, 1},
		{ports.AuditQuery{TargetID: &id, ActorID: &other}, 10, 0},
	} {
		n, exact, err := r.changes.CountAudit(t.Context(), c.q, c.limit)
		if err != nil || n != c.want || !exact {
			t.Errorf("CountAudit(%+v, %d) = %d, %v, %v; want %d, exact", c.q, c.limit, n, exact, err, c.want)
		}
	}
	n, exact, err := r.changes.CountAudit(t.Context(), ports.AuditQuery{TargetID: &id}, 3)
	if err != nil || (exact && n != 5) || (!exact && n < 4) {
		t.Errorf("CountAudit(limit 3) = %d, %v, %v; want 5 exact, or an estimate of at least 4", n, exact, err)
	}

	// The feed returns the same entries in the same order, among others'.
	feed, err := r.changes.ChangesAfter(t.Context(), got[0].Seq-1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var mine []domain.Change
	for i, c := range feed {
		if i > 0 && c.Seq <= feed[i-1].Seq {
			t.Fatalf("ChangesAfter out of order: %d after %d", c.Seq, feed[i-1].Seq)
		}
		if c.TargetID == id {
			mine = append(mine, c)
		}
	}
	if !slices.Equal(seqs(mine), seqs(got)) {
		t.Errorf("ChangesAfter holds seqs %v of the user, want %v", seqs(mine), seqs(got))
	}
	if limited, err := r.changes.ChangesAfter(t.Context(), got[0].Seq-1, 1); err != nil || len(limited) != 1 || limited[0].Seq != got[0].Seq {
		t.Errorf("ChangesAfter(limit 1) = %v, %v", seqs(limited), err)
	}
}

func seqs(cs []domain.Change) []int64 {
	out := make([]int64, len(cs))
	for i, c := range cs {
		out[i] = c.Seq
	}
	return out
}

// testCommitOrder writes from many goroutines while a reader follows the
// log with ChangesAfter(last seen): it must see every committed entry
// exactly once, none skipped by a smaller seq committing late.
func testCommitOrder(t *testing.T, r repos) {
	const writers, writes = 8, 20
	tg := tag()
	done := make(chan struct{})
	var seen []int64
	readErr := make(chan error, 1)
	go func() {
		var last int64
		finished := false
		for {
			cs, err := r.changes.ChangesAfter(t.Context(), last, 50)
			if err != nil {
				readErr <- err
				return
			}
			for _, c := range cs {
				if c.Seq <= last {
					readErr <- fmt.Errorf("seq %d read after %d", c.Seq, last)
					return
				}
				last = c.Seq
				seen = append(seen, c.Seq)
			}
			if len(cs) > 0 {
				continue
			}
			if finished {
				readErr <- nil
				return
			}
			select {
			case <-done:
				finished = true // one more read after the last commit
			case <-time.After(time.Millisecond): // poll interval
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			u, err := r.users.Create(t.Context(), newUser(t, params(tg, w), now()), domain.Operator())
			if err != nil {
				errs[w] = err
				return
			}
			for i := range writes {
				fail := i%5 == 4 // some roll back
				_, err := r.users.Update(t.Context(), u.ID(), domain.Operator(),
					func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
						u.RevokeTokens(now())
						if fail {
							return "", errors.New("rolled back")
						}
						return domain.ActionUpdated, nil
					})
				if (err != nil) != fail {
					errs[w] = fmt.Errorf("update %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := <-readErr; err != nil {
		t.Fatalf("reader: %v", err)
	}
	all, err := r.changes.ChangesAfter(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := writers * (1 + writes - writes/5); len(all) != want {
		t.Errorf("change log holds %d entries, want %d", len(all), want)
	}
	if !slices.Equal(seen, seqs(all)) {
		t.Errorf("the reader saw %d entries, the log holds %d: the reader skipped some", len(seen), len(all))
	}
}

// searchFixture is a set of users of one case, reachable by its email domain.
type searchFixture struct {
	domain string
	users  []*domain.User
}

func newSearchFixture(t *testing.T, r repos, n int) searchFixture {
	tg := tag()
	f := searchFixture{domain: "@" + tg + ".example"}
	base := now()
	lastNames := []string{"Østergaard", "Zoë", "abel", "Abel", "Łukasz", "O'Neil", "van der Berg"}
	ips := []string{"10.0.0.1", "10.0.3.7", "10.200.0.1", "192.168.1.20", "2001:db8::5", "2001:db8:1::9", ""}
	for i := range n {
		p := domain.NewUserParams{
			FirstName: []string{"Zoë", "Ølaf", "Σίσυφος", "İlker"}[rand.IntN(4)],
			LastName:  lastNames[rand.IntN(len(lastNames))],
			// Random local parts, some not ASCII: email order is neither
			// id order nor any locale's order.
			Email:     []string{"", "ü", "Ø", "é"}[rand.IntN(4)] + tag()[:4] + strconv.Itoa(i) + f.domain,
			Gender:    domain.Genders()[rand.IntN(len(domain.Genders()))].String(),
			IPAddress: ips[rand.IntN(len(ips))],
			Role:      domain.Roles()[rand.IntN(2)],
		}
		// Few distinct creation times: ties broken by id.
		at := base.Add(time.Duration(rand.IntN(3)) * time.Microsecond)
		u, err := r.users.Create(t.Context(), newUser(t, p, at), domain.Operator())
		if err != nil {
			t.Fatal(err)
		}
		f.users = append(f.users, u)
	}
	return f
}

// expect returns the fixture's users matching filter in order s.
func (f searchFixture) expect(filter domain.Filter, s domain.Sort) []int64 {
	var out []*domain.User
	for _, u := range f.users {
		if filter.Matches(u) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b *domain.User) int {
		ka, kb := s.KeyOf(a), s.KeyOf(b)
		c := cmp.Or(cmp.Compare(ka.Text, kb.Text), ka.Time.Compare(kb.Time), cmp.Compare(ka.ID, kb.ID))
		if s.Desc {
			return -c
		}
		return c
	})
	return ids(out)
}

func ids(us []*domain.User) []int64 {
	out := make([]int64, len(us))
	for i, u := range us {
		out[i] = u.ID()
	}
	return out
}

func mustFilter(t *testing.T, p domain.FilterParams) domain.Filter {
	t.Helper()
	f, err := domain.ParseFilter(p)
	if err != nil {
		t.Fatalf("ParseFilter(%+v): %v", p, err)
	}
	return f
}

func testSearchSortPage(t *testing.T, r repos) {
	fx := newSearchFixture(t, r, 30)
	filters := []domain.FilterParams{
		{Email: fx.domain},
		{Email: fx.domain, LastName: "ABEL"},
		{Email: fx.domain, Gender: "female"},
		{Email: fx.domain, Role: "admin", IPAddress: "10.0.0.0/8"},
		{Email: fx.domain, FirstName: "zoË", IPAddress: "2001:db8::/32"},
	}
	var sorts []domain.Sort
	for _, f := range []domain.SortField{domain.SortID, domain.SortEmail, domain.SortLastName, domain.SortCreatedAt} {
		sorts = append(sorts, domain.Sort{Field: f}, domain.Sort{Field: f, Desc: true})
	}
	for _, fp := range filters {
		filter := mustFilter(t, fp)
		for _, s := range sorts {
			want := fx.expect(filter, s)
			what := fmt.Sprintf("filter %+v sort %s", fp, s)
			all, err := r.users.Search(t.Context(), ports.SearchQuery{Filter: filter, Sort: s, Limit: 1000})
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if !slices.Equal(ids(all), want) {
				t.Errorf("%s: Search = %v, want %v", what, ids(all), want)
			}

			const size = 4
			var byOffset, byKey []int64
			for page := 0; ; page++ {
				us, err := r.users.Search(t.Context(), ports.SearchQuery{Filter: filter, Sort: s, Offset: page * size, Limit: size})
				if err != nil {
					t.Fatalf("%s offset page %d: %v", what, page, err)
				}
				byOffset = append(byOffset, ids(us)...)
				if len(us) < size {
					break
				}
			}
			var after *domain.SortKey
			for page := 0; page <= len(want); page++ {
				us, err := r.users.Search(t.Context(), ports.SearchQuery{Filter: filter, Sort: s, After: after, Limit: size})
				if err != nil {
					t.Fatalf("%s keyset page %d: %v", what, page, err)
				}
				if len(us) == 0 {
					break
				}
				byKey = append(byKey, ids(us)...)
				k := s.KeyOf(us[len(us)-1])
				after = &k
			}
			if !slices.Equal(byOffset, want) {
				t.Errorf("%s: offset pages = %v, want %v", what, byOffset, want)
			}
			if !slices.Equal(byKey, want) {
				t.Errorf("%s: keyset pages = %v, want %v", what, byKey, want)
			}
		}
	}
}

func testCount(t *testing.T, r repos) {
	fx := newSearchFixture(t, r, 12)
	all := mustFilter(t, domain.FilterParams{Email: fx.domain})
	for _, limit := range []int64{100, 12, 0} {
		n, exact, err := r.users.Count(t.Context(), all, limit)
		if err != nil || n != 12 || !exact {
			t.Errorf("Count(limit %d) = %d, %v, %v; want 12, exact", limit, n, exact, err)
		}
	}
	n, exact, err := r.users.Count(t.Context(), all, 5)
	if err != nil || (exact && n != 12) || (!exact && n < 6) {
		t.Errorf("Count(limit 5) = %d, %v, %v; want 12 exact, or an estimate of at least 6", n, exact, err)
	}
	female := mustFilter(t, domain.FilterParams{Email: fx.domain, Gender: "Female"})
	want := int64(len(fx.expect(female, domain.Sort{})))
	if n, exact, err := r.users.Count(t.Context(), female, 100); err != nil || n != want || !exact {
		t.Errorf("Count(female) = %d, %v, %v; want %d, exact", n, exact, err, want)
	}
	none := mustFilter(t, domain.FilterParams{Email: fx.domain + "x"})
	if n, exact, err := r.users.Count(t.Context(), none, 10); err != nil || n != 0 || !exact {
		t.Errorf("Count(no match) = %d, %v, %v; want 0, exact", n, exact, err)
	}
}

func testRefreshTokens(t *testing.T, r repos) {
	ctx := t.Context()
	u := create(t, r, params(tag(), 1))
	t0 := now()
	token := func(family string) ports.RefreshToken {
		return ports.RefreshToken{Hash: tag() + tag(), UserID: u.ID(), FamilyID: family, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	}
	save := func(tok ports.RefreshToken) ports.RefreshToken {
		t.Helper()
		if err := r.tokens.Save(ctx, tok); err != nil {
			t.Fatalf("Save: %v", err)
		}
		return tok
	}
	next := func() ports.RefreshToken {
		return ports.RefreshToken{Hash: tag() + tag(), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	}
	rotate := func(what, hash string, at time.Time, wantReused bool, wantErr error) ports.RefreshToken {
		t.Helper()
		n := next()
		uid, reused, err := r.tokens.Rotate(ctx, hash, n, at)
		if !errors.Is(err, wantErr) || reused != wantReused {
			t.Fatalf("%s: Rotate = %d, reused %v, %v; want reused %v, %v", what, uid, reused, err, wantReused, wantErr)
		}
		if (wantErr == nil || wantReused) && uid != u.ID() {
			t.Fatalf("%s: Rotate reported user %d, want %d", what, uid, u.ID())
		}
		return n
	}
	at := t0.Add(time.Minute)

	family := tag()
	first := save(token(family))
	second := rotate("first rotation", first.Hash, at, false, nil)
	third := rotate("second rotation", second.Hash, at, false, nil)
	rotate("reuse of a spent token", first.Hash, at, true, domain.ErrUnauthenticated)
	// The revocation committed although Rotate returned an error.
	rotate("the family's live token after a reuse", third.Hash, at, false, domain.ErrUnauthenticated)
	rotate("unknown token", "no-such-hash-"+tag(), at, false, domain.ErrUnauthenticated)

	expiring := save(token(tag()))
	rotate("expired token", expiring.Hash, t0.Add(time.Hour), false, domain.ErrUnauthenticated)

	owned := save(token(tag()))
	if err := r.tokens.RevokeFamily(ctx, owned.Hash, u.ID()+1, at); err != nil {
		t.Fatalf("RevokeFamily(other user): %v", err)
	}
	owned = rotate("token after another user's revoke", owned.Hash, at, false, nil)
	if err := r.tokens.RevokeFamily(ctx, owned.Hash, u.ID(), at); err != nil {
		t.Fatalf("RevokeFamily: %v", err)
	}
	rotate("revoked token", owned.Hash, at, false, domain.ErrUnauthenticated)

	// RFC 7009: whoever holds the token revokes its family, whole.
	held := save(token(tag()))
	heldNext := rotate("token before a revocation by its holder", held.Hash, at, false, nil)
	if err := r.tokens.RevokeFamilyOf(ctx, held.Hash, at); err != nil {
		t.Fatalf("RevokeFamilyOf: %v", err)
	}
	rotate("the family's live token after RevokeFamilyOf", heldNext.Hash, at, false, domain.ErrUnauthenticated)
	if err := r.tokens.RevokeFamilyOf(ctx, "no-such-hash-"+tag(), at); err != nil {
		t.Fatalf("RevokeFamilyOf(unknown): %v", err)
	}

	// Two presentations of one token at once: one rotates, one is a reuse.
	raced := save(token(tag()))
	var wg sync.WaitGroup
	var reusedCount, okCount int
	var mu sync.Mutex
	for range 2 {
		wg.Go(func() {
			_, reused, err := r.tokens.Rotate(ctx, raced.Hash, next(), at)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && !reused:
				okCount++
			case reused && errors.Is(err, domain.ErrUnauthenticated):
				reusedCount++
			default:
				t.Errorf("concurrent Rotate: reused %v, %v", reused, err)
			}
		})
	}
	wg.Wait()
	if okCount != 1 || reusedCount != 1 {
		t.Errorf("concurrent rotations: %d rotated, %d reuses; want 1 and 1", okCount, reusedCount)
	}

	// Deleting the user deletes its tokens.
	orphan := save(token(tag()))
	if _, err := r.users.Delete(ctx, u.ID(), domain.Operator(), nil); err != nil {
		t.Fatal(err)
	}
	rotate("token of a deleted user", orphan.Hash, at, false, domain.ErrUnauthenticated)
}

// testSignUpActor: a sign-up (the Newcomer actor) is recorded as the new
// user creating themselves, never as the command-line operator (actor 0).
func testSignUpActor(t *testing.T, r repos) {
	u, err := r.users.Create(t.Context(), newUser(t, params(tag(), 1), now()), domain.Newcomer())
	if err != nil {
		t.Fatal(err)
	}
	cs := auditOf(t, r, u.ID())
	if len(cs) != 1 || cs[0].Action != domain.ActionCreated || cs[0].ActorID != u.ID() {
		t.Fatalf("sign-up entry %+v, want one created entry with actor %d", cs, u.ID())
	}
}
