package httpapi

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// specYAML is openapi.yaml byte for byte, comments and order kept, as
// clients and Swagger UI read it.
//
//go:embed openapi.yaml
var specYAML []byte

func serveSpec(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", specYAML)
}

// docsIndex loads Swagger UI from the embedded assets (the page works with
// no network) with our own initializer, pointing it at /openapi.yaml.
const docsIndex = `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>userservice API</title>
  <link rel="stylesheet" type="text/css" href="/docs/swagger-ui.css">
  <link rel="stylesheet" type="text/css" href="/docs/index.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js" charset="UTF-8"></script>
  <script src="/docs/swagger-initializer.js" charset="UTF-8"></script>
</body>
</html>
`

// docsInitializer replaces the asset package's petstore initializer. The
// spec's OAuth2 password flow gives "Authorize" its username (the email) and
// password fields; validatorUrl is off because the public validator is a
// network call the page must not depend on.
const docsInitializer = `window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.yaml",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    oauth2RedirectUrl: window.location.origin + "/docs/oauth2-redirect.html"
  });
};
`

// swaggerUI holds the Swagger UI files the page loads, gzipped at
// generation time (internal/gen) from the pinned swaggo/files module: the
// module embeds 11 MB, most of it never served.
//
//go:embed swaggerui/*.gz
var swaggerUI embed.FS

func registerDocs(e *echo.Echo) {
	index := func(c echo.Context) error { return c.HTML(http.StatusOK, docsIndex) }
	e.GET("/docs", index)
	e.GET("/docs/", index)
	e.GET("/docs/index.html", index)
	e.GET("/docs/swagger-initializer.js", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", []byte(docsInitializer))
	})
	e.GET("/docs/:file", serveDocsAsset)
}

// serveDocsAsset answers with the gzipped file as it is stored when the
// client accepts gzip, and decompresses it for one that does not.
func serveDocsAsset(c echo.Context) error {
	name := c.Param("file")
	// One name inside swaggerui/, never a path out of it.
	if strings.Contains(name, "/") || !fs.ValidPath(name) {
		return echo.ErrNotFound
	}
	gz, err := fs.ReadFile(swaggerUI, "swaggerui/"+name+".gz")
	if err != nil {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	h.Add(echo.HeaderVary, echo.HeaderAcceptEncoding)
	contentType := mime.TypeByExtension(path.Ext(name))
	if !acceptsGzip(c.Request().Header.Values(echo.HeaderAcceptEncoding)) {
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			return err
		}
		h.Set(echo.HeaderContentType, contentType)
		c.Response().WriteHeader(http.StatusOK)
		_, err = io.Copy(c.Response(), zr)
		return err
	}
	h.Set(echo.HeaderContentEncoding, "gzip")
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(gz)))
	return c.Blob(http.StatusOK, contentType, gz)
}

// acceptsGzip reads Accept-Encoding (RFC 9110 §12.5.3): gzip (or its alias
// x-gzip) or "*" with a non-zero weight; an explicit gzip entry outranks
// "*". No header at all means the client takes the plain file.
func acceptsGzip(values []string) bool {
	gzipQ, starQ := -1.0, -1.0
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil {
						f = 0
					}
					q = f
				}
			}
			switch coding = strings.ToLower(strings.TrimSpace(coding)); coding {
			case "gzip", "x-gzip":
				gzipQ = max(gzipQ, q)
			case "*":
				starQ = max(starQ, q)
			}
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}
