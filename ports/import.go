package ports

import (
	"context"
	"io"
	"time"

	"github.com/userservice/userservice/domain"
)

// ImportService imports users from a CSV file (docs/api.md, Imports, and the import command).
type ImportService interface {
	// Import reads file and stores its users as opts says. A file that cannot
	// be used at all (not CSV, a required column missing) is a KindMalformed
	// error before anything is written. Otherwise the report tells what
	// happened to every row; Rejected marks a strict import (on_conflict=fail)
	// that found a bad row or a conflict and so wrote nothing. An error after
	// rows were read (the database failing, the context ending, the file
	// becoming unreadable) comes with the report so far: with skip or update,
	// the batches committed before it stay, and running the same file again
	// with skip completes the import.
	Import(ctx context.Context, actor domain.Actor, file io.Reader, opts ImportOptions) (ImportReport, error)
}

// ImportOptions are an import's choices.
type ImportOptions struct {
	// OnConflict is what a row whose email is already stored does: "skip"
	// (or "") leaves the stored user, "update" updates its profile (and
	// password, when the row has a password_hash), "fail" writes nothing at
	// all if any row conflicts or is invalid.
	OnConflict string
	// DryRun reads and checks everything and writes nothing; the report
	// says what the import would do.
	DryRun bool
	// DefaultPassword, when not empty, is the password of new users whose
	// row has no password_hash; they must change it at first login. Without
	// it such users have no usable password.
	DefaultPassword string
	// Progress, when set, is called after each batch with the number of
	// rows handled so far.
	Progress func(rows int)
	// Tally, when set, is called after each batch with the counts so far.
	Tally func(ImportTally)
	// Rejected, when set, is called for every failed row, in file order,
	// past MaxReportedRows too: it streams them (the command line writes
	// them to a file), holding none.
	Rejected func(RejectedRow)
}

// RejectedRow is a failed row as it was read, with its problems.
type RejectedRow struct {
	Line   int
	Header []string // the file's header, the same slice for every row
	Cells  []string // nil when the row could not be read at all
	Errors []ImportError
}

// ImportReport is what an import did, or would do in a dry run.
type ImportReport struct {
	TotalRows int
	Imported  int
	Updated   int
	// Skipped rows were left as they were: their email was stored (skip),
	// the stored user was already the same (update), or a strict import was
	// rejected (fail: every row not failed counts as skipped).
	Skipped int
	Failed  int
	// Errors lists every problem of the first MaxReportedRows failed rows
	// by line, and the header's unknown columns (line 1; they are ignored
	// and fail nothing).
	Errors []ImportError
	// ErrorsTruncated: more than MaxReportedRows rows failed, and Errors
	// stops at the first MaxReportedRows of them; the counts stay exact.
	ErrorsTruncated bool
	DryRun          bool
	// Rejected: on_conflict=fail found a bad row or a conflict and nothing
	// was written.
	Rejected bool
}

// MaxReportedRows is how many failed rows an import report details, so that
// a report (and the memory it takes) stays bounded whatever the file.
const MaxReportedRows = 1000

// ImportError is one problem of one row (or of the header, at line 1).
type ImportError struct {
	Line    int
	Field   string // a column name, or "row" for the row as a whole
	Message string
}

// ImportDecoder reads an import file (the CSV adapter).
type ImportDecoder interface {
	// Decode reads r's header and returns its rows as a stream, so memory
	// stays flat whatever the file's size. A file that is not CSV or lacks a
	// required column is a KindMalformed error. now stamps the new users.
	Decode(r io.Reader, now time.Time) (ImportRows, error)
}

// ImportRows is the stream of an import file's rows.
type ImportRows interface {
	// Header returns the file's column names as written.
	Header() []string
	// Unknown returns the header's columns that are not imported.
	Unknown() []string
	// Next returns the next row, or io.EOF after the last. Other errors are
	// the file becoming unreadable (the reader's own error, wrapped).
	Next() (ImportRow, error)
}

// ImportRow is one row read and validated.
type ImportRow struct {
	Line  int      // the line the row starts on; the header is line 1
	Cells []string // as read, in header order; nil when unreadable
	// User is the row as a new user (domain.NewUser), its id kept from the
	// row when given; nil when Errors is not empty.
	User *domain.User
	// RoleGiven is true when the row named a role (else User has role user).
	RoleGiven bool
	// PasswordHash is the row's password_hash cell, unchecked: which
	// formats are accepted is the hasher's business.
	PasswordHash string
	// Errors are the row's problems; Field names a column, or "row".
	Errors []domain.FieldError
}

// PasswordHashFormats tells which stored-hash formats the hasher verifies,
// so that imported hashes are vetted before they are stored.
type PasswordHashFormats interface {
	// Supports reports whether hash is in a format (and within the bounds)
	// the hasher verifies. It does no hashing.
	Supports(hash string) bool
}

// UserImporter writes imported users in batches (the storage adapter).
type UserImporter interface {
	// BeginImport starts an import by actor. With atomic, every batch goes
	// into one transaction that only Commit makes durable; otherwise each
	// Write commits its batch on its own. With dryRun nothing is written:
	// Write only reports what it would do.
	BeginImport(ctx context.Context, actor domain.Actor, atomic, dryRun bool) (ImportSession, error)
}

// ImportSession writes the batches of one import. Up to Writers() calls
// of Write may run at once; Commit and Close come after every Write has
// returned.
type ImportSession interface {
	// Writers is how many Writes the session runs at once (at least 1; 1
	// for an atomic session). Batches written at once commit in any order.
	Writers() int
	// Write stores users in one transaction (the session's, when atomic).
	// A user whose email is not stored is inserted, its id kept when
	// non-zero and free and drawn otherwise. A user whose email is stored is
	// handed to merge with the stored user, locked; every insert and update
	// appends its change-log entry (created, updated). The outcomes are one
	// per user, in order. An error fails the whole batch: nothing of it is
	// written.
	Write(ctx context.Context, users []*domain.User, merge ImportMerge) ([]ImportOutcome, error)
	// Commit makes an atomic session's writes durable (a no-op otherwise).
	Commit(ctx context.Context) error
	// Close ends the session, rolling back what is not committed. It is
	// safe to call after Commit and more than once.
	Close() error
}

// ImportMerge decides the fate of users[i] of a Write, whose email is
// already stored as stored. It returns the stored user as it should become
// (written when it differs from stored), or nil to leave it. A domain error
// rejects that row only; any other error fails the batch.
type ImportMerge func(i int, stored *domain.User) (*domain.User, error)

// ImportResult is what Write did with one user.
type ImportResult int

// The results of ImportOutcome.
const (
	ImportInserted  ImportResult = iota + 1 // a new user
	ImportUpdated                           // merge changed the stored user
	ImportUnchanged                         // merge left the stored user as it was
	ImportRejected                          // merge refused the row: see Err
)

// ImportOutcome is the result of one user of a Write.
type ImportOutcome struct {
	Result ImportResult
	// User is the user as stored (inserted or updated), or as it would be
	// in a dry run (an inserted user's drawn id is then 0).
	User *domain.User
	Err  error // ImportRejected: merge's error
}
