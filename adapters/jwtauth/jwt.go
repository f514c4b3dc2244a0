// Package jwtauth issues and verifies the service's access tokens: JWTs made
// with golang-jwt, signed with Ed25519 keys (EdDSA, with the key's RFC 7638
// thumbprint as kid) or, for deployments that have not moved yet, with an
// HS256 secret. Algorithms, keys, issuer and audience are pinned at
// verification, so a token from another algorithm, key, service or secret is
// never accepted. It also publishes the public keys as a JWK Set.
package jwtauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
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
	// (docs/operations.md, Configuration, ACCESS_TOKEN_TTL).
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
	// The algorithms issued and accepted: EdDSA with a key of the ring, and
	// HS256 with the secret. Nothing else is ever accepted.
	algEdDSA = "EdDSA"
	algHS256 = "HS256"
)

// Config configures New. At least one of Secret, KeysDir and KeyFile is
// needed. With keys (KeysDir or KeyFile) tokens are signed with the newest
// key, EdDSA, and Secret, when set too, only verifies the HS256 tokens
// issued before the move to keys; without keys, Secret signs (HS256).
type Config struct {
	Secret []byte // HS256; when set, at least MinSecretLen bytes
	// KeysDir holds the Ed25519 keys, one PKCS#8 PEM file each (*.pem):
	// the file whose name sorts last signs, all verify. Reload re-reads it.
	KeysDir string
	// KeyFile is a single Ed25519 key file (see LoadOrCreateKeyFile); it is
	// ignored when KeysDir is set.
	KeyFile  string
	Issuer   string // iss; DefaultIssuer when empty
	Audience string // aud; DefaultAudience when empty
	TTL      time.Duration
	// Log receives reload reports (key ids and file names, never keys); nil
	// discards.
	Log *slog.Logger
}

// JWT is the access-token issuer and verifier. It is safe for concurrent use.
type JWT struct {
	secret  []byte // nil: HS256 is neither issued nor accepted
	keysDir string
	ring    atomic.Pointer[keyRing] // nil: no keys, HS256 signs
	// root is what DeriveKey derives from: the secret, else the oldest key
	// when New read the keys. Fixed for the process.
	root     []byte
	reloadMu sync.Mutex // one reload at a time, so the log tells changes in order
	log      *slog.Logger
	issuer   string
	audience string
	ttl      time.Duration
	verified verifiedTokens
}

var (
	_ ports.TokenIssuer   = (*JWT)(nil)
	_ ports.TokenVerifier = (*JWT)(nil)
	_ ports.KeySet        = (*JWT)(nil)
)

// New checks cfg, reads the keys, and returns a JWT. A key file that cannot
// be used stops it, naming the file. The secret is copied, so the caller may
// clear its own copy.
func New(cfg Config) (*JWT, error) {
	switch {
	case len(cfg.Secret) > 0 && len(cfg.Secret) < MinSecretLen:
		// The secret's length only: the secret itself never goes into an error.
		return nil, fmt.Errorf("jwtauth: secret is %d bytes, want at least %d", len(cfg.Secret), MinSecretLen)
	case len(cfg.Secret) == 0 && cfg.KeysDir == "" && cfg.KeyFile == "":
		return nil, errors.New("jwtauth: neither signing keys nor a secret are configured")
	case cfg.TTL < 0:
		return nil, fmt.Errorf("jwtauth: token lifetime %v is negative", cfg.TTL)
	}
	j := &JWT{
		keysDir:  cfg.KeysDir,
		log:      cfg.Log,
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		ttl:      cfg.TTL,
	}
	if len(cfg.Secret) > 0 {
		j.secret = append([]byte(nil), cfg.Secret...)
	}
	if j.log == nil {
		j.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.KeysDir != "":
		keys, problems := readKeysDir(cfg.KeysDir)
		if len(problems) > 0 {
			return nil, fmt.Errorf("jwtauth: %w", errors.Join(problems...))
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("jwtauth: the keys directory %s holds no *%s key file", cfg.KeysDir, KeyFileSuffix)
		}
		j.ring.Store(newRing(keys))
	case cfg.KeyFile != "":
		k, err := parseKeyFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("jwtauth: %w", err)
		}
		j.ring.Store(newRing([]*signingKey{k}))
	}
	j.root = j.secret
	if ring := j.ring.Load(); j.root == nil {
		j.root = ring.all[len(ring.all)-1].priv.Seed()
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
	var token string
	var err error
	if ring := j.ring.Load(); ring != nil {
		t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		t.Header["kid"] = ring.signer.kid
		token, err = t.SignedString(ring.signer.priv)
	} else {
		token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(j.secret)
	}
	if err != nil {
		return "", ports.AccessClaims{}, fmt.Errorf("jwtauth: sign: %w", err)
	}
	return token, ports.AccessClaims{
		UserID: userID, TokenVersion: tokenVersion, ID: jti, IssuedAt: iat, ExpiresAt: exp,
		Issuer: j.issuer, Audience: j.audience,
	}, nil
}

