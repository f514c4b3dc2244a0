package application

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"sync"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// importBatchSize is how many rows go to storage per write: large enough
// that a transaction's fixed cost (a round trip, a commit, a lock) vanishes
// per row, small enough that the batches in flight stay a few megabytes.
// Measured on a million rows into PostgreSQL: 2,000 rows took the time
// 5,000 did, with 10 MiB less heap.
const importBatchSize = 2000

// maxRunningImports is how many imports one instance runs at once; more
// wait their turn. Each holds up to Writers() database connections for its
// whole length, and requests need the rest of the pool.
const maxRunningImports = 2

// Import implements the CSV import use case (ports.ImportService).
type Import struct {
	importer ports.UserImporter
	decoder  ports.ImportDecoder
	formats  ports.PasswordHashFormats
	hasher   ports.PasswordHasher
	authz    ports.Authorizer
	clock    ports.Clock
	batch    int
	// running holds a token per import under way (maxRunningImports).
	running chan struct{}
}

var _ ports.ImportService = (*Import)(nil)

// NewImport returns the import use case. Missing dependencies are a wiring
// mistake and panic.
func NewImport(deps Deps) *Import {
	if deps.Importer == nil || deps.Decoder == nil || deps.HashFormats == nil || deps.Hasher == nil || deps.Authz == nil || deps.Clock == nil {
		panic("application.NewImport: Importer, Decoder, HashFormats, Hasher, Authz and Clock are required")
	}
	return &Import{
		importer: deps.Importer, decoder: deps.Decoder, formats: deps.HashFormats,
		hasher: deps.Hasher, authz: deps.Authz, clock: deps.Clock, batch: importBatchSize,
		running: make(chan struct{}, maxRunningImports),
	}
}

// conflictRule is what a row whose email is stored does.
type conflictRule int

const (
	conflictSkip conflictRule = iota
	conflictUpdate
	conflictFail
)

func parseConflictRule(s string) (conflictRule, error) {
	switch s {
	case "", "skip":
		return conflictSkip, nil
	case "update":
		return conflictUpdate, nil
	case "fail":
		return conflictFail, nil
	}
	var v domain.ValidationError
	v.Add("on_conflict", "must be one of skip, update, fail")
	return 0, v.Err()
}

// checkImportOptions validates an import's options, every problem at once.
func checkImportOptions(opts ports.ImportOptions) (conflictRule, error) {
	var v domain.ValidationError
	rule, err := parseConflictRule(opts.OnConflict)
	v.Check("on_conflict", err)
	if opts.DefaultPassword != "" {
		v.Check("default_password", domain.CheckPassword("default_password", opts.DefaultPassword))
	}
	return rule, v.Err()
}

// pendingRow is a row on its way through an import.
type pendingRow struct {
	line  int
	cells []string
	// user is the row ready to store; nil when it failed before storage.
	user        *domain.User
	roleGiven   bool
	hashFromRow bool // user's password hash came from the row
	errs        []ports.ImportError
}

// importRun is the state of one import.
type importRun struct {
	*Import
	actor   domain.Actor
	opts    ports.ImportOptions
	rule    conflictRule
	now     time.Time
	header  []string
	report  ports.ImportReport
	session ports.ImportSession
	// defaultHash is the hash of opts.DefaultPassword, made once.
	defaultHash string
}

