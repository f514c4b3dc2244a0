// Package jwtauth issues and verifies the service's access tokens: HS256 JWTs
// made with golang-jwt, whose algorithm, issuer and audience are pinned at
// verification so that a token from another algorithm, service or secret is
// never accepted.
package jwtauth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

const (
	// DefaultIssuer and DefaultAudience are the iss and aud of the tokens
	// when Config leaves them empty.
	DefaultIssuer   = "userservice"
	DefaultAudience = "userservice"
	// DefaultTTL is the access-token lifetime when Config.TTL is zero
	// (README, Configuration, ACCESS_TOKEN_TTL).
	DefaultTTL = 15 * time.Minute
	// MinSecretLen is the shortest HS256 secret accepted: 256 bits, the size
	// of the hash (RFC 7518 §3.2).
	MinSecretLen = 32
	// Leeway is the clock skew tolerated on exp, iat and nbf. Tokens are
	// checked by every instance, not only the one that issued them, so the
	// instances' clocks may disagree by a little; 30 s covers a drifting NTP
	// client and extends a 15-minute token by only 3 %. Revocation does not
	// rely on expiry (the token version does that), so the grace is harmless.
	Leeway = 30 * time.Second

	// maxTokenLen bounds the work done on a token before its signature is
	// checked; the service's own tokens are about 300 bytes.
	maxTokenLen = 4096
	// alg is the only algorithm issued and the only one accepted.
	alg = "HS256"
)

// Config configures New.
type Config struct {
	Secret   []byte // at least MinSecretLen bytes
	Issuer   string // iss; DefaultIssuer when empty
	Audience string // aud; DefaultAudience when empty
	TTL      time.Duration
}

// JWT is the access-token issuer and verifier. It is safe for concurrent use.
type JWT struct {
	secret   []byte
	issuer   string
	audience string
	ttl      time.Duration
}

var (
	_ ports.TokenIssuer   = (*JWT)(nil)
	_ ports.TokenVerifier = (*JWT)(nil)
)

// New checks cfg and returns a JWT. The secret is copied, so the caller may
// clear its own copy.
func New(cfg Config) (*JWT, error) {
	if len(cfg.Secret) < MinSecretLen {
		// The secret's length only: the secret itself never goes into an error.
		return nil, fmt.Errorf("jwtauth: secret is %d bytes, want at least %d", len(cfg.Secret), MinSecretLen)
	}
	if cfg.TTL < 0 {
		return nil, fmt.Errorf("jwtauth: token lifetime %v is negative", cfg.TTL)
	}
	j := &JWT{
		secret:   append([]byte(nil), cfg.Secret...),
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		ttl:      cfg.TTL,
	}
	if j.issuer == "" {
		j.issuer = DefaultIssuer
	}
	if j.audience == "" {
		j.audience = DefaultAudience
	}
	if j.ttl == 0 {
		j.ttl = DefaultTTL
	}
	return j, nil
}

// claims is the token payload: the registered claims plus the user's token
// version, which the application compares with the stored one to revoke
// tokens early. Ver is a pointer so that a missing claim is told from 0.
type claims struct {
	jwt.RegisteredClaims
	Ver *int64 `json:"ver,omitempty"`
}

// IssueAccess signs an access token for userID at tokenVersion, valid from
// now (truncated to the second, the precision of JWT dates) for the TTL.
// The returned claims equal what VerifyAccess will report for the token.
func (j *JWT) IssueAccess(userID, tokenVersion int64, now time.Time) (string, ports.AccessClaims, error) {
	if userID <= 0 {
		return "", ports.AccessClaims{}, fmt.Errorf("jwtauth: user id %d is not positive", userID)
	}
	if tokenVersion < 0 {
		return "", ports.AccessClaims{}, fmt.Errorf("jwtauth: token version %d is negative", tokenVersion)
	}
	iat := now.UTC().Truncate(time.Second)
	exp := iat.Add(j.ttl)
	var id [16]byte
	// Since Go 1.24 crypto/rand.Read never returns an error (it crashes the
	// program instead), so there is nothing to check.
	_, _ = rand.Read(id[:])
	jti := base64.RawURLEncoding.EncodeToString(id[:])

	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    j.issuer,
			Subject:   strconv.FormatInt(userID, 10),
			Audience:  jwt.ClaimStrings{j.audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			IssuedAt:  jwt.NewNumericDate(iat),
			ID:        jti,
		},
		Ver: &tokenVersion,
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(j.secret)
	if err != nil {
		return "", ports.AccessClaims{}, fmt.Errorf("jwtauth: sign: %w", err)
	}
	return token, ports.AccessClaims{
		UserID: userID, TokenVersion: tokenVersion, ID: jti, IssuedAt: iat, ExpiresAt: exp,
	}, nil
}

