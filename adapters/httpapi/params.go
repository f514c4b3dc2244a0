package httpapi

import (
	"fmt"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/oapi-codegen/runtime"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/userservice/userservice/domain"
)

// param is a parameter of an operation that the generated wrapper parses
// into something other than plain text, and which can therefore fail to
// bind; internal/gen lists them from openapi.yaml.
type param struct {
	name string
	// in is "path" or "query"; style and explode are the spec's
	// serialization, defaults applied.
	in, style string
	explode   bool
	// typ and format are the schema's, which decide the Go type bound to.
	typ, format string
	// hint says what a valid value looks like.
	hint string
}

// checkParams binds the operation's parameters the way the generated
// wrapper is about to, so that a value that cannot be bound is answered
// naming the parameter and its hint. The wrapper's own error is text
// (oapi-codegen's "Invalid format for parameter ...") with Go parser detail
// that helps no client and has no structure to read the name from.
func (s *server) checkParams(params []param) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			for _, p := range params {
				if err := p.bind(c); err != nil {
					ctx := c.Request().Context()
					s.log.DebugContext(ctx, "parameter binding failed",
						"request_id", RequestIDFrom(ctx), "parameter", p.name, "error", err)
					return &domain.Error{Kind: domain.KindMalformed, Code: "malformed",
						Message: fmt.Sprintf("invalid value for parameter %q: %s", p.name, p.hint),
						Fields:  []domain.FieldError{{Field: p.name, Message: p.hint}}, Err: err}
				}
			}
			return next(c)
		}
	}
}

// bind parses p's value from the request with the runtime functions and
// options the generated wrapper calls, into a value of the Go type
// oapi-codegen gives the schema.
func (p param) bind(c echo.Context) error {
	dst := p.target()
	if p.in == "path" {
		return runtime.BindStyledParameterWithOptions(p.style, p.name, c.Param(p.name), dst,
			runtime.BindStyledParameterOptions{ParamLocation: runtime.ParamLocationPath, Explode: p.explode,
				Required: true, Type: p.typ, Format: p.format, ValueIsUnescaped: c.Request().URL.RawPath == ""})
	}
	return runtime.BindQueryParameterWithOptions(p.style, p.explode, false, p.name, c.QueryParams(), dst,
		runtime.BindQueryParameterOptions{Type: p.typ, Format: p.format})
}

// target is a pointer to a new value of the type oapi-codegen generates
// for p's schema.
func (p param) target() any {
	switch {
	case p.typ == "integer" && p.format == "int32":
		return new(int32)
	case p.typ == "integer" && p.format == "int64":
		return new(int64)
	case p.typ == "integer":
		return new(int)
	case p.typ == "number" && p.format == "float":
		return new(float32)
	case p.typ == "number":
		return new(float64)
	case p.typ == "boolean":
		return new(bool)
	case p.format == "date-time":
		return new(time.Time)
	case p.format == "date":
		return new(openapi_types.Date)
	default:
		return new(string)
	}
}
