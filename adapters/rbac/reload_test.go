package rbac_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/userservice/userservice/adapters/rbac"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
	"github.com/userservice/userservice/tests/testutil"
)

// grantUserSearch is a policy row the shipped policy does not have.
const grantUserSearch = "p, user, users.search, *, *, *\n"

func TestNewRejectsMissingOrInvalidFiles(t *testing.T) {
	t.Parallel()
	if _, err := rbac.New(filepath.Join(t.TempDir(), "absent"), nil); err == nil {
		t.Error("New on a missing directory succeeded")
	}
	dir := copyPolicies(t)
	testutil.ReplaceFile(t, filepath.Join(dir, "policy.csv"), "p, user, users.list, *, *\n")
	if _, err := rbac.New(dir, nil); err == nil || !strings.Contains(err.Error(), "policy.csv line 1") {
		t.Errorf("New with a malformed row: %v, want an error naming policy.csv line 1", err)
	}
}

func TestReloadPutsAGoodPolicyInForce(t *testing.T) {
	t.Parallel()
	dir := copyPolicies(t)
	log, logs := newLogger()
	a, err := rbac.New(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if allowed(t, a, domain.RoleUser, domain.PermUsersSearch) {
		t.Fatal("the shipped policy lets a user search")
	}
	policy := filepath.Join(dir, "policy.csv")
	original := readFile(t, policy)

	testutil.ReplaceFile(t, policy, original+grantUserSearch)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if !allowed(t, a, domain.RoleUser, domain.PermUsersSearch) {
		t.Error("the reloaded policy does not let a user search")
	}
	if n := logs.count("level=INFO", "policy reloaded"); n != 1 {
		t.Errorf("%d reload lines logged, want 1:\n%s", n, logs)
	}

	// The same files again: nothing changes, nothing is logged.
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if n := logs.count("policy reloaded"); n != 1 {
		t.Errorf("reloading unchanged files logged %d reload lines, want 1", n)
	}

	// Revoking works too.
	testutil.ReplaceFile(t, policy, original)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if allowed(t, a, domain.RoleUser, domain.PermUsersSearch) {
		t.Error("revoking the row did not take effect")
	}
}

func TestReloadRejectsABadPolicyAndKeepsThePrevious(t *testing.T) {
	t.Parallel()
	model, err := readShipped("model.conf")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := readShipped("policy.csv")
	if err != nil {
		t.Fatal(err)
	}
	// Each bad version also grants a user search, so any partial load of it
	// would show in the decision.
	granted := policy + grantUserSearch
	withoutMatchers := model[:strings.Index(model, "[matchers]")]
	for _, tc := range []struct {
		name          string
		model, policy string // "" deletes the file
		file          string // the file the error must name
		lastLine      bool   // whether it must name the file's last line
	}{
		{"model.conf missing", "", granted, "model.conf", false},
		{"policy.csv missing", model, "", "policy.csv", false},
		{"model not a model", "this is not a model\n", granted, "model.conf", false},
		{"model without matchers", withoutMatchers, granted, "model.conf", false},
		{"matcher does not parse", withoutMatchers + "[matchers]\nm = g(r.sub, p.sub) && ((\n", granted, "model.conf", false},
		{"request of four parts", strings.Replace(model, "r = sub, perm, rel, trole, nrole", "r = sub, perm, rel, trole", 1), granted, "model.conf", false},
		{"no permission rows", model, "# everything commented out\ng, admin, user\n", "policy.csv", false},
		{"empty policy", model, "\n\n", "policy.csv", false},
		{"unknown row type", model, granted + "x, user, users.delete, *, *, *\n", "policy.csv", true},
		{"model section as row type", model, granted + "r, user, users.delete, *, *, *\n", "policy.csv", true},
		{"missing row type", model, granted + ", user, users.delete, *, *, *\n", "policy.csv", true},
		{"too few values", model, granted + "p, user, users.delete, *, *\n", "policy.csv", true},
		{"too many values", model, granted + "p, user, users.delete, *, *, *, *\n", "policy.csv", true},
		{"missing comma", model, granted + "p, user users.delete, *, *, *\n", "policy.csv", true},
		{"empty value", model, granted + "p, user, users.delete, , *, *\n", "policy.csv", true},
		{"unknown role", model, granted + "p, admn, users.delete, *, *, *\n", "policy.csv", true},
		{"unknown relation", model, granted + "p, user, users.delete, slef, *, *\n", "policy.csv", true},
		{"unknown target role", model, granted + "p, user, users.delete, other, users, *\n", "policy.csv", true},
		{"unknown new role", model, granted + "p, user, users.delete, other, user, root\n", "policy.csv", true},
		{"unknown inherited role", model, granted + "g, user, root\n", "policy.csv", true},
		{"one-sided inheritance", model, granted + "g, user\n", "policy.csv", true},
		{"unbalanced quote", model, granted + "p, \"user, users.delete, *, *, *\n", "policy.csv", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := copyPolicies(t)
			log, logs := newLogger()
			a, err := rbac.New(dir, log)
			if err != nil {
				t.Fatal(err)
			}
			put(t, dir, "model.conf", tc.model)
			put(t, dir, "policy.csv", tc.policy)

			err = a.Reload()
			if err == nil {
				t.Fatal("Reload accepted the bad version")
			}
			want := tc.file
			if tc.lastLine {
				want = fmt.Sprintf("%s line %d", tc.file, strings.Count(tc.policy, "\n"))
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
			if n := logs.count("level=ERROR", "previous policy stays in force", tc.file); n != 1 {
				t.Errorf("%d error lines naming %s logged, want 1:\n%s", n, tc.file, logs)
			}
			if allowed(t, a, domain.RoleUser, domain.PermUsersSearch) || !allowed(t, a, domain.RoleAdmin, domain.PermUsersSearch) {
				t.Error("the previous policy is no longer in force")
			}

			// Putting the good files back is logged, even though they are
			// the very policy in force.
			put(t, dir, "model.conf", model)
			put(t, dir, "policy.csv", policy)
			if err := a.Reload(); err != nil {
				t.Fatal(err)
			}
			if n := logs.count("policy reloaded"); n != 1 {
				t.Errorf("%d reload lines after the repair, want 1", n)
			}
		})
	}
}

// A row naming no permission the service knows (a typo) loads, with a warning.
func TestReloadWarnsOfUnknownPermissions(t *testing.T) {
	t.Parallel()
	dir := copyPolicies(t)
	log, logs := newLogger()
	a, err := rbac.New(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.csv")
	testutil.ReplaceFile(t, policy, readFile(t, policy)+"p, user, users.serach, *, *, *\np, user, users.*, self, *, *\n")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	typoLine := fmt.Sprintf("line=%d", strings.Count(readFile(t, policy), "\n")-1)
	if n := logs.count("level=WARN", "users.serach", typoLine); n != 1 {
		t.Errorf("%d warnings for the typo, want 1:\n%s", n, logs)
	}
	if n := logs.count("level=WARN"); n != 1 {
		t.Errorf("%d warnings, want 1 (a wildcard matching known permissions is fine):\n%s", n, logs)
	}
}

// Deciding stays correct while reloads swap policies underneath: run with -race.
func TestAuthorizeDuringReloads(t *testing.T) {
	t.Parallel()
	dir := copyPolicies(t)
	a, err := rbac.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.csv")
	original := readFile(t, policy)
	versions := []string{original + grantUserSearch, "p, user, users.list\n", original}

	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ctx := context.Background()
			admin := domain.Actor{ID: 1, Role: domain.RoleAdmin}
			user := domain.Actor{ID: 2, Role: domain.RoleUser}
			for i := 0; i < 200 || !stop.Load(); i++ {
				// Allowed and forbidden in every version.
				if err := a.Authorize(ctx, ports.AuthzRequest{Actor: admin, Permission: domain.PermUsersSearch}); err != nil {
					t.Errorf("admin search: %v", err)
					return
				}
				if err := a.Authorize(ctx, ports.AuthzRequest{Actor: user, Permission: domain.PermUsersDelete}); !errors.Is(err, domain.ErrForbidden) {
					t.Errorf("user delete: %v", err)
					return
				}
				// Depends on the version; anything but a decision is wrong.
				if err := a.Authorize(ctx, ports.AuthzRequest{Actor: user, Permission: domain.PermUsersSearch}); err != nil && !errors.Is(err, domain.ErrForbidden) {
					t.Errorf("user search: %v", err)
					return
				}
			}
		})
	}
	for i := range 60 {
		testutil.ReplaceFile(t, policy, versions[i%len(versions)])
		_ = a.Reload() // the middle version is rejected, by design
	}
	stop.Store(true)
	wg.Wait()
}

func readShipped(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(shipped, name))
	return string(b), err
}

// put writes content to dir/name, or deletes the file when content is "".
func put(t *testing.T, dir, name, content string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if content == "" {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		return
	}
	testutil.ReplaceFile(t, path, content)
}
