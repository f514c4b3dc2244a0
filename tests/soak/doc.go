// Package soak holds the service under steady mixed traffic, with WebSocket
// subscribers attached, and checks that it keeps serving and loses
// nothing: no 5xx, every committed change (the audit log is the ground
// truth) delivered to every subscription it matches, goroutines and heap
// flat afterwards, p99 latency within a stated bound, and a graceful
// shutdown under load that keeps every acknowledged write.
//
// `make test` runs it for SOAK_DURATION=20s per database; `make soak` for
// minutes (SOAK_DURATION, SOAK_RATE and SOAK_P99 tune it) and prints the
// figures.
package soak
