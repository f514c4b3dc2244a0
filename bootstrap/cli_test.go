package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// run calls Main with env vars and stdin, returning status, stdout, stderr.
func run(t *testing.T, vars map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, Env{
		Getenv: func(k string) string { return vars[k] },
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: &errOut,
	})
	return code, out.String(), errOut.String()
}

func TestBadConfigStopsServeWithOneLinePerVariable(t *testing.T) {
	t.Parallel()
	code, _, stderr := run(t, map[string]string{"LOG_LEVEL": "loud"}, "", "serve")
	if code != ExitBadInput {
		t.Fatalf("exit %d, want %d", code, ExitBadInput)
	}
	if !strings.Contains(stderr, "LOG_LEVEL: must be debug, info, warn or error") {
		t.Fatalf("stderr does not name the variable:\n%s", stderr)
	}
}

func TestUnknownCommandAndUsage(t *testing.T) {
	t.Parallel()
	if code, _, stderr := run(t, nil, "", "frobnicate"); code != ExitBadInput || !strings.Contains(stderr, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, stderr)
	}
	if code, _, _ := run(t, nil, ""); code != ExitBadInput {
		t.Fatalf("no command: %d", code)
	}
	if code, _, _ := run(t, nil, "", "migrate", "sideways"); code != ExitBadInput {
		t.Fatalf("bad migrate direction: %d", code)
	}
}

func TestMigrateAndSuperadminCreateThenPromote(t *testing.T) {
	t.Parallel()
	vars := map[string]string{
		"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "cli.db"),
		"POLICY_DIR":   filepath.Join("..", "policies"),
	}
	if code, _, stderr := run(t, vars, "", "migrate", "up"); code != ExitOK {
		t.Fatalf("migrate up: %d %s", code, stderr)
	}
	code, stdout, stderr := run(t, vars, "", "migrate", "status")
	if code != ExitOK || stdout == "" {
		t.Fatalf("migrate status: %d %q %s", code, stdout, stderr)
	}

	if code, _, stderr := run(t, vars, "", "superadmin", "--email", "root@example.com"); code != ExitBadInput || !strings.Contains(stderr, "no password") {
		t.Fatalf("superadmin without a password: %d %s", code, stderr)
	}
	code, stdout, stderr = run(t, vars, "first-password\n", "superadmin", "--email", "Root@Example.com", "--password-stdin")
	if code != ExitOK || !strings.Contains(stdout, "superadmin created") || !strings.Contains(stdout, "root@example.com") {
		t.Fatalf("create: %d %q %s", code, stdout, stderr)
	}
	vars["USERSERVICE_SUPERADMIN_PASSWORD"] = "second-password"
	code, stdout, stderr = run(t, vars, "", "superadmin", "--email", "root@example.com")
	if code != ExitOK || !strings.Contains(stdout, "superadmin promoted") {
		t.Fatalf("promote: %d %q %s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, "second-password") || strings.Contains(stdout+stderr, "first-password") {
		t.Fatal("a password was printed")
	}
	if code, _, stderr := run(t, vars, "short\n", "superadmin", "--email", "other@example.com", "--password-stdin"); code != ExitFailure || !strings.Contains(stderr, "password") {
		t.Fatalf("too short a password: %d %s", code, stderr)
	}
}

func TestSuperadminOnAFreshDatabase(t *testing.T) {
	t.Parallel()
	vars := map[string]string{
		"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "fresh.db"),
		"POLICY_DIR":   filepath.Join("..", "policies"),
	}
	code, stdout, stderr := run(t, vars, "a-long-password\n", "superadmin", "--email", "root@example.com", "--password-stdin")
	if code != ExitOK || !strings.Contains(stdout, "superadmin created") {
		t.Fatalf("superadmin before any serve or migrate: %d %q %s", code, stdout, stderr)
	}
}

// TestHelpPrintsUsageAndDoesNothing asks every command for --help (and -h): the
// usage goes to stdout with exit 0, and nothing starts. With no DATABASE_URL,
// HTTP_ADDR on a port this test holds, and a deadline, a command that did start
// would fail to listen, write a database file, or outlive the deadline.
func TestHelpPrintsUsageAndDoesNothing(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, cmd := range []string{"serve", "migrate", "superadmin", "import", "healthcheck", "version"} {
		for _, flag := range []string{"--help", "-h"} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var out, errOut bytes.Buffer
			code := Main(ctx, []string{cmd, flag}, Env{
				Getenv: vars{"HTTP_ADDR": "127.0.0.1:1"}.get,
				Stdin:  strings.NewReader(""), Stdout: &out, Stderr: &errOut,
			})
			expired := ctx.Err() != nil
			cancel()
			if code != ExitOK || !strings.HasPrefix(out.String(), "usage: userservice "+cmd) || errOut.Len() > 0 {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout only", cmd, flag, code, out.String(), errOut.String())
			}
			if expired {
				t.Errorf("%s %s ran until its deadline", cmd, flag)
			}
		}
	}
	if code, out, _ := run(t, nil, "", "import", "--help"); code != ExitOK || !strings.Contains(out, "FILE.csv") {
		t.Errorf("import --help does not name its FILE argument: %q", out)
	}
	if entries, err := os.ReadDir("."); err != nil || len(entries) > 0 {
		t.Errorf("the commands wrote %v (%v) in the working directory", entries, err)
	}
}

// TestUnknownFlagIsExit2WithUsage: a flag a command does not know is exit 2 with
// the error and the usage on stderr, and never a start.
func TestUnknownFlagIsExit2WithUsage(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, args := range [][]string{{"serve", "--bogus"}, {"serve", "extra"}, {"migrate", "--bogus", "up"}, {"import", "--bogus", "x.csv"},
		{"superadmin", "--email", "a@example.com", "--bogus"}, {"healthcheck", "--bogus"}, {"version", "--bogus"}} {
		code, out, errOut := run(t, map[string]string{"HTTP_ADDR": "127.0.0.1:1"}, "", args...)
		if code != ExitBadInput || out != "" || !strings.Contains(errOut, "usage: userservice "+args[0]) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 with the usage on stderr", args, code, out, errOut)
		}
	}
	if entries, err := os.ReadDir("."); err != nil || len(entries) > 0 {
		t.Errorf("the commands wrote %v (%v) in the working directory", entries, err)
	}
}

type vars map[string]string

func (v vars) get(k string) string { return v[k] }

// TestMissingFolderAndRepeatedLines: a SQLite path in a missing folder names the
// folder (SQLite itself says "out of memory"), and an error that repeats a line
// (pgx reports each connection attempt) shows it once.
func TestMissingFolderAndRepeatedLines(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing", "dir")
	code, _, stderr := run(t, vars{"DATABASE_URL": "sqlite:" + filepath.Join(missing, "x.db"), "POLICY_DIR": filepath.Join("..", "policies")}, "", "migrate", "up")
	if code != ExitFailure || !strings.Contains(stderr, "the folder "+missing+" does not exist") || strings.Contains(stderr, "out of memory") {
		t.Errorf("a missing folder: exit %d, %q", code, stderr)
	}
	err := errors.New("unreachable:\n\thost: refused\n\thost: refused")
	if got := describe(err); got != "unreachable:\n  \thost: refused" {
		t.Errorf("describe = %q", got)
	}
}
