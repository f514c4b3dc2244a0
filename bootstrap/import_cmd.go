package bootstrap

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// progressEvery spaces the plain progress lines written when stderr is not
// a terminal (a log file, CI).
const progressEvery = 5 * time.Second

// importMemoryLimit is the import command's soft memory limit (the Go
// runtime's, as GOMEMLIMIT sets it) unless GOMEMLIMIT is set. The import
// keeps a few batches and a 16-byte entry per email in memory, some 40 MiB
// for a million rows; without a limit the collector lets the heap grow to
// twice that before collecting, and the process's RSS past 100 MiB.
const importMemoryLimit = 64 << 20

// importUsers is `userservice import FILE.csv [flags]`: it imports as the
// operator, shows progress on stderr, prints the JSON report on stdout,
// and exits 0 when every row was imported, 1 when some failed (or a strict
// import was rejected, or the database failed), 2 when the file or the
// command line cannot be used.
func importUsers(ctx context.Context, env Env, args []string) error {
	c := newCommand("import", "FILE.csv [--on-conflict skip|update|fail] [--dry-run] [--default-password P] [--report REJECTED.csv]",
		"Imports the users of FILE.csv as the operator (migrations are applied first): columns by\n"+
			"header name (first_name,last_name,email,gender,ip_address; optional id, role,\n"+
			"password_hash). Progress goes to stderr, the JSON report to stdout.\n"+
			"Exit status: 0 every row imported, 1 some rows failed, 2 the file or command line is unusable.")
	fs := c.fs
	onConflict := fs.String("on-conflict", "skip", "a row whose email is stored: skip, update or fail (all or nothing)")
	dryRun := fs.Bool("dry-run", false, "check and report, write nothing")
	defaultPassword := fs.String("default-password", "", "password of new users without password_hash, to be changed at first login (or USERSERVICE_IMPORT_DEFAULT_PASSWORD)")
	reportPath := fs.String("report", "", "write the rejected rows with their reasons to this CSV file")
	paths, err := c.parse(env, args)
	if err != nil {
		return err
	}
	if len(paths) != 1 {
		return c.misuse(env, "want one FILE.csv, got %d arguments", len(paths))
	}
	switch *onConflict {
	case "skip", "update", "fail":
	default:
		return c.misuse(env, "--on-conflict %q: want skip, update or fail", *onConflict)
	}
	if *defaultPassword == "" {
		*defaultPassword = env.Getenv("USERSERVICE_IMPORT_DEFAULT_PASSWORD")
	}
	f, err := os.Open(paths[0])
	if err != nil {
		return usageError{fmt.Errorf("cannot read the file: %w", err)}
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return usageError{fmt.Errorf("cannot read the file: %w", err)}
	}
	if info.IsDir() {
		return usageError{fmt.Errorf("%s is a directory", paths[0])}
	}

	cfg, err := loadConfig(env, false)
	if err != nil {
		return err
	}
	if env.Getenv("GOMEMLIMIT") == "" {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(importMemoryLimit))
	}
	log := newLogger(cfg, env.Stderr)
	app, err := newApp(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	defer app.Close()
	if err := app.store.MigrateUp(ctx); err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}

	opts := ports.ImportOptions{OnConflict: *onConflict, DryRun: *dryRun, DefaultPassword: *defaultPassword}
	var rejected *rejectedWriter
	if *reportPath != "" {
		rf, err := os.Create(*reportPath)
		if err != nil {
			return usageError{fmt.Errorf("--report: %w", err)}
		}
		defer rf.Close()
		rejected = &rejectedWriter{w: csv.NewWriter(rf)}
		opts.Rejected = rejected.write
	}
	prog := newProgress(env.Stderr, info.Size())
	opts.Progress = prog.rows
	start := time.Now()
	report, err := app.imports.Import(ctx, domain.Operator(), prog.reader(f), opts)
	prog.done()
	if rejected != nil {
		if ferr := rejected.flush(); ferr != nil && err == nil {
			err = fmt.Errorf("--report: %w", ferr)
		}
	}
	if err != nil {
		if k := domain.KindOf(err); k == domain.KindMalformed || k == domain.KindInvalid {
			return usageError{err}
		}
		if report.TotalRows > 0 {
			fmt.Fprintf(env.Stderr, "stopped after %d rows: %d imported, %d updated (batches already committed stay; run the same file again with --on-conflict skip to complete it)\n",
				report.TotalRows, report.Imported, report.Updated)
		}
		return err
	}
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(reportJSON(report)); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	verb := "imported"
	if report.DryRun {
		verb = "would import"
	}
	fmt.Fprintf(env.Stderr, "%d rows in %s: %s %d, updated %d, skipped %d, failed %d\n",
		report.TotalRows, time.Since(start).Round(time.Millisecond), verb, report.Imported, report.Updated, report.Skipped, report.Failed)
	switch {
	case report.Rejected:
		return fmt.Errorf("nothing was imported: on_conflict=fail and %d of %d rows failed", report.Failed, report.TotalRows)
	case report.Failed > 0:
		return fmt.Errorf("%d of %d rows failed (see the report)", report.Failed, report.TotalRows)
	}
	return nil
}

