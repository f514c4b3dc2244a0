package ratelimit

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

// Watch reloads the limits whenever something in the policy directory
// changes, until ctx is done (then it returns nil). It watches the directory
// rather than the file because editors save by writing a new file and
// renaming it over the old one, and Kubernetes updates a mounted config map
// by swapping a symlink: either way the watched file itself would be gone.
// Rejected files are logged by Reload and the limits in force stay.
func (l *Limiter) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("ratelimit: watching %s: %w", l.dir, err)
	}
	defer w.Close()
	if err := w.Add(l.dir); err != nil {
		return fmt.Errorf("ratelimit: watching %s: %w", l.dir, err)
	}
	l.log.Info("watching the rate limits for changes", "dir", l.dir)

	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("ratelimit: the policy directory watcher stopped")
			}
			if ev.Op == fsnotify.Chmod {
				continue // permissions or timestamps only: the contents are the same
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("ratelimit: the policy directory watcher stopped")
			}
			// An overflow loses events, not the watch: reload to be sure.
			l.log.Warn("watching the policy directory", "dir", l.dir, "error", err)
			timer.Reset(debounce)
		case <-timer.C:
			_ = l.Reload() // Reload logs a rejected file itself
		}
	}
}
