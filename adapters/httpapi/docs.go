package httpapi

import (
	_ "embed"
	"net/http"
	"path"

	"github.com/labstack/echo/v4"
	swaggerfiles "github.com/swaggo/files/v2"
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

func registerDocs(e *echo.Echo) {
	index := func(c echo.Context) error { return c.HTML(http.StatusOK, docsIndex) }
	e.GET("/docs", index)
	e.GET("/docs/", index)
	e.GET("/docs/index.html", index)
	e.GET("/docs/swagger-initializer.js", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", []byte(docsInitializer))
	})
	e.GET("/docs/:file", func(c echo.Context) error {
		name := path.Clean(c.Param("file"))
		f, err := swaggerfiles.FS.Open(name)
		if err != nil {
			return echo.ErrNotFound
		}
		_ = f.Close()
		http.ServeFileFS(c.Response(), c.Request(), swaggerfiles.FS, name)
		return nil
	})
}
