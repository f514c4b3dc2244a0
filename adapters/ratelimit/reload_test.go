package ratelimit_test

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/userservice/userservice/adapters/ratelimit"
	"github.com/userservice/userservice/tests/testutil"
)

func limits(search, list string) string {
	return `
rules:
  - name: search
    routes: [GET /api/v1/users/search]
    tokens: ` + search + `
    interval: 1m
  - name: list
    routes: [GET /api/v1/users/list]
    tokens: ` + list + `
    interval: 1m
`
}

// An edit takes effect on Reload; an edit that does not load is rejected
// with a log line and the limits in force stay; an unchanged rule keeps its
// buckets.
func TestReload(t *testing.T) {
	t.Parallel()
	dir := limitsDir(t, limits("2", "1"))
	path := filepath.Join(dir, "ratelimits.yaml")
	h := newHarness(t, ratelimit.Config{Dir: dir})
	const peer = "192.0.2.1:1"
	if n := exhaust(t, h, 2, func(int) request { return request{method: "GET", target: "/api/v1/users/search", peer: peer} }); n != 2 {
		t.Fatalf("%d searches, want 2", n)
	}
	if n := exhaust(t, h, 1, func(int) request { return request{method: "GET", target: "/api/v1/users/list", peer: peer} }); n != 1 {
		t.Fatalf("%d lists, want 1", n)
	}

	testutil.ReplaceFile(t, path, limits("5", "1"))
	if err := h.l.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	rec := h.get("/api/v1/users/search", peer)
	if rec.Code != http.StatusOK || headerInt(t, rec, ratelimit.HeaderLimit) != 5 {
		t.Fatalf("search after raising its limit: status %d, limit %s; want 200 and 5", rec.Code, rec.Header().Get(ratelimit.HeaderLimit))
	}
	if rec := h.get("/api/v1/users/list", peer); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("list, whose rule did not change: status %d, want 429 (its bucket kept)", rec.Code)
	}
	if h.logs.count("rate limits reloaded") != 1 {
		t.Fatal("the reload was not logged")
	}

	// The same bytes again: nothing to do, nothing logged.
	testutil.ReplaceFile(t, path, limits("5", "1"))
	if err := h.l.Reload(); err != nil {
		t.Fatalf("Reload of the same file: %v", err)
	}
	if h.logs.count("rate limits reloaded") != 1 {
		t.Fatal("a reload of an unchanged file was logged")
	}

	// A bad value on line 5: rejected, the limit of 5 stays.
	testutil.ReplaceFile(t, path, limits("many", "1"))
	if err := h.l.Reload(); err == nil {
		t.Fatal("Reload of a bad file succeeded")
	}
	if h.logs.count("level=ERROR", "rate limits rejected", "ratelimits.yaml") != 1 {
		t.Fatal("the rejection was not logged once with the file name")
	}
	if rec := h.get("/api/v1/users/search", peer); headerInt(t, rec, ratelimit.HeaderLimit) != 5 {
		t.Fatalf("after a rejected file: limit %s, want the 5 in force", rec.Header().Get(ratelimit.HeaderLimit))
	}

	// Putting back the file in force is logged, ending the doubt.
	testutil.ReplaceFile(t, path, limits("5", "1"))
	if err := h.l.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if h.logs.count("rate limits reloaded") != 2 {
		t.Fatal("the repaired file was not logged")
	}
}
