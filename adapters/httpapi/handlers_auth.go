package httpapi

import (
	"mime"
	"net/http"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// AuthToken is the RFC 6749 token endpoint: the password grant (an OAuth2
// form, or a JSON body) and the refresh_token grant (a form).
func (s *server) AuthToken(c echo.Context) error {
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	var email, password string
	if mt == echo.MIMEApplicationForm {
		form, err := readForm(c)
		if err != nil {
			return err
		}
		// Other OAuth2 fields a client may send (scope, client_id,
		// client_secret) are accepted and ignored: Swagger UI's "Authorize"
		// sends them. A missing grant_type is a login, as it always was.
		switch gt := form.Get("grant_type"); GrantType(gt) {
		case "", GrantTypePassword:
		case GrantTypeRefreshToken:
			return s.refreshGrant(c, form)
		default:
			return &domain.Error{Kind: domain.KindMalformed, Code: "unsupported_grant_type",
				Message: `grant_type must be "password" or "refresh_token"`}
		}
		if err := requireFields(form, "username", "password"); err != nil {
			return err
		}
		email, password = form.Get("username"), form.Get("password")
	} else {
		var err error
		if email, password, err = readJSONCredentials(c); err != nil {
			return err
		}
	}
	pair, err := s.auth.Login(c.Request().Context(), email, password, clientAddr(c))
	if err != nil {
		return err
	}
	return sendTokens(c, pair)
}

func readJSONCredentials(c echo.Context) (email, password string, err error) {
	if err := requireJSON(c.Request()); err != nil {
		return "", "", errUnsupportedMediaType(echo.MIMEApplicationForm, echo.MIMEApplicationJSON)
	}
	o, err := readObject(c, "authToken")
	if err != nil {
		return "", "", err
	}
	email, password = o.value("email"), o.value("password")
	return email, password, o.err()
}

// sendTokens answers a token pair; RFC 6749 §5.1 forbids caching it.
func sendTokens(c echo.Context, pair ports.TokenPair) error {
	h := c.Response().Header()
	h.Set(echo.HeaderCacheControl, "no-store")
	h.Set("Pragma", "no-cache")
	return c.JSON(http.StatusOK, tokenPairDTO(pair))
}

// AuthRefresh spends a refresh token for a new pair.
func (s *server) AuthRefresh(c echo.Context) error {
	token, err := readRefreshToken(c, "authRefresh")
	if err != nil {
		return err
	}
	pair, err := s.auth.Refresh(c.Request().Context(), token)
	if err != nil {
		return err
	}
	return sendTokens(c, pair)
}

// AuthLogout revokes the signed-in user's refresh-token family.
func (s *server) AuthLogout(c echo.Context) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	token, err := readRefreshToken(c, "authLogout")
	if err != nil {
		return err
	}
	if err := s.auth.Logout(c.Request().Context(), actor, token); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// readRefreshToken reads the body of operationID, a refresh or a logout.
func readRefreshToken(c echo.Context, operationID string) (string, error) {
	o, err := readObject(c, operationID)
	if err != nil {
		return "", err
	}
	token := o.value("refresh_token")
	return strings.TrimSpace(token), o.err()
}

// AuthSignUp creates a user with role user; a "role" key, which the spec
// lists, is never read.
func (s *server) AuthSignUp(c echo.Context) error {
	o, err := readObject(c, "authSignUp")
	if err != nil {
		return err
	}
	req := readNewUser(o)
	if err := o.err(); err != nil {
		return err
	}
	u, err := s.auth.SignUp(c.Request().Context(), req)
	if err != nil {
		return err
	}
	return s.sendCreated(c, u)
}

// readNewUser reads the keys sign-up and create-admin share.
func readNewUser(o *jsonObject) ports.CreateUserRequest {
	return ports.CreateUserRequest{
		User: domain.NewUserParams{
			FirstName: o.value("first_name"),
			LastName:  o.value("last_name"),
			Email:     o.value("email"),
			Gender:    o.value("gender"),
			IPAddress: o.value("ip_address"),
		},
		Password: o.value("password"),
	}
}

// clientAddr is the client's address as the IP extractor (TRUSTED_PROXIES)
// works it out; the zero Addr when it cannot be read.
func clientAddr(c echo.Context) netip.Addr {
	a, err := netip.ParseAddr(c.RealIP())
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}

// actorOf returns the request's actor. Every route that calls it requires a
// token, so a missing actor is a wiring mistake answered as unauthenticated
// rather than acting as nobody.
func actorOf(c echo.Context) (domain.Actor, error) {
	a, ok := ActorFrom(c.Request().Context())
	if !ok {
		return domain.Actor{}, domain.ErrUnauthenticated
	}
	return a, nil
}
