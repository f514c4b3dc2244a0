package application

import "github.com/userservice/userservice/ports"

var _ ports.ImportProgressNotifier = (*Subscriptions)(nil)

// ImportProgress hands an import job's progress to every live connection of
// userID on this instance whose sink can carry it. A connection of that
// user's on another instance gets nothing pushed: GET on the job answers
// from any instance.
func (sv *Subscriptions) ImportProgress(userID int64, job ports.ImportJob) {
	sv.mu.RLock()
	defer sv.mu.RUnlock()
	for c := range sv.byUser[userID] {
		if c.dead.Load() {
			continue
		}
		if s, ok := c.sink.(ports.ImportProgressSink); ok {
			s.ImportProgress(job)
		}
	}
}
