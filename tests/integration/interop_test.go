package integration

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/userservice/userservice/bootstrap"
	"github.com/userservice/userservice/tests/harness"
)

// Interoperability with clients nobody on the team wrote: golang.org/x/oauth2
// against the token endpoint, and MicahParks/keyfunc with golang-jwt
// verifying access tokens from the JWK Set, as another service would. Both
// find the endpoints through the RFC 8414 metadata.

// metadata is the part of /.well-known/oauth-authorization-server the
// clients below use.
type metadata struct {
	Issuer                string   `json:"issuer"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	IntrospectionEndpoint string   `json:"introspection_endpoint"`
	RevocationEndpoint    string   `json:"revocation_endpoint"`
	GrantTypes            []string `json:"grant_types_supported"`
}

func discover(t *testing.T, s *harness.Service) metadata {
	t.Helper()
	var m metadata
	s.Expect(t, http.StatusOK, http.MethodGet, "/.well-known/oauth-authorization-server", "", nil).Decode(t, &m)
	if m.Issuer != "userservice" || m.TokenEndpoint != s.Base+"/api/v1/auth/token" || m.JWKSURI != s.Base+"/.well-known/jwks.json" ||
		m.IntrospectionEndpoint != s.Base+"/api/v1/auth/introspect" || m.RevocationEndpoint != s.Base+"/api/v1/auth/revoke" {
		t.Fatalf("metadata %+v: want the issuer and endpoints under %s", m, s.Base)
	}
	return m
}

// TestInteropOAuth2Client drives the token endpoint with golang.org/x/oauth2:
// the password grant, a TokenSource refreshing through the refresh_token
// grant (access tokens live 5 s, under the library's 10 s expiry margin, so
// every Token call refreshes: no waiting), the refreshed token used on the
// API, and the library's RetrieveError on a wrong password and on a spent
// refresh token.
func TestInteropOAuth2Client(t *testing.T) {
	t.Parallel()
	opts := harness.Options{Configure: func(c *bootstrap.Config) { c.AccessTTL = 5 * time.Second }}
	harness.OnEachBackend(t, opts, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		u := s.Create(t, root, "user")
		m := discover(t, s)
		cfg := oauth2.Config{ClientID: "interop-test", Endpoint: oauth2.Endpoint{
			TokenURL: m.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, s.Client)

		tok, err := cfg.PasswordCredentialsToken(ctx, u.Email, u.Password)
		if err != nil {
			t.Fatalf("password grant: %v", err)
		}
		if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Type() != "Bearer" || tok.Expiry.IsZero() {
			t.Fatalf("password grant token %+v", tok)
		}
		s.Leaks.SecretAccessToken(tok.AccessToken)
		s.Leaks.SecretRefreshToken(tok.RefreshToken)

		refreshed, err := cfg.TokenSource(ctx, tok).Token()
		if err != nil {
			t.Fatalf("refresh through the token endpoint: %v", err)
		}
		if refreshed.AccessToken == tok.AccessToken || refreshed.RefreshToken == tok.RefreshToken || refreshed.RefreshToken == "" {
			t.Fatalf("the TokenSource did not refresh: %+v", refreshed)
		}
		s.Leaks.SecretAccessToken(refreshed.AccessToken)
		s.Leaks.SecretRefreshToken(refreshed.RefreshToken)
		res, err := cfg.Client(ctx, refreshed).Get(s.Base + me)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /users/me with the refreshed token through the oauth2 client: %d", res.StatusCode)
		}

		var re *oauth2.RetrieveError
		_, err = cfg.PasswordCredentialsToken(ctx, u.Email, "wrong-password-1")
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" || re.ErrorDescription != "Incorrect email or password" ||
			re.Response.StatusCode != http.StatusBadRequest {
			t.Fatalf("wrong password: %v, want a RetrieveError with invalid_grant and the server's description", err)
		}
		// The first refresh token was spent by the refresh: presenting it
		// again is a reuse, refused as invalid_grant (and the family ends).
		spent := &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}
		_, err = cfg.TokenSource(ctx, spent).Token()
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Fatalf("a spent refresh token: %v, want invalid_grant", err)
		}
		_, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshed.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Fatalf("the family's live token after a reuse: %v, want invalid_grant", err)
		}
	})
}

// keyRemovalBound is how soon the contract says a removed key stops
// verifying: within a minute (plus slack for a loaded machine). The test
// polls, and passes as soon as the service refuses the token.
const keyRemovalBound = 75 * time.Second

// TestInteropKeyfuncVerifiesAcrossARotation verifies the service's access
// tokens with keyfunc and golang-jwt from the JWK Set, through a rotation:
// a key added to JWT_KEYS_DIR signs new tokens while tokens of the old key
// still verify, at the service and at the other service; once the old
// key's file is removed, its tokens stop verifying at the service.
func TestInteropKeyfuncVerifiesAcrossARotation(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		u := s.CreateAndLogin(t, root, "user")
		m := discover(t, s)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		other, err := keyfunc.NewDefaultCtx(ctx, []string{m.JWKSURI})
		if err != nil {
			t.Fatalf("keyfunc: %v", err)
		}
		verify := func(k keyfunc.Keyfunc, token string) (*jwt.Token, error) {
			return jwt.Parse(token, k.Keyfunc, jwt.WithValidMethods([]string{"EdDSA"}),
				jwt.WithIssuer(m.Issuer), jwt.WithAudience("userservice"), jwt.WithExpirationRequired())
		}
		kidOf := func(tok *jwt.Token) string { kid, _ := tok.Header["kid"].(string); return kid }

		old := u.Access
		parsed, err := verify(other, old)
		if err != nil {
			t.Fatalf("keyfunc refuses the service's token: %v", err)
		}
		if sub, _ := parsed.Claims.GetSubject(); sub != strconv.FormatInt(u.ID, 10) {
			t.Fatalf("sub %q, want %d", sub, u.ID)
		}
		oldKID := kidOf(parsed)

		// Rotate: the new file's name sorts last, so it signs.
		added := s.AddKey(t, "2026-02-01.pem")
		harness.Poll(t, "the new key in the JWK Set", func() bool {
			kids := s.JWKSKids(t)
			return len(kids) == 2 && kids[0] == added.KID && kids[1] == oldKID
		})
		s.Login(t, u)
		fresh, err := verify(other, u.Access) // an unknown kid: keyfunc fetches the set again
		if err != nil {
			t.Fatalf("keyfunc refuses a token of the new key: %v", err)
		}
		if kidOf(fresh) != added.KID {
			t.Fatalf("a token issued after the rotation has kid %q, want the new key's %q", kidOf(fresh), added.KID)
		}
		if _, err := verify(other, old); err != nil {
			t.Errorf("keyfunc refuses a token of the old key during the rotation: %v", err)
		}
		s.Expect(t, http.StatusOK, http.MethodGet, me, old, nil)
		s.Expect(t, http.StatusOK, http.MethodGet, me, u.Access, nil)

		// Retire the old key: its tokens stop verifying at the service.
		s.RemoveKey(t, "2026-01-01.pem")
		deadline := time.Now().Add(keyRemovalBound)
		for s.Do(t, http.MethodGet, me, old, nil).Status != http.StatusUnauthorized {
			if time.Now().After(deadline) {
				t.Fatalf("a token of a removed key still verifies after %v", keyRemovalBound)
			}
			time.Sleep(20 * time.Millisecond)
		}
		s.Expect(t, http.StatusOK, http.MethodGet, me, u.Access, nil)
		if kids := s.JWKSKids(t); len(kids) != 1 || kids[0] != added.KID {
			t.Errorf("the JWK Set after the removal: %q, want only %q", kids, added.KID)
		}
		// A verifier that reads the set now (a new service, or one whose
		// cache expired) refuses the old key's tokens too.
		later, err := keyfunc.NewDefaultCtx(ctx, []string{m.JWKSURI})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verify(later, old); err == nil {
			t.Error("a fresh keyfunc accepts a token of the removed key")
		}
		if _, err := verify(later, u.Access); err != nil {
			t.Errorf("a fresh keyfunc refuses a token of the current key: %v", err)
		}
	})
}

// TestSigningKeySources covers the ways of signing other than a keys
// directory: on SQLite with none configured, the key made beside the
// database survives a restart (and JWT_SECRET is not needed); with
// JWT_SECRET alone (a PostgreSQL deployment that has not moved yet) tokens
// are HS256 and no key is published.
func TestSigningKeySources(t *testing.T) {
	t.Parallel()
	t.Run("sqlite key file", func(t *testing.T) {
		t.Parallel()
		db := harness.SQLite.URL(t)
		keyFile := db[len("sqlite:"):] + bootstrap.KeyFileSuffix
		opts := harness.Options{DBURL: db, JWTSecret: []byte{}, Configure: func(c *bootstrap.Config) {
			c.JWTKeysDir, c.JWTSecret, c.JWTKeyFile = "", nil, keyFile
		}}
		first := harness.Start(t, harness.SQLite, opts)
		root := first.SeedSuperadmin(t)
		u := first.CreateAndLogin(t, root, "user")
		kids := first.JWKSKids(t)
		if err := first.Stop(); err != nil {
			t.Fatal(err)
		}
		opts.PolicyDir = first.PolicyDir
		second := harness.Start(t, harness.SQLite, opts)
		second.Leaks.SecretAccessToken(u.Access)
		second.Expect(t, http.StatusOK, http.MethodGet, me, u.Access, nil)
		if got := second.JWKSKids(t); len(kids) != 1 || len(got) != 1 || got[0] != kids[0] {
			t.Errorf("the key changed across the restart: %q then %q", kids, got)
		}
		if kid := claimsHeaderKID(t, u.Access); kid != kids[0] {
			t.Errorf("token kid %q, published %q", kid, kids)
		}
	})
	t.Run("postgres with JWT_SECRET only", func(t *testing.T) {
		t.Parallel()
		s := harness.Start(t, harness.Postgres, harness.Options{Configure: func(c *bootstrap.Config) { c.JWTKeysDir = "" }})
		root := s.SeedSuperadmin(t)
		tok, _, err := jwt.NewParser().ParseUnverified(root.Access, jwt.MapClaims{})
		if err != nil || tok.Method.Alg() != "HS256" {
			t.Fatalf("without keys the token is %v (%v), want HS256", tok.Header, err)
		}
		s.Expect(t, http.StatusOK, http.MethodGet, me, root.Access, nil)
		if kids := s.JWKSKids(t); len(kids) != 0 {
			t.Errorf("an HS256 deployment publishes keys %q", kids)
		}
		// Revocation by the holder of a refresh token (RFC 7009) ends it.
		s.Expect(t, http.StatusOK, http.MethodPost, "/api/v1/auth/revoke", "", url.Values{"token": {root.Refresh}})
		s.Expect(t, http.StatusUnauthorized, http.MethodPost, "/api/v1/auth/refresh", "", map[string]any{"refresh_token": root.Refresh})
	})
}

func claimsHeaderKID(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// TestIntrospectionAndRevocation runs RFC 7662 and RFC 7009 against the
// real service: introspection for the shipped policy's superadmin only,
// active until a revocation (a role change here), inactive for anything
// else; revocation of a refresh token's family by its holder, 200 for an
// unknown token, and unsupported_token_type for an access token.
func TestIntrospectionAndRevocation(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		u := s.CreateAndLogin(t, root, "user")
		admin := s.CreateAndLogin(t, root, "admin")
		const introspect, revoke = "/api/v1/auth/introspect", "/api/v1/auth/revoke"
		type answer struct {
			Active    bool   `json:"active"`
			Sub       string `json:"sub"`
			Role      string `json:"role"`
			Iss       string `json:"iss"`
			Aud       string `json:"aud"`
			Exp, Iat  int64
			TokenType string `json:"token_type"`
		}
		ask := func(token string) answer {
			t.Helper()
			var a answer
			s.Expect(t, http.StatusOK, http.MethodPost, introspect, root.Access, url.Values{"token": {token}}).Decode(t, &a)
			return a
		}
		a := ask(u.Access)
		if !a.Active || a.Sub != strconv.FormatInt(u.ID, 10) || a.Role != "user" || a.Iss != "userservice" || a.Aud != "userservice" ||
			a.Exp <= a.Iat || a.TokenType != "Bearer" {
			t.Errorf("a live token: %+v", a)
		}
		for name, tok := range map[string]string{"a refresh token": u.Refresh, "garbage": "x.y.z"} {
			if a := ask(tok); a.Active {
				t.Errorf("%s is active: %+v", name, a)
			}
		}
		r := s.Expect(t, http.StatusForbidden, http.MethodPost, introspect, admin.Access, url.Values{"token": {u.Access}})
		if e := r.Error(t); e.Error != "insufficient_scope" {
			t.Errorf("an admin introspecting: %s, want insufficient_scope", r)
		}
		if e := s.Expect(t, http.StatusUnauthorized, http.MethodPost, introspect, "", url.Values{"token": {u.Access}}).Error(t); e.Error != "invalid_client" {
			t.Errorf("no caller token: %+v, want invalid_client", e)
		}
		s.Expect(t, http.StatusOK, http.MethodPatch, harness.UserPath(u.ID)+"/role", root.Access, map[string]any{"role": "admin"})
		if a := ask(u.Access); a.Active {
			t.Errorf("a token revoked by a role change is active: %+v", a)
		}

		if e := s.Expect(t, http.StatusBadRequest, http.MethodPost, revoke, "", url.Values{"token": {admin.Access}}).Error(t); e.Error != "unsupported_token_type" {
			t.Errorf("revoking an access token: %+v", e)
		}
		s.Expect(t, http.StatusOK, http.MethodPost, revoke, "", url.Values{"token": {"no-such-token"}, "token_type_hint": {"refresh_token"}})
		s.Expect(t, http.StatusOK, http.MethodPost, revoke, "", url.Values{"token": {admin.Refresh}, "token_type_hint": {"refresh_token"}})
		s.Expect(t, http.StatusUnauthorized, http.MethodPost, "/api/v1/auth/refresh", "", map[string]any{"refresh_token": admin.Refresh})
		// Revoking again is harmless.
		s.Expect(t, http.StatusOK, http.MethodPost, revoke, "", url.Values{"token": {admin.Refresh}})
	})
}
