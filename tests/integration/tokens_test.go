package integration

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const me = "/api/v1/users/me"

// claimsOf reads a token's claims without checking it.
func claimsOf(t *testing.T, token string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		t.Fatalf("the service's access token does not parse: %v", err)
	}
	return claims
}

// with returns a copy of claims with changes applied; a nil value removes
// the claim.
func with(claims jwt.MapClaims, changes map[string]any) jwt.MapClaims {
	c := maps.Clone(claims)
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign makes a token as an attacker (or the service) would; the token is
// registered as a secret, so a log line quoting it is a leak.
func (s *service) sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	token, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	s.leaks.secretAccessToken(token)
	return token
}

// tamperSignature changes one character in the middle of the signature.
func tamperSignature(token string) string {
	i := strings.LastIndex(token, ".") + 10
	c := byte('A')
	if token[i] == 'A' {
		c = 'B'
	}
	return token[:i] + string(c) + token[i+1:]
}

// swapPayload replaces the payload and keeps the header and the signature.
func swapPayload(t *testing.T, token string, claims jwt.MapClaims) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// pair is a token response.
type pair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// refresh spends a refresh token.
func (s *service) refresh(t *testing.T, token string, want int) pair {
	t.Helper()
	r := s.expect(t, want, http.MethodPost, "/api/v1/auth/refresh", "", map[string]any{"refresh_token": token})
	var p pair
	if r.status == http.StatusOK {
		r.decode(t, &p)
	}
	return p
}

// TestTokenAttacksAreRejected presents forged, tampered, expired, foreign and
// outdated tokens to a protected route: each is a 401 (CONTRACT §3, issue 3).
func TestTokenAttacksAreRejected(t *testing.T) {
	t.Parallel()
	onEachBackend(t, options{}, func(t *testing.T, s *service) {
		root := s.seedSuperadmin(t)
		v := s.createAndLogin(t, root, user)

		t.Run("forged", func(t *testing.T) {
			claims := claimsOf(t, v.access)
			now := time.Now()
			fresh := map[string]any{"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
			otherKey := []byte("another-secret-of-at-least-32-bytes-long")
			for _, tc := range []struct {
				name   string
				header string // the Authorization header
				want   int
			}{
				// The control: the forging below is faithful, so each 401
				// is for the one thing changed.
				{"faithful copy signed with the service's secret", "Bearer " + s.sign(t, jwt.SigningMethodHS256, s.jwtSecret, with(claims, fresh)), http.StatusOK},
				{"tampered signature", "Bearer " + tamperSignature(v.access), http.StatusUnauthorized},
				{"tampered payload", "Bearer " + swapPayload(t, v.access, with(claims, map[string]any{"sub": strconv.FormatInt(root.id, 10)})), http.StatusUnauthorized},
				{"alg none", "Bearer " + s.sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims), http.StatusUnauthorized},
				{"HS512 with the service's secret", "Bearer " + s.sign(t, jwt.SigningMethodHS512, s.jwtSecret, with(claims, fresh)), http.StatusUnauthorized},
				{"another secret", "Bearer " + s.sign(t, jwt.SigningMethodHS256, otherKey, with(claims, fresh)), http.StatusUnauthorized},
				{"expired", "Bearer " + s.sign(t, jwt.SigningMethodHS256, s.jwtSecret, with(claims, map[string]any{
					"iat": now.Add(-30 * time.Minute).Unix(), "exp": now.Add(-10 * time.Minute).Unix()})), http.StatusUnauthorized},
				{"no expiry", "Bearer " + s.sign(t, jwt.SigningMethodHS256, s.jwtSecret, with(claims, map[string]any{"exp": nil})), http.StatusUnauthorized},
				{"wrong audience", "Bearer " + s.sign(t, jwt.SigningMethodHS256, s.jwtSecret, with(claims, map[string]any{"aud": []string{"another-service"}})), http.StatusUnauthorized},
				{"wrong issuer", "Bearer " + s.sign(t, jwt.SigningMethodHS256, s.jwtSecret, with(claims, map[string]any{"iss": "another-service"})), http.StatusUnauthorized},
				{"no token version", "Bearer " + s.sign(t, jwt.SigningMethodHS256, s.jwtSecret, with(claims, map[string]any{"ver": nil})), http.StatusUnauthorized},
				{"garbage", "Bearer garbage", http.StatusUnauthorized},
				{"three garbage segments", "Bearer a.b.c", http.StatusUnauthorized},
				{"empty", "Bearer ", http.StatusUnauthorized},
				{"another scheme", "Basic " + v.access, http.StatusUnauthorized},
				{"none", "", http.StatusUnauthorized},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := s.expect(t, tc.want, http.MethodGet, me, "", nil, "Authorization", tc.header)
					if r.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") != "Bearer" {
						t.Errorf("%s: WWW-Authenticate %q, want Bearer", r, r.header.Get("WWW-Authenticate"))
					}
				})
			}
		})

		t.Run("older than a role change", func(t *testing.T) {
			s.expect(t, http.StatusOK, http.MethodPatch, userPath(v.id)+"/role", root.access, map[string]any{"role": admin})
			s.expect(t, http.StatusUnauthorized, http.MethodGet, me, v.access, nil)
			s.refresh(t, v.refresh, http.StatusUnauthorized)
			s.login(t, v)
			if u := s.expect(t, http.StatusOK, http.MethodGet, me, v.access, nil).user(t); u.Role != admin {
				t.Errorf("after the role change: role %s, want admin", u.Role)
			}
		})

		t.Run("older than a password change", func(t *testing.T) {
			old := *v
			v.password = s.password()
			s.expect(t, http.StatusOK, http.MethodPut, userPath(v.id), v.access, map[string]any{"password": v.password, "current_password": old.password})
			s.expect(t, http.StatusUnauthorized, http.MethodGet, me, old.access, nil)
			s.refresh(t, old.refresh, http.StatusUnauthorized)
			s.expect(t, http.StatusUnauthorized, http.MethodPost, "/api/v1/auth/token", "", map[string]any{"email": v.email, "password": old.password})
			s.login(t, v)
			s.expect(t, http.StatusOK, http.MethodGet, me, v.access, nil)
		})

		t.Run("older than a password change by an admin", func(t *testing.T) {
			w := s.createAndLogin(t, root, user)
			s.expect(t, http.StatusOK, http.MethodPut, userPath(w.id), root.access, map[string]any{"password": s.password()})
			s.expect(t, http.StatusUnauthorized, http.MethodGet, me, w.access, nil)
			s.refresh(t, w.refresh, http.StatusUnauthorized)
		})

		t.Run("of a deleted user", func(t *testing.T) {
			d := s.createAndLogin(t, root, user)
			s.expect(t, http.StatusNoContent, http.MethodDelete, userPath(d.id), root.access, nil)
			s.expect(t, http.StatusUnauthorized, http.MethodGet, me, d.access, nil)
			s.expect(t, http.StatusUnauthorized, http.MethodGet, "/api/v1/users/list", d.access, nil)
			s.refresh(t, d.refresh, http.StatusUnauthorized)
		})
	})
}

