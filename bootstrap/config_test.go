package bootstrap

import (
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := LoadConfig(envOf(nil), true)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8000" || c.PolicyDir != "policies" || c.AccessTTL != 15*time.Minute ||
		c.RefreshTTL != 720*time.Hour || c.LogFormat != "text" || c.Postgres() {
		t.Fatalf("defaults %+v", c)
	}
	if !c.JWTSecretRandom || len(c.JWTSecret) != 32 {
		t.Fatalf("SQLite without JWT_SECRET must get a random 32-byte secret")
	}
}

func TestLoadConfigReportsEveryProblemOnce(t *testing.T) {
	t.Parallel()
	secret := "short-secret"
	_, err := LoadConfig(envOf(map[string]string{
		"DATABASE_URL":      "mysql://x",
		"HTTP_ADDR":         "nonsense",
		"JWT_SECRET":        secret,
		"ACCESS_TOKEN_TTL":  "forever",
		"REFRESH_TOKEN_TTL": "-1h",
		"TRUSTED_PROXIES":   "10.0.0.0/8, not-an-ip",
		"REDIS_URL":         "http://redis",
		"LOG_LEVEL":         "loud",
		"LOG_FORMAT":        "xml",
	}), true)
	if err == nil {
		t.Fatal("want an error")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{"DATABASE_URL", "HTTP_ADDR", "JWT_SECRET", "ACCESS_TOKEN_TTL", "REFRESH_TOKEN_TTL",
		"TRUSTED_PROXIES", "REDIS_URL", "LOG_LEVEL", "LOG_FORMAT"}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want one per variable:\n%s", len(lines), err)
	}
	for i, name := range want {
		if !strings.HasPrefix(lines[i], name+": ") {
			t.Errorf("line %d %q does not name %s", i, lines[i], name)
		}
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatal("the error echoes the secret")
	}
}

func TestLoadConfigPostgresNeedsASecretOnlyToServe(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{"DATABASE_URL": "postgres://u:p@localhost/db"})
	if _, err := LoadConfig(env, true); err == nil || !strings.HasPrefix(err.Error(), "JWT_SECRET: ") {
		t.Fatalf("serve with PostgreSQL and no JWT_SECRET: %v", err)
	}
	c, err := LoadConfig(env, false)
	if err != nil || !c.Postgres() {
		t.Fatalf("administration commands need no JWT_SECRET: %v", err)
	}
	good := envOf(map[string]string{
		"DATABASE_URL": "postgresql://u:p@localhost/db", "JWT_SECRET": strings.Repeat("k", 32),
		"TRUSTED_PROXIES": "192.0.2.7,2001:db8::/32", "LOG_LEVEL": "WARN", "LOG_FORMAT": "json",
	})
	c, err = LoadConfig(good, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.JWTSecretRandom || len(c.TrustedProxies) != 2 || c.TrustedProxies[0].String() != "192.0.2.7/32" {
		t.Fatalf("parsed %+v", c)
	}
}
