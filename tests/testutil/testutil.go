// Package testutil holds the small helpers that tests across the adapters
// and the suites share: waiting for a condition, and replacing a file the
// way an editor or a config-map update does. It depends on nothing of the
// service.
package testutil

import (
	"os"
	"testing"
	"time"
)

// WaitFor bounds every Poll: policy reloads, log lines, WebSocket messages.
const WaitFor = 10 * time.Second

// Poll checks cond every few milliseconds until it holds, failing t when it
// still does not after WaitFor.
func Poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitFor)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", WaitFor, what)
		}
		<-tick.C
	}
}

// ReplaceFile replaces path the way editors and config-map updates do: a
// new file renamed over the old one, so a reader never sees it half-written
// and a watch on the first file sees it go.
func ReplaceFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
