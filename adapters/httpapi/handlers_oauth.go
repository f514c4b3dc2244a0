package httpapi

import (
	"errors"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// The OAuth endpoints, whose errors are RFC 6749 §5.2 bodies (oauthError).
const (
	tokenRoute      = apiPrefix + "/auth/token"
	introspectRoute = apiPrefix + "/auth/introspect"
	revokeRoute     = apiPrefix + "/auth/revoke"
	jwksRoute       = "/.well-known/jwks.json"
)

// wellKnownMaxAge is how long the JWK Set and the metadata may be cached:
// short, so a key removed from the keys directory leaves every cache within
// a minute of leaving the service.
const wellKnownMaxAge = "public, max-age=60"

// errRefreshRejected is invalid_grant for a refresh token the service will
// not exchange; which of the reasons applies is not told.
var errRefreshRejected = &domain.Error{Kind: domain.KindUnauthenticated, Code: "invalid_refresh_token",
	Message: "the refresh token is invalid, expired, spent or revoked"}

// readForm reads an application/x-www-form-urlencoded body, the only kind
// the OAuth endpoints take, refusing a parameter sent twice (RFC 6749 §3.2).
func readForm(c echo.Context) (url.Values, error) {
	r := c.Request()
	mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if mt != echo.MIMEApplicationForm {
		return nil, errUnsupportedMediaType(echo.MIMEApplicationForm)
	}
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errBodyTooLarge(tooLarge.Limit)
		}
		return nil, &domain.Error{Kind: domain.KindMalformed, Code: "malformed_form",
			Message: "request body is not a valid form", Err: err}
	}
	for _, name := range slices.Sorted(maps.Keys(r.PostForm)) {
		if len(r.PostForm[name]) > 1 {
			return nil, &domain.Error{Kind: domain.KindMalformed, Code: "repeated_parameter",
				Message: "parameter " + strconv.Quote(clipName(name)) + " is given more than once"}
		}
	}
	return r.PostForm, nil
}

// requireFields refuses a form lacking any of names, naming all at once.
func requireFields(form url.Values, names ...string) error {
	var v domain.ValidationError
	for _, n := range names {
		if form.Get(n) == "" {
			v.Add(n, "is required")
		}
	}
	return v.Err()
}

// readTokenForm reads the token of an introspection or revocation request
// (RFC 7662, RFC 7009); token_type_hint is accepted and not needed.
func readTokenForm(c echo.Context) (string, error) {
	form, err := readForm(c)
	if err != nil {
		return "", err
	}
	if err := requireFields(form, "token"); err != nil {
		return "", err
	}
	return strings.TrimSpace(form.Get("token")), nil
}

// refreshGrant is the token endpoint's grant_type=refresh_token: the code of
// /auth/refresh, with its refusal said as invalid_grant.
func (s *server) refreshGrant(c echo.Context, form url.Values) error {
	if err := requireFields(form, "refresh_token"); err != nil {
		return err
	}
	pair, err := s.auth.Refresh(c.Request().Context(), strings.TrimSpace(form.Get("refresh_token")))
	if errors.Is(err, domain.ErrUnauthenticated) {
		return errRefreshRejected.Wrap(err)
	}
	if err != nil {
		return err
	}
	return sendTokens(c, pair)
}

// AuthIntrospect answers RFC 7662 introspection for an authorized caller.
func (s *server) AuthIntrospect(c echo.Context) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	token, err := readTokenForm(c)
	if err != nil {
		return err
	}
	in, err := s.auth.Introspect(c.Request().Context(), actor, token)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, introspectionDTO(in))
}

func introspectionDTO(in ports.Introspection) Introspection {
	if !in.Active {
		return Introspection{}
	}
	sub := strconv.FormatInt(in.Subject, 10)
	role := Role(in.Role.String())
	exp, iat := in.Claims.ExpiresAt.Unix(), in.Claims.IssuedAt.Unix()
	bearer := IntrospectionTokenTypeBearer
	return Introspection{
		Active: true, Sub: &sub, Role: &role, Iss: &in.Claims.Issuer, Aud: &in.Claims.Audience,
		Exp: &exp, Iat: &iat, Jti: &in.Claims.ID, TokenType: &bearer,
	}
}

