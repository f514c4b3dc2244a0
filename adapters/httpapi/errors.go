package httpapi

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/userservice/userservice/domain"
)

// kindStatus is the one place a domain error kind becomes an HTTP status.
var kindStatus = map[domain.Kind]int{
	domain.KindInternal:           http.StatusInternalServerError,
	domain.KindMalformed:          http.StatusBadRequest,
	domain.KindInvalid:            http.StatusUnprocessableEntity,
	domain.KindUnauthenticated:    http.StatusUnauthorized,
	domain.KindForbidden:          http.StatusForbidden,
	domain.KindNotFound:           http.StatusNotFound,
	domain.KindConflict:           http.StatusConflict,
	domain.KindPreconditionFailed: http.StatusPreconditionFailed,
	domain.KindTooLarge:           http.StatusRequestEntityTooLarge,
	domain.KindRateLimited:        http.StatusTooManyRequests,
	domain.KindUnavailable:        http.StatusServiceUnavailable,
}

// statusCode names the statuses Echo raises itself (unknown route, wrong
// method, ...) in the same vocabulary as domain error codes.
var statusCode = map[int]string{
	http.StatusBadRequest:            "malformed",
	http.StatusUnauthorized:          "unauthenticated",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusRequestEntityTooLarge: "too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusUnprocessableEntity:   "invalid",
	http.StatusTooManyRequests:       "rate_limited",
	http.StatusServiceUnavailable:    "unavailable",
}

const internalDetail = "internal error"

var errTimeout = &domain.Error{Kind: domain.KindUnavailable, Code: "unavailable",
	Message: "the service did not answer in time; retry later"}

// handleError is Echo's error handler: every error of every route ends here
// and leaves as {"detail", "code"[, "errors"]}. Internal errors are logged
// with their cause at error level; their text never reaches the client.
func (s *server) handleError(err error, c echo.Context) {
	ctx := c.Request().Context()
	if c.Response().Committed {
		s.log.DebugContext(ctx, "error after the response was sent",
			"request_id", RequestIDFrom(ctx), "error", err)
		return
	}
	status, body := s.render(ctx, err, c)
	var out any = body
	if isOAuthRoute(c.Path()) {
		// RFC 6749 §5.2, with detail and code kept for older clients.
		var code string
		status, code = oauthError(c.Path(), status, body.Code)
		out = OAuthError{Error: OAuthErrorError(code), ErrorDescription: oauthDescription(body),
			Detail: body.Detail, Code: body.Code, Errors: body.Errors}
	}
	if status == http.StatusUnauthorized {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, "Bearer")
	}
	if de := domain.AsError(err); de != nil && de.RetryAfter > 0 {
		// Whole seconds, rounded up: a client waiting that long is let in.
		secs := int64(math.Ceil(de.RetryAfter.Seconds()))
		c.Response().Header().Set(echo.HeaderRetryAfter, strconv.FormatInt(secs, 10))
	}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(status)
	} else {
		werr = c.JSON(status, out)
	}
	if werr != nil {
		s.log.DebugContext(ctx, "writing the error response failed",
			"request_id", RequestIDFrom(ctx), "error", werr)
	}
}

func (s *server) render(ctx context.Context, err error, c echo.Context) (int, Error) {
	de := domain.AsError(err)
	var he *echo.HTTPError
	var tooLarge *http.MaxBytesError
	switch {
	case de != nil && de.Kind != domain.KindInternal:
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// A query cut off by its deadline is the database not answering in
		// time, not a bug; a cancelled one is a client that went away.
		de = errTimeout.Wrap(err)
	case errors.As(err, &tooLarge):
		de = errBodyTooLarge(tooLarge.Limit)
	case de == nil && errors.As(err, &he) && he.Code < http.StatusInternalServerError:
		return he.Code, echoErrorBody(he)
	}

	if de == nil || de.Kind == domain.KindInternal {
		s.log.ErrorContext(ctx, "internal error",
			"request_id", RequestIDFrom(ctx), "method", c.Request().Method, "route", c.Path(), "error", err)
		return http.StatusInternalServerError, Error{Detail: internalDetail, Code: "internal"}
	}
	status, ok := kindStatus[de.Kind]
	if !ok {
		status = http.StatusInternalServerError
	}
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The client went away; nobody reads this answer and nothing failed.
		s.log.DebugContext(ctx, "request cancelled", "request_id", RequestIDFrom(ctx), "route", c.Path())
	case de.Kind == domain.KindUnavailable:
		s.log.WarnContext(ctx, "dependency unavailable",
			"request_id", RequestIDFrom(ctx), "route", c.Path(), "error", err)
	}
	body := Error{Detail: de.Message, Code: de.Code}
	if body.Code == "" {
		body.Code = de.Kind.String()
	}
	if len(de.Fields) > 0 {
		fields := make([]FieldError, len(de.Fields))
		for i, f := range de.Fields {
			fields[i] = FieldError{Field: f.Field, Message: f.Message}
		}
		body.Errors = &fields
	}
	return status, body
}

// echoErrorBody renders Echo's own errors (404 route, 405) in the
// service's shape. Their messages are Echo's, written for clients; a
// parameter the generated binder would refuse is refused before it, by
// checkParams.
func echoErrorBody(he *echo.HTTPError) Error {
	detail, ok := he.Message.(string)
	if !ok || detail == "" {
		detail = http.StatusText(he.Code)
	}
	code, ok := statusCode[he.Code]
	if !ok {
		code = "error"
	}
	return Error{Detail: detail, Code: code}
}

// oauthDescription is an error's one sentence for OAuth clients, which show
// error_description and nothing else: the detail, and the bad fields.
func oauthDescription(body Error) string {
	if body.Errors == nil || len(*body.Errors) == 0 {
		return body.Detail
	}
	parts := make([]string, len(*body.Errors))
	for i, f := range *body.Errors {
		parts[i] = f.Field + " " + f.Message
	}
	return body.Detail + ": " + strings.Join(parts, ", ")
}