// importReport is the report as the HTTP API writes it (docs/api.md).
type importReport struct {
	TotalRows int           `json:"total_rows"`
	Imported  int           `json:"imported"`
	Updated   int           `json:"updated"`
	Skipped   int           `json:"skipped"`
	Failed    int           `json:"failed"`
	Errors    []importError `json:"errors"`
	// ErrorsTruncated: errors stops at the first ports.MaxReportedRows
	// failed rows; --report has them all.
	ErrorsTruncated bool `json:"errors_truncated"`
	DryRun          bool `json:"dry_run"`
}

type importError struct {
	Line    int    `json:"line"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

func reportJSON(r ports.ImportReport) importReport {
	errs := make([]importError, len(r.Errors))
	for i, e := range r.Errors {
		errs[i] = importError{Line: e.Line, Field: e.Field, Message: e.Message}
	}
	return importReport{TotalRows: r.TotalRows, Imported: r.Imported, Updated: r.Updated, Skipped: r.Skipped,
		Failed: r.Failed, Errors: errs, ErrorsTruncated: r.ErrorsTruncated, DryRun: r.DryRun}
}

// rejectedWriter writes the rejected rows as CSV: their line, their
// problems, then their cells under the file's own header, so the file can
// be fixed and imported again (line and errors are then unknown columns,
// ignored). Cells are neutralised against formula injection.
type rejectedWriter struct {
	w      *csv.Writer
	header bool
}

func (r *rejectedWriter) write(row ports.RejectedRow) {
	if !r.header {
		r.header = true
		_ = r.w.Write(neutralised(append([]string{"line", "errors"}, row.Header...)))
	}
	problems := make([]string, len(row.Errors))
	for i, e := range row.Errors {
		problems[i] = e.Field + ": " + e.Message
	}
	// Write errors stick in the csv.Writer and come back from flush.
	_ = r.w.Write(neutralised(append([]string{strconv.Itoa(row.Line), strings.Join(problems, "; ")}, row.Cells...)))
}

func (r *rejectedWriter) flush() error {
	r.w.Flush()
	return r.w.Error()
}

// neutralised prefixes with a quote every cell a spreadsheet would take
// for a formula (OWASP's CSV injection advice): those starting with =, +,
// -, @, a tab or a carriage return.
func neutralised(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			c = "'" + c
		}
		out[i] = c
	}
	return out
}

// progress shows an import's progress on stderr: a bar with rows, rate
// and ETA on a terminal (the ETA from the bytes read of the file), a plain
// line every progressEvery otherwise.
type progress struct {
	w     io.Writer
	bar   *progressbar.ProgressBar // nil when not a terminal
	size  int64
	read  atomic.Int64 // bytes of the file read so far
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, size int64) *progress {
	p := &progress{w: w, size: size, start: time.Now()}
	p.last = p.start
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("importing"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

// reader counts the bytes the import reads (and moves the bar with them).
func (p *progress) reader(r io.Reader) io.Reader {
	return countingReader{r: r, n: &p.read, bar: p.bar}
}

// rows is the import's Progress callback.
func (p *progress) rows(n int) {
	now := time.Now()
	rate := float64(n) / max(now.Sub(p.start).Seconds(), 1e-3)
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("%d rows, %.0f rows/s", n, rate))
		return
	}
	if now.Sub(p.last) < progressEvery {
		return
	}
	p.last = now
	pct := ""
	if p.size > 0 {
		pct = fmt.Sprintf(" (%.0f%% of the file)", 100*float64(p.read.Load())/float64(p.size))
	}
	fmt.Fprintf(p.w, "import: %d rows%s, %.0f rows/s\n", n, pct, rate)
}

func (p *progress) done() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

type countingReader struct {
	r   io.Reader
	n   *atomic.Int64
	bar *progressbar.ProgressBar
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		total := c.n.Add(int64(n))
		if c.bar != nil {
			_ = c.bar.Set64(total)
		}
	}
	return n, err
}
