package security

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/userservice/userservice/tests/harness"
)

// claimsOf reads a token's claims without checking it, as an attacker can.
func claimsOf(t *testing.T, token string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		t.Fatalf("the service's access token does not parse: %v", err)
	}
	return claims
}

// forge signs claims, changed by changes (nil removes a claim); the token
// is registered as a secret, so a log line quoting it is a leak.
func forge(t *testing.T, s *harness.Service, method jwt.SigningMethod, key any, claims jwt.MapClaims, changes map[string]any) string {
	t.Helper()
	c := jwt.MapClaims{}
	for k, v := range claims {
		c[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	token, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	s.Leaks.SecretAccessToken(token)
	return token
}

// withHeader re-encodes a token's header with changes, keeping its payload
// and signature.
func withHeader(t *testing.T, token string, changes map[string]any) string {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]any{}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	for k, v := range changes {
		h[k] = v
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	parts[0] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// TestAPI2_BrokenAuthentication_ForgedTokens is API2:2023 Broken
// Authentication: tokens an attacker can make without the secret (or with
// the wrong algorithm, or outside their validity) are all 401 on a protected
// route, while a faithful copy signed with the service's own secret, the
// control, passes: each refusal is for the one thing changed.
func TestAPI2_BrokenAuthentication_ForgedTokens(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		u := c.byRole[user]
		claims := claimsOf(t, u.Access)
		now := time.Now()
		fresh := map[string]any{"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
		asRoot := map[string]any{"sub": strconv.FormatInt(c.root.ID, 10)}
		otherKey := []byte("an-attackers-secret-of-32-bytes-or-more")
		parts := strings.Split(u.Access, ".")
		unsigned := parts[0] + "." + parts[1] + "."

		s.Expect(t, http.StatusOK, http.MethodGet, me, forge(t, s, jwt.SigningMethodHS256, s.JWTSecret, claims, fresh), nil)
		for _, tc := range []struct{ name, token string }{
			{"alg none", forge(t, s, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims, asRoot)},
			{"alg none, upper case", withHeader(t, forge(t, s, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims, asRoot), map[string]any{"alg": "NONE"})},
			{"signature stripped", unsigned},
			{"HS512 with the service's secret", forge(t, s, jwt.SigningMethodHS512, s.JWTSecret, claims, fresh)},
			{"HS384 with the service's secret", forge(t, s, jwt.SigningMethodHS384, s.JWTSecret, claims, fresh)},
			{"signed with another secret", forge(t, s, jwt.SigningMethodHS256, otherKey, claims, asRoot)},
			{"signed with an empty secret", forge(t, s, jwt.SigningMethodHS256, []byte{}, claims, asRoot)},
			{"header says RS256, HMAC signature", withHeader(t, u.Access, map[string]any{"alg": "RS256"})},
			{"kid pointing elsewhere", withHeader(t, u.Access, map[string]any{"kid": "../../../dev/null"})},
			{"jku to the attacker", withHeader(t, u.Access, map[string]any{"jku": "https://attacker.example/jwks.json"})},
			{"payload swapped to the superadmin", parts[0] + "." + base64.RawURLEncoding.EncodeToString(mustJSON(t, merge(claims, asRoot))) + "." + parts[2]},
			{"expired", forge(t, s, jwt.SigningMethodHS256, s.JWTSecret, claims, map[string]any{
				"iat": now.Add(-30 * time.Minute).Unix(), "exp": now.Add(-10 * time.Minute).Unix()})},
			{"not valid yet", forge(t, s, jwt.SigningMethodHS256, s.JWTSecret, claims, map[string]any{"nbf": now.Add(time.Hour).Unix()})},
			{"no expiry", forge(t, s, jwt.SigningMethodHS256, s.JWTSecret, claims, map[string]any{"exp": nil})},
			{"no subject", forge(t, s, jwt.SigningMethodHS256, s.JWTSecret, claims, map[string]any{"sub": nil})},
			{"another audience", forge(t, s, jwt.SigningMethodHS256, s.JWTSecret, claims, map[string]any{"aud": "another-service"})},
			{"another issuer", forge(t, s, jwt.SigningMethodHS256, s.JWTSecret, claims, map[string]any{"iss": "another-service"})},
			{"a token version from the future", forge(t, s, jwt.SigningMethodHS256, s.JWTSecret, claims, map[string]any{"ver": 1 << 40})},
			{"a subject that is no user", forge(t, s, jwt.SigningMethodHS256, s.JWTSecret, claims, map[string]any{"sub": "99999999"})},
			{"a refresh token as access token", u.Refresh},
			{"two tokens", u.Access + " " + u.Access},
			{"huge", strings.Repeat("A", 6000)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := s.Do(t, http.MethodGet, me, "", nil, "Authorization", "Bearer "+tc.token)
				// A header Go's client refuses to send is not an attack on the service.
				if r.Status != http.StatusUnauthorized && r.Status != http.StatusBadRequest &&
					r.Status != http.StatusRequestHeaderFieldsTooLarge {
					t.Errorf("%s: want 401", r)
				}
			})
		}
		// After all that, the forged superadmin claims got nobody anywhere.
		if acts := auditActions(t, s, c.root, c.root.ID); slices.Contains(acts, "updated") {
			t.Errorf("the superadmin was changed: %q", acts)
		}
	})
}

// TestAPI2_BrokenAuthentication_ForgedAsymmetricTokens is API2:2023 for
// the Ed25519 keys: a token signed by a key the service does not hold, by a
// key it held until it was removed from JWT_KEYS_DIR, or with HS256 keyed by
// the public key (the algorithm-confusion attack: the public key is public)
// is 401, while the controls signed with the service's keys pass.
func TestAPI2_BrokenAuthentication_ForgedAsymmetricTokens(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		u := c.byRole[user]
		claims := claimsOf(t, u.Access)
		header := jwt.NewParser()
		tok, _, err := header.ParseUnverified(u.Access, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		kid, _ := tok.Header["kid"].(string)
		if tok.Method.Alg() != "EdDSA" || kid == "" {
			t.Fatalf("the service signs %s with kid %q, want EdDSA with a kid", tok.Method.Alg(), kid)
		}
		now := time.Now()
		asRoot := map[string]any{"sub": strconv.FormatInt(c.root.ID, 10), "ver": claims["ver"],
			"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
		edSigned := func(key ed25519.PrivateKey, kid string, changes map[string]any) string {
			t.Helper()
			c := merge(claims, changes)
			tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
			tk.Header["kid"] = kid
			signed, err := tk.SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			s.Leaks.SecretAccessToken(signed)
			return signed
		}

		// A key the service held: accepted while its file is there, then not.
		retired := s.AddKey(t, "2025-12-01.pem") // sorts first: verifies, never signs
		harness.Poll(t, "the added key in the JWK Set", func() bool { return slices.Contains(s.JWKSKids(t), retired.KID) })
		byRetired := edSigned(retired.Private, retired.KID, nil)
		s.Expect(t, http.StatusOK, http.MethodGet, me, byRetired, nil)
		s.RemoveKey(t, "2025-12-01.pem")
		harness.Poll(t, "the removed key to leave the JWK Set", func() bool { return !slices.Contains(s.JWKSKids(t), retired.KID) })

		var x string
		var set struct {
			Keys []struct{ Kid, X string } `json:"keys"`
		}
		s.Expect(t, http.StatusOK, http.MethodGet, "/.well-known/jwks.json", "", nil).Decode(t, &set)
		for _, k := range set.Keys {
			if k.Kid == kid {
				x = k.X
			}
		}
		pub, err := base64.RawURLEncoding.DecodeString(x)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			t.Fatalf("the JWK Set has no usable key %q: %q", kid, x)
		}
		_, stranger, _ := ed25519.GenerateKey(nil)
		hsWith := func(key []byte) string {
			tk := jwt.NewWithClaims(jwt.SigningMethodHS256, merge(claims, asRoot))
			tk.Header["kid"] = kid
			signed, err := tk.SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			s.Leaks.SecretAccessToken(signed)
			return signed
		}
		for _, tc := range []struct{ name, token string }{
			{"signed by an unknown Ed25519 key under the service's kid", edSigned(stranger, kid, asRoot)},
			{"signed by an unknown Ed25519 key and kid", edSigned(stranger, harness.Thumbprint(stranger.Public().(ed25519.PublicKey)), asRoot)},
			{"signed by a removed key, with its kid", byRetired},
			{"a removed key's token, kid swapped to the current key", withHeader(t, byRetired, map[string]any{"kid": kid})},
			{"EdDSA without kid", withHeader(t, edSigned(stranger, kid, asRoot), map[string]any{"kid": nil})},
			{"HS256 keyed by the public key's bytes", hsWith(pub)},
			{"HS256 keyed by the JWK's x", hsWith([]byte(x))},
			{"the service's token, header says HS256", withHeader(t, u.Access, map[string]any{"alg": "HS256"})},
			{"the service's token, header says none", withHeader(t, u.Access, map[string]any{"alg": "none"})},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if r := s.Do(t, http.MethodGet, me, "", nil, "Authorization", "Bearer "+tc.token); r.Status != http.StatusUnauthorized {
					t.Errorf("%s: want 401", r)
				}
			})
		}
		// The control: the service's own token still passes.
		s.Expect(t, http.StatusOK, http.MethodGet, me, u.Access, nil)
		if acts := auditActions(t, s, c.root, c.root.ID); slices.Contains(acts, "updated") {
			t.Errorf("the superadmin was changed: %q", acts)
		}
	})
}