// VerifyAccess checks token's signature (HS256 only), issuer, audience and
// times at now, within Leeway, and that sub, ver, jti and iat are present
// and well formed. Every failure is domain.ErrUnauthenticated wrapping one of
// golang-jwt's sentinel errors as the cause (so errors.Is tells why), never
// the library's own text, which can quote parts of the token.
func (j *JWT) VerifyAccess(token string, now time.Time) (ports.AccessClaims, error) {
	if len(token) > maxTokenLen {
		return ports.AccessClaims{}, unauthenticated(fmt.Errorf("%w: longer than %d bytes", jwt.ErrTokenMalformed, maxTokenLen))
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{alg}),
		jwt.WithIssuer(j.issuer),
		jwt.WithAudience(j.audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		// Only the canonical encoding of a token is accepted, so one token
		// cannot be presented under several spellings.
		jwt.WithStrictDecoding(),
	)
	var c claims
	if _, err := parser.ParseWithClaims(token, &c, j.key); err != nil {
		return ports.AccessClaims{}, unauthenticated(reason(err))
	}
	out, err := j.check(&c)
	if err != nil {
		return ports.AccessClaims{}, unauthenticated(err)
	}
	return out, nil
}

// key hands the secret to the parser. WithValidMethods already refuses other
// algorithms; checking again here means the HMAC secret can never be used
// as, say, an RSA public key even if that option were lost in a refactor.
func (j *JWT) key(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodHS256 {
		return nil, errors.New("unexpected signing method")
	}
	return j.secret, nil
}

// check enforces the claims the library treats as optional.
func (j *JWT) check(c *claims) (ports.AccessClaims, error) {
	switch {
	case c.Subject == "":
		return ports.AccessClaims{}, fmt.Errorf("%w: sub", jwt.ErrTokenRequiredClaimMissing)
	case c.Ver == nil:
		return ports.AccessClaims{}, fmt.Errorf("%w: ver", jwt.ErrTokenRequiredClaimMissing)
	case c.ID == "":
		return ports.AccessClaims{}, fmt.Errorf("%w: jti", jwt.ErrTokenRequiredClaimMissing)
	case c.IssuedAt == nil:
		return ports.AccessClaims{}, fmt.Errorf("%w: iat", jwt.ErrTokenRequiredClaimMissing)
	case *c.Ver < 0:
		return ports.AccessClaims{}, fmt.Errorf("%w: ver is negative", jwt.ErrTokenInvalidClaims)
	}
	id, err := strconv.ParseInt(c.Subject, 10, 64)
	// Only the canonical decimal form ("42", not "+42" or "042") that
	// IssueAccess writes.
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != c.Subject {
		return ports.AccessClaims{}, fmt.Errorf("%w: sub is not a user id", jwt.ErrTokenInvalidSubject)
	}
	return ports.AccessClaims{
		UserID:       id,
		TokenVersion: *c.Ver,
		ID:           c.ID,
		IssuedAt:     c.IssuedAt.UTC(),
		ExpiresAt:    c.ExpiresAt.UTC(),
	}, nil
}

// reason maps a golang-jwt error to the most specific of its sentinels,
// dropping the rest of the text.
func reason(err error) error {
	for _, r := range [...]error{
		jwt.ErrTokenExpired,
		jwt.ErrTokenUsedBeforeIssued,
		jwt.ErrTokenNotValidYet,
		jwt.ErrTokenInvalidIssuer,
		jwt.ErrTokenInvalidAudience,
		jwt.ErrTokenRequiredClaimMissing,
		jwt.ErrTokenSignatureInvalid,
		jwt.ErrTokenMalformed,
		jwt.ErrTokenUnverifiable,
		jwt.ErrTokenInvalidClaims,
	} {
		if errors.Is(err, r) {
			return r
		}
	}
	return errors.New("token rejected")
}

func unauthenticated(cause error) error {
	return domain.ErrUnauthenticated.Wrap(fmt.Errorf("jwtauth: %w", cause))
}
