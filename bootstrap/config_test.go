package bootstrap

import (
	"fmt"
	"log/slog"
	"net/http"
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
		c.RefreshTTL != 720*time.Hour || c.ChangeLogRetention != 90*24*time.Hour || c.ResumeWindow != 24*time.Hour || c.LogFormat != "text" || c.Postgres() {
		t.Fatalf("defaults %+v", c)
	}
	// Serving on SQLite with nothing configured: a key kept beside the
	// database, so tokens survive a restart; no secret.
	if c.JWTKeyFile != "userservice.db.jwt-key.pem" || c.JWTSecret != nil || c.JWTSecretRandom ||
		c.JWTIssuer != "userservice" || c.JWTAudience != "userservice" || c.PublicURL != "" {
		t.Fatalf("token defaults: key file %q, secret %d bytes, random %v, iss %q, aud %q, public URL %q",
			c.JWTKeyFile, len(c.JWTSecret), c.JWTSecretRandom, c.JWTIssuer, c.JWTAudience, c.PublicURL)
	}
}

func TestLoadConfigSigningKeys(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("s", 32)
	for _, tc := range []struct {
		name     string
		env      map[string]string
		forServe bool
		keyFile  string
		secret   bool
		random   bool
	}{
		{"SQLite file with JWT_SECRET: a key beside it, the secret verifies old tokens",
			map[string]string{"DATABASE_URL": "sqlite:/data/u.db", "JWT_SECRET": secret}, true, "/data/u.db.jwt-key.pem", true, false},
		{"SQLite with JWT_KEYS_DIR: no key beside the database",
			map[string]string{"DATABASE_URL": "file:u.db", "JWT_KEYS_DIR": "/keys"}, true, "", false, false},
		{"in-memory SQLite: a random secret",
			map[string]string{"DATABASE_URL": "sqlite::memory:"}, true, "", true, true},
		{"PostgreSQL with JWT_KEYS_DIR",
			map[string]string{"DATABASE_URL": "postgres://h/db", "JWT_KEYS_DIR": "/keys"}, true, "", false, false},
		{"PostgreSQL with JWT_SECRET only: HS256",
			map[string]string{"DATABASE_URL": "postgres://h/db", "JWT_SECRET": secret}, true, "", true, false},
		{"an administration command on SQLite makes no key file",
			map[string]string{}, false, "", true, true},
	} {
		c, err := LoadConfig(envOf(tc.env), tc.forServe)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if c.JWTKeyFile != tc.keyFile || (c.JWTSecret != nil) != tc.secret || c.JWTSecretRandom != tc.random ||
			c.JWTKeysDir != tc.env["JWT_KEYS_DIR"] {
			t.Errorf("%s: key file %q, secret %v, random %v, keys dir %q", tc.name, c.JWTKeyFile, c.JWTSecret != nil,
				c.JWTSecretRandom, c.JWTKeysDir)
		}
	}
	c, err := LoadConfig(envOf(map[string]string{"JWT_ISSUER": "https://id.example.com", "JWT_AUDIENCE": "api",
		"PUBLIC_URL": "https://id.example.com/users/"}), true)
	if err != nil || c.JWTIssuer != "https://id.example.com" || c.JWTAudience != "api" || c.PublicURL != "https://id.example.com/users" {
		t.Errorf("JWT_ISSUER, JWT_AUDIENCE, PUBLIC_URL: %+v %v", c, err)
	}
	for _, bad := range []string{"id.example.com", "ftp://x", "https://x?y=1", "https://x#f", "https://u:p@x", "https://"} {
		_, err := LoadConfig(envOf(map[string]string{"PUBLIC_URL": bad}), true)
		if err == nil || !strings.HasPrefix(err.Error(), "PUBLIC_URL: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("PUBLIC_URL %q: %v", bad, err)
		}
	}
}

