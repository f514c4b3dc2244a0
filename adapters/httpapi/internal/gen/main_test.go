package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	swaggerfiles "github.com/swaggo/files/v2"
)

// pkgDir is the httpapi package, where go generate runs the command.
const pkgDir = "../.."

// The committed output is what the generator makes of the committed
// openapi.yaml and the pinned swaggo/files: this fails when the spec changed
// without `go generate`, like `make check-generated` but under `go test`.
func TestCommittedOutputIsFresh(t *testing.T) {
	t.Parallel()
	spec, err := os.ReadFile(filepath.Join(pkgDir, "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(pkgDir, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s is stale (%v): run go generate ./adapters/httpapi", name, err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(pkgDir, assetDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := want[assetDir+"/"+e.Name()]; !ok {
			t.Errorf("%s/%s is no longer generated: run go generate ./adapters/httpapi", assetDir, e.Name())
		}
	}
}

// Generating twice gives the same bytes (no gzip name or time, no map
// order), or check-generated would fail on a fresh tree.
func TestGenerateIsDeterministic(t *testing.T) {
	t.Parallel()
	spec, err := os.ReadFile(filepath.Join(pkgDir, "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	for name := range a {
		if !bytes.Equal(a[name], b[name]) {
			t.Errorf("%s differs between two runs", name)
		}
	}
}

// The stored assets decode to swaggo/files' own bytes, with a bare header.
func TestAssetsDecodeToTheModuleFiles(t *testing.T) {
	t.Parallel()
	spec, err := os.ReadFile(filepath.Join(pkgDir, "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range assets {
		zr, err := gzip.NewReader(bytes.NewReader(out[assetDir+"/"+name+".gz"]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if zr.Name != "" || !zr.ModTime.IsZero() {
			t.Errorf("%s: gzip header has name %q, time %v", name, zr.Name, zr.ModTime)
		}
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		orig, err := fs.ReadFile(swaggerfiles.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, orig) {
			t.Errorf("%s does not decode to the module's file", name)
		}
	}
}

func TestNeedsToken(t *testing.T) {
	t.Parallel()
	scheme := openapi3.SecurityRequirement{"OAuth2Password": {}}
	for _, tc := range []struct {
		reqs openapi3.SecurityRequirements
		want bool
	}{
		{nil, false},
		{openapi3.SecurityRequirements{}, false},
		{openapi3.SecurityRequirements{{}}, false},
		{openapi3.SecurityRequirements{scheme}, true},
		{openapi3.SecurityRequirements{scheme, {}}, false},
	} {
		if got := needsToken(tc.reqs); got != tc.want {
			t.Errorf("needsToken(%v) = %v, want %v", tc.reqs, got, tc.want)
		}
	}
}

// A parameter name with two meanings would make the hint depend on the
// order the spec's paths are visited in.
func TestConflictingParameterHintsAreRefused(t *testing.T) {
	t.Parallel()
	spec := `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: a
      parameters:
        - {name: since, in: query, schema: {type: integer}}
      responses: {"200": {description: ok}}
  /b:
    get:
      operationId: b
      parameters:
        - {name: since, in: query, schema: {type: string, format: date-time}}
      responses: {"200": {description: ok}}
`
	if _, err := operationsSource([]byte(spec)); err == nil || !strings.Contains(err.Error(), `"since"`) {
		t.Errorf("err = %v, want a conflict on since", err)
	}
}
