package bootstrap

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the service's configuration, read from the environment only
// (docs/operations.md, Configuration). Secrets are kept out of String and of every log line.
type Config struct {
	DatabaseURL     string
	HTTPAddr        string
	JWTSecret       []byte
	JWTSecretRandom bool // no key nor JWT_SECRET: a random secret was made (administration commands, in-memory SQLite)
	// JWTKeysDir (JWT_KEYS_DIR) holds the Ed25519 signing keys; JWTKeyFile
	// is the key kept beside a SQLite database when there is no such
	// directory (made on first start).
	JWTKeysDir  string
	JWTKeyFile  string
	JWTIssuer   string // JWT_ISSUER, the tokens' iss
	JWTAudience string // JWT_AUDIENCE, the tokens' aud
	// PublicURL (PUBLIC_URL) is the service's external base URL, which the
	// OAuth metadata names endpoints under; empty: worked out per request.
	PublicURL  string
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	// ChangeLogRetention is how long change-log entries (the audit trail and
	// WebSocket resume) are kept; zero means the default.
	ChangeLogRetention time.Duration
	PolicyDir          string
	TrustedProxies     []netip.Prefix
	RedisURL           string
	LogLevel           slog.Level
	LogFormat          string
	// AllowedOrigins (CORS_ALLOWED_ORIGINS) are the exact origins whose
	// pages may call the API and open WebSockets from a browser; empty:
	// none but the service's own.
	AllowedOrigins []string
	// ResumeWindow (WS_RESUME_WINDOW) is how far back a WebSocket since_seq
	// may reach, at most ChangeLogRetention; zero means the default.
	ResumeWindow time.Duration

	// The HTTP server's timeouts; zero keeps the production defaults of
	// httpapi.NewHTTPServer. They are not read from the environment: tests
	// shorten them to prove that slow clients are cut off.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
}

// minSecretLen is the shortest JWT_SECRET accepted: 256 bits for HS256.
const minSecretLen = 32

// KeyFileSuffix ends the name of the signing key kept beside a SQLite
// database: userservice.db.jwt-key.pem.
const KeyFileSuffix = ".jwt-key.pem"

// The change log is the audit trail as well as the WebSocket resume buffer:
// it is kept 90 days by default, and never less than the day of resume
// docs/websocket.md promises.
const (
	defaultRetention = 90 * 24 * time.Hour
	minRetention     = 24 * time.Hour
)

// defaultResumeWindow is the day of resume WebSocket clients get; older
// history is /audit's.
const defaultResumeWindow = 24 * time.Hour

