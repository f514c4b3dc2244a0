package bootstrap

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/userservice/userservice/domain"
)

// Version and Commit are stamped at build time with -ldflags -X.
var (
	Version = "dev"
	Commit  = "unknown"
)

// Exit statuses of the binary (CONTRACT §6 for import).
const (
	ExitOK       = 0
	ExitFailure  = 1
	ExitBadInput = 2
)

// Env is the process's outside world, injected so commands are testable.
type Env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// OS is the real process environment.
func OS() Env {
	return Env{Getenv: os.Getenv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
}

const usage = `usage: userservice <command> [arguments]

commands:
  serve                          run the HTTP API (migrations are applied first)
  migrate up|down|status         manage the database schema
  superadmin --email EMAIL       create or promote a superadmin; the password comes from
             [--password-stdin]  stdin or USERSERVICE_SUPERADMIN_PASSWORD
  import FILE.csv                import users from CSV as the operator (migrations are applied
         [--on-conflict skip|update|fail] [--dry-run] [--report REJECTED.csv]
         [--default-password PASSWORD]  (or USERSERVICE_IMPORT_DEFAULT_PASSWORD)
                                 exit 0: every row imported; 1: some rows failed; 2: unusable input
  healthcheck [--url URL]        exit 0 when the local service answers /healthz (for containers)
  version                        print the version

configuration is read from the environment: see README.md
`

// Main runs one command and returns the process exit status.
func Main(ctx context.Context, args []string, env Env) int {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return ExitBadInput
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, env)
	case "migrate":
		err = migrate(ctx, env, rest)
	case "superadmin":
		err = superadmin(ctx, env, rest)
	case "import":
		err = importUsers(ctx, env, rest)
	case "healthcheck":
		err = healthcheck(ctx, env, rest)
	case "version":
		fmt.Fprintf(env.Stdout, "userservice %s (%s)\n", Version, Commit)
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
	default:
		fmt.Fprintf(env.Stderr, "userservice: unknown command %q\n\n%s", cmd, usage)
		return ExitBadInput
	}
	if err == nil {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(env.Stderr, "userservice %s: %v\n", cmd, err)
		return ExitBadInput
	}
	fmt.Fprintf(env.Stderr, "userservice %s: %s\n", cmd, describe(err))
	return ExitFailure
}

// usageError is a bad command line or configuration: exit status 2.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// describe gives one line per problem; configuration errors are joined lines.
func describe(err error) string {
	if e := domain.AsError(err); e != nil && e.Kind != domain.KindInternal {
		return e.Error()
	}
	return strings.ReplaceAll(err.Error(), "\n", "\n  ")
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// loadConfig reads the environment; a bad value is a usage error that names
// the variable, one line each.
func loadConfig(env Env, forServe bool) (Config, error) {
	cfg, err := LoadConfig(env.Getenv, forServe)
	if err != nil {
		return cfg, usageError{fmt.Errorf("invalid configuration:\n%w", err)}
	}
	return cfg, nil
}

func migrate(ctx context.Context, env Env, args []string) error {
	if len(args) != 1 || (args[0] != "up" && args[0] != "down" && args[0] != "status") {
		return usageError{errors.New("want one of: migrate up | migrate down | migrate status")}
	}
	cfg, err := loadConfig(env, false)
	if err != nil {
		return err
	}
	log := newLogger(cfg, env.Stderr)
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	switch args[0] {
	case "up":
		return store.MigrateUp(ctx)
	case "down":
		return store.MigrateDown(ctx)
	default:
		return store.MigrateStatus(ctx, env.Stdout)
	}
}

func superadmin(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("superadmin", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	email := fs.String("email", "", "the superadmin's email (created or promoted)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *email == "" || fs.NArg() > 0 {
		return usageError{errors.New("usage: superadmin --email EMAIL [--password-stdin]")}
	}
	password := env.Getenv("USERSERVICE_SUPERADMIN_PASSWORD")
	if *fromStdin {
		line, err := bufio.NewReader(env.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading the password from stdin: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	}
	if password == "" {
		return usageError{errors.New("no password: use --password-stdin or set USERSERVICE_SUPERADMIN_PASSWORD")}
	}
	cfg, err := loadConfig(env, false)
	if err != nil {
		return err
	}
	log := newLogger(cfg, env.Stderr)
	app, err := newApp(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	defer app.Close()
	// The first superadmin is often made before the first serve: bring the
	// schema up to date (idempotent, and serialised across instances).
	if err := app.store.MigrateUp(ctx); err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}
	u, created, err := app.users.EnsureSuperadmin(ctx, domain.Operator(), *email, password)
	if err != nil {
		return err
	}
	verb := "promoted"
	if created {
		verb = "created"
	}
	fmt.Fprintf(env.Stdout, "superadmin %s: id %d, %s\n", verb, u.ID(), u.Email())
	return nil
}

func healthcheck(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	addr := orDefault(env.Getenv("HTTP_ADDR"), ":8000")
	_, port, _ := splitHostPort(addr)
	url := fs.String("url", fmt.Sprintf("http://127.0.0.1:%d/healthz", port), "the URL to probe")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return usageError{err}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", *url, resp.Status)
	}
	return nil
}