func merge(a jwt.MapClaims, b map[string]any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAPI2_BrokenAuthentication_RefreshTokenReplay is API2:2023: a spent
// refresh token presented again (a stolen copy, replayed) revokes its whole
// family: the thief's answer is 401, the pair the legitimate client got by
// rotating is dead too, and so are the user's access tokens (docs/api.md).
// Other sessions of other users are untouched.
func TestAPI2_BrokenAuthentication_RefreshTokenReplay(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		victim, bystander := c.byRole[user], c.byRole[admin]
		stolen := victim.Refresh

		r := s.Expect(t, http.StatusOK, http.MethodPost, refresh, "", map[string]any{"refresh_token": stolen})
		var rotated struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		r.Decode(t, &rotated)
		s.Expect(t, http.StatusOK, http.MethodGet, me, rotated.AccessToken, nil)

		// The thief replays the stolen, spent token.
		s.Expect(t, http.StatusUnauthorized, http.MethodPost, refresh, "", map[string]any{"refresh_token": stolen})
		s.Expect(t, http.StatusUnauthorized, http.MethodPost, refresh, "", map[string]any{"refresh_token": rotated.RefreshToken})
		s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, rotated.AccessToken, nil)
		s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, victim.Access, nil)
		// Replaying again changes nothing and reveals nothing more.
		s.Expect(t, http.StatusUnauthorized, http.MethodPost, refresh, "", map[string]any{"refresh_token": stolen})

		s.Expect(t, http.StatusOK, http.MethodGet, me, bystander.Access, nil)
		s.Expect(t, http.StatusOK, http.MethodPost, refresh, "", map[string]any{"refresh_token": bystander.Refresh})
		// The victim logs in again and carries on.
		if got := loginStatus(t, s, victim); got != http.StatusOK {
			t.Errorf("the victim cannot log in again: %d", got)
		}

		// Malformed refresh tokens are refused the same way.
		for _, bad := range []string{"", " ", "x", strings.Repeat("r", 5000), stolen + "x", strings.ToUpper(bystander.Refresh)} {
			s.Do(t, http.MethodPost, refresh, "", map[string]any{"refresh_token": bad})
		}
	})
}

