package ratelimit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/userservice/userservice/domain"
)

// The response headers of a limited route.
const (
	HeaderLimit      = "X-RateLimit-Limit"
	HeaderRemaining  = "X-RateLimit-Remaining"
	HeaderReset      = "X-RateLimit-Reset"
	HeaderRetryAfter = "Retry-After"
)

// maxLoginBody bounds how much of a login body is read to find its email.
// Logins are a few hundred bytes; a larger body is counted under one shared
// key, so padding a body cannot buy a fresh per-email bucket.
const maxLoginBody = 64 << 10

// noEmail is the email key of a request whose email cannot be read.
const noEmail = "-"

// Middleware limits the requests of every route the limits file gives a
// rule, by the route template Echo matched (c.Path()). Mount it with
// e.Use (not e.Pre: before routing there is no template), after the body
// size limit. Rules that apply to a request are taken from in file order; a
// refusal stops there, so a client refused by its address does not also spend
// the budget of the email it tries.
func (l *Limiter) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			set := l.current.Load()
			if set == nil {
				return next(c)
			}
			req := c.Request()
			rules := set.match(req.Method, c.Path())
			if len(rules) == 0 {
				return next(c)
			}
			keys := requestKeys{l: l, req: req}
			var shown *bucket // the bucket the headers describe: the one with the fewest tokens left
			for _, r := range rules {
				key, ok := keys.key(r.key)
				if !ok {
					continue
				}
				b, err := l.take(req.Context(), r, string(r.key)+":"+key)
				if err != nil {
					continue // let through: the store could not say
				}
				if !b.ok {
					l.limited.WithLabelValues(r.name, routeLabel(req.Method, c.Path())).Inc()
					return refuse(c, b)
				}
				if shown == nil || b.remaining < shown.remaining {
					shown = &b
				}
			}
			if shown != nil {
				setHeaders(c.Response().Header(), *shown, time.Now())
			}
			return next(c)
		}
	}
}

// routeLabel names a route for the metrics. Unmatched requests carry any
// method and path a client makes up, so neither is used as it came.
func routeLabel(method, path string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
	default:
		method = "OTHER"
	}
	if path == "" {
		path = "unmatched"
	}
	return method + " " + path
}

// setHeaders describes b. Reset is in whole seconds, rounded up, so that a
// client waiting that long finds the bucket full.
func setHeaders(h http.Header, b bucket, now time.Time) {
	h.Set(HeaderLimit, strconv.FormatUint(b.tokens, 10))
	h.Set(HeaderRemaining, strconv.FormatUint(b.remaining, 10))
	h.Set(HeaderReset, strconv.FormatInt(ceilSeconds(b.untilFull(now)), 10))
}

func ceilSeconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}

// errorBody is the service's error shape ({"detail","code"}).
type errorBody struct {
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

func refuse(c echo.Context, b bucket) error {
	now := time.Now()
	h := c.Response().Header()
	setHeaders(h, b, now)
	h.Set(HeaderRetryAfter, strconv.FormatInt(max(ceilSeconds(b.untilFull(now)), 1), 10))
	return c.JSON(http.StatusTooManyRequests, errorBody{Detail: "rate limit exceeded", Code: domain.KindRateLimited.String()})
}

// requestKeys works out, at most once each, the keys a request is counted by.
type requestKeys struct {
	l   *Limiter
	req *http.Request

	ip, email, user    string
	haveIP, haveEmail  bool
	isLogin            bool
	haveUser, userSeen bool
}

// key returns the request's key of kind k; ok is false when the request has
// none, and rules of that kind do not apply to it (a user rule to a request
// without a valid access token, which the route answers with 401 anyway).
func (k *requestKeys) key(kind keyKind) (key string, ok bool) {
	switch kind {
	case keyIP:
		if !k.haveIP {
			k.ip, k.haveIP = ipKey(clientIP(k.req, k.l.trusted)), true
		}
		return k.ip, true
	case keyEmail:
		if !k.haveEmail {
			k.email, k.isLogin = loginEmail(k.req)
			k.haveEmail = true
		}
		// A refresh_token grant names no email: an email rule does not
		// apply to it, rather than counting every refresh under one key.
		return k.email, k.isLogin
	case keyUser:
		if !k.userSeen {
			k.user, k.haveUser = k.l.userKey(k.req)
			k.userSeen = true
		}
		return k.user, k.haveUser
	}
	return "", false
}

// userKey is the user id of the request's access token. Only the token's
// signature and expiry are checked, not whether it was revoked: a revoked
// token still names its user, and the route refuses it anyway.
func (l *Limiter) userKey(req *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(req.Header.Get(echo.HeaderAuthorization), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	claims, err := l.verifier.VerifyAccess(token, time.Now())
	if err != nil {
		return "", false
	}
	return strconv.FormatInt(claims.UserID, 10), true
}

// loginEmail reads the email a login names, as the token endpoint does: the
// form field username (OAuth2 password grant) or the JSON member email. The
// body is put back for the handler, unread bytes and read error included.
// The email is folded as the service stores it, and hashed, so the store
// never holds addresses. A body whose email cannot be read gets noEmail.
// A token request of another grant than password (grant_type=refresh_token)
// is no login: isLogin is false.
func loginEmail(req *http.Request) (key string, isLogin bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return noEmail, true
	}
	orig := req.Body
	data, err := io.ReadAll(io.LimitReader(orig, maxLoginBody+1))
	rest := io.Reader(orig)
	if err != nil {
		rest = errReader{err}
	}
	req.Body = readCloser{io.MultiReader(bytes.NewReader(data), rest), orig}
	if err != nil || len(data) > maxLoginBody {
		return noEmail, true
	}

	var raw string
	mt, _, _ := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if mt == echo.MIMEApplicationForm {
		form, err := url.ParseQuery(string(data))
		if err != nil {
			return noEmail, true // the handler refuses the form too
		}
		if gt := form["grant_type"]; len(gt) == 1 && gt[0] != "" && gt[0] != "password" {
			return "", false
		}
		raw = form.Get("username")
	} else {
		// Decoded as the handler does, into a map: matching the members of a
		// struct would ignore case, and {"email":A,"EMAIL":B} would be
		// counted under B while the handler logs in as A.
		var obj map[string]json.RawMessage
		if json.Unmarshal(data, &obj) != nil || json.Unmarshal(obj["email"], &raw) != nil {
			return noEmail, true
		}
	}
	if strings.TrimSpace(raw) == "" {
		return noEmail, true
	}
	folded := domain.Fold(strings.TrimSpace(raw))
	if e, err := domain.ParseEmail(raw); err == nil {
		folded = e.String()
	}
	sum := sha256.Sum256([]byte(folded))
	return hex.EncodeToString(sum[:16]), true
}

type readCloser struct {
	io.Reader
	io.Closer
}

// errReader hands the handler the error the middleware met reading the body
// (e.g. *http.MaxBytesError, which it answers with 413).
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
