package application

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// fakeRow is one row of a fakeDecoder's file.
type fakeRow struct {
	p         domain.NewUserParams
	roleGiven bool
	hash      string
	errs      []domain.FieldError // problems the decoder found itself
}

// fakeDecoder "reads" any file as rows, validating them as the CSV adapter
// does (domain.NewUser), on line 2 onwards.
type fakeDecoder struct {
	header  []string
	unknown []string
	rows    []fakeRow
	err     error // Decode's answer
	readErr error // Next's answer after the rows
	decoded bool
}

func (d *fakeDecoder) Decode(_ io.Reader, now time.Time) (ports.ImportRows, error) {
	d.decoded = true
	if d.err != nil {
		return nil, d.err
	}
	return &fakeRows{d: d, now: now}, nil
}

type fakeRows struct {
	d   *fakeDecoder
	now time.Time
	i   int
}

func (r *fakeRows) Header() []string  { return r.d.header }
func (r *fakeRows) Unknown() []string { return r.d.unknown }

func (r *fakeRows) Next() (ports.ImportRow, error) {
	if r.i == len(r.d.rows) {
		if r.d.readErr != nil {
			return ports.ImportRow{}, r.d.readErr
		}
		return ports.ImportRow{}, io.EOF
	}
	f := r.d.rows[r.i]
	r.i++
	row := ports.ImportRow{Line: r.i + 1, Cells: []string{f.p.Email}, RoleGiven: f.roleGiven, PasswordHash: f.hash, Errors: f.errs}
	if len(f.errs) > 0 {
		return row, nil
	}
	u, err := domain.NewUser(f.p, r.now)
	if err != nil {
		row.Errors = domain.AsError(err).Fields
		return row, nil
	}
	row.User = u
	return row, nil
}

// fakeFormats accepts hashes starting "hash:" (fakeHasher's) or "$2b$".
type fakeFormats struct{}

func (fakeFormats) Supports(h string) bool {
	return strings.HasPrefix(h, "hash:") || strings.HasPrefix(h, "$2b$")
}

var errBoom = errors.New("boom")

// spyImporter is the real importer (the test repository's) seen through a
// session that records how it is used, and lets a test fail a chosen Write,
// slow Writes down, or run more of them at once than SQLite's one.
type spyImporter struct {
	ports.UserImporter
	mu     sync.Mutex
	writes int
	failAt int // the Write call that fails with errBoom; 0: none
	begun  []string
	closed int
	// writers is what a session that is not atomic answers to Writers
	// (0: the real session's answer).
	writers int
	// slow, when set, runs at the start of every Write, outside any lock:
	// a test makes chosen batches take longer than later ones.
	slow func(users []*domain.User)
}

func (m *spyImporter) BeginImport(ctx context.Context, actor domain.Actor, atomic, dryRun bool) (ports.ImportSession, error) {
	m.mu.Lock()
	m.begun = append(m.begun, fmt.Sprintf("actor=%d atomic=%v dry=%v", actor.ID, atomic, dryRun))
	m.mu.Unlock()
	s, err := m.UserImporter.BeginImport(ctx, actor, atomic, dryRun)
	if err != nil {
		return nil, err
	}
	return &spySession{ImportSession: s, m: m, atomic: atomic}, nil
}

type spySession struct {
	ports.ImportSession
	m      *spyImporter
	atomic bool
}

func (s *spySession) Writers() int {
	if s.atomic || s.m.writers == 0 {
		return s.ImportSession.Writers()
	}
	return s.m.writers
}

func (s *spySession) Write(ctx context.Context, users []*domain.User, merge ports.ImportMerge) ([]ports.ImportOutcome, error) {
	if s.m.slow != nil {
		s.m.slow(users)
	}
	s.m.mu.Lock()
	s.m.writes++
	fail := s.m.writes == s.m.failAt
	s.m.mu.Unlock()
	if fail {
		return nil, errBoom
	}
	return s.ImportSession.Write(ctx, users, merge)
}

func (s *spySession) Close() error {
	s.m.mu.Lock()
	s.m.closed++
	s.m.mu.Unlock()
	return s.ImportSession.Close()
}

