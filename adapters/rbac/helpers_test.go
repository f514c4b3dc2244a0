package rbac_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/userservice/userservice/adapters/rbac"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
	"github.com/userservice/userservice/tests/testutil"
)

// shipped is the policy directory the service ships with.
const shipped = "../../policies"

// logBuffer collects log output for the test to count lines in.
type logBuffer struct{ bytes.Buffer }

// count returns how many log lines contain every one of parts.
func (b *logBuffer) count(parts ...string) int {
	n := 0
	for line := range strings.Lines(b.String()) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// copyPolicies copies the shipped policy files into a fresh directory.
func copyPolicies(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"model.conf", "policy.csv"} {
		b, err := os.ReadFile(filepath.Join(shipped, name))
		if err != nil {
			t.Fatal(err)
		}
		testutil.ReplaceFile(t, filepath.Join(dir, name), string(b))
	}
	return dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testUser(t testing.TB, id int64, role domain.Role) *domain.User {
	t.Helper()
	u, err := domain.RestoreUser(domain.StoredUser{
		ID: id, FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com",
		Gender: "Female", Role: role.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// allowed asks a whether actor may perform perm with no target user and fails
// the test on anything but a yes or a no.
func allowed(t testing.TB, a *rbac.Authorizer, role domain.Role, perm domain.Permission) bool {
	t.Helper()
	err := a.Authorize(context.Background(), ports.AuthzRequest{Actor: domain.Actor{ID: 1, Role: role}, Permission: perm})
	switch {
	case err == nil:
		return true
	case errors.Is(err, domain.ErrForbidden):
		return false
	default:
		t.Fatalf("Authorize(%s, %s): %v", role, perm, err)
		return false
	}
}
