// Package httpapi is the REST adapter: an Echo server whose routes, models and
// parameter binding are generated from openapi.yaml (api.gen.go), handlers that
// translate JSON to the driving ports and back, one error handler that maps
// domain error kinds to HTTP statuses, and the middleware every request passes
// through (request id, access log, metrics, panic recovery, body limit,
// strict query parameters, bearer authentication). It also serves the spec,
// Swagger UI, health, readiness and Prometheus metrics.
//
// openapi.yaml is the contract; regenerate with `go generate` after changing
// it: api.gen.go (oapi-codegen) and operations.gen.go, each operation's
// security and query parameters, with the gzipped Swagger UI files in
// swaggerui/ (internal/gen). Both generators read the spec at generation
// time, so kin-openapi and swaggo/files stay out of the binary.
package httpapi
