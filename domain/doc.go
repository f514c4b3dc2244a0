// Package domain holds userservice's core model: the User aggregate and its
// value types, the search Filter shared by storage and real-time matching, the
// change-log vocabulary, the invariants no policy edit may break, and the error
// kinds every adapter translates to its own protocol.
//
// It imports only the standard library and carries no serialisation tags:
// DTOs live in the HTTP adapter, records in the storage adapter.
package domain
