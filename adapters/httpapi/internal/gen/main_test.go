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

// The server refuses what the spec does not describe: each of these specs
// says something the generated table could not hold true, and is refused.
func TestSpecsTheServerCannotHonourAreRefused(t *testing.T) {
	t.Parallel()
	const head = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    post:
      operationId: a
      responses: {"200": {description: ok}}
`
	jsonBody := func(schema string) string {
		return head + "      requestBody: {content: {application/json: {schema: " + schema + "}}}\n"
	}
	param := func(p string) string { return head + "      parameters: [" + p + "]\n" }
	for name, tc := range map[string]struct{ spec, want string }{
		"open body":      {jsonBody(`{type: object, properties: {a: {type: string}}}`), "additionalProperties: false"},
		"integer key":    {jsonBody(`{type: object, additionalProperties: false, properties: {a: {type: integer}}}`), `"a": only strings`},
		"typed header":   {param(`{name: X-N, in: header, schema: {type: integer}}`), `"X-N" in header`},
		"required query": {param(`{name: q, in: query, required: true, schema: {type: integer}}`), `"q": a required one`},
		"no type":        {param(`{name: q, in: query, schema: {format: date}}`), `"q": one type`},
		"uuid":           {param(`{name: q, in: query, schema: {type: string, format: uuid}}`), `"q": format uuid`},
	} {
		if _, err := operationsSource([]byte(tc.spec)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", name, err, tc.want)
		}
	}
}

// A body's keys carry the schema's required list and nullability.
func TestJSONBodyKeys(t *testing.T) {
	t.Parallel()
	spec := `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    post:
      operationId: a
      requestBody:
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              required: [b]
              properties:
                b: {type: string}
                a: {type: string, nullable: true}
      responses: {"200": {description: ok}}
`
	src, err := operationsSource([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"a": {required: false, nullable: true}`, `"b": {required: true, nullable: false}`} {
		if !strings.Contains(string(src), want) {
			t.Errorf("output lacks %s:\n%s", want, src)
		}
	}
}

// The server reads request bodies itself (body.go, forms, the import's
// multipart reader), so a model generated for a body schema would be a
// second description of it that nothing uses: oapi-codegen.yaml must
// exclude every schema a request body refers to.
func TestNoModelIsGeneratedForARequestBody(t *testing.T) {
	t.Parallel()
	spec, err := openapi3.NewLoader().LoadFromFile(filepath.Join(pkgDir, "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	api, err := os.ReadFile(filepath.Join(pkgDir, "api.gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			if op.RequestBody == nil || op.RequestBody.Value == nil {
				continue
			}
			for _, mt := range op.RequestBody.Value.Content {
				if mt.Schema == nil || !mt.Schema.Value.Type.Is(openapi3.TypeObject) {
					continue // a file: no model
				}
				if mt.Schema.Ref == "" {
					// oapi-codegen would declare <Operation><Type>Body for it.
					t.Errorf("%s %s: a request body's schema must be a component, for exclude-schemas to name", path, op.OperationID)
					continue
				}
				name := mt.Schema.Ref[strings.LastIndex(mt.Schema.Ref, "/")+1:]
				if bytes.Contains(api, []byte("\ntype "+name+" ")) {
					t.Errorf("%s %s: api.gen.go declares %s; add it to exclude-schemas in oapi-codegen.yaml", path, op.OperationID, name)
				}
			}
		}
	}
}
