package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Measurement is one measured run: what ran, at what concurrency, how many
// operations in how long, and their latencies (zero when the tool reports
// none).
type Measurement struct {
	Name    string        `json:"name"`
	Conns   int           `json:"conns"`
	Ops     int64         `json:"ops"`
	Errors  int64         `json:"errors,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
	P50     time.Duration `json:"p50_ns,omitempty"`
	P99     time.Duration `json:"p99_ns,omitempty"`
	// samples are the latencies behind P50 and P99, kept so that the
	// rounds of a comparison can be merged.
	samples []time.Duration
}

// merge adds up the rounds of one run: operations, time, and the
// percentiles of all their latencies.
func merge(rounds ...Measurement) Measurement {
	m := Measurement{Name: rounds[0].Name, Conns: rounds[0].Conns}
	for _, r := range rounds {
		m.Ops += r.Ops
		m.Errors += r.Errors
		m.Elapsed += r.Elapsed
		m.samples = append(m.samples, r.samples...)
	}
	m.P50, m.P99 = percentiles(m.samples)
	return m
}

// Rate is operations per second.
func (m Measurement) Rate() float64 {
	if m.Elapsed <= 0 {
		return 0
	}
	return float64(m.Ops) / m.Elapsed.Seconds()
}

// Metric is what a row's ratio compares.
type Metric int

const (
	// ByRate: scenario rate / baseline rate; a target is a minimum.
	ByRate Metric = iota
	// ByP50: scenario p50 / baseline p50; a target is a maximum.
	ByP50
)

// Row is one line of the table: a scenario beside its baseline.
type Row struct {
	Scenario Measurement
	// Baseline is nil for a figure without one.
	Baseline *Measurement
	Metric   Metric
	// Target is the bound on the ratio (see Metric); 0 for none.
	Target float64
	// MaxP50 is a bound on the scenario's own p50; 0 for none.
	MaxP50 time.Duration
	// Note is shown under the table, numbered.
	Note string
}

// Ratio is the row's ratio (0 without a baseline).
func (r Row) Ratio() float64 {
	if r.Baseline == nil {
		return 0
	}
	if r.Metric == ByP50 {
		if r.Baseline.P50 == 0 {
			return 0
		}
		return float64(r.Scenario.P50) / float64(r.Baseline.P50)
	}
	if r.Baseline.Rate() == 0 {
		return 0
	}
	return r.Scenario.Rate() / r.Baseline.Rate()
}

// Verdict is "holds", "MISSED" or "" (no target).
func (r Row) Verdict() string {
	if r.Target == 0 && r.MaxP50 == 0 {
		return ""
	}
	ok := true
	if r.Target != 0 && r.Baseline != nil {
		if r.Metric == ByP50 {
			ok = r.Ratio() <= r.Target
		} else {
			ok = r.Ratio() >= r.Target
		}
	}
	if r.MaxP50 != 0 && r.Scenario.P50 > r.MaxP50 {
		ok = false
	}
	if ok {
		return "holds"
	}
	return "MISSED"
}

func (r Row) targetText() string {
	var parts []string
	if r.Target != 0 {
		if r.Metric == ByP50 {
			parts = append(parts, fmt.Sprintf("p50 ≤ %.2g×", r.Target))
		} else {
			parts = append(parts, fmt.Sprintf("rate ≥ %.2g×", r.Target))
		}
	}
	if r.MaxP50 != 0 {
		parts = append(parts, "p50 < "+r.MaxP50.String())
	}
	return strings.Join(parts, ", ")
}

// report collects the rows of a run and facts about the machine.
type report struct {
	mu      sync.Mutex
	started time.Time
	facts   []string // "users: 1000000", "PostgreSQL 15.x", ...
	rows    []Row
}

// record adds a row to the table.
func record(r Row) {
	shared.report.mu.Lock()
	defer shared.report.mu.Unlock()
	shared.report.rows = append(shared.report.rows, r)
}

// fact adds a line to the table's header (and to the JSON).
func fact(format string, args ...any) {
	shared.report.mu.Lock()
	defer shared.report.mu.Unlock()
	shared.report.facts = append(shared.report.facts, fmt.Sprintf(format, args...))
}

func (r *report) print(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(w, "\nuserservice benchmarks, %s, %d CPUs (%s/%s), %s\n", r.started.UTC().Format("2006-01-02 15:04 MST"),
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	for _, f := range r.facts {
		fmt.Fprintln(w, "  "+f)
	}
	fmt.Fprintln(w)
	table := [][]string{{"scenario", "conns", "ops/s", "p50", "p99", "baseline", "conns", "ops/s", "p50", "p99", "ratio", "target", ""}}
	var notes []string
	for _, row := range r.rows {
		s := row.Scenario
		cells := []string{s.Name, fmt.Sprint(s.Conns), rate(s), dur(s.P50), dur(s.P99)}
		if b := row.Baseline; b != nil {
			what := "rate"
			if row.Metric == ByP50 {
				what = "p50"
			}
			cells = append(cells, b.Name, fmt.Sprint(b.Conns), rate(*b), dur(b.P50), dur(b.P99),
				fmt.Sprintf("%.2f× %s", row.Ratio(), what))
		} else {
			cells = append(cells, "", "", "", "", "", "")
		}
		cells = append(cells, row.targetText(), row.Verdict())
		if row.Note != "" {
			notes = append(notes, row.Note)
			cells[0] += fmt.Sprintf(" [%d]", len(notes))
		}
		table = append(table, cells)
	}
	writeMarkdownTable(w, table)
	for i, n := range notes {
		fmt.Fprintf(w, "[%d] %s\n", i+1, n)
	}
	fmt.Fprintln(w)
}

// writeMarkdownTable writes rows (the first is the header) as a Markdown
// table padded to line up in a terminal too; numeric columns align right.
func writeMarkdownTable(w io.Writer, rows [][]string) {
	widths := make([]int, len(rows[0]))
	numeric := make([]bool, len(rows[0]))
	for c := range numeric {
		numeric[c] = true
	}
	for i, row := range rows {
		for c, cell := range row {
			widths[c] = max(widths[c], utf8.RuneCountInString(cell), 3)
			if i > 0 && cell != "" && cell != "-" && strings.TrimLeft(cell, "0123456789.") == cell {
				numeric[c] = false
			}
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		for c, cell := range cells {
			pad := strings.Repeat(" ", widths[c]-utf8.RuneCountInString(cell))
			if numeric[c] {
				cell = pad + cell
			} else {
				cell += pad
			}
			b.WriteString("| " + cell + " ")
		}
		fmt.Fprintln(w, b.String()+"|")
	}
	line(rows[0])
	sep := make([]string, len(widths))
	for c, n := range widths {
		sep[c] = strings.Repeat("-", n)
		if numeric[c] {
			sep[c] = sep[c][1:] + ":"
		}
	}
	line(sep)
	for _, row := range rows[1:] {
		line(row)
	}
}

func rate(m Measurement) string {
	r := m.Rate()
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	case r >= 10:
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.2f", r)
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

// jsonRow is a row as the JSON file holds it, ratio and verdict included.
type jsonRow struct {
	Scenario Measurement  `json:"scenario"`
	Baseline *Measurement `json:"baseline,omitempty"`
	Metric   string       `json:"metric"`
	Ratio    float64      `json:"ratio,omitempty"`
	Target   string       `json:"target,omitempty"`
	Verdict  string       `json:"verdict,omitempty"`
	Note     string       `json:"note,omitempty"`
}

// writeJSON writes the run to dir/<start time>.json and returns that path.
func (r *report) writeJSON(dir string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := struct {
		Started time.Time `json:"started"`
		CPUs    int       `json:"cpus"`
		Go      string    `json:"go"`
		Facts   []string  `json:"facts"`
		Rows    []jsonRow `json:"rows"`
	}{Started: r.started.UTC(), CPUs: runtime.NumCPU(), Go: runtime.Version(), Facts: r.facts}
	for _, row := range r.rows {
		metric := "rate"
		if row.Metric == ByP50 {
			metric = "p50"
		}
		out.Rows = append(out.Rows, jsonRow{Scenario: row.Scenario, Baseline: row.Baseline, Metric: metric,
			Ratio: row.Ratio(), Target: row.targetText(), Verdict: row.Verdict(), Note: row.Note})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, r.started.UTC().Format("20060102T150405Z")+".json")
	return path, os.WriteFile(path, append(b, '\n'), 0o644)
}
