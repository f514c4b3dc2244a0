package policywatch_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/userservice/userservice/adapters/policywatch"
	"github.com/userservice/userservice/tests/testutil"
)

// logBuffer collects log output; the watcher writes while the test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) has(part string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Contains(b.buf.String(), part)
}

// counter is a reload function that counts its calls and returns err.
type counter struct {
	n   atomic.Int64
	err error
}

func (c *counter) reload() error {
	c.n.Add(1)
	return c.err
}

// start runs Watch on dir until the test ends, returns once the watch is in
// place (edits made before it would go unseen), and checks at the end that
// cancelling the context made Watch return nil.
func start(t *testing.T, dir string, reload ...func() error) {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- policywatch.Watch(ctx, dir, log, reload...) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch after cancel: %v", err)
		}
	})
	testutil.Poll(t, "the watch to start", func() bool { return logs.has("watching the policy directory for changes") })
}

// An editor's save renames a new file over the old one; every reload
// function runs, and one that fails neither stops the others nor the watch.
func TestWatchReloadsOnARenameOver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.csv")
	testutil.ReplaceFile(t, path, "v1")
	failing, ok := &counter{err: errors.New("rejected")}, &counter{}
	start(t, dir, failing.reload, ok.reload)

	testutil.ReplaceFile(t, path, "v2")
	testutil.Poll(t, "both reloads after the first edit", func() bool { return failing.n.Load() >= 1 && ok.n.Load() >= 1 })
	seen := ok.n.Load()
	testutil.ReplaceFile(t, path, "v3")
	testutil.Poll(t, "a reload after a failed one", func() bool { return ok.n.Load() > seen })
}

// Kubernetes updates a mounted config map by writing a new timestamped
// directory and renaming a ..data symlink to it; the files themselves are
// symlinks through ..data and never change.
func TestWatchSeesConfigMapSwaps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	version := func(name string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		testutil.ReplaceFile(t, filepath.Join(dir, name, "policy.csv"), name)
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2025_01_01_00_00_00.1")
	if err := os.Symlink(filepath.Join("..data", "policy.csv"), filepath.Join(dir, "policy.csv")); err != nil {
		t.Fatal(err)
	}
	c := &counter{}
	start(t, dir, c.reload)

	version("..2025_01_01_00_00_01.2")
	testutil.Poll(t, "a reload after the swap", func() bool { return c.n.Load() >= 1 })
}

// A burst of edits is read once it is over, not once per event: each save
// below is three events, and reading after each would catch files half
// written.
func TestWatchDebouncesABurst(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.csv")
	c := &counter{}
	start(t, dir, c.reload)

	const saves = 30
	for i := range saves {
		testutil.ReplaceFile(t, path, strconv.Itoa(i))
	}
	testutil.Poll(t, "a reload after the burst", func() bool { return c.n.Load() >= 1 })
	// The events of one more save come after all of the burst's, so once it
	// has caused a reload no reload of the burst is still to come.
	seen := c.n.Load()
	testutil.ReplaceFile(t, path, "after")
	testutil.Poll(t, "a reload after the last save", func() bool { return c.n.Load() > seen })
	// Exactly two when the machine keeps up; a stall in the middle of the
	// burst may split it, but never into anything like one per save.
	if n := c.n.Load(); n > 5 {
		t.Errorf("%d saves and one more caused %d reloads, want a few", saves, n)
	}
}

func TestWatchReturnsNilWhenItsContextIsDone(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	c := &counter{}
	if err := policywatch.Watch(ctx, t.TempDir(), nil, c.reload); err != nil {
		t.Fatalf("Watch after cancel: %v", err)
	}
	if n := c.n.Load(); n != 0 {
		t.Errorf("%d reloads without a change, want 0", n)
	}
}

func TestWatchFailsOnAMissingDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "absent")
	err := policywatch.Watch(t.Context(), dir, nil)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Watch on a missing directory: %v, want an error naming it", err)
	}
}
