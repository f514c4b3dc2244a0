// Package policywatch turns changes in the policy directory (POLICY_DIR), or
// in the JWT keys directory (JWT_KEYS_DIR), into reloads, so an edited policy or rate-limit file takes effect without a
// restart or a SIGHUP. fsnotify is its library. It knows nothing of what the
// files mean: the adapters that own them hand it their Reload functions, and
// one watcher serves them all.
package policywatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce is how long the directory must stay quiet before a reload: an
// editor's save or a config-map update is a burst of events, and reloading
// once after it avoids reading a half-written file.
const debounce = 150 * time.Millisecond

// Watch calls every reload function whenever something in dir changes, once
// per burst of changes, until ctx is done (then it returns nil). It returns
// an error when the watch cannot be set up or stops. It watches the directory
// rather than the files because editors save by writing a new file and
// renaming it over the old one, and Kubernetes updates a mounted config map
// by swapping a symlink: either way a watched file itself would be gone.
//
// The reload functions' errors are ignored: each reloader logs the file it
// rejected and keeps what was in force, and one rejected file must not stop
// the others from reloading or the watch from going on. A nil log discards.
func Watch(ctx context.Context, dir string, log *slog.Logger, reload ...func() error) error {
	return WatchDir(ctx, "the policy directory", dir, log, reload...)
}

// WatchDir is Watch for any directory whose files are reloaded as a whole
// (the JWT keys directory too); what names it in log lines and errors.
func WatchDir(ctx context.Context, what, dir string, log *slog.Logger, reload ...func() error) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("policywatch: watching %s: %w", dir, err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("policywatch: watching %s: %w", dir, err)
	}
	log.Info("watching "+what+" for changes", "dir", dir)

	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("policywatch: the watcher of " + what + " stopped")
			}
			if ev.Op == fsnotify.Chmod {
				continue // permissions or timestamps only: the contents are the same
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("policywatch: the watcher of " + what + " stopped")
			}
			// An overflow loses events, not the watch: reload to be sure.
			log.Warn("watching "+what, "dir", dir, "error", err)
			timer.Reset(debounce)
		case <-timer.C:
			for _, r := range reload {
				_ = r() // the reloader logs a rejected file itself
			}
		}
	}
}
