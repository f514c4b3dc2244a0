//go:build !linux

package gormstore

import "syscall"

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not available:
// keepalive alone notices a dead server, if only on idle connections.
func setUserTimeout(string, string, syscall.RawConn) error { return nil }
