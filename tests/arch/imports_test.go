// Package arch checks the dependency rules of the hexagon (docs/architecture.md, Import rules)
// from the code itself, with `go list -deps`, so a stray import fails CI.
package arch

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/userservice/userservice"

type pkg struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Deps       []string
}

// goList runs `go list -json` with args and decodes the stream of packages.
func goList(t *testing.T, args ...string) []pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	return pkgs
}

func standard(t *testing.T) map[string]bool {
	t.Helper()
	std := map[string]bool{}
	for _, p := range goList(t, "-deps", "./...") {
		if p.Standard {
			std[p.ImportPath] = true
		}
	}
	return std
}

// TestImportRules holds every package of the module to the import rules below.
func TestImportRules(t *testing.T) {
	std := standard(t)
	inModule := func(path, sub string) bool {
		return path == module+"/"+sub || strings.HasPrefix(path, module+"/"+sub+"/")
	}
	checked := map[string]int{}
	for _, p := range goList(t, "./...") {
		var allowed func(dep string) bool
		var deps []string
		switch {
		case inModule(p.ImportPath, "domain"):
			checked["domain"]++
			deps = p.Deps
			allowed = func(dep string) bool { return std[dep] || inModule(dep, "domain") }
		case inModule(p.ImportPath, "ports"):
			checked["ports"]++
			deps = p.Deps
			allowed = func(dep string) bool { return std[dep] || inModule(dep, "domain") || inModule(dep, "ports") }
		case inModule(p.ImportPath, "application"):
			checked["application"]++
			deps = p.Deps
			allowed = func(dep string) bool {
				return std[dep] || inModule(dep, "domain") || inModule(dep, "ports") || inModule(dep, "application")
			}
		case inModule(p.ImportPath, "adapters"):
			checked["adapters"]++
			own := p.ImportPath
			deps = p.Imports
			allowed = func(dep string) bool {
				if !strings.HasPrefix(dep, module+"/") {
					return true // an adapter's own libraries
				}
				// Another adapter, application or bootstrap are off limits;
				// an adapter's own sub-packages are its own business.
				return inModule(dep, "domain") || inModule(dep, "ports") || dep == own || strings.HasPrefix(dep, own+"/")
			}
		case p.ImportPath == module:
			checked["main"]++
			deps = p.Imports
			allowed = func(dep string) bool { return std[dep] || dep == module+"/bootstrap" }
		default:
			continue
		}
		for _, d := range deps {
			if !allowed(d) {
				t.Errorf("%s must not depend on %s", p.ImportPath, d)
			}
		}
	}
	for _, layer := range []string{"domain", "ports", "main"} {
		if checked[layer] == 0 {
			t.Errorf("no package found for layer %s: the rule checked nothing", layer)
		}
	}
}