func TestLoadConfigReportsEveryProblemOnce(t *testing.T) {
	t.Parallel()
	secret := "short-secret"
	_, err := LoadConfig(envOf(map[string]string{
		"DATABASE_URL":         "mysql://x",
		"HTTP_ADDR":            "nonsense",
		"JWT_SECRET":           secret,
		"ACCESS_TOKEN_TTL":     "forever",
		"REFRESH_TOKEN_TTL":    "-1h",
		"CHANGE_LOG_RETENTION": "1h",
		"WS_RESUME_WINDOW":     "0s",
		"TRUSTED_PROXIES":      "10.0.0.0/8, not-an-ip",
		"REDIS_URL":            "http://redis",
		"LOG_LEVEL":            "loud",
		"LOG_FORMAT":           "xml",
		"CORS_ALLOWED_ORIGINS": "https://ok.example.com, *, https://x.example.com/path",
	}), true)
	if err == nil {
		t.Fatal("want an error")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{"DATABASE_URL", "HTTP_ADDR", "JWT_SECRET", "ACCESS_TOKEN_TTL", "REFRESH_TOKEN_TTL", "CHANGE_LOG_RETENTION",
		"WS_RESUME_WINDOW", "TRUSTED_PROXIES", "REDIS_URL", "CORS_ALLOWED_ORIGINS", "LOG_LEVEL", "LOG_FORMAT"}
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

func TestLoadConfigPostgresNeedsKeysOrASecretOnlyToServe(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{"DATABASE_URL": "postgres://u:p@localhost/db"})
	if _, err := LoadConfig(env, true); err == nil || !strings.HasPrefix(err.Error(), "JWT_KEYS_DIR: ") ||
		!strings.Contains(err.Error(), "JWT_SECRET") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("serve with PostgreSQL and neither JWT_KEYS_DIR nor JWT_SECRET: %v, want one line naming both", err)
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

func TestLoadConfigLogLevels(t *testing.T) {
	t.Parallel()
	for value, want := range map[string]slog.Level{"debug": slog.LevelDebug, "Info": slog.LevelInfo, "WARN": slog.LevelWarn, "warning": slog.LevelWarn, "error": slog.LevelError} {
		c, err := LoadConfig(envOf(map[string]string{"LOG_LEVEL": value}), false)
		if err != nil || c.LogLevel != want {
			t.Errorf("LOG_LEVEL=%s: %v, %v; want %v", value, c.LogLevel, err, want)
		}
	}
}

func TestLoadConfigResumeWindow(t *testing.T) {
	t.Parallel()
	c, err := LoadConfig(envOf(map[string]string{"WS_RESUME_WINDOW": "90m", "CHANGE_LOG_RETENTION": "48h"}), true)
	if err != nil || c.ResumeWindow != 90*time.Minute {
		t.Fatalf("WS_RESUME_WINDOW=90m: %v, %v", c.ResumeWindow, err)
	}
	if c, err = LoadConfig(envOf(map[string]string{"WS_RESUME_WINDOW": "48h", "CHANGE_LOG_RETENTION": "48h"}), true); err != nil || c.ResumeWindow != 48*time.Hour {
		t.Fatalf("a window as long as the retention: %v, %v", c.ResumeWindow, err)
	}
	for env, want := range map[string]string{
		"WS_RESUME_WINDOW=49h":       "must be at most CHANGE_LOG_RETENTION",
		"WS_RESUME_WINDOW=-1h":       "must be a positive duration",
		"WS_RESUME_WINDOW=0":         "must be a positive duration",
		"WS_RESUME_WINDOW=yesterday": "must be a positive duration",
	} {
		name, value, _ := strings.Cut(env, "=")
		_, err := LoadConfig(envOf(map[string]string{name: value, "CHANGE_LOG_RETENTION": "48h"}), true)
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "WS_RESUME_WINDOW: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want one line naming WS_RESUME_WINDOW: ...%s", env, err, want)
		}
	}
}

