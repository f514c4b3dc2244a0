package jwtauth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/userservice/userservice/adapters/jwtauth"
	"github.com/userservice/userservice/domain"
)

var (
	secret      = []byte("0123456789abcdef0123456789abcdef-test-only")
	otherSecret = []byte("fedcba9876543210fedcba9876543210-test-only")
	// now is a fixed instant with a sub-second part, to show it is truncated.
	now = time.Date(2026, 3, 14, 15, 9, 26, 535_897_000, time.UTC)
)

func newJWT(t testing.TB, cfg jwtauth.Config) *jwtauth.JWT {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = secret
	}
	j, err := jwtauth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// baseClaims is a complete, valid payload at now, for crafting variants.
func baseClaims() map[string]any {
	return map[string]any{
		"iss": "userservice",
		"aud": []string{"userservice"},
		"sub": "42",
		"ver": 3,
		"jti": "AAECAwQFBgcICQoLDA0ODw",
		"iat": now.Unix(),
		"exp": now.Add(15 * time.Minute).Unix(),
	}
}

func with(c map[string]any, key string, value any) map[string]any {
	c = maps.Clone(c)
	c[key] = value
	return c
}

func without(c map[string]any, key string) map[string]any {
	c = maps.Clone(c)
	delete(c, key)
	return c
}

// sign signs claims with a golang-jwt method and key.
func sign(t testing.TB, m jwt.SigningMethod, key any, c map[string]any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, jwt.MapClaims(c)).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// forge builds a token with any header, HMAC-SHA256-signed with key whatever
// the header claims: the shape of algorithm-confusion attacks.
func forge(t testing.TB, header map[string]any, c map[string]any, key []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	j := newJWT(t, jwtauth.Config{TTL: 10 * time.Minute})
	token, issued, err := j.IssueAccess(42, 7, now)
	if err != nil {
		t.Fatal(err)
	}
	iat := now.Truncate(time.Second)
	if issued.UserID != 42 || issued.TokenVersion != 7 || !issued.IssuedAt.Equal(iat) ||
		!issued.ExpiresAt.Equal(iat.Add(10*time.Minute)) || len(issued.ID) != 22 {
		t.Fatalf("issued claims %+v", issued)
	}
	got, err := j.VerifyAccess(token, now)
	if err != nil {
		t.Fatal(err)
	}
	if got != issued {
		t.Fatalf("verified claims %+v, issued %+v", got, issued)
	}

	// The wire format is what other parties (and the contract) expect.
	parts := strings.Split(token, ".")
	var header, payload map[string]any
	for i, v := range []*map[string]any{&header, &payload} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatal(err)
		}
	}
	if header["alg"] != "HS256" {
		t.Errorf("header %v", header)
	}
	want := map[string]any{
		"iss": "userservice", "aud": []any{"userservice"}, "sub": "42", "ver": float64(7),
		"jti": issued.ID, "iat": float64(iat.Unix()), "exp": float64(iat.Add(10 * time.Minute).Unix()),
	}
	if b1, b2 := mustJSON(t, payload), mustJSON(t, want); b1 != b2 {
		t.Errorf("payload %s, want %s", b1, b2)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestIDsAreUnique(t *testing.T) {
	t.Parallel()
	j := newJWT(t, jwtauth.Config{})
	seen := map[string]bool{}
	for range 100 {
		_, c, err := j.IssueAccess(1, 0, now)
		if err != nil {
			t.Fatal(err)
		}
		if seen[c.ID] {
			t.Fatalf("jti %q issued twice", c.ID)
		}
		seen[c.ID] = true
	}
}

func TestLeewayBoundaries(t *testing.T) {
	t.Parallel()
	j := newJWT(t, jwtauth.Config{TTL: time.Minute})
	token, c, err := j.IssueAccess(5, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		at   time.Time
		want error // nil: valid
	}{
		{"at issue", c.IssuedAt, nil},
		{"issued in the future within leeway", c.IssuedAt.Add(-jwtauth.Leeway), nil},
		{"issued in the future beyond leeway", c.IssuedAt.Add(-jwtauth.Leeway - time.Second), jwt.ErrTokenUsedBeforeIssued},
		{"at expiry", c.ExpiresAt, nil},
		{"expired within leeway", c.ExpiresAt.Add(jwtauth.Leeway - time.Second), nil},
		{"expired at the end of leeway", c.ExpiresAt.Add(jwtauth.Leeway), jwt.ErrTokenExpired},
		{"long expired", c.ExpiresAt.Add(time.Hour), jwt.ErrTokenExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := j.VerifyAccess(token, tc.at)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("VerifyAccess = %v, want valid", err)
				}
				return
			}
			if !errors.Is(err, domain.ErrUnauthenticated) || !errors.Is(err, tc.want) {
				t.Fatalf("VerifyAccess = %v, want ErrUnauthenticated caused by %v", err, tc.want)
			}
		})
	}
}

