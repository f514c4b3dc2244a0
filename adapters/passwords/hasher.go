// Package passwords is the ports.PasswordHasher of the service: it hashes with
// argon2id and verifies both argon2id and the bcrypt hashes of users imported
// from the FastAPI service, so they keep their passwords and are moved to
// argon2id at their next login (needsRehash).
package passwords

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/userservice/userservice/ports"
)

// ErrMalformedHash is returned (wrapped) by Verify for a stored hash that is
// neither a usable argon2id PHC string nor a bcrypt hash. Its text never
// contains the hash or the password.
var ErrMalformedHash = errors.New("passwords: malformed hash")

// Params are the argon2id parameters new hashes are made with.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams are OWASP's argon2id recommendation (19 MiB, 2 passes, one
// lane): about 40 ms of one core here.
func DefaultParams() Params {
	return Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Bounds on the hashes Verify accepts. Stored hashes come from this service or
// from a CSV import; without bounds a single row saying m=4194304 or bcrypt
// cost 31 would take gigabytes or days per login attempt. The bounds leave
// room for every common library default (argon2-cffi and passlib use 64 MiB,
// bcrypt deployments 10-14).
const (
	maxArgonMemory  = 256 * 1024 // KiB
	maxArgonTime    = 16
	maxArgonThreads = 64
	minSaltLen      = 8 // the argon2 specification's minimum
	maxSaltLen      = 64
	minKeyLen       = 16
	maxKeyLen       = 64
	maxBcryptCost   = 16 // ≈ 4.7 s here; real deployments use 10-14
	// maxHashLen is far above the longest hash the bounds above allow, and
	// stops absurd inputs before any splitting or decoding.
	maxHashLen = 512
)

// limits holds the bounds above; tests (the fuzz target) lower them so that
// random parameters stay cheap.
type limits struct {
	memory, time uint32
	threads      uint8
	bcryptCost   int
}

func defaultLimits() limits {
	return limits{memory: maxArgonMemory, time: maxArgonTime, threads: maxArgonThreads, bcryptCost: maxBcryptCost}
}

// Hasher hashes with argon2id and verifies argon2id and bcrypt. It is safe for
// concurrent use; at most GOMAXPROCS hashes run at once, because one hash
// costs as much CPU as hundreds of database reads and a burst of logins must
// not starve everything else (it also caps memory at GOMAXPROCS × Memory).
type Hasher struct {
	params Params
	limits limits
	sem    chan struct{}
}

var (
	_ ports.PasswordHasher      = (*Hasher)(nil)
	_ ports.PasswordHashFormats = (*Hasher)(nil)
)

// NewArgon2id returns a Hasher making hashes with p. It panics when p is not
// usable (zero passes or threads, a salt or key too short, or parameters this
// package would refuse to verify): p is a programming constant, not input.
func NewArgon2id(p Params) *Hasher {
	lim := defaultLimits()
	if err := checkParams(p, lim); err != nil {
		panic(fmt.Sprintf("passwords.NewArgon2id: %v", err))
	}
	return &Hasher{params: p, limits: lim, sem: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

// Hash returns the argon2id PHC string of password with a fresh random salt:
// $argon2id$v=19$m=...,t=...,p=...$<salt>$<key>.
func (h *Hasher) Hash(password string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	// Since Go 1.24 crypto/rand.Read never returns an error (it crashes the
	// program instead), so there is nothing to check.
	_, _ = rand.Read(salt)

	var key []byte
	h.bounded(func() {
		key = argon2.IDKey([]byte(password), salt, h.params.Time, h.params.Memory, h.params.Threads, h.params.KeyLen)
	})
	return formatPHC(h.params, salt, key), nil
}

// bounded runs f, the expensive part, holding one of the semaphore's slots.
func (h *Hasher) bounded(f func()) {
	h.sem <- struct{}{}
	defer func() { <-h.sem }()
	f()
}

// Verify reports whether password matches hash (argon2id PHC or bcrypt $2a$,
// $2b$, $2y$). needsRehash is true only when ok is true and the hash is bcrypt
// or argon2id with other parameters than the current ones, so the caller can
// replace it while it has the password in hand. A hash that is malformed or
// out of bounds gives an error wrapping ErrMalformedHash.
func (h *Hasher) Verify(hash, password string) (ok, needsRehash bool, err error) {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		return h.verifyArgon2id(hash, password)
	case strings.HasPrefix(hash, "$2"):
		return h.verifyBcrypt(hash, password)
	case hash == "":
		return false, false, fmt.Errorf("%w: empty", ErrMalformedHash)
	default:
		return false, false, fmt.Errorf("%w: unknown algorithm", ErrMalformedHash)
	}
}

func (h *Hasher) verifyArgon2id(hash, password string) (ok, needsRehash bool, err error) {
	ph, err := parseArgon2id(hash, h.limits)
	if err != nil {
		return false, false, err
	}
	var key []byte
	h.bounded(func() {
		key = argon2.IDKey([]byte(password), ph.salt, ph.params.Time, ph.params.Memory, ph.params.Threads, ph.params.KeyLen)
	})
	if subtle.ConstantTimeCompare(key, ph.key) != 1 {
		return false, false, nil
	}
	return true, ph.params != h.params, nil
}

func (h *Hasher) verifyBcrypt(hash, password string) (ok, needsRehash bool, err error) {
	if err := checkBcrypt(hash, h.limits); err != nil {
		return false, false, err
	}
	// No prefix normalisation is needed: x/crypto/bcrypt keeps whatever minor
	// letter it reads ($2y$ is PHP's name for the fixed $2a$, same algorithm)
	// and re-encodes both sides with it before comparing in constant time.
	h.bounded(func() { err = bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) })
	switch {
	case err == nil:
		return true, true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, false, nil
	default:
		// checkBcrypt has vetted the syntax, so this is not expected; the
		// library's own text could quote a byte of the hash, so it is dropped.
		return false, false, fmt.Errorf("%w: bcrypt rejected it", ErrMalformedHash)
	}
}

// IsSupportedHash reports whether s is a hash Verify accepts: an argon2id PHC
// string or a bcrypt $2a$/$2b$/$2y$ hash, within this package's bounds. It is
// a syntactic check (no hashing), for vetting imported password_hash values.
func IsSupportedHash(s string) bool {
	return isSupported(s, defaultLimits())
}

// Supports is IsSupportedHash within h's bounds: the formats Verify reads,
// for vetting imported password_hash values before they are stored.
func (h *Hasher) Supports(hash string) bool {
	return isSupported(hash, h.limits)
}

func isSupported(s string, lim limits) bool {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		_, err := parseArgon2id(s, lim)
		return err == nil
	case strings.HasPrefix(s, "$2"):
		return checkBcrypt(s, lim) == nil
	default:
		return false
	}
}

