// Package docs holds the README and docs/ to the code they describe: the
// README stays short and leads to every page; the make targets, the packages
// of the layout, the environment variables and the commands the pages name
// are the ones the Makefile and the code have, both ways; and every reference
// to a section of a page names a heading it has. A rename on either side that
// the other does not follow fails here. No database, no build: it reads files.
package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const repoRoot = "../.."

// maxReadmeLines is how long the README may grow: a newcomer reads it to the
// end; the rest belongs in docs/.
const maxReadmeLines = 220

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// docPages are the Markdown files of docs/, as paths from the repository root.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("docs/ holds no page")
	}
	for i, p := range pages {
		pages[i] = filepath.ToSlash(strings.TrimPrefix(p, repoRoot+string(filepath.Separator)))
	}
	return pages
}

// mdLink is a Markdown link's target, with its fragment if any.
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

func TestReadmeIsShortAndLeadsToEveryPage(t *testing.T) {
	readme := read(t, "README.md")
	if n := strings.Count(readme, "\n"); n > maxReadmeLines {
		t.Errorf("README.md has %d lines; keep it to %d and move the rest into docs/", n, maxReadmeLines)
	}
	linked := map[string]bool{}
	for _, m := range mdLink.FindAllStringSubmatch(readme, -1) {
		path, _, _ := strings.Cut(m[1], "#")
		linked[path] = true
	}
	for _, page := range append(docPages(t), "SECURITY.md") {
		if !linked[page] {
			t.Errorf("README.md does not link %s", page)
		}
	}
}

var (
	// helpTarget is a Makefile rule that `make help` lists: its awk reads
	// the rules with a `## ` description.
	helpTarget = regexp.MustCompile(`(?m)^([a-zA-Z_-]+):.*## `)
	// rule is any Makefile rule (not a `:=` assignment).
	rule = regexp.MustCompile(`(?m)^([a-zA-Z_-]+):([^=]|$)`)
	// makeCommand is `make TARGET` in a code span or at the start of a line.
	makeCommand = regexp.MustCompile("(?m)(?:`|^[ \t]*)make ([a-z][a-z0-9_-]*)")
)

func TestMakeTargetsMatchTheMakefile(t *testing.T) {
	makefile := read(t, "Makefile")
	rules := map[string]bool{}
	for _, m := range rule.FindAllStringSubmatch(makefile, -1) {
		rules[m[1]] = true
	}
	readme := read(t, "README.md")
	named := map[string]bool{}
	for _, m := range makeCommand.FindAllStringSubmatch(readme, -1) {
		named[m[1]] = true
	}
	listed := helpTarget.FindAllStringSubmatch(makefile, -1)
	if len(listed) == 0 {
		t.Fatal("make help lists no target: the Makefile's `## ` descriptions were not found")
	}
	for _, m := range listed {
		if !named[m[1]] {
			t.Errorf("README.md does not name `make %s`, which make help lists", m[1])
		}
	}
	for _, page := range append(docPages(t), "README.md", "SECURITY.md") {
		for _, m := range makeCommand.FindAllStringSubmatch(read(t, page), -1) {
			if !rules[m[1]] {
				t.Errorf("%s names `make %s`, which the Makefile does not have", page, m[1])
			}
		}
	}
}

// goFiles parses the service's own Go files: every package but the tests.
func goFiles(t *testing.T) (*token.FileSet, []*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	var files []*ast.File
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, path)
		if d.IsDir() {
			if rel == "tests" || rel == "bin" || (rel != "." && strings.HasPrefix(d.Name(), ".")) || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fset, files
}

// envNames are the environment variables the service reads: string
// literals passed to a getenv (Getenv, LookupEnv, or the getenv LoadConfig
// is given), and the names of `env:"NAME"` struct tags, for configuration
// decoded into a struct.
func envNames(t *testing.T) map[string]string {
	t.Helper()
	fset, files := goFiles(t)
	names := map[string]string{} // name -> where it is read
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				var fn string
				switch fun := n.Fun.(type) {
				case *ast.Ident:
					fn = fun.Name
				case *ast.SelectorExpr:
					fn = fun.Sel.Name
				}
				if len(n.Args) == 0 || !slices.Contains([]string{"getenv", "Getenv", "LookupEnv"}, fn) {
					return true
				}
				if lit, ok := n.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if name, err := strconv.Unquote(lit.Value); err == nil {
						names[name] = where(fset, lit.Pos())
					}
				}
			case *ast.Field:
				if n.Tag == nil {
					return true
				}
				tag, err := strconv.Unquote(n.Tag.Value)
				if err != nil {
					return true
				}
				if name, _, _ := strings.Cut(reflect.StructTag(tag).Get("env"), ","); name != "" {
					names[name] = where(fset, n.Tag.Pos())
				}
			}
			return true
		})
	}
	return names
}

