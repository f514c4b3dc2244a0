package httpapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// The admin console (docs/api.md, The console): HTML, CSS and JavaScript
// modules embedded in the binary and served as they are written, with no
// build step and nothing from another site. The page is /console; its
// assets live under /console/assets/VERSION/, where VERSION is a hash of
// every asset, so they are cached for a year (immutable) and a new binary's
// page names new URLs. The page itself is revalidated on every load (ETag).
//
//go:embed console
var consoleFS embed.FS

// consolePath is the console page; consoleAssets prefixes its assets.
const (
	consolePath   = "/console"
	consoleAssets = "/console/assets/"
)

// consoleAsset is one embedded file, ready to serve.
type consoleAsset struct {
	body, gz    []byte
	contentType string
	etag        string
}

// consoleSite is the console's files, read once at start.
type consoleSite struct {
	version string
	index   consoleAsset
	assets  map[string]consoleAsset
}

func newConsoleSite() (*consoleSite, error) {
	site := &consoleSite{assets: map[string]consoleAsset{}}
	sum := sha256.New()
	var modules []string
	err := fs.WalkDir(consoleFS, "console", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == "console/index.html" {
			return err
		}
		b, err := consoleFS.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "console/")
		fmt.Fprintf(sum, "%s\x00%d\x00", name, len(b))
		sum.Write(b)
		site.assets[name] = newConsoleAsset(b, mime.TypeByExtension(path.Ext(name)))
		if path.Ext(name) == ".js" && name != "app.js" {
			modules = append(modules, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("httpapi: reading the console's files: %w", err)
	}
	site.version = hex.EncodeToString(sum.Sum(nil))[:16]
	page, err := consoleFS.ReadFile("console/index.html")
	if err != nil {
		return nil, fmt.Errorf("httpapi: reading the console's page: %w", err)
	}
	// Every module is preloaded, so the browser fetches them all at once
	// instead of discovering the imports one level at a time.
	slices.Sort(modules)
	var preload strings.Builder
	for _, m := range modules {
		fmt.Fprintf(&preload, "<link rel=\"modulepreload\" href=\"%s%s/%s\">\n", consoleAssets, site.version, m)
	}
	page = bytes.ReplaceAll(page, []byte("{{ASSETS}}"), []byte(consoleAssets+site.version))
	page = bytes.Replace(page, []byte("{{PRELOAD}}\n"), []byte(preload.String()), 1)
	site.index = newConsoleAsset(page, "text/html; charset=utf-8")
	return site, nil
}

func newConsoleAsset(b []byte, contentType string) consoleAsset {
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // the level is valid
	zw.Write(b)
	zw.Close()
	sum := sha256.Sum256(b)
	return consoleAsset{body: b, gz: gz.Bytes(), contentType: contentType,
		etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

func (site *consoleSite) register(e *echo.Echo) {
	page := func(c echo.Context) error {
		return site.index.serve(c, "no-cache")
	}
	e.GET(consolePath, page)
	e.GET(consolePath+"/", page)
	e.GET(consoleAssets+":version/*", func(c echo.Context) error {
		a, ok := site.assets[c.Param("*")]
		if !ok || c.Param("version") != site.version {
			return echo.ErrNotFound
		}
		return a.serve(c, "public, max-age=31536000, immutable")
	})
}

// serve answers the asset, gzipped for a client that takes it, or 304 when
// the client's copy is current.
func (a consoleAsset) serve(c echo.Context, cacheControl string) error {
	h := c.Response().Header()
	h.Set(echo.HeaderCacheControl, cacheControl)
	h.Set("ETag", a.etag)
	h.Add(echo.HeaderVary, echo.HeaderAcceptEncoding)
	for _, tag := range strings.Split(c.Request().Header.Get("If-None-Match"), ",") {
		if strings.TrimSpace(tag) == a.etag {
			return c.NoContent(http.StatusNotModified)
		}
	}
	if acceptsGzip(c.Request().Header.Values(echo.HeaderAcceptEncoding)) {
		h.Set(echo.HeaderContentEncoding, "gzip")
		h.Set(echo.HeaderContentLength, strconv.Itoa(len(a.gz)))
		return c.Blob(http.StatusOK, a.contentType, a.gz)
	}
	return c.Blob(http.StatusOK, a.contentType, a.body)
}
