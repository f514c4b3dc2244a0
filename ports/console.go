package ports

import (
	"context"
	"io"
	"time"

	"github.com/userservice/userservice/domain"
)

// AccessService tells a client what the policy lets its caller do, so a user
// interface offers only that (driving). The answers come from the same
// authorization code as the actions themselves.
type AccessService interface {
	// Permissions answers, for actor and user id, which actions on that
	// user would be allowed now.
	Permissions(ctx context.Context, actor domain.Actor, id int64) (UserPermissions, error)
	// Capabilities answers which actions that have no target user actor
	// may take now.
	Capabilities(ctx context.Context, actor domain.Actor) (Capabilities, error)
	// Policy is the permission matrix in force, for actors holding
	// domain.PermPolicyRead.
	Policy(ctx context.Context, actor domain.Actor) (PolicyMatrix, error)
}

// UserPermissions is what an actor may do to one user.
type UserPermissions struct {
	Read   bool
	Update bool
	Delete bool
	// Roles are the roles the user could be given (the current one
	// included when a change to it would be allowed); empty when none.
	Roles []domain.Role
	// Password: the actor may set the user's password.
	Password bool
	// Audit: the actor may read the user's history (the change log).
	Audit bool
}

// Capabilities is what an actor may do with no particular user in view.
type Capabilities struct {
	List, Search, Import, Audit, Policy, SubscribeSearch bool
	// Create lists the roles the actor may create users with.
	Create []domain.Role
}

// PolicyMatrix is the policy in force, answered question by question.
type PolicyMatrix struct {
	Roles       []domain.Role
	Permissions []domain.Permission
	// Grants are the questions the policy answers yes, each once.
	Grants []PolicyGrant
}

// PolicyGrant is one allowed question: a role may use a permission on a
// target of that relation and role, giving that new role. Relation is
// "self", "other" or "none" (no target user); TargetRole and NewRole are
// zero when the question has none.
type PolicyGrant struct {
	Role       domain.Role
	Permission domain.Permission
	Relation   string
	TargetRole domain.Role
	NewRole    domain.Role
}

// StatsService summarises users and their changes for an overview (driving).
type StatsService interface {
	Stats(ctx context.Context, actor domain.Actor) (Stats, error)
}

// Stats is an overview: users by role and the change log by day.
type Stats struct {
	// ByRole counts users per role; Exact is false when a count is the
	// database's estimate (past 10,000).
	ByRole map[domain.Role]int64
	Exact  bool
	// Days are the last StatsDays days, oldest first, in UTC.
	Days []DayStats
	// KeptSince is the time of the oldest change-log entry kept (zero when
	// the log is empty): days before it are not counted (retention).
	KeptSince time.Time
}

// StatsDays is how many days Stats covers.
const StatsDays = 30

// DayStats counts one UTC day's change-log entries.
type DayStats struct {
	Day     time.Time // midnight UTC
	Created int64     // users created (sign-ups, creations, imports)
	Changes int64     // every entry, creations included
}

// ImportJobService runs CSV imports that outlive the request that starts
// them (driving).
type ImportJobService interface {
	// StartImport authorizes actor and checks opts, then calls spool to
	// read the upload in full (within the request), records the job and
	// runs it in the background. The job's file is closed when it ends.
	StartImport(ctx context.Context, actor domain.Actor, opts ImportOptions, spool func() (io.ReadCloser, error)) (ImportJob, error)
	// ImportJob is the job id as it stands; only the actor who started it
	// may read it (anyone else gets domain.ErrNotFound).
	ImportJob(ctx context.Context, actor domain.Actor, id string) (ImportJob, error)
}

// ImportJobStatus is where a job stands.
type ImportJobStatus string

// The statuses of an import job.
const (
	ImportJobRunning   ImportJobStatus = "running"
	ImportJobSucceeded ImportJobStatus = "succeeded"
	ImportJobFailed    ImportJobStatus = "failed"
)

// ImportJob is one background import.
type ImportJob struct {
	ID         string
	ActorID    int64
	Status     ImportJobStatus
	OnConflict string
	DryRun     bool
	// RowsRead, Imported, Updated, Skipped and Failed are the counts so far.
	RowsRead, Imported, Updated, Skipped, Failed int
	// Report is the import's report once it has ended (also on a failure
	// after rows were read: the report so far); nil while running.
	Report *ImportReport
	// Reason says why a failed job failed, for people.
	Reason    string
	CreatedAt time.Time
	// HeartbeatAt is refreshed while the job runs; a running job whose
	// heartbeat stops was lost with its instance.
	HeartbeatAt time.Time
	FinishedAt  time.Time
}

// ImportJobStore keeps import jobs (driven).
type ImportJobStore interface {
	CreateJob(ctx context.Context, job ImportJob) error
	// SaveJob writes job's status, counts, report, reason and times.
	SaveJob(ctx context.Context, job ImportJob) error
	// Job returns job id, or domain.ErrNotFound.
	Job(ctx context.Context, id string) (ImportJob, error)
	// FailStaleJobs marks failed, with reason, every running job whose
	// heartbeat is older than before, and returns how many.
	FailStaleJobs(ctx context.Context, before, now time.Time, reason string) (int64, error)
}

// ImportProgressNotifier pushes an import job's progress to the live
// connections of the user who started it (driven, implemented by the
// real-time use case).
type ImportProgressNotifier interface {
	ImportProgress(userID int64, job ImportJob)
}

// ImportProgressSink is implemented by an EventSink that can carry import
// progress to its client.
type ImportProgressSink interface {
	ImportProgress(job ImportJob)
}

// ImportTally is an import's counts so far (ImportOptions.Tally).
type ImportTally struct {
	Rows, Imported, Updated, Skipped, Failed int
}