// TestAPI2_BrokenAuthentication_BruteForceIsLimited is API2:2023 with the
// shipped limits (policies/ratelimits.yaml): guessing one account's
// password stops after 5 failures a minute from one network, and even the
// right password is refused there meanwhile (the attacker cannot tell a hit);
// guessing many accounts from one address stops after 10.
func TestAPI2_BrokenAuthentication_BruteForceIsLimited(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{ShippedLimits: true}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t) // one login of this address's 10
		victim := s.Create(t, root, user)
		try := func(email, password string) harness.Response {
			return s.Do(t, http.MethodPost, tokenPath, "", url.Values{"username": {email}, "password": {password}})
		}
		for i := range 5 {
			if r := try(victim.Email, "guess-"+strconv.Itoa(i)); r.Status != http.StatusBadRequest {
				t.Fatalf("guess %d: %s, want 400 invalid_grant", i+1, r)
			}
		}
		r := try(victim.Email, victim.Password)
		if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
			t.Errorf("the right password after 5 wrong ones in a minute: %s (Retry-After %q), want 429 with Retry-After",
				r, r.Header.Get("Retry-After"))
		}
		// Upper case, spaces: the same account, the same budget.
		if r := try("  "+strings.ToUpper(victim.Email)+" ", "guess"); r.Status != http.StatusTooManyRequests {
			t.Errorf("the same email spelt differently: %s, want 429", r)
		}
		// Spraying other accounts from this address: 10 logins a minute in all.
		var statuses []int
		for i := range 6 {
			statuses = append(statuses, try(harness.Email("spray"+strconv.Itoa(i)), "Winter2024!").Status)
		}
		if !slices.Contains(statuses, http.StatusTooManyRequests) {
			t.Errorf("13 logins from one address within a minute were never limited: %v", statuses)
		}
	})
}

