package gormstore

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPostgresConnectionsNoticeADeadServer checks the socket options of a
// connection made by the dialer every PostgreSQL connection uses: keepalive probing
// after 15 s of silence, every 5 s, 3 tries, and a 30 s user timeout.
func TestPostgresConnectionsNoticeADeadServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg, err := pgConnConfig("postgres://u:p@" + ln.Addr().String() + "/db?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := cfg.DialFunc(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][3]int{
		"SO_KEEPALIVE":     {unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		"TCP_KEEPIDLE":     {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15},
		"TCP_KEEPINTVL":    {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 5},
		"TCP_KEEPCNT":      {unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3},
		"TCP_USER_TIMEOUT": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 30000},
	}
	for name, w := range want {
		var got int
		var gerr error
		if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), w[0], w[1]) }); err != nil {
			t.Fatal(err)
		}
		if gerr != nil || got != w[2] {
			t.Errorf("%s = %d (%v), want %d", name, got, gerr, w[2])
		}
	}
}