// rejected lists tokens VerifyAccess must refuse, each with the reason
// (a golang-jwt sentinel) it must give. They also seed the fuzz target.
func rejected(t testing.TB) []struct {
	name, token string
	why         error
} {
	j := newJWT(t, jwtauth.Config{})
	valid, _, err := j.IssueAccess(42, 3, now)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	flip := func(s string) string { // changes the first character, never only padding bits
		if s[0] == 'A' {
			return "B" + s[1:]
		}
		return "A" + s[1:]
	}
	otherIss := newJWT(t, jwtauth.Config{Issuer: "someone-else"})
	otherAud := newJWT(t, jwtauth.Config{Audience: "another-service"})
	issue := func(j *jwtauth.JWT, at time.Time) string {
		s, _, err := j.IssueAccess(42, 3, at)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, baseClaims())
	hs := func(c map[string]any) string { return sign(t, jwt.SigningMethodHS256, secret, c) }
	base := baseClaims()

	return []struct {
		name, token string
		why         error
	}{
		{"tampered signature", parts[0] + "." + parts[1] + "." + flip(parts[2]), jwt.ErrTokenSignatureInvalid},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(mustJSONAny(t, with(base, "sub", "1")))) + "." + parts[2], jwt.ErrTokenSignatureInvalid},
		{"signature dropped", parts[0] + "." + parts[1] + ".", jwt.ErrTokenSignatureInvalid},
		{"alg none", none, jwt.ErrTokenSignatureInvalid},
		{"alg none, HS256 signature kept", strings.Split(none, ".")[0] + "." + parts[1] + "." + parts[2], jwt.ErrTokenSignatureInvalid},
		{"alg None spelled otherwise", forge(t, map[string]any{"alg": "None", "typ": "JWT"}, base, secret), jwt.ErrTokenUnverifiable},
		{"HS384 with the same secret", sign(t, jwt.SigningMethodHS384, secret, base), jwt.ErrTokenSignatureInvalid},
		{"HS512 with the same secret", sign(t, jwt.SigningMethodHS512, secret, base), jwt.ErrTokenSignatureInvalid},
		{"RS256 header, HMAC signature", forge(t, map[string]any{"alg": "RS256", "typ": "JWT"}, base, secret), jwt.ErrTokenSignatureInvalid},
		{"ES256 header, HMAC signature", forge(t, map[string]any{"alg": "ES256", "typ": "JWT"}, base, secret), jwt.ErrTokenSignatureInvalid},
		{"no alg", forge(t, map[string]any{"typ": "JWT"}, base, secret), jwt.ErrTokenUnverifiable},
		{"another secret", sign(t, jwt.SigningMethodHS256, otherSecret, base), jwt.ErrTokenSignatureInvalid},
		{"expired", issue(j, now.Add(-jwtauth.DefaultTTL-jwtauth.Leeway-time.Second)), jwt.ErrTokenExpired},
		{"issued in the future", issue(j, now.Add(jwtauth.Leeway+time.Second)), jwt.ErrTokenUsedBeforeIssued},
		{"not valid yet (nbf)", hs(with(base, "nbf", now.Add(time.Hour).Unix())), jwt.ErrTokenNotValidYet},
		{"wrong audience", issue(otherAud, now), jwt.ErrTokenInvalidAudience},
		{"wrong issuer", issue(otherIss, now), jwt.ErrTokenInvalidIssuer},
		{"missing sub", hs(without(base, "sub")), jwt.ErrTokenRequiredClaimMissing},
		{"missing ver", hs(without(base, "ver")), jwt.ErrTokenRequiredClaimMissing},
		{"missing exp", hs(without(base, "exp")), jwt.ErrTokenRequiredClaimMissing},
		{"missing iat", hs(without(base, "iat")), jwt.ErrTokenRequiredClaimMissing},
		{"missing jti", hs(without(base, "jti")), jwt.ErrTokenRequiredClaimMissing},
		{"missing iss", hs(without(base, "iss")), jwt.ErrTokenRequiredClaimMissing},
		{"missing aud", hs(without(base, "aud")), jwt.ErrTokenRequiredClaimMissing},
		{"non-numeric sub", hs(with(base, "sub", "admin")), jwt.ErrTokenInvalidSubject},
		{"sub zero", hs(with(base, "sub", "0")), jwt.ErrTokenInvalidSubject},
		{"sub negative", hs(with(base, "sub", "-1")), jwt.ErrTokenInvalidSubject},
		{"sub with plus sign", hs(with(base, "sub", "+42")), jwt.ErrTokenInvalidSubject},
		{"sub with leading zero", hs(with(base, "sub", "042")), jwt.ErrTokenInvalidSubject},
		{"sub overflowing int64", hs(with(base, "sub", "9223372036854775808")), jwt.ErrTokenInvalidSubject},
		{"sub as a JSON number", hs(with(base, "sub", 42)), jwt.ErrTokenMalformed},
		{"ver as a string", hs(with(base, "ver", "3")), jwt.ErrTokenMalformed},
		{"ver fractional", hs(with(base, "ver", 1.5)), jwt.ErrTokenMalformed},
		{"ver negative", hs(with(base, "ver", -1)), jwt.ErrTokenInvalidClaims},
		{"exp as a string", hs(with(base, "exp", "tomorrow")), jwt.ErrTokenMalformed},
		{"padded base64", parts[0] + "==." + parts[1] + "." + parts[2], jwt.ErrTokenMalformed},
		{"empty", "", jwt.ErrTokenMalformed},
		{"garbage", "not a token", jwt.ErrTokenMalformed},
		{"garbage with dots", "abc.def.ghi", jwt.ErrTokenMalformed},
		{"bearer prefix left on", "Bearer " + valid, jwt.ErrTokenMalformed},
		{"two dots", "..", jwt.ErrTokenMalformed},
		{"three dots", "...", jwt.ErrTokenMalformed},
		{"four segments", valid + ".x", jwt.ErrTokenMalformed},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("{")) + "." + parts[1] + "." + parts[2], jwt.ErrTokenMalformed},
		{"huge", valid + strings.Repeat("A", 5000), jwt.ErrTokenMalformed},
	}
}