// AuthRevoke answers RFC 7009 revocation: 200 with no body whether or not
// the token was known.
func (s *server) AuthRevoke(c echo.Context) error {
	token, err := readTokenForm(c)
	if err != nil {
		return err
	}
	if err := s.auth.Revoke(c.Request().Context(), token); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

// Jwks serves the public keys that verify access tokens.
func (s *server) Jwks(c echo.Context) error {
	keys := s.keys.PublicKeys()
	set := JWKSet{Keys: make([]JWK, len(keys))}
	for i, k := range keys {
		set.Keys[i] = JWK{Kty: JWKKty(k.KeyType), Crv: JWKCrv(k.Curve), X: k.X, Kid: k.KeyID,
			Alg: JWKAlg(k.Algorithm), Use: JWKUse(k.Use)}
	}
	c.Response().Header().Set(echo.HeaderCacheControl, wellKnownMaxAge)
	return c.JSON(http.StatusOK, set)
}

// AuthorizationServerMetadata serves RFC 8414 metadata.
func (s *server) AuthorizationServerMetadata(c echo.Context) error {
	base, err := s.baseURL(c.Request())
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderCacheControl, wellKnownMaxAge)
	if s.cfg.PublicURL == "" {
		// The URLs follow these headers: a cache must not hand one host's
		// answer to another.
		h.Set(echo.HeaderVary, "Host, X-Forwarded-Host, X-Forwarded-Proto")
	}
	return c.JSON(http.StatusOK, AuthorizationServerMetadata{
		Issuer:                                 s.cfg.Issuer,
		TokenEndpoint:                          base + tokenRoute,
		JwksUri:                                base + jwksRoute,
		IntrospectionEndpoint:                  base + introspectRoute,
		RevocationEndpoint:                     base + revokeRoute,
		GrantTypesSupported:                    []string{"password", "refresh_token"},
		ResponseTypesSupported:                 []string{},
		TokenEndpointAuthMethodsSupported:      []string{"none"},
		RevocationEndpointAuthMethodsSupported: []string{"none"},
		ServiceDocumentation:                   base + "/docs",
	})
}

var errBadHost = &domain.Error{Kind: domain.KindMalformed, Code: "bad_host",
	Message: "the Host (or X-Forwarded-Host) header is not a host name or address"}

// baseURL is the service's external URL: Config.PublicURL when set;
// otherwise the request's scheme and Host, where X-Forwarded-Proto and
// X-Forwarded-Host count only from a trusted proxy (a client could
// otherwise point the metadata's endpoints at a host of its choosing).
func (s *server) baseURL(r *http.Request) (string, error) {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL, nil
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if s.fromTrustedProxy(r) {
		if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
			scheme = p
		}
		if h := firstValue(r.Header.Get("X-Forwarded-Host")); h != "" {
			host = h
		}
	}
	u, err := url.Parse(scheme + "://" + host)
	if host == "" || err != nil || u.Host != host || u.Path != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", errBadHost
	}
	return scheme + "://" + host, nil
}

// firstValue is the first of a comma-separated header's values, as the
// proxy nearest the client set it.
func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

func (s *server) fromTrustedProxy(r *http.Request) bool {
	return isTrusted(parseHop(r.RemoteAddr), s.cfg.TrustedProxies)
}

// oauthError turns the service's answer to an OAuth endpoint into RFC 6749
// §5.2 terms: the status it gets there and the error code. A refused grant
// (wrong password, bad refresh token) is 400 invalid_grant, as the RFC
// says, not the 401 of a missing token elsewhere; an introspecting caller
// whose own token fails is 401 invalid_client.
func oauthError(route string, status int, code string) (int, string) {
	switch {
	case code == "unsupported_grant_type" || code == domain.ErrUnsupportedTokenType.Code:
		return http.StatusBadRequest, code
	case status == http.StatusUnauthorized && route == tokenRoute:
		return http.StatusBadRequest, "invalid_grant"
	case status == http.StatusUnauthorized:
		return status, "invalid_client"
	case status == http.StatusForbidden:
		return status, "insufficient_scope"
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		return http.StatusBadRequest, "invalid_request"
	case status == http.StatusServiceUnavailable:
		return status, "temporarily_unavailable"
	case status >= http.StatusInternalServerError:
		return status, "server_error"
	}
	return status, "invalid_request"
}

// isOAuthRoute reports whether route's errors are RFC 6749 bodies.
func isOAuthRoute(route string) bool {
	return route == tokenRoute || route == introspectRoute || route == revokeRoute
}
