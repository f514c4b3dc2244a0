// Package httpapi is the REST adapter: an Echo server whose routes, models and
// parameter binding are generated from openapi.yaml (api.gen.go), handlers that
// translate JSON to the driving ports and back, one error handler that maps
// domain error kinds to HTTP statuses, and the middleware every request passes
// through (request id, access log, metrics, panic recovery, body limit,
// strict query parameters, bearer authentication). It also serves the spec,
// Swagger UI, health, readiness and Prometheus metrics.
//
// openapi.yaml is the contract; regenerate api.gen.go with `go generate`
// after changing it.
package httpapi