// importFixture is the import use case over fakes, seeded with a
// superadmin (id 1) and a plain user user2@example.com (id 2).
type importFixture struct {
	*fixture
	imp     *spyImporter
	dec     *fakeDecoder
	uc      *Import
	super   domain.Actor
	stored2 domain.StoredUser
}

func newImportFixture(t *testing.T, rows ...fakeRow) *importFixture {
	t.Helper()
	f := newFixture(t)
	f.authz.set(shippedPolicy)
	super := actorOf(f.seed(t, 1, domain.RoleSuperadmin, "secret-one"))
	f.seed(t, 2, domain.RoleUser, "secret-two")
	imp := &spyImporter{UserImporter: f.repo.store.Importer()}
	dec := &fakeDecoder{header: []string{"email"}, rows: rows}
	uc := NewImport(Deps{Importer: imp, Decoder: dec, HashFormats: fakeFormats{}, Hasher: f.hasher, Authz: f.authz, Clock: fixedClock{testNow}})
	return &importFixture{fixture: f, imp: imp, dec: dec, uc: uc, super: super, stored2: f.repo.stored(t, 2)}
}

func person(email string) fakeRow {
	return fakeRow{p: domain.NewUserParams{FirstName: "Zoë", LastName: "Ødegaard", Email: email, Gender: "female", IPAddress: "10.1.2.3"}}
}

func (r fakeRow) withID(id int64) fakeRow   { r.p.ID = id; return r }
func (r fakeRow) withHash(h string) fakeRow { r.hash = h; return r }
func (r fakeRow) withName(n string) fakeRow { r.p.FirstName = n; return r }
func (r fakeRow) withRole(role domain.Role) fakeRow {
	r.p.Role, r.roleGiven = role, true
	return r
}

func (f *importFixture) run(t *testing.T, opts ports.ImportOptions) ports.ImportReport {
	t.Helper()
	rep, err := f.uc.Import(context.Background(), f.super, strings.NewReader("ignored"), opts)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	return rep
}

func (f *importFixture) byEmail(t *testing.T, email string) (domain.StoredUser, bool) {
	t.Helper()
	return f.repo.byEmail(t, email)
}

// counts renders a report's figures for comparison.
func counts(r ports.ImportReport) string {
	return fmt.Sprintf("total=%d imported=%d updated=%d skipped=%d failed=%d rejected=%v dry=%v",
		r.TotalRows, r.Imported, r.Updated, r.Skipped, r.Failed, r.Rejected, r.DryRun)
}

func lineFields(r ports.ImportReport) []string {
	var out []string
	for _, e := range r.Errors {
		out = append(out, fmt.Sprintf("%d:%s", e.Line, e.Field))
	}
	return out
}

func TestImportIsForThoseThePolicyAllows(t *testing.T) {
	t.Parallel()
	f := newImportFixture(t, person("a@example.com"))
	admin := actorOf(f.seed(t, 3, domain.RoleAdmin, "pw"))
	forced := f.super
	forced.PasswordChangeRequired = true
	for name, c := range map[string]struct {
		actor domain.Actor
		want  error
	}{
		"admin":                    {admin, domain.ErrForbidden},
		"password change required": {forced, domain.ErrPasswordChange},
	} {
		_, err := f.uc.Import(context.Background(), c.actor, strings.NewReader(""), ports.ImportOptions{})
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Import = %v, want %v", name, err, c.want)
		}
	}
	if f.dec.decoded || len(f.imp.begun) > 0 {
		t.Error("a refused import read the file or began writing")
	}
	calls := f.authz.recorded()
	if len(calls) != 1 || calls[0].Permission != domain.PermUsersImport || calls[0].Target != nil {
		t.Errorf("authorizer asked %+v, want one users.import question with no target", calls)
	}
	rep, err := f.uc.Import(context.Background(), domain.Operator(), strings.NewReader(""), ports.ImportOptions{})
	if err != nil || rep.Imported != 1 {
		t.Errorf("operator: %s, %v", counts(rep), err)
	}
	if f.imp.begun[0] != "actor=0 atomic=false dry=false" {
		t.Errorf("session begun with %q", f.imp.begun[0])
	}
}