// TestRefreshRotation spends refresh tokens (CONTRACT §3): each refresh gives
// a new pair and spends the old token; presenting a spent token again
// revokes its whole family and the user's access tokens; logout revokes a
// family.
func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	onEachBackend(t, options{}, func(t *testing.T, s *service) {
		root := s.seedSuperadmin(t)

		t.Run("reuse kills the family", func(t *testing.T) {
			w := s.createAndLogin(t, root, user)
			other := *w
			s.login(t, &other) // a second session of the same user
			p1 := s.refresh(t, w.refresh, http.StatusOK)
			if p1.RefreshToken == w.refresh || p1.AccessToken == w.access {
				t.Fatal("refresh answered the same tokens")
			}
			s.expect(t, http.StatusOK, http.MethodGet, me, p1.AccessToken, nil)
			p2 := s.refresh(t, p1.RefreshToken, http.StatusOK)
			s.expect(t, http.StatusOK, http.MethodGet, me, p2.AccessToken, nil)

			// w.refresh was spent: presenting it again is theft.
			s.refresh(t, w.refresh, http.StatusUnauthorized)
			s.refresh(t, p2.RefreshToken, http.StatusUnauthorized) // the newest of the family
			s.refresh(t, p1.RefreshToken, http.StatusUnauthorized)
			for _, access := range []string{w.access, p1.AccessToken, p2.AccessToken, other.access} {
				s.expect(t, http.StatusUnauthorized, http.MethodGet, me, access, nil)
			}
			s.refresh(t, other.refresh, http.StatusUnauthorized)

			// The account itself is fine: a new login works.
			s.login(t, w)
			s.expect(t, http.StatusOK, http.MethodGet, me, w.access, nil)
			s.refresh(t, w.refresh, http.StatusOK)
		})

		t.Run("logout revokes the family", func(t *testing.T) {
			l := s.createAndLogin(t, root, user)
			m := s.createAndLogin(t, root, user)
			p1 := s.refresh(t, l.refresh, http.StatusOK)

			// Someone else's refresh token: nothing happens, still 204.
			s.expect(t, http.StatusNoContent, http.MethodPost, "/api/v1/auth/logout", p1.AccessToken, map[string]any{"refresh_token": m.refresh})
			m2 := s.refresh(t, m.refresh, http.StatusOK)
			s.expect(t, http.StatusOK, http.MethodGet, me, m2.AccessToken, nil)

			// Logging out with the family's current token ends the family.
			s.expect(t, http.StatusNoContent, http.MethodPost, "/api/v1/auth/logout", p1.AccessToken, map[string]any{"refresh_token": p1.RefreshToken})
			s.refresh(t, p1.RefreshToken, http.StatusUnauthorized)
			// Access tokens live out their short lifetime.
			s.expect(t, http.StatusOK, http.MethodGet, me, p1.AccessToken, nil)
			// Logging out again is harmless.
			s.expect(t, http.StatusNoContent, http.MethodPost, "/api/v1/auth/logout", p1.AccessToken, map[string]any{"refresh_token": p1.RefreshToken})
			// Another session of the same user lives on.
			s.login(t, l)
			s.refresh(t, l.refresh, http.StatusOK)
		})
	})
}
