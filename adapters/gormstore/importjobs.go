package gormstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// importJobRecord is a row of import_jobs.
type importJobRecord struct {
	ID          string   `gorm:"column:id;primaryKey"`
	ActorID     int64    `gorm:"column:actor_id"`
	Status      string   `gorm:"column:status"`
	OnConflict  string   `gorm:"column:on_conflict"`
	DryRun      bool     `gorm:"column:dry_run"`
	RowsRead    int64    `gorm:"column:rows_read"`
	Imported    int64    `gorm:"column:imported"`
	Updated     int64    `gorm:"column:updated"`
	Skipped     int64    `gorm:"column:skipped"`
	Failed      int64    `gorm:"column:failed"`
	Report      *string  `gorm:"column:report"`
	Reason      string   `gorm:"column:reason"`
	CreatedAt   dbTime   `gorm:"column:created_at;autoCreateTime:false"`
	HeartbeatAt dbTime   `gorm:"column:heartbeat_at"`
	FinishedAt  nullTime `gorm:"column:finished_at"`
}

func (importJobRecord) TableName() string { return "import_jobs" }

// reportRecord is an import report as import_jobs keeps it (JSON).
type reportRecord struct {
	TotalRows int               `json:"total_rows"`
	Imported  int               `json:"imported"`
	Updated   int               `json:"updated"`
	Skipped   int               `json:"skipped"`
	Failed    int               `json:"failed"`
	Errors    []reportErrRecord `json:"errors"`
	DryRun    bool              `json:"dry_run"`
	Rejected  bool              `json:"rejected"`
}

type reportErrRecord struct {
	Line    int    `json:"line"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

func importJobRecordOf(j ports.ImportJob) (importJobRecord, error) {
	rec := importJobRecord{
		ID: j.ID, ActorID: j.ActorID, Status: string(j.Status), OnConflict: j.OnConflict, DryRun: j.DryRun,
		RowsRead: int64(j.RowsRead), Imported: int64(j.Imported), Updated: int64(j.Updated),
		Skipped: int64(j.Skipped), Failed: int64(j.Failed), Reason: j.Reason,
		CreatedAt: newDBTime(j.CreatedAt), HeartbeatAt: newDBTime(j.HeartbeatAt),
		FinishedAt: nullTime{Time: j.FinishedAt, Valid: !j.FinishedAt.IsZero()},
	}
	if r := j.Report; r != nil {
		errs := make([]reportErrRecord, len(r.Errors))
		for i, e := range r.Errors {
			errs[i] = reportErrRecord(e)
		}
		b, err := json.Marshal(reportRecord{
			TotalRows: r.TotalRows, Imported: r.Imported, Updated: r.Updated, Skipped: r.Skipped,
			Failed: r.Failed, Errors: errs, DryRun: r.DryRun, Rejected: r.Rejected,
		})
		if err != nil {
			return rec, fmt.Errorf("gormstore: encode import report: %w", err)
		}
		text := string(b)
		rec.Report = &text
	}
	return rec, nil
}

func (r importJobRecord) job() (ports.ImportJob, error) {
	j := ports.ImportJob{
		ID: r.ID, ActorID: r.ActorID, Status: ports.ImportJobStatus(r.Status), OnConflict: r.OnConflict,
		DryRun: r.DryRun, RowsRead: int(r.RowsRead), Imported: int(r.Imported), Updated: int(r.Updated),
		Skipped: int(r.Skipped), Failed: int(r.Failed), Reason: r.Reason,
		CreatedAt: r.CreatedAt.Time, HeartbeatAt: r.HeartbeatAt.Time,
	}
	if r.FinishedAt.Valid {
		j.FinishedAt = r.FinishedAt.Time
	}
	if r.Report != nil {
		var rr reportRecord
		if err := json.Unmarshal([]byte(*r.Report), &rr); err != nil {
			return j, &domain.Error{Kind: domain.KindInternal, Code: "corrupt_row", Message: "stored import report is unreadable", Err: err}
		}
		errs := make([]ports.ImportError, len(rr.Errors))
		for i, e := range rr.Errors {
			errs[i] = ports.ImportError(e)
		}
		j.Report = &ports.ImportReport{
			TotalRows: rr.TotalRows, Imported: rr.Imported, Updated: rr.Updated, Skipped: rr.Skipped,
			Failed: rr.Failed, Errors: errs, DryRun: rr.DryRun, Rejected: rr.Rejected,
		}
	}
	return j, nil
}

// ImportJobs keeps import jobs.
type ImportJobs struct{ s *Store }

var _ ports.ImportJobStore = (*ImportJobs)(nil)

// ImportJobs returns the store of import jobs.
func (s *Store) ImportJobs() *ImportJobs { return &ImportJobs{s: s} }

// CreateJob stores a new job.
func (j *ImportJobs) CreateJob(ctx context.Context, job ports.ImportJob) error {
	rec, err := importJobRecordOf(job)
	if err != nil {
		return err
	}
	return translate(ctx, j.s.db.WithContext(ctx).Create(&rec).Error, false)
}

// SaveJob writes everything of job but its id, actor and options. A job
// that is no longer running is left as it is: the sweep of another instance
// may have marked it failed, and that word stands.
func (j *ImportJobs) SaveJob(ctx context.Context, job ports.ImportJob) error {
	rec, err := importJobRecordOf(job)
	if err != nil {
		return err
	}
	err = j.s.db.WithContext(ctx).Model(&importJobRecord{}).
		Where("id = ? AND status = ?", job.ID, string(ports.ImportJobRunning)).
		Select("status", "rows_read", "imported", "updated", "skipped", "failed", "report", "reason", "heartbeat_at", "finished_at").
		Updates(&rec).Error
	return translate(ctx, err, false)
}

// Job returns job id.
func (j *ImportJobs) Job(ctx context.Context, id string) (ports.ImportJob, error) {
	var rec importJobRecord
	err := j.s.read.WithContext(ctx).Where("id = ?", id).Take(&rec).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ports.ImportJob{}, domain.Errorf(domain.KindNotFound, "not_found", "import job not found")
	}
	if err != nil {
		return ports.ImportJob{}, translate(ctx, err, false)
	}
	return rec.job()
}

// FailStaleJobs marks failed the running jobs whose heartbeat is older than before.
func (j *ImportJobs) FailStaleJobs(ctx context.Context, before, now time.Time, reason string) (int64, error) {
	res := j.s.db.WithContext(ctx).Model(&importJobRecord{}).
		Where("status = ? AND heartbeat_at < ?", string(ports.ImportJobRunning), newDBTime(before)).
		Updates(map[string]any{"status": string(ports.ImportJobFailed), "reason": reason, "finished_at": newDBTime(now)})
	if res.Error != nil {
		return 0, translate(ctx, res.Error, false)
	}
	return res.RowsAffected, nil
}
