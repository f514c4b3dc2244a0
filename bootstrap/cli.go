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
	"slices"
	"strings"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// Version and Commit are stamped at build time with -ldflags -X.
var (
	Version = "dev"
	Commit  = "unknown"
)

// Exit statuses of the binary (docs/operations.md, Commands).
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
             [--first-name F] [--last-name L] [--gender G]
  import FILE.csv                import users from CSV as the operator (migrations are applied
         [--on-conflict skip|update|fail] [--dry-run] [--report REJECTED.csv]
         [--default-password PASSWORD]  (or USERSERVICE_IMPORT_DEFAULT_PASSWORD)
                                 exit 0: every row imported; 1: some rows failed; 2: unusable input
  healthcheck [--url URL]        exit 0 when the local service answers /healthz (for containers)
  version                        print the version

userservice COMMAND --help describes one command.
configuration is read from the environment: see docs/operations.md
`

// errHelpShown ends a command whose --help was asked for: its usage went to
// stdout, and the exit status is 0.
var errHelpShown = errors.New("help shown")

// command is one command's flags and the words of its usage.
type command struct {
	fs *flag.FlagSet
	// synopsis is what follows the command's name, e.g. "FILE.csv [flags]".
	synopsis string
	// about says what the command does, one paragraph.
	about string
}

func newCommand(name, synopsis, about string) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// parse prints the usage itself: to stdout for --help, to stderr with the
	// error for a bad flag.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &command{fs: fs, synopsis: synopsis, about: about}
}

// printUsage writes the command's usage and its flags to w.
func (c *command) printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", strings.TrimSpace("userservice "+c.fs.Name()+" "+c.synopsis), c.about)
	hasFlags := false
	c.fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintln(w, "\nflags:")
		c.fs.SetOutput(w)
		c.fs.PrintDefaults()
		c.fs.SetOutput(io.Discard)
	}
}

// parse reads flags anywhere among the arguments (`import users.csv --dry-run`,
// which flag alone stops at) and returns the positional ones. --help (or -h)
// prints the usage on stdout and returns errHelpShown; a bad flag prints the
// error and the usage on stderr and returns a usage error.
func (c *command) parse(env Env, args []string) ([]string, error) {
	var positional []string
	for {
		err := c.fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			c.printUsage(env.Stdout)
			return nil, errHelpShown
		}
		if err != nil {
			fmt.Fprintf(env.Stderr, "userservice %s: %v\n", c.fs.Name(), err)
			c.printUsage(env.Stderr)
			return nil, usageError{errShown}
		}
		args = c.fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// errShown is a usage error whose message and usage were already printed.
var errShown = errors.New("bad command line")

// misuse is a command line that parsed but does not fit the command: the
// reason, then the usage, on stderr.
func (c *command) misuse(env Env, format string, a ...any) error {
	fmt.Fprintf(env.Stderr, "userservice %s: %s\n", c.fs.Name(), fmt.Sprintf(format, a...))
	c.printUsage(env.Stderr)
	return usageError{errShown}
}

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
		err = serve(ctx, env, rest)
	case "migrate":
		err = migrate(ctx, env, rest)
	case "superadmin":
		err = superadmin(ctx, env, rest)
	case "import":
		err = importUsers(ctx, env, rest)
	case "healthcheck":
		err = healthcheck(ctx, env, rest)
	case "version":
		err = version(env, rest)
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
	default:
		fmt.Fprintf(env.Stderr, "userservice: unknown command %q\n\n%s", cmd, usage)
		return ExitBadInput
	}
	if err == nil || errors.Is(err, errHelpShown) {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		if !errors.Is(err, errShown) {
			fmt.Fprintf(env.Stderr, "userservice %s: %v\n", cmd, err)
		}
		return ExitBadInput
	}
	fmt.Fprintf(env.Stderr, "userservice %s: %s\n", cmd, describe(err))
	return ExitFailure
}

// usageError is a bad command line or configuration: exit status 2.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// describe gives one line per problem; configuration errors are joined lines.
// A line the error repeats (the PostgreSQL driver reports each attempt of a
// connection, e.g. with and without TLS, though they failed alike) is shown once.
func describe(err error) string {
	msg := err.Error()
	if e := domain.AsError(err); e != nil && e.Kind != domain.KindInternal {
		msg = e.Error()
	}
	var lines []string
	for _, line := range strings.Split(msg, "\n") {
		if !slices.Contains(lines, line) {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n  ")
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

func version(env Env, args []string) error {
	c := newCommand("version", "", "Prints the version and the commit it was built from.")
	if rest, err := c.parse(env, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return c.misuse(env, "takes no arguments")
	}
	fmt.Fprintf(env.Stdout, "userservice %s (%s)\n", Version, Commit)
	return nil
}

func migrate(ctx context.Context, env Env, args []string) error {
	c := newCommand("migrate", "up|down|status",
		"Manages the database schema of DATABASE_URL: up applies every pending migration, down\n"+
			"reverts the last one, status lists them. serve applies them itself.")
	args, err := c.parse(env, args)
	if err != nil {
		return err
	}
	if len(args) != 1 || (args[0] != "up" && args[0] != "down" && args[0] != "status") {
		return c.misuse(env, "want one of: migrate up | migrate down | migrate status")
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
	c := newCommand("superadmin", "--email EMAIL [--password-stdin] [--first-name F] [--last-name L] [--gender G]",
		"Creates EMAIL as a superadmin, or promotes the existing account, and sets its password\n"+
			"(from the first line of stdin with --password-stdin, else USERSERVICE_SUPERADMIN_PASSWORD).\n"+
			"The profile flags are used when the account is created; without them it is\n"+
			"Super Admin, Agender, which the superadmin can edit afterwards. Migrations are applied first.")
	fs := c.fs
	email := fs.String("email", "", "the superadmin's email (created or promoted)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	firstName := fs.String("first-name", "", "first name of a new account (default Super)")
	lastName := fs.String("last-name", "", "last name of a new account (default Admin)")
	gender := fs.String("gender", "", "gender of a new account, one of "+genderNames()+" (default Agender)")
	rest, err := c.parse(env, args)
	if err != nil {
		return err
	}
	if *email == "" || len(rest) > 0 {
		return c.misuse(env, "want --email EMAIL and no other arguments")
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
	u, created, err := app.users.EnsureSuperadmin(ctx, domain.Operator(), ports.SuperadminRequest{
		Email: *email, Password: password, FirstName: *firstName, LastName: *lastName, Gender: *gender,
	})
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

// genderNames lists the genders a profile may have, for the usage text.
func genderNames() string {
	var names []string
	for _, g := range domain.Genders() {
		names = append(names, g.String())
	}
	return strings.Join(names, ", ")
}

func healthcheck(ctx context.Context, env Env, args []string) error {
	c := newCommand("healthcheck", "[--url URL]",
		"Exits 0 when the local service answers /healthz within 3 s, 1 otherwise (for container\n"+
			"health checks: the image has no shell or curl).")
	addr := orDefault(env.Getenv("HTTP_ADDR"), ":8000")
	_, port, _ := splitHostPort(addr)
	url := c.fs.String("url", fmt.Sprintf("http://127.0.0.1:%d/healthz", port), "the URL to probe")
	if rest, err := c.parse(env, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return c.misuse(env, "takes no arguments but --url")
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
