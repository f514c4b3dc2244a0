// Package deploy tests userservice as it is deployed: the container image built
// from the repository's Dockerfile, run on PostgreSQL (and Redis) containers on a
// Docker network each test makes, and driven over HTTP and WebSocket like a client.
// It covers the README's quick start (by testcontainers-go and through
// docker-compose.yml), several instances on one database, and faults: PostgreSQL
// stopped under a write load, an instance killed, an instance told to stop.
//
// The tests need a Docker engine. Where none answers they skip with one line, or
// fail when TEST_REQUIRE_DB=1 (CI sets it). The image is built once per test
// binary, from the public base images or, on a machine without a registry, from
// local ones named by TEST_GO_IMAGE and TEST_RUNTIME_IMAGE
// (tests/images/bases/build.sh); PostgreSQL, Redis and the load balancer come from
// TEST_POSTGRES_IMAGE, TEST_REDIS_IMAGE and TEST_LB_IMAGE (tests/images/README.md).
// -short skips them all.
package deploy
