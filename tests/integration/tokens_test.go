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
	"github.com/userservice/userservice/tests/harness"
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
func sign(t *testing.T, s *harness.Service, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	token, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	s.Leaks.SecretAccessToken(token)
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
func refresh(t *testing.T, s *harness.Service, token string, want int) pair {
	t.Helper()
	r := s.Expect(t, want, http.MethodPost, "/api/v1/auth/refresh", "", map[string]any{"refresh_token": token})
	var p pair
	if r.Status == http.StatusOK {
		r.Decode(t, &p)
	}
	return p
}

// TestTokenAttacksAreRejected presents forged, tampered, expired, foreign and
// outdated tokens to a protected route: each is a 401 (docs/api.md, issue 3).
func TestTokenAttacksAreRejected(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		v := s.CreateAndLogin(t, root, user)

		t.Run("forged", func(t *testing.T) {
			claims := claimsOf(t, v.Access)
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
				{"faithful copy signed with the service's secret", "Bearer " + sign(t, s, jwt.SigningMethodHS256, s.JWTSecret, with(claims, fresh)), http.StatusOK},
				{"tampered signature", "Bearer " + tamperSignature(v.Access), http.StatusUnauthorized},
				{"tampered payload", "Bearer " + swapPayload(t, v.Access, with(claims, map[string]any{"sub": strconv.FormatInt(root.ID, 10)})), http.StatusUnauthorized},
				{"alg none", "Bearer " + sign(t, s, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims), http.StatusUnauthorized},
				{"HS512 with the service's secret", "Bearer " + sign(t, s, jwt.SigningMethodHS512, s.JWTSecret, with(claims, fresh)), http.StatusUnauthorized},
				{"another secret", "Bearer " + sign(t, s, jwt.SigningMethodHS256, otherKey, with(claims, fresh)), http.StatusUnauthorized},
				{"expired", "Bearer " + sign(t, s, jwt.SigningMethodHS256, s.JWTSecret, with(claims, map[string]any{
					"iat": now.Add(-30 * time.Minute).Unix(), "exp": now.Add(-10 * time.Minute).Unix()})), http.StatusUnauthorized},
				{"no expiry", "Bearer " + sign(t, s, jwt.SigningMethodHS256, s.JWTSecret, with(claims, map[string]any{"exp": nil})), http.StatusUnauthorized},
				{"wrong audience", "Bearer " + sign(t, s, jwt.SigningMethodHS256, s.JWTSecret, with(claims, map[string]any{"aud": []string{"another-service"}})), http.StatusUnauthorized},
				{"wrong issuer", "Bearer " + sign(t, s, jwt.SigningMethodHS256, s.JWTSecret, with(claims, map[string]any{"iss": "another-service"})), http.StatusUnauthorized},
				{"no token version", "Bearer " + sign(t, s, jwt.SigningMethodHS256, s.JWTSecret, with(claims, map[string]any{"ver": nil})), http.StatusUnauthorized},
				{"garbage", "Bearer garbage", http.StatusUnauthorized},
				{"three garbage segments", "Bearer a.b.c", http.StatusUnauthorized},
				{"empty", "Bearer ", http.StatusUnauthorized},
				{"another scheme", "Basic " + v.Access, http.StatusUnauthorized},
				{"none", "", http.StatusUnauthorized},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := s.Expect(t, tc.want, http.MethodGet, me, "", nil, "Authorization", tc.header)
					if r.Status == http.StatusUnauthorized && r.Header.Get("WWW-Authenticate") != "Bearer" {
						t.Errorf("%s: WWW-Authenticate %q, want Bearer", r, r.Header.Get("WWW-Authenticate"))
					}
				})
			}
		})

		t.Run("older than a role change", func(t *testing.T) {
			s.Expect(t, http.StatusOK, http.MethodPatch, harness.UserPath(v.ID)+"/role", root.Access, map[string]any{"role": admin})
			s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, v.Access, nil)
			refresh(t, s, v.Refresh, http.StatusUnauthorized)
			s.Login(t, v)
			if u := s.Expect(t, http.StatusOK, http.MethodGet, me, v.Access, nil).User(t); u.Role != admin {
				t.Errorf("after the role change: role %s, want admin", u.Role)
			}
		})

		t.Run("older than a password change", func(t *testing.T) {
			old := *v
			v.Password = s.Password()
			s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(v.ID), v.Access, map[string]any{"password": v.Password, "current_password": old.Password})
			s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, old.Access, nil)
			refresh(t, s, old.Refresh, http.StatusUnauthorized)
			s.Expect(t, http.StatusBadRequest, http.MethodPost, "/api/v1/auth/token", "", map[string]any{"email": v.Email, "password": old.Password})
			s.Login(t, v)
			s.Expect(t, http.StatusOK, http.MethodGet, me, v.Access, nil)
		})

		t.Run("older than a password change by an admin", func(t *testing.T) {
			w := s.CreateAndLogin(t, root, user)
			s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(w.ID), root.Access, map[string]any{"password": s.Password()})
			s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, w.Access, nil)
			refresh(t, s, w.Refresh, http.StatusUnauthorized)
		})

		t.Run("of a deleted user", func(t *testing.T) {
			d := s.CreateAndLogin(t, root, user)
			s.Expect(t, http.StatusNoContent, http.MethodDelete, harness.UserPath(d.ID), root.Access, nil)
			s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, d.Access, nil)
			s.Expect(t, http.StatusUnauthorized, http.MethodGet, "/api/v1/users/list", d.Access, nil)
			refresh(t, s, d.Refresh, http.StatusUnauthorized)
		})
	})
}

