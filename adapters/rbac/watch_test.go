package rbac_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/userservice/userservice/adapters/rbac"
	"github.com/userservice/userservice/domain"
)

// An edit of the watched directory takes effect without a call; a broken edit
// is rejected with a log line and the policy in force stays.
func TestWatchReloadsOnChange(t *testing.T) {
	t.Parallel()
	dir := copyPolicies(t)
	log, logs := newLogger()
	a, err := rbac.New(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	// Edits made before the watch is in place would go unseen.
	waitFor(t, "the watch to start", func() bool { return logs.count("watching the policy directory") == 1 })

	modelPath := filepath.Join(dir, "model.conf")
	policyPath := filepath.Join(dir, "policy.csv")
	model, policy := readFile(t, modelPath), readFile(t, policyPath)
	if allowed(t, a, domain.RoleUser, domain.PermUsersSearch) {
		t.Fatal("the shipped policy lets a user search")
	}

	writeFile(t, policyPath, policy+grantUserSearch)
	waitFor(t, "the grant to take effect", func() bool { return allowed(t, a, domain.RoleUser, domain.PermUsersSearch) })

	// A model that does not parse: rejected, logged, the grant stays.
	writeFile(t, modelPath, model[:strings.Index(model, "[matchers]")])
	waitFor(t, "the broken model to be rejected", func() bool {
		return logs.count("level=ERROR", "model.conf", "missing required sections") == 1
	})
	if !allowed(t, a, domain.RoleUser, domain.PermUsersSearch) {
		t.Fatal("the broken model replaced the policy in force")
	}

	writeFile(t, modelPath, model)
	waitFor(t, "the repaired model to load", func() bool { return logs.count("policy reloaded") == 2 })

	// A malformed row in a policy that also revokes the grant: rejected as a
	// whole, so the grant stays.
	writeFile(t, policyPath, policy+"p, admin users.delete, *, *, *\n")
	waitFor(t, "the malformed row to be rejected", func() bool {
		return logs.count("level=ERROR", "policy.csv", "line=") == 1
	})
	if !allowed(t, a, domain.RoleUser, domain.PermUsersSearch) {
		t.Fatal("the malformed policy replaced the policy in force")
	}
}

func TestWatchStopsWithItsContext(t *testing.T) {
	t.Parallel()
	a, err := rbac.New(copyPolicies(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := a.Watch(ctx); err != nil {
		t.Fatalf("Watch after cancel: %v", err)
	}
}

func TestWatchFailsOnAMissingDirectory(t *testing.T) {
	t.Parallel()
	dir := copyPolicies(t)
	a, err := rbac.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// New loaded the files; the directory vanishing afterwards leaves nothing to watch.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := a.Watch(t.Context()); err == nil {
		t.Fatal("Watch on a missing directory returned nil")
	}
}

// Kubernetes updates a mounted config map by writing a new timestamped
// directory and renaming a ..data symlink to it; the files themselves are
// symlinks through ..data and never change.
func TestWatchSeesConfigMapSwaps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	model, err := readShipped("model.conf")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := readShipped("policy.csv")
	if err != nil {
		t.Fatal(err)
	}
	version := func(name, policy string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "model.conf"), model)
		writeFile(t, filepath.Join(dir, name, "policy.csv"), policy)
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2025_01_01_00_00_00.1", policy)
	for _, name := range []string{"model.conf", "policy.csv"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}

	log, logs := newLogger()
	a, err := rbac.New(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	waitFor(t, "the watch to start", func() bool { return logs.count("watching the policy directory") == 1 })
	if allowed(t, a, domain.RoleUser, domain.PermUsersSearch) {
		t.Fatal("the shipped policy lets a user search")
	}

	version("..2025_01_01_00_00_01.2", policy+grantUserSearch)
	waitFor(t, "the swapped policy to take effect", func() bool { return allowed(t, a, domain.RoleUser, domain.PermUsersSearch) })
}