// phc is a parsed argon2id PHC string; params.SaltLen and KeyLen are the
// decoded lengths, so comparing params with the current ones covers them too.
type phc struct {
	params Params
	salt   []byte
	key    []byte
}

func formatPHC(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// parseArgon2id reads $argon2id$v=19$m=M,t=T,p=P$salt$key, the layout of the
// reference implementation, argon2-cffi and passlib. Only version 19 is
// accepted: it is the only one x/crypto/argon2 computes.
func parseArgon2id(s string, lim limits) (phc, error) {
	if len(s) > maxHashLen {
		return phc{}, fmt.Errorf("%w: too long", ErrMalformedHash)
	}
	fields := strings.Split(s, "$")
	if len(fields) != 6 || fields[0] != "" || fields[1] != "argon2id" {
		return phc{}, fmt.Errorf("%w: argon2id: wrong number of fields", ErrMalformedHash)
	}
	if fields[2] != "v="+strconv.Itoa(argon2.Version) {
		return phc{}, fmt.Errorf("%w: argon2id: unsupported version", ErrMalformedHash)
	}
	kv := strings.Split(fields[3], ",")
	if len(kv) != 3 {
		return phc{}, fmt.Errorf("%w: argon2id: want parameters m, t and p", ErrMalformedHash)
	}
	var out phc
	m, err1 := param(kv[0], "m=", 32)
	t, err2 := param(kv[1], "t=", 32)
	p, err3 := param(kv[2], "p=", 8)
	if err := errors.Join(err1, err2, err3); err != nil {
		return phc{}, fmt.Errorf("%w: argon2id: %w", ErrMalformedHash, err)
	}
	out.params.Memory, out.params.Time, out.params.Threads = uint32(m), uint32(t), uint8(p)

	var err error
	if out.salt, err = base64.RawStdEncoding.DecodeString(fields[4]); err != nil {
		return phc{}, fmt.Errorf("%w: argon2id: salt is not base64", ErrMalformedHash)
	}
	if out.key, err = base64.RawStdEncoding.DecodeString(fields[5]); err != nil {
		return phc{}, fmt.Errorf("%w: argon2id: key is not base64", ErrMalformedHash)
	}
	out.params.SaltLen, out.params.KeyLen = uint32(len(out.salt)), uint32(len(out.key))
	if err := checkParams(out.params, lim); err != nil {
		return phc{}, fmt.Errorf("%w: argon2id: %w", ErrMalformedHash, err)
	}
	return out, nil
}

// param reads one "name=decimal" PHC parameter.
func param(s, prefix string, bits int) (uint64, error) {
	digits, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return 0, fmt.Errorf("want parameter %q", strings.TrimSuffix(prefix, "="))
	}
	n, err := strconv.ParseUint(digits, 10, bits)
	if err != nil {
		// Not wrapped: strconv's error quotes the input.
		return 0, fmt.Errorf("parameter %q is not a number in range", strings.TrimSuffix(prefix, "="))
	}
	return n, nil
}