// VerifyAccess checks token's signature (EdDSA by a key of the ring, found
// by kid, or HS256 with the secret; each only when configured), issuer, audience and
// times at now, within Leeway, and that sub, ver, jti and iat are present
// and well formed. Every failure is domain.ErrUnauthenticated wrapping one of
// golang-jwt's sentinel errors as the cause (so errors.Is tells why), never
// the library's own text, which can quote parts of the token.
func (j *JWT) VerifyAccess(token string, now time.Time) (ports.AccessClaims, error) {
	if len(token) > maxTokenLen {
		return ports.AccessClaims{}, unauthenticated(fmt.Errorf("%w: longer than %d bytes", jwt.ErrTokenMalformed, maxTokenLen))
	}
	ring := j.ring.Load()
	if c, ok := j.verified.lookup(token, ring, now); ok {
		return c, nil
	}
	var methods []string
	if ring != nil {
		methods = append(methods, algEdDSA)
	}
	if j.secret != nil {
		methods = append(methods, algHS256)
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods(methods),
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
	j.verified.remember(token, ring, out, now)
	return out, nil
}

// key hands the parser the key for t's algorithm. WithValidMethods already
// refuses other algorithms; choosing the key by the method's identity here
// too means a key of one kind can never be used for another algorithm (an
// HMAC "signed" with the public key, the classic confusion) even if that
// option were lost in a refactor. An EdDSA token names its key by kid; an
// unknown or removed kid is refused, never tried against the other keys.
func (j *JWT) key(t *jwt.Token) (any, error) {
	switch t.Method {
	case jwt.SigningMethodEdDSA:
		ring := j.ring.Load()
		if ring == nil {
			break
		}
		kid, _ := t.Header["kid"].(string)
		if pub, ok := ring.byKID[kid]; ok {
			return pub, nil
		}
		return nil, errors.New("unknown key id")
	case jwt.SigningMethodHS256:
		if j.secret != nil {
			return j.secret, nil
		}
	}
	return nil, errors.New("unexpected signing method")
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
		// The parser held them equal to these.
		Issuer:   j.issuer,
		Audience: j.audience,
	}, nil
}

// Reload re-reads the keys directory: a new file signs from now on if its
// name sorts last, a removed one stops verifying at once. A file that cannot
// be used is logged and skipped, and the others still load; a directory
// left with no usable key (or that cannot be read) changes nothing, so a bad
// edit never stops the service from issuing tokens. Without KeysDir it does
// nothing. Errors are logged here as well as returned.
func (j *JWT) Reload() error {
	if j.keysDir == "" {
		return nil
	}
	j.reloadMu.Lock()
	defer j.reloadMu.Unlock()
	keys, problems := readKeysDir(j.keysDir)
	for _, p := range problems {
		j.log.Warn("skipping a JWT key file that cannot be used", "error", p)
	}
	if len(keys) == 0 {
		err := fmt.Errorf("jwtauth: no usable key in %s; the keys in force stay", j.keysDir)
		j.log.Error("reloading the JWT keys", "error", err)
		return err
	}
	next := newRing(keys)
	if next.same(j.ring.Load()) {
		return errors.Join(problems...)
	}
	j.ring.Store(next)
	j.log.Info("JWT keys reloaded", "signing_kid", next.signer.kid, "signing_file", next.signer.file, "kids", next.kids())
	return errors.Join(problems...)
}

// PublicKeys returns the public half of every key that verifies, the
// signing key first: the JWK Set other services verify tokens with. HS256
// has no public half, so a service signing with a secret publishes none.
func (j *JWT) PublicKeys() []ports.JWK {
	ring := j.ring.Load()
	if ring == nil {
		return []ports.JWK{}
	}
	out := make([]ports.JWK, len(ring.all))
	for i, k := range ring.all {
		out[i] = k.jwk()
	}
	return out
}

// DeriveKey makes a 32-byte key for purpose (HMAC-SHA256 of purpose) from
// the secret when there is one, which keeps what was derived before keys
// existed, else from the oldest signing key New read: every instance
// started on the same keys derives the same key, and a derived key leaks
// nothing of the key it came from.
func (j *JWT) DeriveKey(purpose string) []byte {
	m := hmac.New(sha256.New, j.root)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// SigningKeyID is the kid new tokens carry; empty when HS256 signs.
func (j *JWT) SigningKeyID() string {
	if ring := j.ring.Load(); ring != nil {
		return ring.signer.kid
	}
	return ""
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