func TestImportRefusesBadOptionsAndUnusableFiles(t *testing.T) {
	t.Parallel()
	f := newImportFixture(t)
	for _, opts := range []ports.ImportOptions{{OnConflict: "merge"}, {DefaultPassword: "short"}} {
		_, err := f.uc.Import(context.Background(), f.super, strings.NewReader(""), opts)
		if domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("%+v: Import = %v, want KindInvalid", opts, err)
		}
	}
	f.dec.err = &domain.Error{Kind: domain.KindMalformed, Code: "malformed_csv", Message: "not CSV"}
	_, err := f.uc.Import(context.Background(), f.super, strings.NewReader(""), ports.ImportOptions{})
	if domain.KindOf(err) != domain.KindMalformed {
		t.Errorf("Import = %v, want KindMalformed", err)
	}
	if len(f.imp.begun) > 0 {
		t.Error("a session was begun for an unusable file")
	}
}

func TestImportGoodRowsAndPasswords(t *testing.T) {
	t.Parallel()
	f := newImportFixture(t,
		person("plain@example.com"),
		person("hashed@example.com").withHash("$2b$10$fromthefastapiservice"),
		person("kept@example.com").withID(40),
		person("collides@example.com").withID(2),
		person("admin@example.com").withRole(domain.RoleAdmin),
	)
	f.dec.unknown = []string{"nickname"}
	var progress []int
	rep := f.run(t, ports.ImportOptions{DefaultPassword: "change me now", Progress: func(n int) { progress = append(progress, n) }})
	if got, want := counts(rep), "total=5 imported=5 updated=0 skipped=0 failed=0 rejected=false dry=false"; got != want {
		t.Fatalf("report %s, want %s", got, want)
	}
	if got := lineFields(rep); !slices.Equal(got, []string{"1:nickname"}) {
		t.Errorf("errors %q, want the unknown column only", got)
	}
	if !slices.Equal(progress, []int{5}) {
		t.Errorf("progress %v", progress)
	}
	if f.hashes() != 1 {
		t.Errorf("%d hashes made, want the default password hashed once", f.hashes())
	}
	plain, _ := f.byEmail(t, "plain@example.com")
	if plain.PasswordHash != "hash:change me now" || !plain.MustChangePassword {
		t.Errorf("default-password user: hash %q, must change %v", plain.PasswordHash, plain.MustChangePassword)
	}
	hashed, _ := f.byEmail(t, "hashed@example.com")
	if hashed.PasswordHash != "$2b$10$fromthefastapiservice" || hashed.MustChangePassword {
		t.Errorf("hashed user: hash %q, must change %v", hashed.PasswordHash, hashed.MustChangePassword)
	}
	if kept, _ := f.byEmail(t, "kept@example.com"); kept.ID != 40 {
		t.Errorf("free id not kept: %d", kept.ID)
	}
	if c, _ := f.byEmail(t, "collides@example.com"); c.ID == 2 || c.ID == 0 {
		t.Errorf("taken id 2 reused or not assigned: %d", c.ID)
	}
	if a, _ := f.byEmail(t, "admin@example.com"); a.Role != "admin" {
		t.Errorf("role column ignored: %q", a.Role)
	}
}

func TestImportWithoutDefaultPasswordLeavesNoUsablePassword(t *testing.T) {
	t.Parallel()
	f := newImportFixture(t, person("nopw@example.com"))
	f.run(t, ports.ImportOptions{})
	s, _ := f.byEmail(t, "nopw@example.com")
	if s.PasswordHash != "" || s.MustChangePassword || f.hashes() != 0 {
		t.Errorf("hash %q, must change %v, %d hashes", s.PasswordHash, s.MustChangePassword, f.hashes())
	}
}