// where is a position as a path from the repository's root, line and column.
func where(fset *token.FileSet, pos token.Pos) string {
	p := fset.Position(pos)
	rel, err := filepath.Rel(repoRoot, p.Filename)
	if err != nil {
		rel = p.Filename
	}
	return filepath.ToSlash(rel) + ":" + strconv.Itoa(p.Line)
}

// section is the text of a page's section: from the heading to the next
// heading of the same or a higher level.
func section(t *testing.T, page, heading string) string {
	t.Helper()
	var out []string
	level, inFence := 0, false
	for line := range strings.Lines(read(t, page)) {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		hashes := len(line) - len(strings.TrimLeft(line, "#"))
		isHeading := !inFence && hashes > 0 && strings.HasPrefix(line[hashes:], " ")
		switch {
		case level == 0 && isHeading && strings.TrimSpace(line[hashes:]) == heading:
			level = hashes
		case level > 0 && isHeading && hashes <= level:
			return strings.Join(out, "")
		case level > 0:
			out = append(out, line)
		}
	}
	if level == 0 {
		t.Fatalf("%s has no section %q", page, heading)
	}
	return strings.Join(out, "")
}

// tableVariable is a table row whose first cell is an environment variable.
var tableVariable = regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]+)` \\|")

func TestEnvironmentVariablesAreDocumented(t *testing.T) {
	read := envNames(t)
	documented := map[string]bool{}
	for _, m := range tableVariable.FindAllStringSubmatch(section(t, "docs/operations.md", "Configuration"), -1) {
		documented[m[1]] = true
	}
	for name, where := range read {
		if !documented[name] {
			t.Errorf("%s reads %s, which docs/operations.md's Configuration tables do not document", where, name)
		}
	}
	for name := range documented {
		if _, ok := read[name]; !ok {
			t.Errorf("docs/operations.md documents %s, which the service never reads", name)
		}
	}
}

// TestLayoutNamesEveryPackage holds the README's layout to the tree: every
// package under the layers and tests, and every folder of adapters/ and
// tests/, is named; every path named exists.
func TestLayoutNamesEveryPackage(t *testing.T) {
	block := layoutBlock(t)
	named := map[string]bool{}
	type level struct {
		indent int
		path   string
	}
	var parents []level
	for line := range strings.Lines(block) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		for len(parents) > 0 && parents[len(parents)-1].indent >= indent {
			parents = parents[:len(parents)-1]
		}
		path := fields[0]
		if len(parents) > 0 {
			path = parents[len(parents)-1].path + fields[0]
		}
		if _, err := os.Stat(filepath.Join(repoRoot, path)); err != nil {
			t.Errorf("the README's layout names %s, which does not exist", path)
		}
		if strings.HasSuffix(path, "/") {
			parents = append(parents, level{indent, path})
			named[strings.TrimSuffix(path, "/")] = true
		}
	}
	for _, dir := range packageDirs(t) {
		if !named[dir] {
			t.Errorf("the README's layout does not name %s/", dir)
		}
	}
}

// layoutBlock is the code block of the README's "Layout" section.
func layoutBlock(t *testing.T) string {
	t.Helper()
	text := section(t, "README.md", "Layout")
	_, rest, ok := strings.Cut(text, "```\n")
	block, _, closed := strings.Cut(rest, "```")
	if !ok || !closed {
		t.Fatal("README.md's Layout section has no code block")
	}
	return block
}

// layoutRoots are the folders whose packages the layout must name.
var layoutRoots = []string{"domain", "ports", "application", "adapters", "bootstrap", "tests"}

// packageDirs are the folders under layoutRoots that hold Go files, and the
// folders directly inside adapters/ and tests/.
func packageDirs(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, root := range layoutRoots {
		err := filepath.WalkDir(filepath.Join(repoRoot, root), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(repoRoot, path)
			rel = filepath.ToSlash(rel)
			if d.IsDir() {
				if d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				if parent := filepath.ToSlash(filepath.Dir(rel)); parent == "adapters" || parent == "tests" {
					seen[rel] = true
				}
				return nil
			}
			if strings.HasSuffix(path, ".go") {
				seen[filepath.ToSlash(filepath.Dir(rel))] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) < len(layoutRoots) {
		t.Fatalf("found only %d package folders: %v", len(seen), seen)
	}
	return slices.Sorted(func(yield func(string) bool) {
		for d := range seen {
			if !yield(d) {
				return
			}
		}
	})
}

// commands are the commands bootstrap.Main runs: the string cases of its
// switch on the command name, but the spellings of help.
func commands(t *testing.T) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(repoRoot, "bootstrap", "cli.go"), nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "Main" {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			clause, ok := n.(*ast.CaseClause)
			if !ok {
				return true
			}
			for _, e := range clause.List {
				if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if name, err := strconv.Unquote(lit.Value); err == nil && !strings.HasPrefix(name, "-") && name != "help" {
						out[name] = true
					}
				}
			}
			return true
		})
	}
	if len(out) == 0 {
		t.Fatal("bootstrap/cli.go: no command found in Main's switch")
	}
	return out
}