// LoadConfig reads the configuration from getenv and reports every problem at
// once, one line per variable, naming the variable and never echoing a secret.
// forServe demands what only serving needs (a JWT_SECRET with PostgreSQL);
// administration commands issue no tokens.
func LoadConfig(getenv func(string) string, forServe bool) (Config, error) {
	c := Config{
		DatabaseURL: strings.TrimSpace(getenv("DATABASE_URL")),
		HTTPAddr:    orDefault(getenv("HTTP_ADDR"), ":8000"),
		PolicyDir:   orDefault(getenv("POLICY_DIR"), "policies"),
		RedisURL:    strings.TrimSpace(getenv("REDIS_URL")),
		LogFormat:   orDefault(getenv("LOG_FORMAT"), "text"),
	}
	var problems []error
	bad := func(name, format string, args ...any) {
		problems = append(problems, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}

	postgres := false
	switch {
	case c.DatabaseURL == "", strings.HasPrefix(c.DatabaseURL, "sqlite:"), strings.HasPrefix(c.DatabaseURL, "file:"):
	case strings.HasPrefix(c.DatabaseURL, "postgres://"), strings.HasPrefix(c.DatabaseURL, "postgresql://"):
		postgres = true
	default:
		bad("DATABASE_URL", "must be unset (embedded SQLite), sqlite:PATH, or a postgres:// URL")
	}

	if _, _, err := splitHostPort(c.HTTPAddr); err != nil {
		bad("HTTP_ADDR", "must be host:port or :port (got %q)", c.HTTPAddr)
	}

	c.JWTKeysDir = strings.TrimSpace(getenv("JWT_KEYS_DIR"))
	c.JWTIssuer = orDefault(getenv("JWT_ISSUER"), "userservice")
	c.JWTAudience = orDefault(getenv("JWT_AUDIENCE"), "userservice")
	secret := getenv("JWT_SECRET")
	if secret != "" && len(secret) < minSecretLen {
		bad("JWT_SECRET", "must be at least %d bytes (got %d)", minSecretLen, len(secret))
	} else if secret != "" {
		c.JWTSecret = []byte(secret)
	}
	// Where the signing key comes from (docs/operations.md, Signing keys): JWT_KEYS_DIR
	// when set; else, serving on SQLite, a key made once beside the database
	// file; else JWT_SECRET signs (HS256). PostgreSQL serves several
	// instances, which must share their keys: one of the two is required.
	sqlitePath := sqliteFile(c.DatabaseURL)
	switch {
	case c.JWTKeysDir != "" || secret != "" && postgres:
	case postgres && forServe:
		bad("JWT_KEYS_DIR", "is required with PostgreSQL: a directory of Ed25519 PEM keys shared by every instance "+
			"(docs/operations.md, Signing keys); JWT_SECRET (HS256, at least %d bytes) is still accepted instead", minSecretLen)
	case forServe && sqlitePath != "" && sqlitePath != ":memory:":
		c.JWTKeyFile = sqlitePath + KeyFileSuffix
	case secret == "":
		// Administration commands issue no tokens, and an in-memory
		// database forgets its users at exit anyway.
		c.JWTSecret = make([]byte, 32)
		if _, err := rand.Read(c.JWTSecret); err != nil {
			bad("JWT_SECRET", "unset and no random secret could be made: %v", err)
		}
		c.JWTSecretRandom = true
	}
	c.PublicURL = publicURL(getenv("PUBLIC_URL"), bad)

	c.AccessTTL = duration(getenv("ACCESS_TOKEN_TTL"), 15*time.Minute, "ACCESS_TOKEN_TTL", bad)
	c.RefreshTTL = duration(getenv("REFRESH_TOKEN_TTL"), 720*time.Hour, "REFRESH_TOKEN_TTL", bad)
	c.ChangeLogRetention = duration(getenv("CHANGE_LOG_RETENTION"), defaultRetention, "CHANGE_LOG_RETENTION", bad)
	if c.ChangeLogRetention < minRetention {
		bad("CHANGE_LOG_RETENTION", "must be at least 24h: WebSocket clients may resume a day later (got %q)", getenv("CHANGE_LOG_RETENTION"))
	}
	c.ResumeWindow = duration(getenv("WS_RESUME_WINDOW"), defaultResumeWindow, "WS_RESUME_WINDOW", bad)
	// A retention refused above is reported once, under its own name.
	if c.ChangeLogRetention >= minRetention && c.ResumeWindow > c.ChangeLogRetention {
		bad("WS_RESUME_WINDOW", "must be at most CHANGE_LOG_RETENTION (%s): older changes are pruned (got %q)",
			c.ChangeLogRetention, getenv("WS_RESUME_WINDOW"))
	}

	for _, field := range strings.FieldsFunc(getenv("TRUSTED_PROXIES"), func(r rune) bool { return r == ',' || r == ' ' }) {
		p, err := parsePrefix(field)
		if err != nil {
			bad("TRUSTED_PROXIES", "%q is not an IP address or CIDR block", field)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}

	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
		bad("REDIS_URL", "must be a redis:// or rediss:// URL")
	}

	c.AllowedOrigins = origins(getenv("CORS_ALLOWED_ORIGINS"), bad)

	switch lvl := strings.ToLower(orDefault(getenv("LOG_LEVEL"), "info")); lvl {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn", "warning":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		bad("LOG_LEVEL", "must be debug, info, warn or error (got %q)", lvl)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("LOG_FORMAT", "must be json or text (got %q)", c.LogFormat)
	}
	return c, errors.Join(problems...)
}

// setTimeouts overrides the server's default timeouts with those set.
func (c Config) setTimeouts(s *http.Server) {
	for _, t := range []struct {
		dst *time.Duration
		v   time.Duration
	}{
		{&s.ReadHeaderTimeout, c.ReadHeaderTimeout}, {&s.ReadTimeout, c.ReadTimeout},
		{&s.WriteTimeout, c.WriteTimeout}, {&s.IdleTimeout, c.IdleTimeout},
	} {
		if t.v > 0 {
			*t.dst = t.v
		}
	}
}

// sqliteFile is the SQLite database file of a DATABASE_URL, as the store
// opens it; empty for PostgreSQL.
func sqliteFile(databaseURL string) string {
	switch {
	case databaseURL == "":
		return "userservice.db"
	case strings.HasPrefix(databaseURL, "sqlite:"):
		return strings.TrimPrefix(databaseURL, "sqlite:")
	case strings.HasPrefix(databaseURL, "file:"):
		return strings.TrimPrefix(databaseURL, "file:")
	}
	return ""
}

// publicURL reads PUBLIC_URL: an absolute http(s) URL, optionally with a
// path prefix, without query or fragment; a trailing slash is dropped.
func publicURL(s string, bad func(string, string, ...any)) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || u.Opaque != "" {
		bad("PUBLIC_URL", "must be an absolute http or https URL such as https://users.example.com, with no query or fragment (got %q)", s)
		return ""
	}
	return strings.TrimSuffix(u.String(), "/")
}