// TestRefreshRotation spends refresh tokens (docs/api.md): each refresh gives
// a new pair and spends the old token; presenting a spent token again
// revokes its whole family and the user's access tokens; logout revokes a
// family.
func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)

		t.Run("reuse kills the family", func(t *testing.T) {
			w := s.CreateAndLogin(t, root, user)
			other := *w
			s.Login(t, &other) // a second session of the same user
			p1 := refresh(t, s, w.Refresh, http.StatusOK)
			if p1.RefreshToken == w.Refresh || p1.AccessToken == w.Access {
				t.Fatal("refresh answered the same tokens")
			}
			s.Expect(t, http.StatusOK, http.MethodGet, me, p1.AccessToken, nil)
			p2 := refresh(t, s, p1.RefreshToken, http.StatusOK)
			s.Expect(t, http.StatusOK, http.MethodGet, me, p2.AccessToken, nil)

			// w.refresh was spent: presenting it again is theft.
			refresh(t, s, w.Refresh, http.StatusUnauthorized)
			refresh(t, s, p2.RefreshToken, http.StatusUnauthorized) // the newest of the family
			refresh(t, s, p1.RefreshToken, http.StatusUnauthorized)
			for _, access := range []string{w.Access, p1.AccessToken, p2.AccessToken, other.Access} {
				s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, access, nil)
			}
			refresh(t, s, other.Refresh, http.StatusUnauthorized)

			// The account itself is fine: a new login works.
			s.Login(t, w)
			s.Expect(t, http.StatusOK, http.MethodGet, me, w.Access, nil)
			refresh(t, s, w.Refresh, http.StatusOK)
		})

		t.Run("logout revokes the family", func(t *testing.T) {
			l := s.CreateAndLogin(t, root, user)
			m := s.CreateAndLogin(t, root, user)
			p1 := refresh(t, s, l.Refresh, http.StatusOK)

			// Someone else's refresh token: nothing happens, still 204.
			s.Expect(t, http.StatusNoContent, http.MethodPost, "/api/v1/auth/logout", p1.AccessToken, map[string]any{"refresh_token": m.Refresh})
			m2 := refresh(t, s, m.Refresh, http.StatusOK)
			s.Expect(t, http.StatusOK, http.MethodGet, me, m2.AccessToken, nil)

			// Logging out with the family's current token ends the family.
			s.Expect(t, http.StatusNoContent, http.MethodPost, "/api/v1/auth/logout", p1.AccessToken, map[string]any{"refresh_token": p1.RefreshToken})
			refresh(t, s, p1.RefreshToken, http.StatusUnauthorized)
			// Access tokens live out their short lifetime.
			s.Expect(t, http.StatusOK, http.MethodGet, me, p1.AccessToken, nil)
			// Logging out again is harmless.
			s.Expect(t, http.StatusNoContent, http.MethodPost, "/api/v1/auth/logout", p1.AccessToken, map[string]any{"refresh_token": p1.RefreshToken})
			// Another session of the same user lives on.
			s.Login(t, l)
			refresh(t, s, l.Refresh, http.StatusOK)
		})
	})
}
