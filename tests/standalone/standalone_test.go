// Package standalone checks that a clone of the repository stands alone: no file
// in it links or refers to a document or path outside it. A reader of a clone
// must find every document a comment, a README or a script names.
package standalone

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const repoRoot = "../.."

var (
	// outside is a path leaving the repository or belonging to the machine a
	// file was written on: a relative climb to a sibling folder, or an absolute
	// home or workspace folder.
	outside = regexp.MustCompile(`\.\.[/]shared\b|(^|[\s"'(=:])/(work|root|home/[a-z_][a-z0-9_-]*)/`)
	// docName is a document named in prose, such as SECURITY.md.
	docName = regexp.MustCompile(`\b[A-Z][A-Z0-9_-]*\.md\b`)
	// sectionRef is a reference to a numbered section of a named document: its
	// name, then a section sign and a number.
	sectionRef = regexp.MustCompile(`\b([A-Z][A-Za-z0-9_-]*)(\.md)? §\s?\d`)
	// mdLink is a Markdown link's target.
	mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)
)

// trackedTextFiles lists the repository's files (git ls-files) but binary and
// compressed ones.
func trackedTextFiles(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): nothing to check", err)
	}
	var files []string
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		switch filepath.Ext(f) {
		case ".gz", ".png", ".ico", ".woff", ".woff2":
			continue
		}
		files = append(files, f)
	}
	return files
}

func TestNothingPointsOutsideTheRepository(t *testing.T) {
	files := trackedTextFiles(t)
	names := map[string]bool{} // base names of the repository's files
	for _, f := range files {
		names[filepath.Base(f)] = true
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree, not yet in the index
			}
			t.Fatal(err)
		}
		if bytes.IndexByte(data, 0) >= 0 {
			continue // binary
		}
		for i, line := range strings.Split(string(data), "\n") {
			where := f + ":" + strconv.Itoa(i+1)
			if m := outside.FindString(line); m != "" {
				t.Errorf("%s: a path outside the repository (%q): %s", where, strings.TrimSpace(m), strings.TrimSpace(line))
			}
			for _, doc := range docName.FindAllString(line, -1) {
				if !names[doc] {
					t.Errorf("%s: names %s, which the repository does not hold", where, doc)
				}
			}
			for _, m := range sectionRef.FindAllStringSubmatch(line, -1) {
				if !names[m[1]+".md"] && !names[m[1]] {
					t.Errorf("%s: refers to a section of %s, which the repository does not hold", where, m[1])
				}
			}
			if filepath.Ext(f) == ".md" {
				for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
					checkLink(t, where, f, m[1])
				}
			}
		}
	}
}

// checkLink fails a relative Markdown link whose file does not exist in the
// repository, or that climbs out of it.
func checkLink(t *testing.T, where, file, target string) {
	t.Helper()
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "#") {
		return
	}
	path, _, _ := strings.Cut(target, "#")
	if strings.HasPrefix(path, "/") {
		t.Errorf("%s: links to the absolute path %s", where, target)
		return
	}
	resolved := filepath.Join(filepath.Dir(file), path)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		t.Errorf("%s: links to %s, outside the repository", where, target)
		return
	}
	if _, err := os.Stat(filepath.Join(repoRoot, resolved)); err != nil {
		t.Errorf("%s: links to %s, which does not exist", where, target)
	}
}

// TestThePatternsFindWhatTheyLookFor keeps the check honest: each kind of
// reference it must refuse is refused.
func TestThePatternsFindWhatTheyLookFor(t *testing.T) {
	// The bad references are assembled here, so that this file does not
	// itself hold what the repository must not.
	const up, sibling, work, root, guide = "..", "/shared", "/work", "/root", "GUIDE"
	for _, line := range []string{
		"see [the contract](" + up + sibling + "/" + guide + ".md)",
		"# Where the binaries come from (see " + work + sibling + "/" + guide + ".md):",
		`dir := "` + root + `/go/bin"`,
	} {
		if outside.FindString(line) == "" {
			t.Errorf("not seen as outside: %s", line)
		}
	}
	if m := sectionRef.FindStringSubmatch("the matrix of " + guide + " §2"); m == nil || m[1] != guide {
		t.Errorf("a section reference was not seen: %v", m)
	}
	if docName.FindString(guide+".md's table") != guide+".md" {
		t.Error("a document name was not seen")
	}
	for _, line := range []string{"CONTRACT_SEED=n replays", "/tmp/users.csv", "https://example.com/work/x"} {
		if outside.FindString(line) != "" || sectionRef.FindString(line) != "" {
			t.Errorf("a false alarm: %s", line)
		}
	}
}
