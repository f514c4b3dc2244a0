package harness

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// LeakScan collects the secrets a test handled and everything the service
// said, and finds every secret in what was said (docs/api.md, Users: no password,
// hash, token version or secret in a response, an event, a log line or an
// error).
type LeakScan struct {
	mu       sync.Mutex
	secrets  []secret
	captures []capture
}

type secret struct{ what, value string }

type capture struct{ where, text string }

// hashPattern finds the stored forms of passwords, whole or cut short:
// argon2 PHC strings and bcrypt hashes, by their prefix followed by their
// first parameter or the start of their salt. A format merely named in
// prose ("bcrypt ($2a$, $2b$)") is not a hash.
var hashPattern = regexp.MustCompile(`\$argon2(?:id|i|d)\$(?:v=\d+\$)?m=\d+|\$2[abxy]\$\d{2}\$[./A-Za-z0-9]{8,}`)

// secretKeys are JSON keys that would carry a user's secrets; no answer has them.
var secretKeys = []string{`"password_hash":`, `"token_version":`}

func (l *LeakScan) add(what, value string) {
	if value == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.secrets = append(l.secrets, secret{what, value})
}

// SecretJWT registers the signing secret in the encodings a careless log
// line would use.
func (l *LeakScan) SecretJWT(key []byte) {
	l.add("the JWT secret", string(key))
	l.add("the JWT secret (hex)", hex.EncodeToString(key))
	l.add("the JWT secret (base64)", base64.StdEncoding.EncodeToString(key))
	l.add("the JWT secret (base64url)", base64.RawURLEncoding.EncodeToString(key))
}

// SecretSigningKey registers an Ed25519 private key: its seed in the
// encodings a careless log line would use, and the base64 of its PKCS#8
// form, which is what a PEM file's body holds.
func (l *LeakScan) SecretSigningKey(priv ed25519.PrivateKey, pkcs8 []byte) {
	seed := priv.Seed()
	l.add("a signing key's seed (hex)", hex.EncodeToString(seed))
	l.add("a signing key's seed (base64)", base64.StdEncoding.EncodeToString(seed))
	l.add("a signing key's seed (base64url)", base64.RawURLEncoding.EncodeToString(seed))
	l.add("a signing key's PKCS#8 body", base64.StdEncoding.EncodeToString(pkcs8))
}

func (l *LeakScan) SecretPassword(p string) { l.add("a password", p) }

// SecretRefreshToken registers a refresh token and the hash it is stored as.
func (l *LeakScan) SecretRefreshToken(token string) {
	l.add("a refresh token", token)
	sum := sha256.Sum256([]byte(token))
	l.add("a refresh token's stored hash", hex.EncodeToString(sum[:]))
}

// SecretAccessToken registers an access token and its signature, which is
// what a log line cutting the token short would still give away.
func (l *LeakScan) SecretAccessToken(token string) {
	l.add("an access token", token)
	if parts := strings.Split(token, "."); len(parts) == 3 && len(parts[2]) >= 16 {
		l.add("an access token's signature", parts[2])
	}
}

// Capture keeps something the service said, with where it was said.
func (l *LeakScan) Capture(where, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.captures = append(l.captures, capture{where, text})
}

// Findings lists every place, among the captures and log, that holds a
// secret, naming the place and the kind of secret but never the secret.
func (l *LeakScan) Findings(log string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	check := func(where, text string, keys []string) {
		for _, s := range l.secrets {
			if strings.Contains(text, s.value) {
				out = append(out, fmt.Sprintf("%s contains %s", where, s.what))
			}
		}
		seen := map[string]bool{}
		for _, h := range hashPattern.FindAllString(text, -1) {
			// Name the kind by its prefix ($argon2id$, $2b$), never the hash.
			marker := h[:strings.IndexByte(h[1:], '$')+2]
			if !seen[marker] {
				seen[marker] = true
				out = append(out, fmt.Sprintf("%s contains a password hash (%s...)", where, marker))
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
