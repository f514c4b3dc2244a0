package ratelimit

import (
	"math"
	"net/http"
	"net/netip"
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

// Middleware limits the requests of every route the limits file gives a
// rule, by the route template Echo matched (c.Path()). Mount it with
// e.Use (not e.Pre: before routing there is no template), after the body
// size limit. Rules that apply to a request are taken from in file order; a
// refusal stops there, so a client refused by one rule does not also spend
// the budgets of the later ones. Bodies are never read here. A rule keyed
// by address counts c.RealIP(): the Echo instance's IPExtractor decides who
// the client is (forwarding headers believed only from trusted proxies). Set
// one: without it, Echo believes any client's X-Forwarded-For.
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
			keys := requestKeys{l: l, c: c}
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
	l *Limiter
	c echo.Context

	ip, user           string
	haveIP             bool
	haveUser, userSeen bool
}

// key returns the request's key of kind k; ok is false when the request has
// none, and rules of that kind do not apply to it (a user rule to a request
// without a valid access token, which the route answers with 401 anyway).
func (k *requestKeys) key(kind keyKind) (key string, ok bool) {
	switch kind {
	case keyIP:
		if !k.haveIP {
			a, _ := netip.ParseAddr(k.c.RealIP()) // unreadable: the zero Addr, keyed "unknown"
			k.ip, k.haveIP = ipKey(a.WithZone("").Unmap()), true
		}
		return k.ip, true
	case keyUser:
		if !k.userSeen {
			k.user, k.haveUser = k.l.userKey(k.c.Request())
			k.userSeen = true
		}
		return k.user, k.haveUser
	}
	return "", false
}

// ipKey is the bucket key of a client address. An IPv6 client is keyed by
// its /64: one subscriber gets a whole /64 and can use a new address for
// every request, so a per-address bucket would not limit it at all.
func ipKey(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is4():
		return a.String()
	default:
		p, _ := a.Prefix(64) // cannot fail: a valid IPv6 address has 128 bits
		return p.String()
	}
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