var (
	fence    = regexp.MustCompile("(?ms)^```[a-z]*\n(.*?)^```")
	codeSpan = regexp.MustCompile("`[^`]+`")
	// commandUse is the binary run with a command, `userservice migrate status`
	// or `bin/userservice import ...`.
	commandUse = regexp.MustCompile(`(?:^|[\s/(])userservice ([a-z][a-z-]*)`)
)

// code is a page's code: the lines of its fenced blocks without their
// comments, and its code spans.
func code(page string) []string {
	var out []string
	for _, m := range fence.FindAllStringSubmatch(page, -1) {
		for line := range strings.Lines(m[1]) {
			if i := strings.Index(line, "#"); i >= 0 {
				line = line[:i]
			}
			out = append(out, line)
		}
	}
	out = append(out, codeSpan.FindAllString(fence.ReplaceAllString(page, ""), -1)...)
	return out
}

func TestCommandsMatchTheBinary(t *testing.T) {
	have := commands(t)
	for _, page := range append(docPages(t), "README.md", "SECURITY.md") {
		documented := map[string]bool{}
		for _, c := range code(read(t, page)) {
			for _, m := range commandUse.FindAllStringSubmatch(c, -1) {
				documented[m[1]] = true
				if !have[m[1]] {
					t.Errorf("%s shows `userservice %s`, which the binary does not have", page, m[1])
				}
			}
		}
		if page != "docs/operations.md" {
			continue
		}
		for c := range have {
			if !documented[c] {
				t.Errorf("docs/operations.md does not show `userservice %s`", c)
			}
		}
	}
}

var (
	// sectionRef is the repository's way of pointing at a section of the
	// README or a page of docs/ in comments and messages: (docs/operations.md,
	// Signing keys), the section ending at a comma, colon, semicolon, quote or
	// the parenthesis.
	sectionRef = regexp.MustCompile(`\((README|README\.md|docs/[a-z]+\.md), "?([A-Z][^,;:)"]*)[,;:)"]`)
	heading    = regexp.MustCompile(`(?m)^#+ (.+)$`)
	// notInSlug are the characters GitHub drops from a heading's anchor.
	notInSlug = regexp.MustCompile(`[^\p{L}\p{N}_ -]`)
)

// headings are a page's headings and their anchors as GitHub makes them.
func headings(t *testing.T, page string) (titles, anchors map[string]bool) {
	t.Helper()
	titles, anchors = map[string]bool{}, map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(fence.ReplaceAllString(read(t, page), ""), -1) {
		title := strings.TrimSpace(m[1])
		titles[title] = true
		slug := strings.ReplaceAll(notInSlug.ReplaceAllString(strings.ToLower(title), ""), " ", "-")
		anchor := slug
		for i := 1; anchors[anchor]; i++ {
			anchor = slug + "-" + strconv.Itoa(i)
		}
		anchors[anchor] = true
	}
	return titles, anchors
}

// TestSectionReferencesFindTheirSection follows every reference to a
// section: the Markdown links with a fragment in the pages, and the
// parenthesised references of comments, messages and pages anywhere in the
// repository that name the README or a page of docs/ and then, after a
// comma, its section. A section that moved or was renamed leaves them dangling.
func TestSectionReferencesFindTheirSection(t *testing.T) {
	type target struct{ titles, anchors map[string]bool }
	cache := map[string]target{}
	lookup := func(page string) (target, bool) {
		if tg, ok := cache[page]; ok {
			return tg, true
		}
		if _, err := os.Stat(filepath.Join(repoRoot, page)); err != nil {
			return target{}, false
		}
		titles, anchors := headings(t, page)
		cache[page] = target{titles, anchors}
		return cache[page], true
	}
	for _, page := range append(docPages(t), "README.md", "SECURITY.md") {
		for _, m := range mdLink.FindAllStringSubmatch(fence.ReplaceAllString(read(t, page), ""), -1) {
			path, fragment, ok := strings.Cut(m[1], "#")
			if !ok || strings.Contains(path, "://") {
				continue
			}
			linked := page
			if path != "" {
				linked = filepath.ToSlash(filepath.Join(filepath.Dir(page), path))
			}
			if tg, ok := lookup(linked); ok && !tg.anchors[fragment] {
				t.Errorf("%s links to %s, a section %s does not have", page, m[1], linked)
			}
		}
	}
	checked := 0
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == ".git" || name == "bin" || name == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() > 1<<20 {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if slices.Contains(data, 0) {
			return nil
		}
		rel, _ := filepath.Rel(repoRoot, path)
		for i, line := range strings.Split(string(data), "\n") {
			for _, m := range sectionRef.FindAllStringSubmatch(line, -1) {
				checked++
				page, title := strings.TrimSuffix(m[1], ".md")+".md", strings.TrimSpace(m[2])
				if tg, ok := lookup(page); !ok || !tg.titles[title] {
					t.Errorf("%s:%d refers to %q of %s, which has no such section", rel, i+1, title, page)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Error("no reference to a section of the README or docs/ found: the pattern no longer matches the repository's")
	}
}
