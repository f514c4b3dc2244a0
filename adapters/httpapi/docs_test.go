package httpapi

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// docsRefs are the files under /docs that the page and its initializer load.
func docsRefs(t *testing.T) []string {
	t.Helper()
	var refs []string
	for _, m := range regexp.MustCompile(`/docs/([A-Za-z0-9._-]+)`).FindAllStringSubmatch(docsIndex+docsInitializer, -1) {
		if !slices.Contains(refs, m[1]) {
			refs = append(refs, m[1])
		}
	}
	if !slices.Contains(refs, "swagger-ui-bundle.js") || !slices.Contains(refs, "oauth2-redirect.html") {
		t.Fatalf("the page's references were not found: %v", refs)
	}
	return refs
}

// Every file the page loads is served, gzipped to a client that accepts it
// and plain to one that does not, with the same content and type either way.
func TestServesEveryDocsAssetGzippedAndPlain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	mediaTypes := map[string]string{".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".html": "text/html"}
	for _, name := range docsRefs(t) {
		plain := h.get("/docs/"+name, "")
		wantStatus(t, plain, http.StatusOK)
		if plain.Body.Len() == 0 {
			t.Errorf("%s: empty body", name)
		}
		if ce := plain.Header().Get("Content-Encoding"); ce != "" {
			t.Errorf("%s without Accept-Encoding: Content-Encoding %q", name, ce)
		}
		mt, _, err := mime.ParseMediaType(plain.Header().Get("Content-Type"))
		if want := mediaTypes[path.Ext(name)]; err != nil || want == "" || mt != want {
			t.Errorf("%s: Content-Type %q, want %q", name, plain.Header().Get("Content-Type"), want)
		}
		if name == "swagger-initializer.js" {
			continue // ours, a few hundred bytes, not stored gzipped
		}
		if !strings.Contains(plain.Header().Get("Vary"), "Accept-Encoding") {
			t.Errorf("%s: Vary %q, want Accept-Encoding", name, plain.Header().Get("Vary"))
		}

		zipped := h.do(request{method: http.MethodGet, path: "/docs/" + name,
			header: http.Header{"Accept-Encoding": {"br;q=1.0, gzip;q=0.8, *;q=0.1"}}})
		wantStatus(t, zipped, http.StatusOK)
		if ce := zipped.Header().Get("Content-Encoding"); ce != "gzip" {
			t.Fatalf("%s with Accept-Encoding gzip: Content-Encoding %q", name, ce)
		}
		if zipped.Header().Get("Content-Type") != plain.Header().Get("Content-Type") ||
			!strings.Contains(zipped.Header().Get("Vary"), "Accept-Encoding") ||
			zipped.Header().Get("Content-Length") != strconv.Itoa(zipped.Body.Len()) {
			t.Errorf("%s gzipped: headers %v", name, zipped.Header())
		}
		zr, err := gzip.NewReader(zipped.Body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		decoded, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(decoded, plain.Body.Bytes()) {
			t.Errorf("%s: the gzipped body decodes to %d bytes, the plain one has %d", name, len(decoded), plain.Body.Len())
		}
	}
}

// The binary carries no asset the page does not load.
func TestEveryEmbeddedDocsAssetIsLoadedByThePage(t *testing.T) {
	t.Parallel()
	refs := docsRefs(t)
	entries, err := fs.ReadDir(swaggerUI, "swaggerui")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("no embedded assets")
	}
	for _, e := range entries {
		if name := strings.TrimSuffix(e.Name(), ".gz"); !slices.Contains(refs, name) {
			t.Errorf("swaggerui/%s is embedded but the page never loads it", e.Name())
		}
	}
}

func TestDocsAssetsOutsideTheSetAreNotFound(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	for _, p := range []string{
		"/docs/swagger-ui-bundle.js.gz", // the stored name
		"/docs/swagger-ui-bundle.js.map",
		"/docs/swaggerui",
		"/docs/..%2fgenerate.go",
		"/docs/..%2f..%2fgo.mod",
		"/docs/swaggerui%2fswagger-ui.css.gz",
	} {
		for _, ae := range []string{"", "gzip"} {
			rec := h.do(request{method: http.MethodGet, path: p, header: http.Header{"Accept-Encoding": {ae}}})
			wantError(t, rec, http.StatusNotFound, "not_found")
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"identity"}, false},
		{[]string{"gzip"}, true},
		{[]string{"GZip"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"deflate, gzip;q=0.5"}, true},
		{[]string{"deflate", "gzip"}, true},
		{[]string{"gzip ; q=0.001"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip;q=0.000"}, false},
		{[]string{"gzip;q=bogus"}, false},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"gzip;q=0, *"}, false},
		{[]string{"*;q=0, gzip"}, true},
		{[]string{"br"}, false},
		{[]string{"gzipx"}, false},
	} {
		if got := acceptsGzip(tc.header); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}