// TestAPI2_BrokenAuthentication_NoUserEnumerationByAnswer is API2:2023: a
// login with an unknown email and one with a wrong password get the same
// status, body and headers (docs/api.md), by form and by JSON, so an
// attacker cannot learn which emails have accounts.
func TestAPI2_BrokenAuthentication_NoUserEnumerationByAnswer(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		known := c.byRole[user]
		unknown := harness.Email("nobody")
		for _, body := range []func(email string) any{
			func(email string) any { return url.Values{"username": {email}, "password": {"wrong-password-1"}} },
			func(email string) any { return map[string]any{"email": email, "password": "wrong-password-1"} },
		} {
			a := s.Expect(t, http.StatusBadRequest, http.MethodPost, tokenPath, "", body(known.Email))
			b := s.Expect(t, http.StatusBadRequest, http.MethodPost, tokenPath, "", body(unknown))
			if !bytes.Equal(a.Body, b.Body) {
				t.Errorf("bodies differ:\n known:   %s\n unknown: %s", a.Body, b.Body)
			}
			if got := a.Error(t).Detail; got != "Incorrect email or password" {
				t.Errorf("detail %q, want the contract's", got)
			}
			for _, h := range []string{"Content-Type", "Content-Length", "WWW-Authenticate", "Cache-Control"} {
				if a.Header.Get(h) != b.Header.Get(h) {
					t.Errorf("%s differs: %q vs %q", h, a.Header.Get(h), b.Header.Get(h))
				}
			}
		}
	})
}

// TestAPI2_BrokenAuthentication_NoUserEnumerationByTiming is API2:2023: a
// login with an unknown email takes about as long as one with a wrong
// password (docs/api.md), because the service verifies a dummy hash when
// there is no account. Without that, the unknown email would answer in
// about a millisecond and the wrong password in tens: the bound (a factor
// of 3 between the medians of interleaved samples) is loose enough for a
// busy CI machine and still far from that gap.
func TestAPI2_BrokenAuthentication_NoUserEnumerationByTiming(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		known := c.byRole[user]
		const samples = 9
		var wrong, unknown []time.Duration
		timed := func(email string) time.Duration {
			start := time.Now()
			s.Expect(t, http.StatusBadRequest, http.MethodPost, tokenPath, "", url.Values{"username": {email}, "password": {"wrong-password-1"}})
			return time.Since(start)
		}
		for range samples {
			wrong = append(wrong, timed(known.Email))
			unknown = append(unknown, timed(harness.Email("nobody")))
		}
		mw, mu := median(wrong), median(unknown)
		t.Logf("median login time: wrong password %v, unknown email %v", mw, mu)
		if mu*3 < mw || mw*3 < mu {
			t.Errorf("an unknown email answers in %v (median), a wrong password in %v: the difference tells which accounts exist", mu, mw)
		}
	})
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestAPI2_BrokenAuthentication_CredentialRules is API2:2023: passwords
// outside 8..128 characters are refused at sign-up, and a changed
// password, role or deletion ends every token at once (docs/api.md, Roles).
func TestAPI2_BrokenAuthentication_CredentialRules(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		for _, p := range []string{"", "short", "7-chars", strings.Repeat("p", 129)} {
			s.Leaks.SecretPassword(p)
			s.Expect(t, http.StatusUnprocessableEntity, http.MethodPost, signUp, "", harness.NewUserBody(harness.Email("weak"), p, ""))
		}

		u := s.CreateAndLogin(t, c.root, user)
		next := s.Password()
		s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(u.ID), u.Access, map[string]any{"password": next, "current_password": u.Password})
		s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, u.Access, nil)
		s.Expect(t, http.StatusUnauthorized, http.MethodPost, refresh, "", map[string]any{"refresh_token": u.Refresh})
		u.Password = next
		s.Login(t, u)

		s.Expect(t, http.StatusOK, http.MethodPatch, harness.UserPath(u.ID)+"/role", c.root.Access, map[string]any{"role": admin})
		s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, u.Access, nil)
		s.Login(t, u)

		s.Expect(t, http.StatusNoContent, http.MethodDelete, harness.UserPath(u.ID), c.root.Access, nil)
		s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, u.Access, nil)
		s.Expect(t, http.StatusUnauthorized, http.MethodPost, refresh, "", map[string]any{"refresh_token": u.Refresh})
		if got := loginStatus(t, s, u); got != http.StatusBadRequest {
			t.Errorf("a deleted user logs in: %d", got)
		}
	})
}