func TestLoadConfigAllowedOrigins(t *testing.T) {
	t.Parallel()
	c, err := LoadConfig(envOf(nil), true)
	if err != nil || len(c.AllowedOrigins) != 0 {
		t.Fatalf("CORS is off by default: %v %q", err, c.AllowedOrigins)
	}
	c, err = LoadConfig(envOf(map[string]string{"CORS_ALLOWED_ORIGINS": " https://App.Example.com ,http://localhost:3000,, " +
		"https://app.example.com:443, http://[::1]:8080, http://example.org:80, https://app.example.com"}), true)
	if err != nil {
		t.Fatal(err)
	}
	// As browsers send them: lower case, default ports dropped, once each.
	want := []string{"https://app.example.com", "http://localhost:3000", "http://[::1]:8080", "http://example.org"}
	if strings.Join(c.AllowedOrigins, " ") != strings.Join(want, " ") {
		t.Errorf("AllowedOrigins = %q, want %q", c.AllowedOrigins, want)
	}
	for _, bad := range []string{
		"*", "https://*.example.com", "app.example.com", "ftp://app.example.com", "https://app.example.com/",
		"https://app.example.com/path", "https://user@app.example.com", "https://app.example.com?x",
		"https://app.example.com#x", "https://app.example.com:0", "https://app.example.com:99999",
		"https://app.example.com:", "https://", "null", "file:///etc/passwd",
	} {
		_, err := LoadConfig(envOf(map[string]string{"CORS_ALLOWED_ORIGINS": "https://ok.example.com," + bad}), true)
		if err == nil {
			t.Errorf("CORS_ALLOWED_ORIGINS %q: accepted", bad)
			continue
		}
		if lines := strings.Split(err.Error(), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "CORS_ALLOWED_ORIGINS: ") ||
			strings.Contains(err.Error(), "ok.example.com") {
			t.Errorf("CORS_ALLOWED_ORIGINS %q: error %q, want one line naming the variable and the bad entry only", bad, err)
		}
	}
}

func TestTimeoutsOverrideOnlyWhatIsSet(t *testing.T) {
	t.Parallel()
	s := &http.Server{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	Config{ReadHeaderTimeout: time.Second, IdleTimeout: 2 * time.Second}.setTimeouts(s)
	if s.ReadHeaderTimeout != time.Second || s.ReadTimeout != 30*time.Second ||
		s.WriteTimeout != 30*time.Second || s.IdleTimeout != 2*time.Second {
		t.Errorf("server timeouts %v %v %v %v", s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout)
	}
}

// LoadConfig reads getenv only: the process's own environment (a developer's
// shell, a test runner) must not fill in what the caller did not set.
func TestLoadConfigReadsOnlyGetenv(t *testing.T) {
	t.Setenv("HTTP_ADDR", "nonsense")
	t.Setenv("LOG_FORMAT", "xml")
	c, err := LoadConfig(envOf(nil), true)
	if err != nil || c.HTTPAddr != ":8000" || c.LogFormat != "text" {
		t.Fatalf("the process environment leaked in: %q %q %v", c.HTTPAddr, c.LogFormat, err)
	}
}

func TestSecretsStayOutOfStringAndLogs(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("topsecret", 4)
	c, err := LoadConfig(envOf(map[string]string{"JWT_SECRET": secret}), true)
	if err != nil || string(c.JWTSecret) != secret {
		t.Fatalf("JWT_SECRET not read as given: %v", err)
	}
	var logs strings.Builder
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "secret", c.JWTSecret, "config", c)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "secret", c.JWTSecret, "config", c)
	for _, out := range []string{fmt.Sprintf("%v %+v %s", c, c, c.JWTSecret), logs.String()} {
		if strings.Contains(out, "topsecret") || !strings.Contains(out, "[redacted]") {
			t.Errorf("the secret shows: %s", out)
		}
	}
}
