package httpapi

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// consoleJSBudget is the most JavaScript the console may ship, unminified.
const consoleJSBudget = 150 << 10

var assetRef = regexp.MustCompile(`(?:href|src)="(/console/assets/[^"]+)"`)

// TestConsolePage: /console is served with its own CSP (nothing inline
// allowed), revalidated by ETag; every asset it names is served once for
// good (immutable, under a version that changes with the files), gzipped to
// those who take it, and the JavaScript stays within its budget and never
// touches storage or cookies.
func TestConsolePage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	page := h.get("/console", "")
	wantStatus(t, page, http.StatusOK)
	hdr := page.Header()
	if csp := hdr.Get("Content-Security-Policy"); csp != consoleCSP || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
	if cc := hdr.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("page Cache-Control = %q, want no-cache (revalidated by ETag)", cc)
	}
	if hdr.Get("Set-Cookie") != "" {
		t.Error("the console page sets a cookie")
	}
	html := page.Body.String()
	if strings.Contains(html, "{{") || regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`).MatchString(html) ||
		strings.Contains(html, "<style") || strings.Contains(html, " style=") || regexp.MustCompile(`\son[a-z]+=`).MatchString(html) {
		t.Errorf("the page has inline script or style, or an unfilled placeholder:\n%s", html)
	}
	again := h.do(request{method: http.MethodGet, path: "/console", header: http.Header{"If-None-Match": {hdr.Get("ETag")}}})
	wantStatus(t, again, http.StatusNotModified)

	refs := assetRef.FindAllStringSubmatch(html, -1)
	if len(refs) < 5 {
		t.Fatalf("the page names %d assets", len(refs))
	}
	js := 0
	for _, ref := range refs {
		path := ref[1]
		rec := h.do(request{method: http.MethodGet, path: path, header: http.Header{"Accept-Encoding": {"gzip"}}})
		wantStatus(t, rec, http.StatusOK)
		if cc := rec.Header().Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", path, cc)
		}
		if rec.Header().Get("Content-Encoding") != "gzip" {
			t.Errorf("%s: not gzipped for a client that takes gzip", path)
			continue
		}
		zr, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		plain := h.get(path, "")
		if plain.Body.String() != string(body) {
			t.Errorf("%s: the gzipped and plain answers differ", path)
		}
		if strings.HasSuffix(path, ".js") {
			js += len(body)
			if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") {
				t.Errorf("%s: Content-Type %q", path, rec.Header().Get("Content-Type"))
			}
			for _, banned := range []string{"localStorage.", "sessionStorage.", "document.cookie", "innerHTML", "eval(", "new Function"} {
				if strings.Contains(string(body), banned) {
					t.Errorf("%s uses %s", path, banned)
				}
			}
		}
	}
	if js == 0 || js > consoleJSBudget {
		t.Errorf("the console ships %d bytes of JavaScript, budget %d", js, consoleJSBudget)
	}
	// Another version's asset is not served as if it were this one.
	wantStatus(t, h.get("/console/assets/0000000000000000/app.js", ""), http.StatusNotFound)
	wantStatus(t, h.get(strings.Replace(refs[0][1], "/assets/", "/assets/x", 1), ""), http.StatusNotFound)
	wantStatus(t, h.get(refs[0][1][:strings.LastIndex(refs[0][1], "/")]+"/../index.html", ""), http.StatusNotFound)
}

// TestConsoleCrossSiteRequestsCannotAct: the console keeps its tokens in
// memory and sets no cookie, so a form another site posts from the
// victim's browser carries nothing that authenticates: it acts on nothing,
// refreshes nothing, and is answered without a cookie.
func TestConsoleCrossSiteRequestsCannotAct(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.cons.StartImportFn = func(context.Context, domain.Actor, ports.ImportOptions, func() (io.ReadCloser, error)) (ports.ImportJob, error) {
		t.Error("a cross-site form started an import")
		return ports.ImportJob{}, nil
	}
	crossSite := http.Header{
		"Origin":         {"https://evil.example"},
		"Sec-Fetch-Site": {"cross-site"},
		"Cookie":         {"session=stolen; refresh_token=stolen"},
	}
	for _, r := range []request{
		{method: http.MethodPost, path: "/api/v1/users/imports", body: "file=x", contentType: "application/x-www-form-urlencoded", header: crossSite},
		{method: http.MethodPost, path: "/api/v1/users/imports", body: "--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\na\r\n--b--\r\n", contentType: "multipart/form-data; boundary=b", header: crossSite},
		{method: http.MethodPost, path: "/api/v1/auth/refresh", body: "refresh_token=stolen", contentType: "application/x-www-form-urlencoded", header: crossSite},
		{method: http.MethodPost, path: "/api/v1/users/create-admin", body: "email=x", contentType: "text/plain", header: crossSite},
		{method: http.MethodPost, path: "/console", body: "a=b", contentType: "application/x-www-form-urlencoded", header: crossSite},
	} {
		rec := h.do(r)
		if rec.Code < 400 {
			t.Errorf("%s %s from another site: %d %s", r.method, r.path, rec.Code, rec.Body)
		}
		if c := rec.Header().Get("Set-Cookie"); c != "" {
			t.Errorf("%s %s: Set-Cookie %q", r.method, r.path, c)
		}
	}
}