// Import reads file and imports its users; see ports.ImportService.
//
// Reading and validating rows runs on one goroutine while batches are
// written on others (as many as the session writes at once), so parsing
// overlaps the database's work. Rows are checked in file order and the
// first row with an email wins: a later one fails as a duplicate. With
// on_conflict=fail every batch goes into one transaction, kept only if no
// row failed; otherwise each batch commits on its own, so an interrupted
// import keeps whole batches and a re-run with skip completes it. At most
// maxRunningImports imports run at once; another waits (as long as ctx
// lets it) before reading its file.
func (im *Import) Import(ctx context.Context, actor domain.Actor, file io.Reader, opts ports.ImportOptions) (ports.ImportReport, error) {
	run := &importRun{Import: im, actor: actor, opts: opts, report: ports.ImportReport{DryRun: opts.DryRun, Errors: []ports.ImportError{}}}
	if err := requireNoPasswordChange(actor); err != nil {
		return run.report, err
	}
	if err := authorize(ctx, im.authz, actor, domain.PermUsersImport, nil, domain.Role{}); err != nil {
		return run.report, err
	}
	rule, err := checkImportOptions(opts)
	if err != nil {
		return run.report, err
	}
	select {
	case im.running <- struct{}{}:
		defer func() { <-im.running }()
	case <-ctx.Done():
		return run.report, fmt.Errorf("import: waiting for a running import to end: %w", context.Cause(ctx))
	}
	run.rule, run.now = rule, im.clock.Now()

	rows, err := im.decoder.Decode(file, run.now)
	if err != nil {
		return run.report, fmt.Errorf("import: %w", err)
	}
	run.header = rows.Header()
	for _, name := range rows.Unknown() {
		run.report.Errors = append(run.report.Errors, ports.ImportError{Line: 1, Field: name, Message: "unknown column; ignored"})
	}
	if opts.DefaultPassword != "" && !opts.DryRun {
		if run.defaultHash, err = im.hasher.Hash(opts.DefaultPassword); err != nil {
			return run.report, fmt.Errorf("import: hash the default password: %w", err)
		}
	}
	run.session, err = im.importer.BeginImport(ctx, actor, rule == conflictFail && !opts.DryRun, opts.DryRun)
	if err != nil {
		return run.report, fmt.Errorf("import: %w", err)
	}
	defer run.session.Close()
	if err := run.pipeline(ctx, rows); err != nil {
		return run.report, fmt.Errorf("import: %w", err)
	}
	return run.finish(ctx)
}

// batchJob is one batch on its way from the reader, through a writer, to
// the tally.
type batchJob struct {
	rows []pendingRow
	done chan batchResult // buffered: a writer never waits for the tally
}

type batchResult struct {
	outcomes []ports.ImportOutcome
	err      error
}

// pipeline reads rows into batches on a goroutine, writes them on up to
// session.Writers() goroutines, and tallies them on the caller's in file
// order, so the report, the rejected rows and the progress come out in
// order whichever batch commits first. It returns only once every
// goroutine has stopped, so file is never read, nor the session used,
// after Import returns.
func (run *importRun) pipeline(ctx context.Context, rows ports.ImportRows) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	writers := max(run.session.Writers(), 1)
	jobs := make(chan *batchJob, writers)
	order := make(chan *batchJob, writers)
	var readErr error
	var written sync.WaitGroup // batches handed to writers and not yet written
	go func() {
		defer close(order)
		defer close(jobs)
		readErr = run.read(ctx, rows, func(b []pendingRow) error {
			j := &batchJob{rows: b, done: make(chan batchResult, 1)}
			written.Add(1)
			select {
			case jobs <- j:
			case <-ctx.Done():
				written.Done()
				return context.Cause(ctx)
			}
			// The tally reads order to its end and waits only for
			// batches a writer has, so this send waits for no longer
			// than a batch's write.
			order <- j
			return nil
		}, written.Wait)
	}()
	var workers sync.WaitGroup
	for range writers {
		workers.Go(func() {
			for j := range jobs {
				// After a failure no batch starts: the import stops at
				// the batches already under way.
				err := context.Cause(ctx)
				var outcomes []ports.ImportOutcome
				if err == nil {
					if outcomes, err = run.store(ctx, j.rows); err != nil {
						cancel(err)
					}
				}
				j.done <- batchResult{outcomes, err}
				written.Done()
			}
		})
	}
	// Every batch written is tallied, even after another failed, so that
	// the report counts what is stored; the first error is the answer.
	var writeErr error
	for j := range order {
		r := <-j.done
		err := r.err
		if err == nil {
			err = run.tally(j.rows, r.outcomes)
		}
		if err != nil && writeErr == nil {
			writeErr = err
			cancel(err)
		}
	}
	workers.Wait()
	// order is closed after readErr is set.
	if writeErr != nil {
		// A batch that failed because another one did is not the story:
		// the first failure, in time, is.
		if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
			return cause
		}
		return writeErr
	}
	return readErr
}

