package application

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// AuthConfig holds the token lifetimes, and the cache of token states.
type AuthConfig struct {
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	// States, when not nil, answers token checks from memory; without it
	// every check reads the caller's row.
	States *TokenStates
}

// Auth implements sign-up, login, token refresh, logout and authentication.
type Auth struct {
	repo       ports.UserRepository
	hasher     ports.PasswordHasher
	clock      ports.Clock
	tokens     ports.TokenIssuer
	verifier   ports.TokenVerifier
	refresh    ports.RefreshTokenStore
	states     *TokenStates
	throttle   ports.LoginThrottle
	authz      ports.Authorizer
	log        *slog.Logger
	accessTTL  time.Duration
	refreshTTL time.Duration
	// dummyHash is verified against when a login names no usable account
	// and no account has a password yet, so it costs what a real check
	// costs and timing does not tell whether an email is registered.
	dummyHash string
	// standIns chooses, once accounts have passwords, one of their hashes
	// instead, in the proportions of the stored hashes' costs.
	standIns *standIns
}

var _ ports.AuthService = (*Auth)(nil)

// NewAuth returns the authentication use cases. It hashes a random password
// once, for dummyHash. Non-positive lifetimes, or a hasher that cannot hash,
// are wiring mistakes and panic.
func NewAuth(deps Deps, cfg AuthConfig) *Auth {
	if cfg.AccessTTL <= 0 || cfg.RefreshTTL <= 0 {
		panic("application.NewAuth: AccessTTL and RefreshTTL must be positive")
	}
	dummy, err := deps.Hasher.Hash(rand.Text())
	if err != nil {
		panic(fmt.Sprintf("application.NewAuth: hashing the dummy password: %v", err))
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Auth{
		repo:       deps.Repo,
		hasher:     deps.Hasher,
		clock:      deps.Clock,
		tokens:     deps.Tokens,
		verifier:   deps.Verifier,
		refresh:    deps.Refresh,
		states:     cfg.States,
		throttle:   throttleOf(deps),
		authz:      deps.Authz,
		log:        log,
		accessTTL:  cfg.AccessTTL,
		refreshTTL: cfg.RefreshTTL,
		dummyHash:  dummy,
		standIns:   newStandIns(deps, log, dummy),
	}
}

// refreshTokenLen is the random part of a refresh token, in bytes.
const refreshTokenLen = 32

// newRefreshToken makes a refresh token and the hash that is stored instead
// of it. The token carries the user's token version ahead of its random
// bytes: a password or role change bumps the version, and a refresh token
// issued before it is then refused, so such a change ends refresh sessions as
// it ends access tokens. The version cannot be edited: the stored hash covers
// the whole token.
func newRefreshToken(tokenVersion int64) (token, hash string) {
	b := binary.AppendVarint(nil, tokenVersion)
	random := make([]byte, refreshTokenLen)
	rand.Read(random) // never fails: the runtime crashes if the OS cannot supply randomness
	token = base64.RawURLEncoding.EncodeToString(append(b, random...))
	return token, hashRefreshToken(token)
}

// refreshTokenVersion reads the token version a refresh token was issued
// under; ok is false when the token is not of newRefreshToken's shape.
func refreshTokenVersion(token string) (version int64, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, false
	}
	v, n := binary.Varint(b)
	if n <= 0 || len(b)-n != refreshTokenLen {
		return 0, false
	}
	return v, true
}

// hashRefreshToken is what the store keeps: hex SHA-256. The token is 256
// random bits, so a fast hash is enough; a leaked table yields no tokens.
func hashRefreshToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// newFamilyID names the tokens rotated from one login.
func newFamilyID() string {
	return rand.Text()
}

// issueAccess signs an access token for u's current token version.
func (a *Auth) issueAccess(u *domain.User, now time.Time) (string, error) {
	token, _, err := a.tokens.IssueAccess(u.ID(), u.TokenVersion(), now)
	if err != nil {
		return "", fmt.Errorf("issue access token: %w", err)
	}
	return token, nil
}

func (a *Auth) expiresIn() int64 { return int64(a.accessTTL / time.Second) }
