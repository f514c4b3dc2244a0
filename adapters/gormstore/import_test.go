package gormstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userservice/userservice/adapters/gormstore"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
	"github.com/userservice/userservice/tests/testdb"
)

// onEachImportBackend runs test on a migrated SQLite and PostgreSQL store.
func onEachImportBackend(t *testing.T, test func(t *testing.T, s *gormstore.Store)) {
	t.Helper()
	for name, url := range map[string]func(*testing.T) string{
		"sqlite":   sqliteURL,
		"postgres": func(t *testing.T) string { return testdb.PostgresURL(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, migrated(t, url(t)))
		})
	}
}

var importNow = time.Date(2025, 4, 5, 6, 7, 8, 123456000, time.UTC)

// importUser is a valid new user; id 0 is drawn.
func importUser(t *testing.T, id int64, email string) *domain.User {
	t.Helper()
	u, err := domain.NewUser(domain.NewUserParams{
		ID: id, FirstName: "Zoë", LastName: "Ødegaard", Email: email, Gender: "Genderfluid", IPAddress: "2001:db8::7",
	}, importNow)
	if err != nil {
		t.Fatal(err)
	}
	u.SetInitialPassword("$2b$10$0123456789012345678901uvwxyzABCDEFGHIJKLMNOPQRSTUVWXY", false)
	return u
}

// leave is the merge of on_conflict=skip.
func leave(int, *domain.User) (*domain.User, error) { return nil, nil }

