package gormstore_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
	"github.com/userservice/userservice/tests/testdb"
)

// TestImportJobsRoundTripAndStaleness: a job reads back as saved (report
// included); only running jobs whose heartbeat is old are failed by the
// sweep, and a job once failed stays failed whatever its runner saves.
func TestImportJobsRoundTripAndStaleness(t *testing.T) {
	t.Parallel()
	for name, url := range map[string]func() string{
		"sqlite":   func() string { return "sqlite:" + filepath.Join(t.TempDir(), "jobs.db") },
		"postgres": func() string { return testdb.PostgresURL(t) },
	} {
		t.Run(name, func(t *testing.T) {
			s := open(t, url())
			if err := s.MigrateUp(t.Context()); err != nil {
				t.Fatal(err)
			}
			jobs := s.ImportJobs()
			now := time.Now().UTC().Truncate(time.Microsecond)
			old := now.Add(-time.Hour)
			fresh := ports.ImportJob{ID: "fresh", ActorID: 7, Status: ports.ImportJobRunning, OnConflict: "skip", CreatedAt: now, HeartbeatAt: now}
			stale := ports.ImportJob{ID: "stale", ActorID: 7, Status: ports.ImportJobRunning, OnConflict: "update", DryRun: true, CreatedAt: old, HeartbeatAt: old}
			done := ports.ImportJob{ID: "done", ActorID: 8, Status: ports.ImportJobRunning, OnConflict: "fail", CreatedAt: old, HeartbeatAt: old}
			for _, j := range []ports.ImportJob{fresh, stale, done} {
				if err := jobs.CreateJob(t.Context(), j); err != nil {
					t.Fatal(err)
				}
			}
			report := ports.ImportReport{TotalRows: 3, Imported: 2, Failed: 1, DryRun: false,
				Errors: []ports.ImportError{{Line: 3, Field: "email", Message: "is not valid"}}}
			done.Status, done.RowsRead, done.Imported, done.Failed, done.Report, done.FinishedAt = ports.ImportJobSucceeded, 3, 2, 1, &report, now
			if err := jobs.SaveJob(t.Context(), done); err != nil {
				t.Fatal(err)
			}
			got, err := jobs.Job(t.Context(), "done")
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != ports.ImportJobSucceeded || got.RowsRead != 3 || got.Report == nil || got.Report.Imported != 2 ||
				len(got.Report.Errors) != 1 || got.Report.Errors[0] != report.Errors[0] || !got.FinishedAt.Equal(now) || got.OnConflict != "fail" {
				t.Errorf("done job read back as %+v (report %+v)", got, got.Report)
			}

			n, err := jobs.FailStaleJobs(t.Context(), now.Add(-time.Minute), now, "lost")
			if err != nil || n != 1 {
				t.Fatalf("FailStaleJobs = %d, %v; want the stale job only", n, err)
			}
			if got, _ := jobs.Job(t.Context(), "stale"); got.Status != ports.ImportJobFailed || got.Reason != "lost" || !got.DryRun {
				t.Errorf("stale job: %+v", got)
			}
			if got, _ := jobs.Job(t.Context(), "fresh"); got.Status != ports.ImportJobRunning {
				t.Errorf("fresh job: %+v", got)
			}
			// The lost job's runner, late, cannot undo the verdict.
			stale.Status, stale.RowsRead = ports.ImportJobSucceeded, 10
			if err := jobs.SaveJob(t.Context(), stale); err != nil {
				t.Fatal(err)
			}
			if got, _ := jobs.Job(t.Context(), "stale"); got.Status != ports.ImportJobFailed || got.RowsRead != 0 {
				t.Errorf("a failed job was overwritten: %+v", got)
			}
			if _, err := jobs.Job(t.Context(), "missing"); domain.KindOf(err) != domain.KindNotFound {
				t.Errorf("missing job: %v", err)
			}
		})
	}
}
