package ratelimit

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/userservice/userservice/ports"
)

// The shipped file holds the defaults of docs/api.md, Rate limits.
func TestShippedLimits(t *testing.T) {
	t.Parallel()
	set, err := readLimits("../../policies")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		want         []string // "name key tokens"
	}{
		{"GET", "/api/v1/users/list", []string{"list ip 100"}},
		{"GET", "/api/v1/users/search", []string{"search ip 50"}},
		{"DELETE", "/api/v1/users/:id", []string{"delete ip 10"}},
		{"POST", "/api/v1/auth/token", []string{"token-ip ip 10"}},
		{"POST", "/api/v1/auth/sign-up", []string{"sign-up ip 5"}},
		{"GET", "/api/v1/users/:id", []string{"default ip 300"}},
		{"PUT", "/api/v1/users/:id", []string{"default ip 300"}},
		{"GET", "", []string{"default ip 300"}}, // unmatched
		{"GET", "/healthz", nil},
		{"GET", "/metrics", nil},
	} {
		var got []string
		for _, r := range set.match(tc.method, tc.path) {
			if r.interval != time.Minute {
				t.Errorf("%s %s: rule %s has interval %s, want 1m", tc.method, tc.path, r.name, r.interval)
			}
			got = append(got, strings.Join([]string{r.name, string(r.key), strconv.FormatUint(r.tokens, 10)}, " "))
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s %s: rules %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
	if r := set.byName["websocket-messages"]; r == nil || !r.local || r.key != "" {
		t.Errorf("websocket-messages: %+v, want a local rule without routes", r)
	}
	// Failed password checks: 5 a minute per account and network, under a
	// ceiling ten times higher per account, shared through Redis.
	for name, tokens := range map[string]uint64{RuleFailures: 5, RuleFailuresAccount: 50} {
		if r := set.byName[name]; r == nil || r.local || r.key != "" || r.tokens != tokens || r.interval != time.Minute {
			t.Errorf("%s: %+v, want a shared rule without routes of %d a minute", name, r, tokens)
		}
	}
}

// A file that is wrong is rejected as a whole, saying where and why.
func TestLimitsRejected(t *testing.T) {
	t.Parallel()
	const good = "rules:\n  - name: a\n    routes: [GET /x]\n    tokens: 1\n    interval: 1m\n"
	for _, tc := range []struct {
		name, file string
		line       int
		want       string
	}{
		{"empty", "", 0, "empty"},
		{"no rules", "rules: []\n", 0, "no rules"},
		{"not yaml", "rules: [\n", 0, "yaml"},
		{"unknown field", strings.Replace(good, "tokens", "toknes", 1), 0, "toknes"},
		{"negative tokens", strings.Replace(good, "tokens: 1", "tokens: -1", 1), 0, "-1"},
		{"zero tokens", strings.Replace(good, "tokens: 1", "tokens: 0", 1), 2, "tokens must be at least 1"},
		{"a bucket that cannot refill", strings.Replace(good, "tokens: 1", "tokens: 1000000", 1), 2, "cannot refill"},
		{"no interval", strings.Replace(good, "    interval: 1m\n", "", 1), 2, "interval"},
		{"bad interval", strings.Replace(good, "1m", "a minute", 1), 2, "interval"},
		{"sub-millisecond interval", strings.Replace(good, "1m", "1.5ms", 1), 2, "whole number of milliseconds"},
		{"bad name", strings.Replace(good, "name: a", "name: A b", 1), 2, "rule name"},
		{"duplicate name", good + "  - name: a\n    routes: [GET /y]\n    tokens: 1\n    interval: 1s\n", 6, "defined twice"},
		{"bad key", strings.Replace(good, "tokens: 1", "tokens: 1\n    key: cookie", 1), 2, "key \"cookie\""},
		{"email key (a lockout switch)", strings.Replace(good, "tokens: 1", "tokens: 1\n    key: email", 1), 2, RuleFailures},
		{"key without routes", "rules:\n  - name: a\n    key: ip\n    tokens: 1\n    interval: 1s\n", 2, "lists none"},
		{"bad route", strings.Replace(good, "GET /x", "get /x", 1), 2, "route \"get /x\""},
		{"route without method", strings.Replace(good, "GET /x", "/x", 1), 2, "route \"/x\""},
		{"route listed twice", strings.Replace(good, "[GET /x]", "[GET /x, GET /x]", 1), 2, "twice"},
		{"exempt and limited", good + "exempt: [GET /x]\n", 2, "exempt"},
		{"bad exempt", good + "exempt: [x]\n", 0, "exempt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, limitsFile), []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := readLimits(dir)
			var fe *ports.PolicyFileError
			if !errors.As(err, &fe) {
				t.Fatalf("readLimits: %v, want a *ports.PolicyFileError", err)
			}
			if fe.Line != tc.line || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), limitsFile) {
				t.Fatalf("error %q at line %d, want %q at line %d", err, fe.Line, tc.want, tc.line)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		if _, err := readLimits(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("readLimits of an empty directory: %v, want ErrNotExist", err)
		}
	})
}

func TestIPKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"198.51.100.7":          "198.51.100.7",
		"2001:db8:1:2:3:4:5:6":  "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::99": "2001:db8:1:2::/64",
	} {
		if got := ipKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("ipKey(%s) = %s, want %s", in, got, want)
		}
	}
	if got := ipKey(netip.Addr{}); got != "unknown" {
		t.Errorf("ipKey of no address = %s, want unknown", got)
	}
}
