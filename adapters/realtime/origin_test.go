package realtime

import (
	"net/http/httptest"
	"testing"
)

// The handshake's Origin decides, for browsers, who may connect: the
// service's own pages and the configured origins; clients that are not
// browsers send no Origin and are let in (their token is what counts).
func TestCheckOrigin(t *testing.T) {
	t.Parallel()
	check := checkOrigin([]string{"https://app.example.com", "http://localhost:3000"})
	for _, tc := range []struct {
		host, origin string
		want         bool
	}{
		{"api.example.com", "", true},
		{"api.example.com", "https://app.example.com", true},
		{"api.example.com", "http://localhost:3000", true},
		{"api.example.com", "https://api.example.com", true}, // same origin
		{"api.example.com:8000", "http://API.example.com:8000", true},
		{"api.example.com", "https://evil.example.com", false},
		{"api.example.com", "http://app.example.com", false},
		{"api.example.com", "https://app.example.com:444", false},
		{"api.example.com", "https://app.example.com.evil.test", false},
		{"api.example.com", "http://localhost:3001", false},
		{"api.example.com", "null", false},
		{"api.example.com", "://", false},
		{"api.example.com:8000", "http://api.example.com", false}, // another port
	} {
		r := httptest.NewRequest("GET", "http://"+tc.host+Path, nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := check(r); got != tc.want {
			t.Errorf("Host %s, Origin %q: allowed %v, want %v", tc.host, tc.origin, got, tc.want)
		}
	}
	if checkOrigin(nil)(httptest.NewRequest("GET", "http://h"+Path, nil)) != true {
		t.Error("with no list, a client without Origin was refused")
	}
}
