package application

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// progressLog records what would be pushed to WebSockets.
type progressLog struct {
	mu   sync.Mutex
	sent []ports.ImportJob
	to   []int64
}

func (p *progressLog) ImportProgress(userID int64, job ports.ImportJob) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, job)
	p.to = append(p.to, userID)
}

func newJobsFixture(t *testing.T, rows ...fakeRow) (*importFixture, *ImportJobs, ports.ImportJobStore, *progressLog) {
	t.Helper()
	f := newImportFixture(t, rows...)
	store := f.repo.store.ImportJobs()
	log := &progressLog{}
	jobs := NewImportJobs(f.uc, Deps{Authz: f.authz, Clock: fixedClock{testNow}}, ImportJobsConfig{Store: store, Notifier: log})
	return f, jobs, store, log
}

func spoolString(s string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
}

func TestImportJobsRunReportAndBelongToTheirStarter(t *testing.T) {
	t.Parallel()
	f, jobs, store, log := newJobsFixture(t, person("a@example.com"), person("b@example.com"), person("not-an-email"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A job left running by a stopped instance, its heartbeat old.
	lost := ports.ImportJob{ID: "lost", ActorID: f.super.ID, Status: ports.ImportJobRunning, OnConflict: "skip",
		CreatedAt: testNow.Add(-2 * time.Hour), HeartbeatAt: testNow.Add(-time.Hour)}
	if err := store.CreateJob(ctx, lost); err != nil {
		t.Fatal(err)
	}
	if err := jobs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if j, _ := store.Job(ctx, "lost"); j.Status != ports.ImportJobFailed || j.Reason != ReasonInstanceLost {
		t.Errorf("a lost job after Start: %+v", j)
	}

	job, err := jobs.StartImport(ctx, f.super, ports.ImportOptions{}, spoolString("file"))
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != ports.ImportJobRunning || job.OnConflict != "skip" || job.ActorID != f.super.ID {
		t.Errorf("started job: %+v", job)
	}
	jobs.Wait()
	got, err := jobs.ImportJob(ctx, f.super, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != ports.ImportJobSucceeded || got.Report == nil || got.Imported != 2 || got.Failed != 1 || got.RowsRead != 3 || got.FinishedAt.IsZero() {
		t.Errorf("finished job: %+v, report %+v", got, got.Report)
	}
	log.mu.Lock()
	if n := len(log.sent); n == 0 || log.sent[n-1].Status != ports.ImportJobSucceeded || log.to[n-1] != f.super.ID {
		t.Errorf("progress pushed: %+v to %v", log.sent, log.to)
	}
	log.mu.Unlock()

	// Another user, another superadmin included, finds no such job.
	other := domain.Actor{ID: 99, Role: domain.RoleSuperadmin}
	if _, err := jobs.ImportJob(ctx, other, job.ID); !errors.Is(err, domain.ErrNotFound) && domain.KindOf(err) != domain.KindNotFound {
		t.Errorf("another superadmin reading the job: %v, want not found", err)
	}
}

func TestImportJobsRefuseBeforeTheUpload(t *testing.T) {
	t.Parallel()
	f, jobs, _, _ := newJobsFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := jobs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	spooled := false
	spool := func() (io.ReadCloser, error) { spooled = true; return io.NopCloser(strings.NewReader("")), nil }
	user := domain.Actor{ID: 2, Role: domain.RoleUser}
	if _, err := jobs.StartImport(ctx, user, ports.ImportOptions{}, spool); domain.KindOf(err) != domain.KindForbidden {
		t.Errorf("a user starting an import: %v", err)
	}
	if _, err := jobs.StartImport(ctx, f.super, ports.ImportOptions{OnConflict: "merge"}, spool); domain.KindOf(err) != domain.KindInvalid {
		t.Errorf("a bad on_conflict: %v", err)
	}
	forced := f.super
	forced.PasswordChangeRequired = true
	if _, err := jobs.StartImport(ctx, forced, ports.ImportOptions{}, spool); err == nil {
		t.Error("an actor who must change their password started an import")
	}
	if spooled {
		t.Error("the upload was read for an import that was refused")
	}
}

// blockingDecoder's rows wait for release, then fail as a reader whose
// request ended does.
type blockingDecoder struct {
	reading chan struct{}
	release chan struct{}
}

func (d *blockingDecoder) Decode(io.Reader, time.Time) (ports.ImportRows, error) { return d, nil }
func (d *blockingDecoder) Header() []string                                      { return []string{"email"} }
func (d *blockingDecoder) Unknown() []string                                     { return nil }
func (d *blockingDecoder) Next() (ports.ImportRow, error) {
	close(d.reading)
	<-d.release
	return ports.ImportRow{}, context.Canceled
}

func TestImportJobsStoppedWithTheServiceSayWhy(t *testing.T) {
	t.Parallel()
	f, _, store, _ := newJobsFixture(t)
	dec := &blockingDecoder{reading: make(chan struct{}), release: make(chan struct{})}
	imp := NewImport(Deps{Importer: f.imp, Decoder: dec, HashFormats: fakeFormats{}, Hasher: f.hasher, Authz: f.authz, Clock: fixedClock{testNow}})
	jobs := NewImportJobs(imp, Deps{Authz: f.authz, Clock: fixedClock{testNow}}, ImportJobsConfig{Store: store})
	ctx, cancel := context.WithCancel(context.Background())
	if err := jobs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	job, err := jobs.StartImport(ctx, f.super, ports.ImportOptions{}, spoolString("file"))
	if err != nil {
		t.Fatal(err)
	}
	<-dec.reading
	cancel() // the service shuts down
	close(dec.release)
	jobs.Wait()
	got, _ := store.Job(context.Background(), job.ID)
	if got.Status != ports.ImportJobFailed || got.Reason != reasonShutdown || got.FinishedAt.IsZero() {
		t.Errorf("a job stopped by the shutdown: %+v", got)
	}
	if _, err := jobs.StartImport(context.Background(), f.super, ports.ImportOptions{}, spoolString("file")); domain.KindOf(err) != domain.KindUnavailable {
		t.Errorf("starting a job after the shutdown: %v, want unavailable", err)
	}
}
