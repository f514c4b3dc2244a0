package rbac

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce is how long the directory must stay quiet before a reload: an
// editor's save or a config-map update is a burst of events, and reloading
// once after it avoids reading a half-written file.
const debounce = 150 * time.Millisecond

// Watch reloads the policy whenever something in the policy directory changes,
// until ctx is done (then it returns nil). It watches the directory rather
// than the files because editors save by writing a new file and renaming it
// over the old one, and Kubernetes updates a mounted config map by swapping a
// symlink: either way the watched file itself would be gone. Failed reloads
// are logged by Reload and the previous policy stays in force.
func (a *Authorizer) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("rbac: watching %s: %w", a.dir, err)
	}
	defer w.Close()
	if err := w.Add(a.dir); err != nil {
		return fmt.Errorf("rbac: watching %s: %w", a.dir, err)
	}
	a.log.Info("watching the policy directory for changes", "dir", a.dir)

	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("rbac: the policy directory watcher stopped")
			}
			if ev.Op == fsnotify.Chmod {
				continue // permissions or timestamps only: the contents are the same
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("rbac: the policy directory watcher stopped")
			}
			// An overflow loses events, not the watch: reload to be sure.
			a.log.Warn("watching the policy directory", "dir", a.dir, "error", err)
			timer.Reset(debounce)
		case <-timer.C:
			_ = a.Reload() // Reload logs a rejected policy itself
		}
	}
}
