package application

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// ImportJobsConfig gives background imports their driven ports and timing;
// zero durations take the defaults.
type ImportJobsConfig struct {
	Store ports.ImportJobStore // required
	// Notifier pushes progress to the starter's WebSocket connections; nil
	// pushes nothing (progress is still read with ImportJob).
	Notifier ports.ImportProgressNotifier
	// HeartbeatEvery is how often a running job says it is alive (5s).
	HeartbeatEvery time.Duration
	// StaleAfter is how long a silent running job is taken to be lost with
	// its instance (30s). It must be well above HeartbeatEvery.
	StaleAfter time.Duration
	// SweepEvery is how often lost jobs are looked for (10s).
	SweepEvery time.Duration
}

// Defaults of ImportJobsConfig.
const (
	defaultHeartbeatEvery = 5 * time.Second
	defaultStaleAfter     = 30 * time.Second
	defaultJobSweepEvery  = 10 * time.Second
)

// Reasons a job fails without an error of its own.
const (
	// ReasonInstanceLost is what a job lost with its instance says: the
	// import commits batch by batch (each row whole), so what was committed
	// stays and a re-run with skip completes it.
	ReasonInstanceLost = "the instance running this import stopped before it finished; " +
		"batches committed before that stay, each row whole (with on_conflict=fail or a dry run nothing was written); " +
		"import the same file again with on_conflict=skip to complete it"
	reasonShutdown = "the service shut down during the import; " +
		"batches committed before that stay, each row whole (with on_conflict=fail or a dry run nothing was written); " +
		"import the same file again with on_conflict=skip to complete it"
)

// ImportJobs runs imports in the background (ports.ImportJobService): the
// request that starts one only uploads the file; the job then runs on this
// instance, its progress kept in the job store (readable from any
// instance) and pushed to its starter's WebSocket connections here.
type ImportJobs struct {
	imports *Import
	authz   ports.Authorizer
	clock   ports.Clock
	log     *slog.Logger
	cfg     ImportJobsConfig

	mu      sync.Mutex
	ctx     context.Context // Start's; jobs end with it
	stopped bool
	running sync.WaitGroup
}

var _ ports.ImportJobService = (*ImportJobs)(nil)

// NewImportJobs returns background imports over imports, with Authz, Clock
// and Log from deps. A missing Store is a wiring mistake and panics.
func NewImportJobs(imports *Import, deps Deps, cfg ImportJobsConfig) *ImportJobs {
	if imports == nil || cfg.Store == nil || deps.Authz == nil || deps.Clock == nil {
		panic("application.NewImportJobs: Import, Store, Authz and Clock are required")
	}
	setDefault(&cfg.HeartbeatEvery, defaultHeartbeatEvery)
	setDefault(&cfg.StaleAfter, defaultStaleAfter)
	setDefault(&cfg.SweepEvery, defaultJobSweepEvery)
	return &ImportJobs{imports: imports, authz: deps.Authz, clock: deps.Clock, log: deps.logger(), cfg: cfg}
}

// Start marks failed the jobs lost with an instance that stopped (this
// one before a restart, or another), then keeps doing so every SweepEvery
// until ctx ends. Jobs started later run until ctx ends.
func (j *ImportJobs) Start(ctx context.Context) error {
	if err := j.sweep(ctx); err != nil {
		return fmt.Errorf("import jobs: failing lost jobs: %w", err)
	}
	j.mu.Lock()
	j.ctx = ctx
	j.mu.Unlock()
	go every(ctx, j.cfg.SweepEvery, func() {
		if err := j.sweep(ctx); err != nil && ctx.Err() == nil {
			j.log.Warn("import jobs: failing lost jobs", "err", err)
		}
	})
	return nil
}

func (j *ImportJobs) sweep(ctx context.Context) error {
	now := j.clock.Now()
	n, err := j.cfg.Store.FailStaleJobs(ctx, now.Add(-j.cfg.StaleAfter), now, ReasonInstanceLost)
	if n > 0 {
		j.log.Warn("import jobs lost with their instance marked failed", "jobs", n)
	}
	return err
}

// Wait returns once every job has ended (after Start's context ended, they
// end promptly, marked failed).
func (j *ImportJobs) Wait() {
	j.mu.Lock()
	j.stopped = true
	j.mu.Unlock()
	j.running.Wait()
}

// StartImport authorizes and checks the import as Import would, spools the
// upload, records the job and runs it in the background.
func (j *ImportJobs) StartImport(ctx context.Context, actor domain.Actor, opts ports.ImportOptions, spool func() (io.ReadCloser, error)) (ports.ImportJob, error) {
	if err := requireNoPasswordChange(actor); err != nil {
		return ports.ImportJob{}, err
	}
	if err := authorize(ctx, j.authz, actor, domain.PermUsersImport, nil, domain.Role{}); err != nil {
		return ports.ImportJob{}, err
	}
	if _, err := checkImportOptions(opts); err != nil {
		return ports.ImportJob{}, err
	}
	j.mu.Lock()
	base, stopped := j.ctx, j.stopped
	j.mu.Unlock()
	if base == nil || stopped || base.Err() != nil {
		return ports.ImportJob{}, domain.ErrUnavailable.Wrap(errors.New("import jobs are not running"))
	}
	file, err := spool()
	if err != nil {
		return ports.ImportJob{}, err
	}
	now := j.clock.Now()
	onConflict := opts.OnConflict
	if onConflict == "" {
		onConflict = "skip"
	}
	job := ports.ImportJob{
		ID: rand.Text(), ActorID: actor.ID, Status: ports.ImportJobRunning, OnConflict: onConflict,
		DryRun: opts.DryRun, CreatedAt: now, HeartbeatAt: now,
	}
	if err := j.cfg.Store.CreateJob(ctx, job); err != nil {
		file.Close()
		return ports.ImportJob{}, fmt.Errorf("record import job: %w", err)
	}
	j.running.Add(1)
	go func() {
		defer j.running.Done()
		defer file.Close()
		j.run(base, actor, job, file, opts)
	}()
	return job, nil
}

