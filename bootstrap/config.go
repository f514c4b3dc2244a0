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
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Config is the service's configuration, read from the environment only
// (docs/operations.md, Configuration): the env tags name the variables and
// their defaults, caarlos0/env reads them, and LoadConfig checks what the
// tags cannot say. A secret never reaches an error message, String or a log
// line.
type Config struct {
	DatabaseURL string `env:"DATABASE_URL"`
	HTTPAddr    string `env:"HTTP_ADDR" envDefault:":8000"`
	// JWTSecret (JWT_SECRET) is at least minSecretLen bytes, taken as given.
	JWTSecret       Secret `env:"JWT_SECRET"`
	JWTSecretRandom bool   // no key nor JWT_SECRET: a random secret was made (administration commands, in-memory SQLite)
	// JWTKeysDir (JWT_KEYS_DIR) holds the Ed25519 signing keys; JWTKeyFile
	// is the key kept beside a SQLite database when there is no such
	// directory (made on first start).
	JWTKeysDir  string `env:"JWT_KEYS_DIR"`
	JWTKeyFile  string
	JWTIssuer   string `env:"JWT_ISSUER" envDefault:"userservice"`   // the tokens' iss
	JWTAudience string `env:"JWT_AUDIENCE" envDefault:"userservice"` // the tokens' aud
	// PublicURL (PUBLIC_URL) is the service's external base URL, which the
	// OAuth metadata names endpoints under; empty: worked out per request.
	PublicURL  string        `env:"PUBLIC_URL"`
	AccessTTL  time.Duration `env:"ACCESS_TOKEN_TTL" envDefault:"15m"`
	RefreshTTL time.Duration `env:"REFRESH_TOKEN_TTL" envDefault:"720h"`
	// ChangeLogRetention is how long change-log entries (the audit trail and
	// WebSocket resume) are kept: 90 days by default, and never less than
	// the day of resume docs/websocket.md promises. Zero (a Config built in
	// code) means the default.
	ChangeLogRetention time.Duration `env:"CHANGE_LOG_RETENTION" envDefault:"2160h"`
	// ResumeWindow (WS_RESUME_WINDOW) is how far back a WebSocket since_seq
	// may reach, at most ChangeLogRetention; older history is /audit's.
	// Zero means the default.
	ResumeWindow   time.Duration  `env:"WS_RESUME_WINDOW" envDefault:"24h"`
	PolicyDir      string         `env:"POLICY_DIR" envDefault:"policies"`
	TrustedProxies []netip.Prefix `env:"TRUSTED_PROXIES"`
	RedisURL       string         `env:"REDIS_URL"`
	// AllowedOrigins (CORS_ALLOWED_ORIGINS) are the exact origins whose
	// pages may call the API and open WebSockets from a browser; empty:
	// none but the service's own.
	AllowedOrigins []string   `env:"CORS_ALLOWED_ORIGINS"`
	LogLevel       slog.Level `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat      string     `env:"LOG_FORMAT" envDefault:"text"`

	// The HTTP server's timeouts; zero keeps the production defaults of
	// httpapi.NewHTTPServer. They are not read from the environment: tests
	// shorten them to prove that slow clients are cut off.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
}

// Secret is key material. Printed (a Config with %v) or logged, it shows as
// [redacted]: slog would otherwise write a byte slice out as a string.
type Secret []byte

func (Secret) String() string { return "[redacted]" }

// LogValue keeps the secret out of slog's handlers, which do not use String.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// minSecretLen is the shortest JWT_SECRET accepted: 256 bits for HS256.
const minSecretLen = 32

// KeyFileSuffix ends the name of the signing key kept beside a SQLite
// database: userservice.db.jwt-key.pem.
const KeyFileSuffix = ".jwt-key.pem"

// minRetention is the day of resume docs/websocket.md promises.
const minRetention = 24 * time.Hour

// parsers read the values whose rules are the service's own; their errors
// say what is wrong without the variable's name, which LoadConfig adds.
var parsers = map[reflect.Type]env.ParserFunc{
	reflect.TypeFor[time.Duration](): func(s string) (any, error) {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("must be a positive duration such as 15m or 720h (got %q)", s)
		}
		return d, nil
	},
	reflect.TypeFor[Secret](): func(s string) (any, error) {
		if len(s) < minSecretLen {
			return nil, fmt.Errorf("must be at least %d bytes (got %d)", minSecretLen, len(s))
		}
		return Secret(s), nil
	},
	reflect.TypeFor[[]netip.Prefix](): trustedProxies,
}

// LoadConfig reads the configuration from getenv and reports every problem at
// once, one line per variable in the order of Config, naming the variable
// and never echoing a secret. forServe demands what only serving needs (a
// signing key with PostgreSQL); administration commands issue no tokens.
func LoadConfig(getenv func(string) string, forServe bool) (Config, error) {
	vars, err := env.GetFieldParams(&Config{})
	if err != nil {
		return Config{}, err
	}
	environ := map[string]string{}
	for _, v := range vars {
		value := getenv(v.Key)
		if v.Key != "JWT_SECRET" { // a secret is taken byte for byte
			value = strings.TrimSpace(value)
		}
		if value != "" { // empty is unset: the default applies
			environ[v.Key] = value
		}
	}
	if strings.EqualFold(environ["LOG_LEVEL"], "warning") {
		environ["LOG_LEVEL"] = "warn" // an alias the service has always taken; slog has no name for it
	}
	var c Config
	p := problems{}
	if err := env.ParseWithOptions(&c, env.Options{Environment: environ, FuncMap: parsers}); err != nil {
		var agg env.AggregateError
		if !errors.As(err, &agg) {
			return c, err
		}
		for _, e := range agg.Errors {
			var pe env.ParseError
			if !errors.As(e, &pe) {
				return c, err
			}
			f, _ := reflect.TypeFor[Config]().FieldByName(pe.Name)
			name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			msg := pe.Err.Error()
			if pe.Type == reflect.TypeFor[slog.Level]() {
				msg = fmt.Sprintf("must be debug, info, warn or error (got %q)", environ[name])
			}
			p.add(name, "%s", msg)
		}
	}

	postgres := false
	switch {
	case c.DatabaseURL == "", strings.HasPrefix(c.DatabaseURL, "sqlite:"), strings.HasPrefix(c.DatabaseURL, "file:"):
	case c.Postgres():
		postgres = true
	default:
		p.add("DATABASE_URL", "must be unset (embedded SQLite), sqlite:PATH, or a postgres:// URL")
	}

	if _, _, err := splitHostPort(c.HTTPAddr); err != nil {
		p.add("HTTP_ADDR", "must be host:port or :port (got %q)", c.HTTPAddr)
	}

	// Where the signing key comes from (docs/operations.md, Signing keys):
	// JWT_KEYS_DIR when set; else, serving on SQLite, a key made once beside
	// the database file; else JWT_SECRET signs (HS256). PostgreSQL serves several
	// instances, which must share their keys: one of the two is required.
	secret := environ["JWT_SECRET"] != ""
	sqlitePath := sqliteFile(c.DatabaseURL)
	switch {
	case c.JWTKeysDir != "" || secret && postgres:
	case postgres && forServe:
		p.add("JWT_KEYS_DIR", "is required with PostgreSQL: a directory of Ed25519 PEM keys shared by every instance "+
			"(docs/operations.md, Signing keys); JWT_SECRET (HS256, at least %d bytes) is still accepted instead", minSecretLen)
	case forServe && sqlitePath != "" && sqlitePath != ":memory:":
		c.JWTKeyFile = sqlitePath + KeyFileSuffix
	case !secret:
		// Administration commands issue no tokens, and an in-memory
		// database forgets its users at exit anyway.
		c.JWTSecret = make([]byte, 32)
		if _, err := rand.Read(c.JWTSecret); err != nil {
			p.add("JWT_SECRET", "unset and no random secret could be made: %v", err)
		}
		c.JWTSecretRandom = true
	}
	c.PublicURL = publicURL(c.PublicURL, p)

	if !p.has("CHANGE_LOG_RETENTION") && c.ChangeLogRetention < minRetention {
		p.add("CHANGE_LOG_RETENTION", "must be at least 24h: WebSocket clients may resume a day later (got %q)",
			environ["CHANGE_LOG_RETENTION"])
	}
	// A retention refused above is reported once, under its own name.
	if !p.has("CHANGE_LOG_RETENTION") && !p.has("WS_RESUME_WINDOW") && c.ResumeWindow > c.ChangeLogRetention {
		p.add("WS_RESUME_WINDOW", "must be at most CHANGE_LOG_RETENTION (%s): older changes are pruned (got %q)",
			c.ChangeLogRetention, environ["WS_RESUME_WINDOW"])
	}

	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
		p.add("REDIS_URL", "must be a redis:// or rediss:// URL")
	}

	c.AllowedOrigins = origins(c.AllowedOrigins, p)

	if c.LogFormat != "json" && c.LogFormat != "text" {
		p.add("LOG_FORMAT", "must be json or text (got %q)", c.LogFormat)
	}
	return c, p.err(vars)
}

// problems holds what is wrong with each variable: the first problem found,
// so each is reported once.
type problems map[string]string

func (p problems) add(name, format string, args ...any) {
	if !p.has(name) {
		p[name] = fmt.Sprintf(format, args...)
	}
}

func (p problems) has(name string) bool {
	_, ok := p[name]
	return ok
}

// err lists the problems one line each, "NAME: what is wrong", in the order
// of vars.
func (p problems) err(vars []env.FieldParams) error {
	var lines []error
	for _, v := range vars {
		if msg, ok := p[v.Key]; ok {
			lines = append(lines, fmt.Errorf("%s: %s", v.Key, msg))
		}
	}
	return errors.Join(lines...)
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
func publicURL(s string, p problems) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || u.Opaque != "" {
		p.add("PUBLIC_URL", "must be an absolute http or https URL such as https://users.example.com, with no query or fragment (got %q)", s)
		return ""
	}
	return strings.TrimSuffix(u.String(), "/")
}

// Postgres reports whether the configuration points at PostgreSQL.
func (c Config) Postgres() bool {
	return strings.HasPrefix(c.DatabaseURL, "postgres://") || strings.HasPrefix(c.DatabaseURL, "postgresql://")
}

// origins canonicalises the exact origins of CORS_ALLOWED_ORIGINS as
// browsers send them in the Origin header: lower-case scheme://host, with the
// port only when it is not the scheme's default. Patterns and "*" are
// refused, so the list says exactly who is trusted.
func origins(fields []string, p problems) []string {
	var out, wrong []string
	for _, field := range fields {
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
		p.add("CORS_ALLOWED_ORIGINS", "%s: want exact origins such as https://app.example.com "+
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

// trustedProxies reads TRUSTED_PROXIES: addresses and CIDR blocks separated
// by commas or spaces; an address is its own /32 or /128.
func trustedProxies(s string) (any, error) {
	var out []netip.Prefix
	var wrong []string
	for _, field := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		p, err := parsePrefix(field)
		if err != nil {
			wrong = append(wrong, strconv.Quote(field))
			continue
		}
		out = append(out, p)
	}
	if len(wrong) > 0 {
		return nil, fmt.Errorf("%s: want IP addresses or CIDR blocks", strings.Join(wrong, ", "))
	}
	return out, nil
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
