package gormstore

import (
	"net"
	"time"
)

// PostgreSQL connections wait on the server in the background too: the
// LISTEN connection between notifications, the change-log reader, an idle
// pooled connection. A server that vanishes without closing them (a host
// gone, a partition) would otherwise leave them waiting until the kernel's
// defaults give up, after 2 hours of idleness plus 11 minutes of probes.
// With these, a dead peer is noticed within about half a minute:
//
//   - keepalive probes after 15 s of silence, every 5 s, 3 unanswered ones
//     ending the connection (idle connections);
//   - on Linux, TCP_USER_TIMEOUT of 30 s: data the server has not
//     acknowledged for that long ends the connection (busy ones, and it
//     bounds the keepalive probing too).
//
// The connection's owner then sees an error and reconnects: the pool, the
// notifier and the readers all do.
var pgKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}

const pgUserTimeout = 30 * time.Second

// pgDialer dials PostgreSQL over TCP (or a Unix socket, where none of this
// applies) with the keepalive and user timeout above.
func pgDialer() *net.Dialer {
	return &net.Dialer{KeepAliveConfig: pgKeepAlive, Control: setUserTimeout}
}
