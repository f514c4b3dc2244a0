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
		switch gt := form.Get("grant_type"); LoginFormGrantType(gt) {
		case "", LoginFormGrantTypePassword:
		case LoginFormGrantTypeRefreshToken:
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
	o, err := readObject(c)
	if err != nil {
		return "", "", err
	}
	o.allow("email", "password")
	email, password = o.required("email"), o.required("password")
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
	token, err := readRefreshToken(c)
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
	token, err := readRefreshToken(c)
	if err != nil {
		return err
	}
	if err := s.auth.Logout(c.Request().Context(), actor, token); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func readRefreshToken(c echo.Context) (string, error) {
	o, err := readObject(c)
	if err != nil {
		return "", err
	}
	o.allow("refresh_token")
	token := o.required("refresh_token")
	return strings.TrimSpace(token), o.err()
}

// AuthSignUp creates a user with role user; a "role" key is ignored.
func (s *server) AuthSignUp(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	o.ignore("role")
	req := readNewUser(o)
	o.allow(newUserKeys...)
	if err := o.err(); err != nil {
		return err
	}
	u, err := s.auth.SignUp(c.Request().Context(), req)
	if err != nil {
		return err
	}
	return s.sendCreated(c, u)
}

var newUserKeys = []string{"first_name", "last_name", "email", "gender", "ip_address", "password"}

// readNewUser reads the keys sign-up and create-admin share.
func readNewUser(o *jsonObject) ports.CreateUserRequest {
	var ip string
	if p := o.nullable("ip_address"); p != nil {
		ip = *p
	}
	return ports.CreateUserRequest{
		User: domain.NewUserParams{
			FirstName: o.required("first_name"),
			LastName:  o.required("last_name"),
			Email:     o.required("email"),
			Gender:    o.required("gender"),
			IPAddress: ip,
		},
		Password: o.required("password"),
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