func TestImportReportsEveryBadRowWithItsLineAndField(t *testing.T) {
	t.Parallel()
	f := newImportFixture(t,
		person("ok@example.com"),
		fakeRow{errs: []domain.FieldError{{Field: "row", Message: "has 3 fields; the header has 5"}}},
		person("bad-gender@example.com").withName("X1"),
		person("badhash@example.com").withHash("md5:abc"),
		person("OK@example.com"), // a duplicate of line 2, in another case
		person("ok2@example.com"),
	)
	var rejected []ports.RejectedRow
	rep := f.run(t, ports.ImportOptions{Rejected: func(r ports.RejectedRow) { rejected = append(rejected, r) }})
	if got, want := counts(rep), "total=6 imported=2 updated=0 skipped=0 failed=4 rejected=false dry=false"; got != want {
		t.Fatalf("report %s, want %s", got, want)
	}
	want := []string{"3:row", "4:first_name", "5:password_hash", "6:email"}
	if got := lineFields(rep); !slices.Equal(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}
	if msg := rep.Errors[3].Message; !strings.Contains(msg, "line 2") {
		t.Errorf("duplicate message %q does not name the first line", msg)
	}
	var lines []int
	for _, r := range rejected {
		lines = append(lines, r.Line)
		if len(r.Errors) == 0 || !slices.Equal(r.Header, []string{"email"}) {
			t.Errorf("rejected row %+v", r)
		}
	}
	if !slices.Equal(lines, []int{3, 4, 5, 6}) {
		t.Errorf("rejected lines %v", lines)
	}
	if _, ok := f.byEmail(t, "ok@example.com"); !ok {
		t.Error("the first of two duplicates was not imported")
	}
}

