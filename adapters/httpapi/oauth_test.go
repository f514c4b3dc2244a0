package httpapi

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

const formCT = "application/x-www-form-urlencoded"

func TestTokenEndpointRefreshGrant(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	var got []string
	h.auth.RefreshFn = func(_ context.Context, token string) (ports.TokenPair, error) {
		got = append(got, token)
		if token != "old-refresh" {
			return ports.TokenPair{}, domain.ErrUnauthenticated
		}
		return ports.TokenPair{AccessToken: "a2", ExpiresIn: 900, RefreshToken: "r2"}, nil
	}
	rec := h.do(request{method: http.MethodPost, path: tokenRoute, contentType: formCT,
		body: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"old-refresh"}, "client_id": {"x"}}.Encode()})
	wantStatus(t, rec, http.StatusOK)
	if tp := decode[TokenPair](t, rec); tp.AccessToken != "a2" || tp.RefreshToken != "r2" || tp.TokenType != "bearer" {
		t.Errorf("body = %+v", tp)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}
	// The refresh's refusal is invalid_grant, with a sentence saying why.
	rec = h.do(request{method: http.MethodPost, path: tokenRoute, contentType: formCT,
		body: "grant_type=refresh_token&refresh_token=spent"})
	wantOAuthError(t, rec, http.StatusBadRequest, "invalid_grant", "invalid_refresh_token")
	if len(got) != 2 || got[1] != "spent" {
		t.Errorf("Refresh got %q", got)
	}
}

func TestIntrospect(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	iat := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h.auth.IntrospectFn = func(_ context.Context, a domain.Actor, token string) (ports.Introspection, error) {
		switch {
		case a.Role != domain.RoleSuperadmin:
			return ports.Introspection{}, domain.ErrForbidden
		case token != "live":
			return ports.Introspection{}, nil
		}
		return ports.Introspection{Active: true, Subject: 42, Role: domain.RoleAdmin, Claims: ports.AccessClaims{
			UserID: 42, ID: "jti-1", IssuedAt: iat, ExpiresAt: iat.Add(15 * time.Minute), Issuer: "iss-x", Audience: "aud-y"}}, nil
	}
	rec := h.do(request{method: http.MethodPost, path: introspectRoute, token: adminToken, contentType: formCT,
		body: "token=live&token_type_hint=access_token"})
	wantStatus(t, rec, http.StatusOK)
	got := decode[Introspection](t, rec)
	if !got.Active || *got.Sub != "42" || *got.Role != RoleAdmin || *got.Iss != "iss-x" || *got.Aud != "aud-y" ||
		*got.Iat != iat.Unix() || *got.Exp != iat.Add(15*time.Minute).Unix() || *got.Jti != "jti-1" {
		t.Errorf("introspection %s", rec.Body.String())
	}
	rec = h.do(request{method: http.MethodPost, path: introspectRoute, token: adminToken, contentType: formCT, body: "token=dead"})
	wantStatus(t, rec, http.StatusOK)
	if rec.Body.String() != "{\"active\":false}\n" {
		t.Errorf("inactive token: %s, want active false alone", rec.Body.String())
	}
	wantOAuthError(t, h.do(request{method: http.MethodPost, path: introspectRoute, token: userToken, contentType: formCT, body: "token=live"}),
		http.StatusForbidden, "insufficient_scope", "forbidden")
	rec = h.do(request{method: http.MethodPost, path: introspectRoute, contentType: formCT, body: "token=live"})
	wantOAuthError(t, rec, http.StatusUnauthorized, "invalid_client", "unauthenticated")
	if rec.Header().Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("no WWW-Authenticate on 401")
	}
	wantOAuthError(t, h.do(request{method: http.MethodPost, path: introspectRoute, token: adminToken, contentType: formCT, body: "x=1"}),
		http.StatusBadRequest, "invalid_request", "validation_failed")
	wantOAuthError(t, h.do(request{method: http.MethodPost, path: introspectRoute, token: adminToken, body: `{"token":"live"}`}),
		http.StatusUnsupportedMediaType, "invalid_request", "unsupported_media_type")
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	var got []string
	h.auth.RevokeFn = func(_ context.Context, token string) error {
		got = append(got, token)
		if token == "an-access-token" {
			return domain.ErrUnsupportedTokenType
		}
		return nil
	}
	rec := h.do(request{method: http.MethodPost, path: revokeRoute, contentType: formCT, body: "token=r1&token_type_hint=refresh_token"})
	wantStatus(t, rec, http.StatusOK)
	if rec.Body.Len() != 0 {
		t.Errorf("body %q, want none", rec.Body.String())
	}
	wantOAuthError(t, h.do(request{method: http.MethodPost, path: revokeRoute, contentType: formCT, body: "token=an-access-token"}),
		http.StatusBadRequest, "unsupported_token_type", "unsupported_token_type")
	wantOAuthError(t, h.do(request{method: http.MethodPost, path: revokeRoute, contentType: formCT, body: "token_type_hint=refresh_token"}),
		http.StatusBadRequest, "invalid_request", "validation_failed")
	if len(got) != 2 || got[0] != "r1" {
		t.Errorf("Revoke got %q", got)
	}
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	rec := h.do(request{method: http.MethodGet, path: jwksRoute})
	wantStatus(t, rec, http.StatusOK)
	want := `{"keys":[{"alg":"EdDSA","crv":"Ed25519","kid":"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k","kty":"OKP","use":"sig","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}` + "\n"
	if rec.Body.String() != want {
		t.Errorf("JWKS %s, want %s", rec.Body.String(), want)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "public, max-age=60" {
		t.Errorf("Cache-Control = %q", cc)
	}
}