// jobState is a running job, shared by the import's tally and the
// heartbeat. Each change is saved under the lock, so saves land in the
// order the changes were made and a heartbeat never writes older counts.
type jobState struct {
	mu  sync.Mutex
	job ports.ImportJob
	// dirty says the job changed since it was last saved (buffered: one
	// pending save stands for any number of changes).
	dirty chan struct{}
}

// set changes the job in memory and marks it for saving; it never waits
// for the store, so the import calling it is never held up by it.
func (s *jobState) set(fn func(*ports.ImportJob)) {
	s.mu.Lock()
	fn(&s.job)
	s.mu.Unlock()
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

func (s *jobState) snapshot() ports.ImportJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.job
}

// run imports file and keeps the job's record current: counts after each
// batch, a heartbeat meanwhile, and the report or the reason at the end.
func (j *ImportJobs) run(ctx context.Context, actor domain.Actor, job ports.ImportJob, file io.Reader, opts ports.ImportOptions) {
	save := func(job ports.ImportJob) {
		// Saved even when ctx has ended, so the job says why it stopped.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := j.cfg.Store.SaveJob(sctx, job); err != nil {
			j.log.Warn("import job: saving progress", "job", job.ID, "err", err)
		}
		if j.cfg.Notifier != nil {
			j.cfg.Notifier.ImportProgress(job.ActorID, job)
		}
	}
	// The import only sets the counts in memory; this goroutine saves them
	// (and beats the heart) on its own. Saving from the import's own
	// goroutine would wait for the store while the import holds it: on
	// SQLite, the one writer connection the import's batch is using.
	state := &jobState{job: job, dirty: make(chan struct{}, 1)}
	opts.Tally = func(t ports.ImportTally) {
		state.set(func(jb *ports.ImportJob) {
			jb.RowsRead, jb.Imported, jb.Updated, jb.Skipped, jb.Failed = t.Rows, t.Imported, t.Updated, t.Skipped, t.Failed
			jb.HeartbeatAt = j.clock.Now()
		})
	}
	beat := make(chan struct{})
	var beating sync.WaitGroup
	beating.Add(1)
	go func() {
		defer beating.Done()
		t := time.NewTicker(j.cfg.HeartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-beat:
				return
			case <-state.dirty:
				save(state.snapshot())
			case <-t.C:
				state.set(func(jb *ports.ImportJob) { jb.HeartbeatAt = j.clock.Now() })
			}
		}
	}()
	report, err := j.imports.Import(ctx, actor, file, opts)
	close(beat)
	beating.Wait()

	state.set(func(jb *ports.ImportJob) {
		now := j.clock.Now()
		jb.HeartbeatAt, jb.FinishedAt = now, now
		jb.RowsRead, jb.Imported, jb.Updated, jb.Skipped, jb.Failed = report.TotalRows, report.Imported, report.Updated, report.Skipped, report.Failed
		jb.Report = &report
		switch {
		case err != nil && ctx.Err() != nil:
			jb.Status, jb.Reason = ports.ImportJobFailed, reasonShutdown
		case err != nil:
			jb.Status, jb.Reason = ports.ImportJobFailed, failureReason(err)
			if domain.KindOf(err) == domain.KindInternal {
				j.log.Error("import job failed", "job", jb.ID, "err", err)
			}
		case report.Rejected:
			jb.Status = ports.ImportJobFailed
			jb.Reason = fmt.Sprintf("nothing was imported: on_conflict=fail and %d of %d rows failed", report.Failed, report.TotalRows)
		default:
			jb.Status = ports.ImportJobSucceeded
		}
	})
	save(state.snapshot())
}

// failureReason is what a client may read of an import's error: a domain
// error's message, never an internal cause.
func failureReason(err error) string {
	if e := domain.AsError(err); e != nil && e.Kind != domain.KindInternal {
		msg := e.Message
		for _, f := range e.Fields {
			msg += "; " + f.Field + ": " + f.Message
		}
		return msg
	}
	return "the import stopped on an internal error; batches committed before it stay, and importing the same file again with on_conflict=skip completes it"
}

// ImportJob returns job id to the actor who started it.
func (j *ImportJobs) ImportJob(ctx context.Context, actor domain.Actor, id string) (ports.ImportJob, error) {
	if err := requireNoPasswordChange(actor); err != nil {
		return ports.ImportJob{}, err
	}
	job, err := j.cfg.Store.Job(ctx, id)
	if err != nil {
		return ports.ImportJob{}, err
	}
	// Someone else's job is as absent as a missing one: its id tells nothing.
	if job.ActorID != actor.ID || actor.ID == 0 {
		return ports.ImportJob{}, domain.Errorf(domain.KindNotFound, "not_found", "import job not found")
	}
	return job, nil
}