func beginImport(t *testing.T, s *gormstore.Store, atomic, dry bool) ports.ImportSession {
	t.Helper()
	sess, err := s.Importer().BeginImport(t.Context(), domain.Operator(), atomic, dry)
	if err != nil {
		t.Fatalf("BeginImport: %v", err)
	}
	t.Cleanup(func() {
		if err := sess.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return sess
}

func results(out []ports.ImportOutcome) []ports.ImportResult {
	r := make([]ports.ImportResult, len(out))
	for i, o := range out {
		r[i] = o.Result
	}
	return r
}

// changeLog returns every change-log entry as "action:target".
func changeLog(t *testing.T, s *gormstore.Store) []string {
	t.Helper()
	cs, err := s.ChangeLog().ChangesAfter(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s:%d", c.Action, c.TargetID))
	}
	return out
}

func countUsers(t *testing.T, s *gormstore.Store) int64 {
	t.Helper()
	n, _, err := s.Users().Count(t.Context(), domain.Filter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestImportInsertsKeepingFreeIDs(t *testing.T) {
	t.Parallel()
	onEachImportBackend(t, func(t *testing.T, s *gormstore.Store) {
		taken := create(t, s, 1) // id 1
		sess := beginImport(t, s, false, false)
		users := []*domain.User{
			importUser(t, 0, "drawn@example.com"),
			importUser(t, 1000, "kept@example.com"),
			importUser(t, taken.ID(), "collides@example.com"),
			importUser(t, 1000, "repeats@example.com"),
			importUser(t, 0, "ZOE1@example.com"), // the stored user's email
		}
		out, err := sess.Write(t.Context(), users, leave)
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
		want := []ports.ImportResult{ports.ImportInserted, ports.ImportInserted, ports.ImportInserted, ports.ImportInserted, ports.ImportUnchanged}
		if got := results(out); !slices.Equal(got, want) {
			t.Fatalf("results %v, want %v", got, want)
		}
		if out[1].User.ID() != 1000 {
			t.Errorf("free id not kept: %d", out[1].User.ID())
		}
		ids := map[int64]bool{taken.ID(): true}
		for _, o := range out[:4] {
			if id := o.User.ID(); id == 0 || ids[id] {
				t.Errorf("id %d of %s is zero or repeated", id, o.User.Email())
			}
			ids[o.User.ID()] = true
		}
		if out[4].User.ID() != taken.ID() {
			t.Errorf("the unchanged outcome names user %d, want %d", out[4].User.ID(), taken.ID())
		}
		// What is returned is what is stored, password and times included.
		for _, o := range out[:4] {
			got, err := s.Users().Get(t.Context(), o.User.ID())
			if err != nil {
				t.Fatal(err)
			}
			if got.Stored() != o.User.Stored() {
				t.Errorf("stored %+v, returned %+v", got.Stored(), o.User.Stored())
			}
			if !got.CreatedAt().Equal(importNow) || !got.HasPassword() || got.IP().String() != "2001:db8::7" || got.Version() != 1 {
				t.Errorf("stored %+v", got.Stored())
			}
		}
		// Ids drawn later pass the explicit one.
		if next := create(t, s, 2); next.ID() <= 1000 {
			t.Errorf("a later user got id %d, not past the imported 1000", next.ID())
		}
		var wantLog []string
		wantLog = append(wantLog, fmt.Sprintf("created:%d", taken.ID()))
		for _, o := range out[:4] {
			wantLog = append(wantLog, fmt.Sprintf("created:%d", o.User.ID()))
		}
		if got := changeLog(t, s); !slices.Equal(got[:5], wantLog) {
			t.Errorf("change log %q, want %q then the later create", got, wantLog)
		}
	})
}

func TestImportMergesRowsWhoseEmailIsStored(t *testing.T) {
	t.Parallel()
	onEachImportBackend(t, func(t *testing.T, s *gormstore.Store) {
		a, b, c := create(t, s, 1), create(t, s, 2), create(t, s, 3)
		sess := beginImport(t, s, false, false)
		users := []*domain.User{
			importUser(t, 0, "zoe1@example.com"),
			importUser(t, 0, "zoe2@example.com"),
			importUser(t, 0, "zoe3@example.com"),
			importUser(t, 0, "new@example.com"),
		}
		var asked []int64
		out, err := sess.Write(t.Context(), users, func(i int, stored *domain.User) (*domain.User, error) {
			asked = append(asked, stored.ID())
			switch stored.ID() {
			case a.ID():
				after := stored.Clone()
				name := "Renamed"
				if err := after.ApplyProfile(domain.ProfilePatch{FirstName: &name}, importNow); err != nil {
					return nil, err
				}
				return after, nil
			case b.ID():
				return nil, domain.ErrEmailTaken
			}
			return nil, nil
		})
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
		want := []ports.ImportResult{ports.ImportUpdated, ports.ImportRejected, ports.ImportUnchanged, ports.ImportInserted}
		if got := results(out); !slices.Equal(got, want) {
			t.Fatalf("results %v, want %v", got, want)
		}
		if !errors.Is(out[1].Err, domain.ErrEmailTaken) {
			t.Errorf("rejection %v", out[1].Err)
		}
		slices.Sort(asked)
		if !slices.Equal(asked, []int64{a.ID(), b.ID(), c.ID()}) {
			t.Errorf("merge asked about %v", asked)
		}
		got, err := s.Users().Get(t.Context(), a.ID())
		if err != nil {
			t.Fatal(err)
		}
		// A merge is a visible write: the next version, as any update.
		if got.FirstName() != "Renamed" || !got.UpdatedAt().Equal(importNow) || got.Stored() != out[0].User.Stored() ||
			got.Version() != a.Version()+1 {
			t.Errorf("updated user %+v, outcome %+v", got.Stored(), out[0].User.Stored())
		}
		if got, _ := s.Users().Get(t.Context(), b.ID()); got.Stored() != b.Stored() {
			t.Errorf("rejected row changed its user: %+v", got.Stored())
		}
		entries, err := s.ChangeLog().ChangesAfter(t.Context(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		last := entries[len(entries)-2:]
		if last[0].Action != domain.ActionUpdated || last[0].TargetID != a.ID() || last[0].Before.FirstName() != "Zoë" ||
			last[0].After.FirstName() != "Renamed" || last[1].Action != domain.ActionCreated || last[1].TargetID != out[3].User.ID() {
			t.Errorf("change log ends with %+v, %+v", last[0], last[1])
		}
	})
}

func TestAnImportBatchIsAllOrNothing(t *testing.T) {
	t.Parallel()
	onEachImportBackend(t, func(t *testing.T, s *gormstore.Store) {
		create(t, s, 1)
		before := changeLog(t, s)
		sess := beginImport(t, s, false, false)
		users := []*domain.User{importUser(t, 0, "a@example.com"), importUser(t, 0, "zoe1@example.com"), importUser(t, 0, "b@example.com")}
		boom := errors.New("boom")
		_, err := sess.Write(t.Context(), users, func(int, *domain.User) (*domain.User, error) { return nil, boom })
		if !errors.Is(err, boom) {
			t.Fatalf("Write = %v, want the merge's internal error", err)
		}
		if n := countUsers(t, s); n != 1 {
			t.Errorf("%d users after a failed batch, want 1", n)
		}
		if got := changeLog(t, s); !slices.Equal(got, before) {
			t.Errorf("change log %q after a failed batch", got)
		}
		// The session goes on with the next batch.
		out, err := sess.Write(t.Context(), users[:1], leave)
		if err != nil || out[0].Result != ports.ImportInserted {
			t.Fatalf("next batch: %v, %v", results(out), err)
		}
	})
}

func TestACancelledImportLeavesNoPartialUser(t *testing.T) {
	t.Parallel()
	onEachImportBackend(t, func(t *testing.T, s *gormstore.Store) {
		create(t, s, 1)
		before := changeLog(t, s)
		ctx, cancel := context.WithCancel(t.Context())
		sess, err := s.Importer().BeginImport(ctx, domain.Operator(), false, false)
		if err != nil {
			t.Fatal(err)
		}
		users := []*domain.User{importUser(t, 0, "a@example.com"), importUser(t, 0, "zoe1@example.com"), importUser(t, 0, "b@example.com")}
		// Cancelled mid-batch: after the insert, before the change log.
		_, err = sess.Write(ctx, users, func(int, *domain.User) (*domain.User, error) {
			cancel()
			return nil, nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Write = %v, want context.Canceled", err)
		}
		if err := sess.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if n := countUsers(t, s); n != 1 {
			t.Errorf("%d users after a cancelled batch, want 1", n)
		}
		if got := changeLog(t, s); !slices.Equal(got, before) {
			t.Errorf("change log %q after a cancelled batch", got)
		}
		// The store still works, and a re-run converges.
		sess = beginImport(t, s, false, false)
		out, err := sess.Write(t.Context(), users, leave)
		if err != nil {
			t.Fatal(err)
		}
		if got := results(out); !slices.Equal(got, []ports.ImportResult{ports.ImportInserted, ports.ImportUnchanged, ports.ImportInserted}) {
			t.Errorf("re-run results %v", got)
		}
	})
}

func TestAnAtomicImportWritesOnlyOnCommit(t *testing.T) {
	t.Parallel()
	onEachImportBackend(t, func(t *testing.T, s *gormstore.Store) {
		before := changeLog(t, s)
		for _, commit := range []bool{false, true} {
			sess := beginImport(t, s, true, false)
			for i := range 3 {
				users := []*domain.User{importUser(t, 0, fmt.Sprintf("a%d@example.com", i)), importUser(t, int64(1000+10*i), fmt.Sprintf("b%d@example.com", i))}
				if _, err := sess.Write(t.Context(), users, leave); err != nil {
					t.Fatalf("Write %d: %v", i, err)
				}
			}
			if commit {
				if err := sess.Commit(t.Context()); err != nil {
					t.Fatalf("Commit: %v", err)
				}
			}
			if err := sess.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			want := int64(0)
			if commit {
				want = 6
			}
			if n := countUsers(t, s); n != want {
				t.Errorf("commit=%v: %d users, want %d", commit, n, want)
			}
		}
		got := changeLog(t, s)
		if len(got) != len(before)+6 {
			t.Fatalf("change log %q: want six entries of the committed import", got)
		}
		for i, e := range got[len(before):] {
			id := []int64{0, 1000, 0, 1010, 0, 1020}[i]
			if id != 0 && e != fmt.Sprintf("created:%d", id) {
				t.Errorf("entry %d = %s, want created:%d (file order)", i, e, id)
			}
		}
	})
}

func TestADryRunImportWritesNothing(t *testing.T) {
	t.Parallel()
	onEachImportBackend(t, func(t *testing.T, s *gormstore.Store) {
		a := create(t, s, 1)
		before := changeLog(t, s)
		sess := beginImport(t, s, false, true)
		users := []*domain.User{importUser(t, 0, "new@example.com"), importUser(t, 0, "zoe1@example.com")}
		out, err := sess.Write(t.Context(), users, func(_ int, stored *domain.User) (*domain.User, error) {
			after := stored.Clone()
			name := "Renamed"
			return after, after.ApplyProfile(domain.ProfilePatch{FirstName: &name}, importNow)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := results(out); !slices.Equal(got, []ports.ImportResult{ports.ImportInserted, ports.ImportUpdated}) {
			t.Errorf("results %v", got)
		}
		if n := countUsers(t, s); n != 1 {
			t.Errorf("%d users", n)
		}
		if got, _ := s.Users().Get(t.Context(), a.ID()); got.FirstName() != "Zoë" {
			t.Errorf("a dry run updated the user: %+v", got.Stored())
		}
		if got := changeLog(t, s); !slices.Equal(got, before) {
			t.Errorf("change log %q", got)
		}
	})
}

func TestImportLargeBatches(t *testing.T) {
	t.Parallel()
	onEachImportBackend(t, func(t *testing.T, s *gormstore.Store) {
		sess := beginImport(t, s, false, false)
		for b := range 2 {
			users := make([]*domain.User, 1234)
			for i := range users {
				users[i] = importUser(t, 0, fmt.Sprintf("u%d-%d@example.com", b, i))
			}
			out, err := sess.Write(t.Context(), users, leave)
			if err != nil {
				t.Fatal(err)
			}
			for i, o := range out {
				if o.Result != ports.ImportInserted || o.User.Email() != users[i].Email() {
					t.Fatalf("outcome %d: %+v", i, o)
				}
			}
		}
		if n := countUsers(t, s); n != 2468 {
			t.Errorf("%d users", n)
		}
		if n := len(changeLog(t, s)); n != 2468 {
			t.Errorf("%d change-log entries", n)
		}
	})
}

// TestImportWritesConcurrently: a session that is not atomic takes
// Writers() batches at once (two connections on PostgreSQL); batches
// written at once, and a creation beside them, get distinct ids and
// their change-log entries, and the session closes cleanly.
func TestImportWritesConcurrently(t *testing.T) {
	t.Parallel()
	onEachImportBackend(t, func(t *testing.T, s *gormstore.Store) {
		sess := beginImport(t, s, false, false)
		const batches, size = 6, 50
		outs := make([][]ports.ImportOutcome, batches)
		errs := make([]error, batches)
		var wg sync.WaitGroup
		slots := make(chan struct{}, sess.Writers())
		for b := range batches {
			wg.Go(func() {
				slots <- struct{}{}
				defer func() { <-slots }()
				users := make([]*domain.User, size)
				for i := range users {
					users[i] = importUser(t, 0, fmt.Sprintf("b%d.u%d@example.com", b, i))
				}
				outs[b], errs[b] = sess.Write(t.Context(), users, leave)
			})
		}
		extra := newUser(t, 1)
		var createErr error
		wg.Go(func() { _, createErr = s.Users().Create(t.Context(), extra, domain.Operator()) })
		wg.Wait()
		if createErr != nil {
			t.Fatalf("Create beside the import: %v", createErr)
		}
		ids := map[int64]bool{}
		for b := range batches {
			if errs[b] != nil {
				t.Fatalf("Write %d: %v", b, errs[b])
			}
			for _, o := range outs[b] {
				if o.Result != ports.ImportInserted || ids[o.User.ID()] {
					t.Fatalf("batch %d: %v, id %d (repeated: %v)", b, o.Result, o.User.ID(), ids[o.User.ID()])
				}
				ids[o.User.ID()] = true
			}
		}
		if n := countUsers(t, s); n != batches*size+1 {
			t.Errorf("%d users, want %d", n, batches*size+1)
		}
		created := 0
		for _, c := range changeLog(t, s) {
			if strings.HasPrefix(c, "created:") {
				created++
			}
		}
		if created != batches*size+1 {
			t.Errorf("%d created entries, want %d", created, batches*size+1)
		}
		if s.Dialect() == "postgres" && sess.Writers() < 2 {
			t.Errorf("a PostgreSQL session writes %d batches at once", sess.Writers())
		}
		atomic, err := s.Importer().BeginImport(t.Context(), domain.Operator(), true, false)
		if err != nil {
			t.Fatal(err)
		}
		if n := atomic.Writers(); n != 1 {
			t.Errorf("an atomic session writes %d batches at once, want 1", n)
		}
		if err := atomic.Close(); err != nil {
			t.Error(err)
		}
	})
}