func TestMetadataBaseURL(t *testing.T) {
	t.Parallel()
	proxy := netip.MustParsePrefix("192.0.2.1/32")
	for _, tc := range []struct {
		name   string
		cfg    Config
		remote string
		header http.Header
		want   string
	}{
		{"from the request", Config{}, "198.51.100.7:1234", nil, "http://users.example.com"},
		{"forwarded headers of an untrusted peer are ignored", Config{TrustedProxies: []netip.Prefix{proxy}}, "198.51.100.7:1234",
			http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"attacker.example"}}, "http://users.example.com"},
		{"forwarded headers of a trusted proxy", Config{TrustedProxies: []netip.Prefix{proxy}}, "192.0.2.1:1234",
			http.Header{"X-Forwarded-Proto": {"https, http"}, "X-Forwarded-Host": {"id.example.org"}}, "https://id.example.org"},
		{"PUBLIC_URL wins", Config{PublicURL: "https://auth.example.net/users", TrustedProxies: []netip.Prefix{proxy}}, "192.0.2.1:1234",
			http.Header{"X-Forwarded-Host": {"id.example.org"}}, "https://auth.example.net/users"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.Issuer = "the-issuer"
			h := newHarness(t, tc.cfg)
			rec := h.do(request{method: http.MethodGet, path: "/.well-known/oauth-authorization-server", header: tc.header,
				remote: tc.remote, host: "users.example.com"})
			wantStatus(t, rec, http.StatusOK)
			m := decode[AuthorizationServerMetadata](t, rec)
			if m.Issuer != "the-issuer" || m.TokenEndpoint != tc.want+"/api/v1/auth/token" || m.JwksUri != tc.want+"/.well-known/jwks.json" ||
				m.IntrospectionEndpoint != tc.want+"/api/v1/auth/introspect" || m.RevocationEndpoint != tc.want+"/api/v1/auth/revoke" {
				t.Errorf("metadata %s, want URLs under %s", rec.Body.String(), tc.want)
			}
			if len(m.GrantTypesSupported) != 2 || m.GrantTypesSupported[0] != "password" || m.GrantTypesSupported[1] != "refresh_token" ||
				len(m.TokenEndpointAuthMethodsSupported) != 1 || m.TokenEndpointAuthMethodsSupported[0] != "none" {
				t.Errorf("metadata %s", rec.Body.String())
			}
		})
	}
	h := newHarness(t, Config{})
	wantError(t, h.do(request{method: http.MethodGet, path: "/.well-known/oauth-authorization-server", host: "a/b@c"}),
		http.StatusBadRequest, "bad_host")
}