func TestImportRoleColumnIsHonouredOnlyWithinWhatTheActorMayGrant(t *testing.T) {
	t.Parallel()
	f := newImportFixture(t,
		person("u@example.com").withRole(domain.RoleUser),
		person("a1@example.com").withRole(domain.RoleAdmin),
		person("a2@example.com").withRole(domain.RoleAdmin),
		person("s@example.com").withRole(domain.RoleSuperadmin),
		person("none@example.com"),
	)
	// A policy that lets admins import, and create plain users only.
	admin := actorOf(f.seed(t, 3, domain.RoleAdmin, "pw"))
	f.authz.set(func(req ports.AuthzRequest) error {
		if req.Permission == domain.PermUsersImport || req.Permission == domain.PermUsersCreate && req.NewRole == domain.RoleUser {
			return nil
		}
		return domain.ErrForbidden
	})
	rep, err := f.uc.Import(context.Background(), admin, strings.NewReader(""), ports.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := lineFields(rep), []string{"3:role", "4:role", "5:role"}; !slices.Equal(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}
	if rep.Imported != 2 {
		t.Errorf("%s", counts(rep))
	}
	var asked []string
	for _, c := range f.authz.recorded() {
		asked = append(asked, string(c.Permission)+"/"+c.NewRole.String())
	}
	if want := []string{"users.import/", "users.create/user", "users.create/admin", "users.create/superadmin"}; !slices.Equal(asked, want) {
		t.Errorf("asked %q, want each distinct role once: %q", asked, want)
	}
}

func TestImportConflictsWithStoredUsersUnderEachRule(t *testing.T) {
	t.Parallel()
	rows := func() []fakeRow {
		return []fakeRow{
			person("new@example.com"),
			person("user2@example.com").withName("Renamed").withHash("$2b$10$newhash"),
		}
	}
	t.Run("skip", func(t *testing.T) {
		t.Parallel()
		f := newImportFixture(t, rows()...)
		rep := f.run(t, ports.ImportOptions{OnConflict: "skip"})
		if got, want := counts(rep), "total=2 imported=1 updated=0 skipped=1 failed=0 rejected=false dry=false"; got != want {
			t.Errorf("report %s, want %s", got, want)
		}
		if got := f.repo.stored(t, 2); got != f.stored2 {
			t.Errorf("skipped user changed: %+v", got)
		}
	})
	t.Run("update", func(t *testing.T) {
		t.Parallel()
		f := newImportFixture(t, append(rows(),
			person("user1@example.com").withRole(domain.RoleUser), // the importing superadmin: nobody changes their own role
			person("user2@example.com").withName("Again"),         // a duplicate in the file: the first wins
		)...)
		rep := f.run(t, ports.ImportOptions{OnConflict: "update", DefaultPassword: "default pw"})
		if got, want := counts(rep), "total=4 imported=1 updated=1 skipped=0 failed=2 rejected=false dry=false"; got != want {
			t.Errorf("report %s, want %s", got, want)
		}
		if got, want := lineFields(rep), []string{"4:permission", "5:email"}; !slices.Equal(got, want) {
			t.Errorf("errors %q, want %q", got, want)
		}
		got := f.repo.stored(t, 2)
		if got.FirstName != "Renamed" || got.PasswordHash != "$2b$10$newhash" || got.MustChangePassword ||
			got.TokenVersion != f.stored2.TokenVersion+1 || got.IPAddress != "10.1.2.3" || !got.CreatedAt.Equal(f.stored2.CreatedAt) {
			t.Errorf("updated user %+v (was %+v)", got, f.stored2)
		}
		// Again, unchanged: an update that changes nothing is skipped.
		f2 := newImportFixture(t, person("user2@example.com").withName("Ann"))
		f2.run(t, ports.ImportOptions{OnConflict: "update"})
		rep = f2.run(t, ports.ImportOptions{OnConflict: "update"})
		if got, want := counts(rep), "total=1 imported=0 updated=0 skipped=1 failed=0 rejected=false dry=false"; got != want {
			t.Errorf("second identical update: report %s, want %s", got, want)
		}
	})
	t.Run("update keeps a stored password without a row hash", func(t *testing.T) {
		t.Parallel()
		f := newImportFixture(t, person("user2@example.com").withName("Renamed"))
		f.run(t, ports.ImportOptions{OnConflict: "update", DefaultPassword: "default pw"})
		got := f.repo.stored(t, 2)
		if got.PasswordHash != f.stored2.PasswordHash || got.MustChangePassword || got.FirstName != "Renamed" {
			t.Errorf("updated user %+v", got)
		}
	})
	t.Run("update refuses an id of another user", func(t *testing.T) {
		t.Parallel()
		f := newImportFixture(t, person("user2@example.com").withID(1))
		rep := f.run(t, ports.ImportOptions{OnConflict: "update"})
		if got := lineFields(rep); !slices.Equal(got, []string{"2:id"}) {
			t.Errorf("errors %q", got)
		}
	})
	t.Run("fail", func(t *testing.T) {
		t.Parallel()
		f := newImportFixture(t, rows()...)
		var rejected []int
		rep := f.run(t, ports.ImportOptions{OnConflict: "fail", Rejected: func(r ports.RejectedRow) { rejected = append(rejected, r.Line) }})
		if got, want := counts(rep), "total=2 imported=0 updated=0 skipped=1 failed=1 rejected=true dry=false"; got != want {
			t.Errorf("report %s, want %s", got, want)
		}
		if got := lineFields(rep); !slices.Equal(got, []string{"3:email"}) {
			t.Errorf("errors %q", got)
		}
		if !slices.Equal(rejected, []int{3}) {
			t.Errorf("rejected %v", rejected)
		}
		if _, ok := f.byEmail(t, "new@example.com"); ok {
			t.Error("a rejected strict import wrote a user")
		}
		if f.imp.begun[0] != "actor=1 atomic=true dry=false" {
			t.Errorf("session %q", f.imp.begun[0])
		}
	})
}

func TestStrictImportIsAllOrNothingAcrossBatches(t *testing.T) {
	t.Parallel()
	var rows []fakeRow
	for i := range 7 {
		rows = append(rows, person(fmt.Sprintf("n%d@example.com", i)))
	}
	rows = append(rows, person("bad").withName("?"))
	f := newImportFixture(t, rows...)
	f.uc.batch = 3
	before := len(f.repo.recorded(t))
	rep := f.run(t, ports.ImportOptions{OnConflict: "fail"})
	if got, want := counts(rep), "total=8 imported=0 updated=0 skipped=7 failed=1 rejected=true dry=false"; got != want {
		t.Errorf("report %s, want %s", got, want)
	}
	if f.imp.writes != 3 {
		t.Errorf("%d writes, want 3 batches", f.imp.writes)
	}
	if n := len(f.repo.recorded(t)) - before; n != 0 || f.repo.count(t) != 2 {
		t.Errorf("%d changes, %d users after a rejected strict import", n, f.repo.count(t))
	}
	// Without the bad row it commits.
	f = newImportFixture(t, rows[:7]...)
	f.uc.batch = 3
	if got := counts(f.run(t, ports.ImportOptions{OnConflict: "fail"})); got != "total=7 imported=7 updated=0 skipped=0 failed=0 rejected=false dry=false" {
		t.Errorf("report %s", got)
	}
	if f.repo.count(t) != 9 {
		t.Errorf("%d users", f.repo.count(t))
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	for _, rule := range []string{"skip", "update", "fail"} {
		t.Run(rule, func(t *testing.T) {
			t.Parallel()
			f := newImportFixture(t, person("new@example.com"), person("user2@example.com").withName("Renamed"))
			before := f.repo.recorded(t)
			rep := f.run(t, ports.ImportOptions{OnConflict: rule, DryRun: true, DefaultPassword: "default pw"})
			want := map[string]string{
				"skip":   "total=2 imported=1 updated=0 skipped=1 failed=0 rejected=false dry=true",
				"update": "total=2 imported=1 updated=1 skipped=0 failed=0 rejected=false dry=true",
				"fail":   "total=2 imported=0 updated=0 skipped=1 failed=1 rejected=true dry=true",
			}[rule]
			if got := counts(rep); got != want {
				t.Errorf("report %s, want %s", got, want)
			}
			if len(f.repo.recorded(t)) != len(before) || f.repo.count(t) != 2 || f.repo.stored(t, 2) != f.stored2 {
				t.Error("a dry run wrote")
			}
			if f.hashes() != 0 {
				t.Error("a dry run hashed the default password")
			}
			if !strings.HasSuffix(f.imp.begun[0], "atomic=false dry=true") {
				t.Errorf("session %q", f.imp.begun[0])
			}
		})
	}
}

func TestImportStopsAtAStorageOrReadErrorKeepingCommittedBatches(t *testing.T) {
	t.Parallel()
	var rows []fakeRow
	for i := range 10 {
		rows = append(rows, person(fmt.Sprintf("n%d@example.com", i)))
	}
	f := newImportFixture(t, rows...)
	f.uc.batch = 3
	f.imp.failAt = 2
	rep, err := f.uc.Import(context.Background(), f.super, strings.NewReader(""), ports.ImportOptions{})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Import = %v, want the storage error", err)
	}
	if rep.Imported != 3 || f.repo.count(t) != 5 {
		t.Errorf("report %s with %d users: want the first batch kept", counts(rep), f.repo.count(t))
	}
	if f.imp.closed != 1 {
		t.Errorf("session closed %d times", f.imp.closed)
	}
	// A re-run with skip completes it.
	f.imp.failAt = 0
	rep = f.run(t, ports.ImportOptions{})
	if got := counts(rep); got != "total=10 imported=7 updated=0 skipped=3 failed=0 rejected=false dry=false" {
		t.Errorf("re-run: %s", got)
	}

	f = newImportFixture(t, rows...)
	f.dec.readErr = errBoom
	if _, err := f.uc.Import(context.Background(), f.super, strings.NewReader(""), ports.ImportOptions{}); !errors.Is(err, errBoom) {
		t.Errorf("Import = %v, want the read error", err)
	}
}

// TestConcurrentBatchesAreTalliedInFileOrder: with several writers and the
// first batch the slowest, the report, the rejected rows and the progress
// still come in file order, and the result is the one-writer result.
func TestConcurrentBatchesAreTalliedInFileOrder(t *testing.T) {
	t.Parallel()
	var rows []fakeRow
	for i := range 12 {
		r := person(fmt.Sprintf("n%d@example.com", i))
		if i%4 == 1 {
			r = r.withName("?") // invalid: rejected by the reader
		}
		rows = append(rows, r)
	}
	rows = append(rows, person("n0@example.com")) // a duplicate of line 2
	run := func(writers int) (ports.ImportReport, []int, []int, *importFixture) {
		f := newImportFixture(t, rows...)
		f.uc.batch = 3
		f.imp.writers = writers
		f.imp.slow = func(users []*domain.User) {
			if users[0].Email().String() == "n0@example.com" {
				time.Sleep(50 * time.Millisecond)
			}
		}
		var rejected, progress []int
		rep := f.run(t, ports.ImportOptions{
			Rejected: func(r ports.RejectedRow) { rejected = append(rejected, r.Line) },
			Progress: func(n int) { progress = append(progress, n) },
		})
		return rep, rejected, progress, f
	}
	one, oneRejected, oneProgress, f1 := run(1)
	many, manyRejected, manyProgress, f3 := run(3)
	if counts(one) != counts(many) || !slices.Equal(oneRejected, manyRejected) || !slices.Equal(oneProgress, manyProgress) {
		t.Errorf("3 writers: %s rejected %v progress %v; 1 writer: %s rejected %v progress %v",
			counts(many), manyRejected, manyProgress, counts(one), oneRejected, oneProgress)
	}
	if !slices.IsSorted(manyRejected) || !slices.IsSorted(manyProgress) || len(manyProgress) != 5 {
		t.Errorf("out of order: rejected %v, progress %v", manyRejected, manyProgress)
	}
	if !slices.EqualFunc(one.Errors, many.Errors, func(a, b ports.ImportError) bool { return a == b }) {
		t.Errorf("errors %v, want %v", many.Errors, one.Errors)
	}
	if f1.repo.count(t) != f3.repo.count(t) {
		t.Errorf("%d users with 3 writers, %d with 1", f3.repo.count(t), f1.repo.count(t))
	}
}

// TestConcurrentBatchesKeepAnIdForTheEarliestRow: a batch asking for ids
// is written alone, so an id asked for twice goes to the earlier row even
// when the batch before it is slow.
func TestConcurrentBatchesKeepAnIdForTheEarliestRow(t *testing.T) {
	t.Parallel()
	f := newImportFixture(t,
		person("a@example.com"), person("b@example.com").withID(50),
		person("c@example.com"), person("d@example.com"),
		person("e@example.com").withID(50), person("f@example.com"),
		person("g@example.com"), person("h@example.com"),
	)
	f.uc.batch = 2
	f.imp.writers = 3
	f.imp.slow = func(users []*domain.User) {
		if users[0].Email().String() == "a@example.com" {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got := counts(f.run(t, ports.ImportOptions{})); got != "total=8 imported=8 updated=0 skipped=0 failed=0 rejected=false dry=false" {
		t.Fatalf("report %s", got)
	}
	if u, ok := f.byEmail(t, "b@example.com"); !ok || u.ID != 50 {
		t.Errorf("b@example.com (the first row asking for id 50) is %+v", u)
	}
	if u, ok := f.byEmail(t, "e@example.com"); !ok || u.ID == 50 {
		t.Errorf("e@example.com (the second row asking for id 50) is %+v", u)
	}
}

// TestAtMostTwoImportsRunAtOnce: each import holds database connections
// for its whole length, so a third one waits for one of two running ones
// to end, and gives up when its context ends first.
func TestAtMostTwoImportsRunAtOnce(t *testing.T) {
	t.Parallel()
	f := newImportFixture(t)
	release := make(chan struct{})
	var mu sync.Mutex
	running, most := 0, 0
	f.imp.slow = func([]*domain.User) {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
	}
	imports := func(n int) *fakeDecoder {
		rows := make([]fakeRow, n)
		for i := range rows {
			rows[i] = person(fmt.Sprintf("p%d@example.com", i))
		}
		return &fakeDecoder{header: []string{"email"}, rows: rows}
	}
	var wg sync.WaitGroup
	for range 3 {
		uc := *f.uc // the same running-imports gate, a decoder of its own
		uc.decoder = imports(1)
		wg.Go(func() {
			if _, err := uc.Import(context.Background(), f.super, strings.NewReader(""), ports.ImportOptions{}); err != nil {
				t.Errorf("Import: %v", err)
			}
		})
	}
	// Two are writing; the third waits, and one whose context ends gives up.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := running
		mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	uc := *f.uc
	uc.decoder = imports(1)
	if _, err := uc.Import(ctx, f.super, strings.NewReader(""), ports.ImportOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("an import waiting past its deadline = %v", err)
	}
	close(release)
	wg.Wait()
	if most != 2 {
		t.Errorf("%d imports wrote at once, want 2", most)
	}
}