// Postgres reports whether the configuration points at PostgreSQL.
func (c Config) Postgres() bool {
	return strings.HasPrefix(c.DatabaseURL, "postgres://") || strings.HasPrefix(c.DatabaseURL, "postgresql://")
}

func duration(s string, def time.Duration, name string, bad func(string, string, ...any)) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		bad(name, "must be a positive duration such as 15m or 720h (got %q)", s)
		return def
	}
	return d
}

// origins reads a comma-separated list of exact origins, as browsers send
// them in the Origin header: lower-case scheme://host, with the port only
// when it is not the scheme's default. Patterns and "*" are refused, so the
// list says exactly who is trusted.
func origins(s string, bad func(string, string, ...any)) []string {
	var out, wrong []string
	for _, field := range strings.Split(s, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		o, ok := canonicalOrigin(field)
		switch {
		case !ok:
			wrong = append(wrong, strconv.Quote(field))
		case !slices.Contains(out, o):
			out = append(out, o)
		}
	}
	if len(wrong) > 0 {
		bad("CORS_ALLOWED_ORIGINS", "%s: want exact origins such as https://app.example.com "+
			"(http or https, a host, an optional port; no path, no wildcard)", strings.Join(wrong, ", "))
	}
	return out
}

func canonicalOrigin(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.User != nil || u.Path != "" || u.RawQuery != "" ||
		u.Fragment != "" || u.ForceQuery || strings.HasSuffix(s, "#") {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if (scheme != "http" && scheme != "https") || host == "" || strings.ContainsAny(host, "*?%") {
		return "", false
	}
	port := u.Port()
	if strings.HasSuffix(u.Host, ":") {
		return "", false
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", false
		}
		if (scheme == "http" && n == 80) || (scheme == "https" && n == 443) {
			port = ""
		} else {
			port = strconv.Itoa(n)
		}
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, true
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func orDefault(s, def string) string {
	if s = strings.TrimSpace(s); s == "" {
		return def
	}
	return s
}

func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port %q", port)
	}
	return host, n, nil
}