// read checks every row in file order and hands them to send in batches.
// Only rows that pass every check get a user to store. A batch with a row
// that asks for an id is written alone: drain waits for the batches before
// it, and the batches after it wait for it, so an id goes to the earliest
// row that asks for it, as when batches are written one by one.
func (run *importRun) read(ctx context.Context, rows ports.ImportRows, send func([]pendingRow) error, drain func()) error {
	seen := newEmailSet()
	grantable := map[domain.Role]error{}
	batch := make([]pendingRow, 0, run.batch)
	var hasID, afterID bool
	flush := func() error {
		if hasID || afterID {
			drain()
		}
		afterID, hasID = hasID, false
		err := send(batch)
		batch = make([]pendingRow, 0, run.batch)
		return err
	}
	for {
		row, err := rows.Next()
		if errors.Is(err, io.EOF) {
			if len(batch) == 0 {
				return nil
			}
			return flush()
		}
		if err != nil {
			return err
		}
		p, err := run.check(ctx, row, seen, grantable)
		if err != nil {
			return err
		}
		hasID = hasID || (p.user != nil && p.user.ID() != 0)
		if batch = append(batch, p); len(batch) == run.batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// check turns one row into a pendingRow, reporting every problem it has.
// Only an authorizer failure is an error.
func (run *importRun) check(ctx context.Context, row ports.ImportRow, seen *emailSet, grantable map[domain.Role]error) (pendingRow, error) {
	p := pendingRow{line: row.Line, cells: row.Cells}
	for _, e := range row.Errors {
		p.errs = append(p.errs, ports.ImportError{Line: row.Line, Field: e.Field, Message: e.Message})
	}
	if row.User != nil && row.RoleGiven {
		role := row.User.Role()
		err, asked := grantable[role]
		if !asked {
			err = authorizeWrite(ctx, run.authz, run.actor, nil, userWrite{perm: domain.PermUsersCreate, newRole: role})
			if err != nil && !errors.Is(err, domain.ErrForbidden) {
				return p, err
			}
			grantable[role] = err
		}
		if err != nil {
			p.errs = append(p.errs, ports.ImportError{Line: row.Line, Field: "role",
				Message: fmt.Sprintf("you may not create users with the role %s", role)})
		}
	}
	if row.PasswordHash != "" && !run.formats.Supports(row.PasswordHash) {
		p.errs = append(p.errs, ports.ImportError{Line: row.Line, Field: "password_hash",
			Message: "is not a bcrypt or argon2id (PHC string) hash within the accepted parameters"})
	}
	if len(p.errs) > 0 {
		return p, nil
	}
	if first, dup := seen.add(row.User.Email().String(), row.Line); dup {
		p.errs = append(p.errs, ports.ImportError{Line: row.Line, Field: "email",
			Message: fmt.Sprintf("repeats the email of line %d, which counts instead", first)})
		return p, nil
	}
	u := row.User
	switch {
	case row.PasswordHash != "":
		u.SetInitialPassword(row.PasswordHash, false)
		p.hashFromRow = true
	case run.defaultHash != "":
		u.SetInitialPassword(run.defaultHash, true)
	}
	p.user, p.roleGiven = u, row.RoleGiven
	return p, nil
}

// store writes the valid rows of b and returns their outcomes, in order.
// It runs on several goroutines at once: it changes nothing of run.
func (run *importRun) store(ctx context.Context, b []pendingRow) ([]ports.ImportOutcome, error) {
	var users []*domain.User
	var at []int // users[i] is b[at[i]]
	for i, p := range b {
		if p.user != nil {
			users = append(users, p.user)
			at = append(at, i)
		}
	}
	if len(users) == 0 {
		return nil, nil
	}
	outcomes, err := run.session.Write(ctx, users, func(i int, stored *domain.User) (*domain.User, error) {
		return run.merge(ctx, b[at[i]], stored)
	})
	if err != nil {
		return nil, err
	}
	if len(outcomes) != len(users) {
		return nil, fmt.Errorf("storage answered %d outcomes for %d users", len(outcomes), len(users))
	}
	return outcomes, nil
}

// tally counts every row of a written batch, in order.
func (run *importRun) tally(b []pendingRow, outcomes []ports.ImportOutcome) error {
	next := 0
	for _, p := range b {
		run.report.TotalRows++
		if p.user == nil {
			run.failed(p)
			continue
		}
		o := outcomes[next]
		next++
		switch o.Result {
		case ports.ImportInserted:
			run.report.Imported++
		case ports.ImportUpdated:
			run.report.Updated++
		case ports.ImportUnchanged:
			run.report.Skipped++
		case ports.ImportRejected:
			p.errs = rowErrors(p.line, o.Err)
			run.failed(p)
		default:
			return fmt.Errorf("storage answered outcome %d for line %d", o.Result, p.line)
		}
	}
	if run.opts.Progress != nil {
		run.opts.Progress(run.report.TotalRows)
	}
	if run.opts.Tally != nil {
		r := run.report
		run.opts.Tally(ports.ImportTally{Rows: r.TotalRows, Imported: r.Imported, Updated: r.Updated, Skipped: r.Skipped, Failed: r.Failed})
	}
	return nil
}

func (run *importRun) failed(p pendingRow) {
	run.report.Failed++
	if run.report.Failed <= ports.MaxReportedRows {
		run.report.Errors = append(run.report.Errors, p.errs...)
	} else {
		run.report.ErrorsTruncated = true
	}
	if run.opts.Rejected != nil {
		run.opts.Rejected(ports.RejectedRow{Line: p.line, Header: run.header, Cells: p.cells, Errors: p.errs})
	}
}

// merge applies the conflict rule to a row whose email is stored. An update
// is authorized against the stored user, locked, exactly as PUT
// /api/v1/users/{id} is: a row the actor could not send as that request is
// refused and writes nothing.
func (run *importRun) merge(ctx context.Context, p pendingRow, stored *domain.User) (*domain.User, error) {
	switch run.rule {
	case conflictSkip:
		return nil, nil
	case conflictFail:
		return nil, domain.ErrEmailTaken
	}
	row := p.user
	newHash := p.hashFromRow && row.PasswordHash() != stored.PasswordHash()
	write := userWrite{perm: domain.PermUsersUpdate, password: newHash}
	if p.roleGiven {
		write.newRole = row.Role()
	}
	if err := authorizeWrite(ctx, run.authz, run.actor, stored, write); err != nil {
		if !errors.Is(err, domain.ErrForbidden) {
			return nil, err
		}
		return nil, errMergeForbidden(err, "you may not make this change to the stored user with this email (PUT /api/v1/users/{id} would refuse it too)")
	}
	if newHash && run.actor.IsSelf(stored) {
		// PUT asks for the current password before one's own changes; a
		// file cannot give it.
		return nil, errMergeForbidden(domain.ErrPasswordRequired, "changing your own password needs current_password, which a file cannot give; PUT /api/v1/users/{id} takes it")
	}
	var v domain.ValidationError
	if row.ID() != 0 && row.ID() != stored.ID() {
		v.Add("id", fmt.Sprintf("is not the id of the stored user with this email (%d)", stored.ID()))
	}
	if p.roleGiven && row.Role() != stored.Role() {
		// Role changes have rules of their own (the last superadmin, no
		// change of one's own role, tokens revoked) and their own route.
		v.Add("role", fmt.Sprintf("differs from the stored user's (%s); an import changes no role, PATCH /api/v1/users/{id}/role does", stored.Role()))
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	after := stored.Clone()
	first, last, email, gender, ip := row.FirstName(), row.LastName(), row.Email().String(), row.Gender().String(), ""
	if row.IP().IsValid() {
		ip = row.IP().String()
	}
	err := after.ApplyProfile(domain.ProfilePatch{FirstName: &first, LastName: &last, Email: &email, Gender: &gender, IPAddress: &ip}, run.now)
	if err != nil {
		return nil, err
	}
	// Only a hash the row carries replaces a password: the default password
	// is for new users, never for someone who has one of their own.
	if newHash {
		after.SetPasswordHash(row.PasswordHash(), run.now)
	}
	if sameProfile(stored, after) {
		return nil, nil
	}
	return after, nil
}

// errMergeForbidden refuses a merge the actor may not make, reported under
// the field "permission".
func errMergeForbidden(cause error, message string) error {
	return &domain.Error{Kind: domain.KindForbidden, Code: "forbidden", Err: cause, Message: message,
		Fields: []domain.FieldError{{Field: "permission", Message: message}}}
}

// finish commits (or, for a strict import with failures, drops) the
// import and returns the report.
func (run *importRun) finish(ctx context.Context) (ports.ImportReport, error) {
	r := &run.report
	if run.rule == conflictFail && r.Failed > 0 {
		// All or nothing: what would have been written was not.
		r.Rejected = true
		r.Skipped += r.Imported + r.Updated
		r.Imported, r.Updated = 0, 0
		return *r, nil
	}
	if !run.opts.DryRun {
		if err := run.session.Commit(ctx); err != nil {
			return *r, fmt.Errorf("import: commit: %w", err)
		}
	}
	return *r, nil
}

// rowErrors turns a merge's refusal into report entries.
func rowErrors(line int, err error) []ports.ImportError {
	e := domain.AsError(err)
	switch {
	case errors.Is(err, domain.ErrEmailTaken):
		return []ports.ImportError{{Line: line, Field: "email", Message: "is already registered"}}
	case e != nil && len(e.Fields) > 0:
		out := make([]ports.ImportError, len(e.Fields))
		for i, f := range e.Fields {
			out[i] = ports.ImportError{Line: line, Field: f.Field, Message: f.Message}
		}
		return out
	case e != nil:
		return []ports.ImportError{{Line: line, Field: "row", Message: e.Message}}
	}
	return []ports.ImportError{{Line: line, Field: "row", Message: "could not be stored"}}
}

// emailSet remembers the emails of an import and the line of each, by a
// 96-bit keyed hash beside a 32-bit line number: a 16-byte map slot, so a
// million emails take some 25 MiB instead of the 100 or so their strings
// and a map of them would. With a random key per import no file can be
// crafted to collide, and the chance of an accidental collision among a
// million emails is about 10^-17.
type emailSet struct {
	seeds [2]maphash.Seed
	lines map[[3]uint32]uint32
}

func newEmailSet() *emailSet {
	return &emailSet{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, lines: map[[3]uint32]uint32{}}
}

// add records email at line; when it was there already, it returns the
// first line and true instead. Lines past 2^32 (a file of more than four
// billion rows) are remembered modulo 2^32: only the message naming the
// first line would be off.
func (s *emailSet) add(email string, line int) (int, bool) {
	h0, h1 := maphash.String(s.seeds[0], email), maphash.String(s.seeds[1], email)
	k := [3]uint32{uint32(h0), uint32(h0 >> 32), uint32(h1)}
	if first, ok := s.lines[k]; ok {
		return int(first), true
	}
	s.lines[k] = uint32(line)
	return 0, false
}