func mustJSONAny(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRejected(t *testing.T) {
	t.Parallel()
	j := newJWT(t, jwtauth.Config{})
	// The crafting helpers must make valid tokens when nothing is wrong, or
	// the cases below would pass for the wrong reason.
	if _, err := j.VerifyAccess(sign(t, jwt.SigningMethodHS256, secret, baseClaims()), now); err != nil {
		t.Fatalf("a crafted valid token is rejected: %v", err)
	}
	if _, err := j.VerifyAccess(forge(t, map[string]any{"alg": "HS256", "typ": "JWT"}, baseClaims(), secret), now); err != nil {
		t.Fatalf("a forged HS256 token with the right secret is rejected: %v", err)
	}

	for _, tc := range rejected(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := j.VerifyAccess(tc.token, now)
			if err == nil {
				t.Fatalf("accepted, claims %+v", got)
			}
			if !errors.Is(err, domain.ErrUnauthenticated) || domain.KindOf(err) != domain.KindUnauthenticated {
				t.Fatalf("error %v is not ErrUnauthenticated", err)
			}
			if !errors.Is(err, tc.why) {
				t.Errorf("error %q, want cause %q", err, tc.why)
			}
			assertNoLeak(t, err, tc.token)
		})
	}
}

// assertNoLeak fails unless the error text is one of the fixed messages
// VerifyAccess may give: then it cannot quote the token, whatever the token.
func assertNoLeak(t *testing.T, err error, token string) {
	t.Helper()
	msg := err.Error()
	prefix := "not authenticated: jwtauth: "
	for _, cause := range []error{
		jwt.ErrTokenExpired, jwt.ErrTokenUsedBeforeIssued, jwt.ErrTokenNotValidYet,
		jwt.ErrTokenInvalidIssuer, jwt.ErrTokenInvalidAudience, jwt.ErrTokenRequiredClaimMissing,
		jwt.ErrTokenSignatureInvalid, jwt.ErrTokenMalformed, jwt.ErrTokenUnverifiable,
		jwt.ErrTokenInvalidClaims, jwt.ErrTokenInvalidSubject,
	} {
		for _, suffix := range []string{"", ": sub", ": ver", ": jti", ": iat", ": ver is negative",
			": sub is not a user id", ": longer than 4096 bytes"} {
			if msg == prefix+cause.Error()+suffix {
				return
			}
		}
	}
	t.Fatalf("error %q for token %q is not one of the fixed messages", msg, token)
}

