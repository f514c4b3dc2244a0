package realtime

import "github.com/userservice/userservice/ports"

var _ ports.ImportProgressSink = (*session)(nil)

// importProgress is the server message that follows a background import
// the connection's user started (docs/websocket.md). The report itself is
// read with GET /api/v1/users/imports/{id} once status is not running.
type importProgress struct {
	Type     string `json:"type"`
	JobID    string `json:"job_id"`
	Status   string `json:"status"`
	DryRun   bool   `json:"dry_run"`
	RowsRead int    `json:"rows_read"`
	Imported int    `json:"imported"`
	Updated  int    `json:"updated"`
	Skipped  int    `json:"skipped"`
	Failed   int    `json:"failed"`
	Reason   string `json:"reason,omitempty"`
}

// ImportProgress implements ports.ImportProgressSink. Like an event, it is
// dropped for a client that does not read.
func (sess *session) ImportProgress(job ports.ImportJob) {
	sess.send(mustJSON(importProgress{
		Type: "import_progress", JobID: job.ID, Status: string(job.Status), DryRun: job.DryRun,
		RowsRead: job.RowsRead, Imported: job.Imported, Updated: job.Updated, Skipped: job.Skipped,
		Failed: job.Failed, Reason: job.Reason,
	}))
}
