package httpapi

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// Content security policies. The API answers JSON, which no browser should
// render or frame, so its pages may load nothing at all. The docs page
// loads Swagger UI from the service itself: scripts, styles, fonts and the
// spec from 'self', the SVG icons Swagger UI inlines as data: URLs, and the
// XHRs of "Try it out" back to 'self'. Nothing inline runs and no page may
// frame either (clickjacking).
const (
	apiCSP  = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	// The console (console.go) runs its own modules and style sheet, draws
	// its chart as SVG elements, and talks to the API and the WebSocket of
	// its own origin ('self' covers ws: and wss: to it). Nothing inline:
	// no script, no style attribute, no form posted anywhere.
	consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

// securityHeaders sets, before anything is written, the headers every
// answer carries whatever its status: no content sniffing, no framing, no
// referrer leaking ids or tokens in URLs to other sites, and no caching of
// anything but the documentation and the console's files, since every
// other answer may hold a token or a user's data (a shared proxy or the browser's disk must not
// keep it).
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set(echo.HeaderXContentTypeOptions, "nosniff")
		h.Set(echo.HeaderXFrameOptions, "DENY")
		h.Set(echo.HeaderReferrerPolicy, "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		switch p := c.Request().URL.Path; {
		case p == "/docs" || strings.HasPrefix(p, "/docs/") || p == "/openapi.yaml":
			h.Set(echo.HeaderContentSecurityPolicy, docsCSP)
		case p == consolePath || strings.HasPrefix(p, consolePath+"/"):
			// The console's handlers say how long each file may be kept.
			h.Set(echo.HeaderContentSecurityPolicy, consoleCSP)
		default:
			h.Set(echo.HeaderContentSecurityPolicy, apiCSP)
			h.Set(echo.HeaderCacheControl, "no-store")
		}
		return next(c)
	}
}

// corsHeaders lets the pages of the configured origins call the API from a
// browser. Origins are compared exactly (scheme, host and port), never as
// patterns. No credentials mode: the API authenticates with bearer tokens,
// not cookies, so a browser has nothing ambient to send for a page.
func corsHeaders(origins []string) echo.MiddlewareFunc {
	allowed := slices.Clone(origins)
	return middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOriginFunc: func(origin string) (bool, error) { return slices.Contains(allowed, origin), nil },
		AllowMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
			http.MethodPatch, http.MethodDelete},
		AllowHeaders: []string{echo.HeaderAuthorization, echo.HeaderContentType, "If-Match",
			echo.HeaderXRequestID},
		ExposeHeaders: []string{headerETag, echo.HeaderLocation, echo.HeaderRetryAfter,
			echo.HeaderXRequestID, "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"},
		MaxAge: 600,
	})
}