// checkParams rejects parameters argon2 would panic on, that deviate from the
// specification, or that exceed lim.
func checkParams(p Params, lim limits) error {
	switch {
	case p.Time < 1 || p.Time > lim.time:
		return fmt.Errorf("t=%d out of range 1..%d", p.Time, lim.time)
	case p.Threads < 1 || p.Threads > lim.threads:
		return fmt.Errorf("p=%d out of range 1..%d", p.Threads, lim.threads)
	// argon2 silently raises memory below 8 KiB per lane, which would give a
	// key no other implementation agrees with.
	case p.Memory < 8*uint32(p.Threads) || p.Memory > lim.memory:
		return fmt.Errorf("m=%d out of range %d..%d", p.Memory, 8*uint32(p.Threads), lim.memory)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt of %d bytes out of range %d..%d", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key of %d bytes out of range %d..%d", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// bcryptAlphabet is bcrypt's own base64 alphabet.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// checkBcrypt vets $2a$/$2b$/$2y$, a two-digit cost, '$', then 22 characters
// of salt and 31 of hash. The library is laxer (any minor letter, any length
// of 59 or more), so the syntax is enforced here. $2x$ (crypt_blowfish's
// buggy variant) and the original $2$ are refused: the library does not
// reproduce them.
func checkBcrypt(s string, lim limits) error {
	if len(s) != 60 || s[0] != '$' || s[1] != '2' || s[3] != '$' || s[6] != '$' {
		return fmt.Errorf("%w: bcrypt: bad layout", ErrMalformedHash)
	}
	if s[2] != 'a' && s[2] != 'b' && s[2] != 'y' {
		return fmt.Errorf("%w: bcrypt: unsupported variant", ErrMalformedHash)
	}
	if s[4] < '0' || s[4] > '9' || s[5] < '0' || s[5] > '9' {
		return fmt.Errorf("%w: bcrypt: cost is not a number", ErrMalformedHash)
	}
	if cost := int(s[4]-'0')*10 + int(s[5]-'0'); cost < bcrypt.MinCost || cost > lim.bcryptCost {
		return fmt.Errorf("%w: bcrypt: cost %d out of range %d..%d", ErrMalformedHash, cost, bcrypt.MinCost, lim.bcryptCost)
	}
	for i := 7; i < len(s); i++ {
		if strings.IndexByte(bcryptAlphabet, s[i]) < 0 {
			return fmt.Errorf("%w: bcrypt: bad character", ErrMalformedHash)
		}
	}
	return nil
}
