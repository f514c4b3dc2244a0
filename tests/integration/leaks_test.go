package integration

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// leakScan collects the secrets a test handled and everything the service
// said, and finds every secret in what was said (CONTRACT §1: no password,
// hash, token version or secret in a response, an event, a log line or an
// error).
type leakScan struct {
	mu       sync.Mutex
	secrets  []secret
	captures []capture
}

type secret struct{ what, value string }

type capture struct{ where, text string }

// hashPatterns match the stored forms of passwords, argon2 PHC strings and
// bcrypt hashes, whatever their parameters: a prefix followed by its
// encoded salt and digest. A bare prefix is not a hash: the OpenAPI document
// names the formats an import accepts.
var hashPatterns = []struct {
	name string
	re   *regexp.Regexp
}{
	{"$argon2...", regexp.MustCompile(`\$argon2(?:id|i|d)\$(?:v=\d+\$)?m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+`)},
	{"$2?$...", regexp.MustCompile(`\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{22}`)},
}

// secretKeys are JSON keys that would carry a user's secrets; no answer has them.
var secretKeys = []string{`"password_hash":`, `"token_version":`}

func (l *leakScan) add(what, value string) {
	if value == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.secrets = append(l.secrets, secret{what, value})
}

// secretJWT registers the signing secret in the encodings a careless log
// line would use.
func (l *leakScan) secretJWT(key []byte) {
	l.add("the JWT secret", string(key))
	l.add("the JWT secret (hex)", hex.EncodeToString(key))
	l.add("the JWT secret (base64)", base64.StdEncoding.EncodeToString(key))
	l.add("the JWT secret (base64url)", base64.RawURLEncoding.EncodeToString(key))
}

func (l *leakScan) secretPassword(p string) { l.add("a password", p) }

// secretRefreshToken registers a refresh token and the hash it is stored as.
func (l *leakScan) secretRefreshToken(token string) {
	l.add("a refresh token", token)
	sum := sha256.Sum256([]byte(token))
	l.add("a refresh token's stored hash", hex.EncodeToString(sum[:]))
}

// secretAccessToken registers an access token and its signature, which is
// what a log line cutting the token short would still give away.
func (l *leakScan) secretAccessToken(token string) {
	l.add("an access token", token)
	if parts := strings.Split(token, "."); len(parts) == 3 && len(parts[2]) >= 16 {
		l.add("an access token's signature", parts[2])
	}
}

// capture keeps something the service said, with where it was said.
func (l *leakScan) capture(where, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.captures = append(l.captures, capture{where, text})
}

// findings lists every place, among the captures and log, that holds a
// secret, naming the place and the kind of secret but never the secret.
func (l *leakScan) findings(log string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	check := func(where, text string, keys []string) {
		for _, s := range l.secrets {
			if strings.Contains(text, s.value) {
				out = append(out, fmt.Sprintf("%s contains %s", where, s.what))
			}
		}
		for _, p := range hashPatterns {
			if p.re.MatchString(text) {
				out = append(out, fmt.Sprintf("%s contains a password hash (%s)", where, p.name))
			}
		}
		for _, k := range keys {
			if strings.Contains(text, k) {
				out = append(out, fmt.Sprintf("%s has the key %s", where, k))
			}
		}
	}
	for _, c := range l.captures {
		check(c.where, c.text, secretKeys)
	}
	check("the service's log", log, nil)
	return out
}

// TestLeakScanFindsEverySecret checks the scanner the whole suite relies on:
// each kind of secret is found where it appears, named, and not quoted.
func TestLeakScanFindsEverySecret(t *testing.T) {
	t.Parallel()
	var l leakScan
	l.secretJWT([]byte("the-jwt-secret-of-at-least-32-bytes"))
	l.secretPassword("Pw-HUNTER2HUNTER2")
	l.secretRefreshToken("refresh-AAAA")
	l.secretAccessToken("eyJhbGciOi.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg")

	clean := `{"id":1,"email":"zoe@example.com","role":"user"}`
	l.capture("a clean answer", clean)
	l.capture("a document naming the formats", "password_hash accepts bcrypt ($2a$, $2b$, $2y$) and argon2id ($argon2id$v=19$...)")
	if f := l.findings("level=INFO msg=ok"); len(f) != 0 {
		t.Fatalf("clean text: findings %q, want none", f)
	}

	for _, tc := range []struct{ text, want string }{
		{"JWT_SECRET=the-jwt-secret-of-at-least-32-bytes", "the JWT secret"},
		{"key " + base64.StdEncoding.EncodeToString([]byte("the-jwt-secret-of-at-least-32-bytes")), "the JWT secret (base64)"},
		{`{"detail":"bad password Pw-HUNTER2HUNTER2"}`, "a password"},
		{"hash=$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", "a password hash ($argon2...)"},
		{"imported $2b$10$abcdefghijklmnopqrstuv", "a password hash ($2?$...)"},
		{"imported $2y$12$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a", "a password hash ($2?$...)"},
		{"token refresh-AAAA spent", "a refresh token"},
		{"sig c2lnbmF0dXJlLW9mLXRoZS10b2tlbg", "an access token's signature"},
		{`{"id":1,"password_hash":"x"}`, `the key "password_hash":`},
	} {
		var l2 leakScan
		l2.secrets = l.secrets
		l2.capture("the answer", tc.text)
		findings := strings.Join(l2.findings(""), "\n")
		if !strings.Contains(findings, tc.want) {
			t.Errorf("in an answer %q: findings %q, want one naming %q", tc.text, findings, tc.want)
		}
		for _, s := range l.secrets {
			if strings.Contains(findings, s.value) {
				t.Errorf("the findings quote %s", s.what)
			}
		}
		if tc.want == `the key "password_hash":` {
			continue // keys are checked in answers only
		}
		var l3 leakScan
		l3.secrets = l.secrets
		if f := strings.Join(l3.findings("msg=x "+tc.text), "\n"); !strings.Contains(f, "the service's log contains "+tc.want) {
			t.Errorf("in the log %q: findings %q, want one naming %q", tc.text, f, tc.want)
		}
	}
}
