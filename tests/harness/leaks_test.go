package harness

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestLeakScanFindsEverySecret checks the scanner the whole suite relies on:
// each kind of secret is found where it appears, named, and not quoted.
func TestLeakScanFindsEverySecret(t *testing.T) {
	t.Parallel()
	var l LeakScan
	l.SecretJWT([]byte("the-jwt-secret-of-at-least-32-bytes"))
	l.SecretPassword("Pw-HUNTER2HUNTER2")
	l.SecretRefreshToken("refresh-AAAA")
	l.SecretAccessToken("eyJhbGciOi.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg")

	clean := `{"id":1,"email":"zoe@example.com","role":"user","message":"is not a bcrypt ($2a$, $2b$, $2y$) or argon2id hash"}`
	l.Capture("a clean answer", clean)
	l.Capture("a document naming the formats", "password_hash accepts bcrypt ($2a$, $2b$, $2y$) and argon2id ($argon2id$v=19$...)")
	if f := l.Findings("level=INFO msg=ok"); len(f) != 0 {
		t.Fatalf("clean text: findings %q, want none", f)
	}

	for _, tc := range []struct{ text, want string }{
		{"JWT_SECRET=the-jwt-secret-of-at-least-32-bytes", "the JWT secret"},
		{"key " + base64.StdEncoding.EncodeToString([]byte("the-jwt-secret-of-at-least-32-bytes")), "the JWT secret (base64)"},
		{`{"detail":"bad password Pw-HUNTER2HUNTER2"}`, "a password"},
		{"hash=$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", "a password hash ($argon2id$...)"},
		{"imported $2b$10$abcdefghijklmnopqrstuv", "a password hash ($2b$...)"},
		{"imported $2y$12$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a", "a password hash ($2y$...)"},
		{"token refresh-AAAA spent", "a refresh token"},
		{"sig c2lnbmF0dXJlLW9mLXRoZS10b2tlbg", "an access token's signature"},
		{`{"id":1,"password_hash":"x"}`, `the key "password_hash":`},
	} {
		var l2 LeakScan
		l2.secrets = l.secrets
		l2.Capture("the answer", tc.text)
		findings := strings.Join(l2.Findings(""), "\n")
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
		var l3 LeakScan
		l3.secrets = l.secrets
		if f := strings.Join(l3.Findings("msg=x "+tc.text), "\n"); !strings.Contains(f, "the service's log contains "+tc.want) {
			t.Errorf("in the log %q: findings %q, want one naming %q", tc.text, f, tc.want)
		}
	}
}
