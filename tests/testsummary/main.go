// Command testsummary reads the test2json stream that `make test` records (gotestsum's
// --jsonfile) and prints what a green line alone would hide: every group of skipped
// tests with the reason they gave, then one closing line counting the tests that
// passed, failed and were skipped.
//
//	go run ./tests/testsummary FILE.json
//
// Skips are grouped by their reason (the last line the test logged before it
// skipped), so the hundred tests a missing Redis skips are one line, not a hundred.
// It exits 1 when any test failed or the stream holds no test at all, so it cannot
// turn a broken run into a quiet one.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
)

// event is the part of a test2json event this command reads.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// group is every skipped test that gave one reason.
type group struct {
	reason   string
	tests    int
	packages []string
}

// summary is what a run came to.
type summary struct {
	passed, failed, skipped int
	groups                  []*group
}

func main() {
	if len(os.Args) != 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintln(os.Stderr, "usage: testsummary FILE.json  (a test2json stream, e.g. gotestsum --jsonfile)")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	defer f.Close()
	s, err := summarize(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	s.print(os.Stdout)
	if s.failed > 0 || s.passed+s.skipped == 0 {
		os.Exit(1)
	}
}

// location is the "file_test.go:123: " prefix t.Skip puts before its message.
var location = regexp.MustCompile(`^\s*[\w.-]+\.go:\d+: `)

// summarize counts the test results of a test2json stream and groups its skips.
func summarize(r io.Reader) (summary, error) {
	var s summary
	// lastLine is each running test's last line of its own output.
	lastLine := map[string]string{}
	byReason := map[string]*group{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue // go test's own lines, e.g. a build failure, are printed by the runner
		}
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			return s, fmt.Errorf("line %q: %w", line, err)
		}
		if e.Test == "" {
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			out := strings.TrimRight(e.Output, "\n")
			trimmed := strings.TrimSpace(out)
			if trimmed == "" || strings.HasPrefix(trimmed, "=== ") || strings.HasPrefix(trimmed, "--- ") {
				continue
			}
			lastLine[key] = strings.TrimSpace(location.ReplaceAllString(out, ""))
		case "pass":
			s.passed++
		case "fail":
			s.failed++
		case "skip":
			s.skipped++
			reason := lastLine[key]
			if reason == "" {
				reason = "(no reason given)"
			}
			g := byReason[reason]
			if g == nil {
				g = &group{reason: reason}
				byReason[reason] = g
				s.groups = append(s.groups, g)
			}
			g.tests++
			if !slices.Contains(g.packages, e.Package) {
				g.packages = append(g.packages, e.Package)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	slices.SortStableFunc(s.groups, func(a, b *group) int { return b.tests - a.tests })
	return s, nil
}

// print writes the skipped groups, then the closing line.
func (s summary) print(w io.Writer) {
	if len(s.groups) > 0 {
		fmt.Fprintln(w, "\nSkipped, by reason:")
	}
	for _, g := range s.groups {
		fmt.Fprintf(w, "  %d skipped in %s:\n      %s\n", g.tests, packageList(g.packages), g.reason)
	}
	fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
}

// packageList names at most four packages, shortened to the module's own paths.
func packageList(pkgs []string) string {
	names := make([]string, len(pkgs))
	for i, p := range pkgs {
		names[i] = strings.TrimPrefix(p, "github.com/userservice/userservice/")
	}
	slices.Sort(names)
	if len(names) > 4 {
		return strings.Join(names[:4], ", ") + fmt.Sprintf(" and %d more", len(names)-4)
	}
	return strings.Join(names, ", ")
}