func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := jwtauth.New(jwtauth.Config{Secret: secret[:31]}); err == nil {
		t.Error("a 31-byte secret is accepted")
	} else if strings.Contains(err.Error(), string(secret[:31])) {
		t.Errorf("error %q quotes the secret", err)
	}
	if _, err := jwtauth.New(jwtauth.Config{}); err == nil {
		t.Error("no secret is accepted")
	}
	if _, err := jwtauth.New(jwtauth.Config{Secret: secret, TTL: -time.Second}); err == nil {
		t.Error("a negative TTL is accepted")
	}

	// Defaults: 15 minutes, iss and aud "userservice".
	j := newJWT(t, jwtauth.Config{Secret: secret[:32]})
	token, c, err := j.IssueAccess(1, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if d := c.ExpiresAt.Sub(c.IssuedAt); d != 15*time.Minute {
		t.Errorf("default TTL %v", d)
	}
	explicit := newJWT(t, jwtauth.Config{Secret: secret[:32], Issuer: "userservice", Audience: "userservice"})
	if _, err := explicit.VerifyAccess(token, now); err != nil {
		t.Errorf("default issuer/audience are not userservice: %v", err)
	}
}

func TestSecretIsCopied(t *testing.T) {
	t.Parallel()
	s := append([]byte(nil), secret...)
	j := newJWT(t, jwtauth.Config{Secret: s})
	token, _, err := j.IssueAccess(9, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	clear(s) // as a caller wiping its copy would
	if _, err := j.VerifyAccess(token, now); err != nil {
		t.Fatalf("clearing the caller's secret broke verification: %v", err)
	}
}

func TestIssueRejectsBadInput(t *testing.T) {
	t.Parallel()
	j := newJWT(t, jwtauth.Config{})
	for _, tc := range []struct{ id, ver int64 }{{0, 0}, {-1, 0}, {1, -1}} {
		if _, _, err := j.IssueAccess(tc.id, tc.ver, now); err == nil {
			t.Errorf("IssueAccess(%d, %d) succeeded", tc.id, tc.ver)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	j := newJWT(t, jwtauth.Config{})
	errs := make(chan error, 64)
	done := make(chan struct{})
	for i := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for v := range int64(8) {
				token, _, err := j.IssueAccess(int64(i+1), v, now)
				if err != nil {
					errs <- err
					return
				}
				c, err := j.VerifyAccess(token, now)
				if err != nil || c.UserID != int64(i+1) || c.TokenVersion != v {
					errs <- errors.Join(errors.New("round trip failed"), err)
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// FuzzVerify feeds arbitrary strings to VerifyAccess: it must never panic,
// every failure must be ErrUnauthenticated without the token in its text,
// and anything accepted must carry usable claims.
func FuzzVerify(f *testing.F) {
	j := newJWT(f, jwtauth.Config{})
	valid, _, err := j.IssueAccess(42, 3, now)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	for _, tc := range rejected(f) {
		f.Add(tc.token)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := j.VerifyAccess(token, now)
		if err != nil {
			if !errors.Is(err, domain.ErrUnauthenticated) {
				t.Fatalf("error %v is not ErrUnauthenticated", err)
			}
			assertNoLeak(t, err, token)
			return
		}
		if c.UserID <= 0 || c.TokenVersion < 0 || c.ID == "" || !c.ExpiresAt.After(c.IssuedAt) {
			t.Fatalf("accepted with unusable claims %+v", c)
		}
	})
}
