package jwtauth_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/userservice/userservice/adapters/jwtauth"
	"github.com/userservice/userservice/domain"
)

// rfc8037Key is the Ed25519 key of RFC 8037 Appendix A.1, whose RFC 7638
// thumbprint Appendix A.3 gives.
func rfc8037Key(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	d, err := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(d)
}

const (
	rfc8037X   = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	rfc8037KID = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func pemOf(t testing.TB, priv any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func writeKey(t testing.TB, dir, name string, priv ed25519.PrivateKey) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), pemOf(t, priv), 0o600); err != nil {
		t.Fatal(err)
	}
}

func kidOf(t testing.TB, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	if tok.Header["alg"] == "EdDSA" && kid == "" {
		t.Fatalf("an EdDSA token without kid: %v", tok.Header)
	}
	return kid
}

func issue(t testing.TB, j *jwtauth.JWT) string {
	t.Helper()
	s, _, err := j.IssueAccess(42, 3, now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestKidIsTheRFC7638Thumbprint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeKey(t, dir, "a.pem", rfc8037Key(t))
	j := newJWT(t, jwtauth.Config{KeysDir: dir, Secret: []byte{}})
	keys := j.PublicKeys()
	if len(keys) != 1 || keys[0].KeyID != rfc8037KID || keys[0].X != rfc8037X || keys[0].KeyType != "OKP" ||
		keys[0].Curve != "Ed25519" || keys[0].Algorithm != "EdDSA" || keys[0].Use != "sig" {
		t.Fatalf("JWKS %+v, want RFC 8037's key with kid %s", keys, rfc8037KID)
	}
	token := issue(t, j)
	if kid := kidOf(t, token); kid != rfc8037KID || j.SigningKeyID() != rfc8037KID {
		t.Errorf("token kid %q, signing kid %q, want %q", kid, j.SigningKeyID(), rfc8037KID)
	}
	c, err := j.VerifyAccess(token, now)
	if err != nil || c.UserID != 42 || c.Issuer != "userservice" || c.Audience != "userservice" {
		t.Fatalf("round trip: %+v %v", c, err)
	}
	// Anyone holding only the public key verifies it, as another service would.
	pub := rfc8037Key(t).Public()
	if _, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return pub, nil }, jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithTimeFunc(func() time.Time { return now })); err != nil {
		t.Errorf("the public key does not verify the token: %v", err)
	}
}

func TestNewestKeySignsAllVerifyAndReloadRotates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old, next := newKey(t), newKey(t)
	writeKey(t, dir, "2026-01-01.pem", old)
	os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not a key"), 0o644)
	j := newJWT(t, jwtauth.Config{KeysDir: dir, Secret: []byte{}})
	oldToken := issue(t, j)
	oldKID := kidOf(t, oldToken)

	// A file whose name sorts last signs from the next reload on.
	writeKey(t, dir, "2026-02-01.pem", next)
	if err := j.Reload(); err != nil {
		t.Fatal(err)
	}
	newToken := issue(t, j)
	if kidOf(t, newToken) == oldKID {
		t.Fatal("the newest key does not sign after a reload")
	}
	if keys := j.PublicKeys(); len(keys) != 2 || keys[0].KeyID != kidOf(t, newToken) || keys[1].KeyID != oldKID {
		t.Errorf("JWKS during the rotation %+v: want the new key, then the old", keys)
	}
	for _, tok := range []string{oldToken, newToken} {
		if _, err := j.VerifyAccess(tok, now); err != nil {
			t.Errorf("during the rotation a token is refused: %v", err)
		}
	}

	// Removing the old file ends its tokens.
	os.Remove(filepath.Join(dir, "2026-01-01.pem"))
	if err := j.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := j.VerifyAccess(oldToken, now); !errors.Is(err, jwt.ErrTokenUnverifiable) || !errors.Is(err, domain.ErrUnauthenticated) {
		t.Errorf("a token of a removed key: %v, want unverifiable", err)
	}
	if _, err := j.VerifyAccess(newToken, now); err != nil {
		t.Errorf("the remaining key's token: %v", err)
	}

	// A bad file is skipped; an empty directory keeps the keys in force.
	os.WriteFile(filepath.Join(dir, "2026-03-01.pem"), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	if err := j.Reload(); err == nil || !strings.Contains(err.Error(), "2026-03-01.pem") {
		t.Errorf("a bad file: %v, want an error naming it", err)
	}
	if kidOf(t, issue(t, j)) != kidOf(t, newToken) {
		t.Error("a bad file changed the signing key")
	}
	os.Remove(filepath.Join(dir, "2026-02-01.pem"))
	os.Remove(filepath.Join(dir, "2026-03-01.pem"))
	if err := j.Reload(); err == nil {
		t.Error("a directory with no key reloaded")
	}
	if _, err := j.VerifyAccess(newToken, now); err != nil {
		t.Errorf("an emptied directory dropped the keys in force: %v", err)
	}
}

func TestAlgorithmsArePinned(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	priv := newKey(t)
	writeKey(t, dir, "k.pem", priv)
	pub := priv.Public().(ed25519.PublicKey)
	keysOnly := newJWT(t, jwtauth.Config{KeysDir: dir, Secret: []byte{}})
	both := newJWT(t, jwtauth.Config{KeysDir: dir})
	secretOnly := newJWT(t, jwtauth.Config{})
	kid := keysOnly.SigningKeyID()
	base := baseClaims()
	signed := func(m jwt.SigningMethod, key any, header map[string]any) string {
		tok := jwt.NewWithClaims(m, jwt.MapClaims(base))
		for k, v := range header {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		j     *jwtauth.JWT
		token string
		ok    bool
	}{
		{"EdDSA, the service's key", keysOnly, signed(jwt.SigningMethodEdDSA, priv, map[string]any{"kid": kid}), true},
		{"EdDSA, no kid", keysOnly, signed(jwt.SigningMethodEdDSA, priv, nil), false},
		{"EdDSA, an unknown key under the service's kid", keysOnly, signed(jwt.SigningMethodEdDSA, newKey(t), map[string]any{"kid": kid}), false},
		{"EdDSA, an unknown key and kid", keysOnly, signed(jwt.SigningMethodEdDSA, newKey(t), map[string]any{"kid": "other"}), false},
		{"HS256 with the public key bytes, keys only", keysOnly, signed(jwt.SigningMethodHS256, []byte(pub), map[string]any{"kid": kid}), false},
		{"HS256 with the public key bytes, keys and secret", both, signed(jwt.SigningMethodHS256, []byte(pub), map[string]any{"kid": kid}), false},
		{"HS256 with the PEM of the public key", both, signed(jwt.SigningMethodHS256, pemPublic(t, pub), nil), false},
		{"HS256 with the secret, keys only", keysOnly, signed(jwt.SigningMethodHS256, secret, nil), false},
		{"HS256 with the secret, keys and secret (tokens from before the move)", both, signed(jwt.SigningMethodHS256, secret, nil), true},
		{"EdDSA to a secret-only service", secretOnly, signed(jwt.SigningMethodEdDSA, priv, map[string]any{"kid": kid}), false},
		{"alg none", both, signed(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil), false},
	} {
		_, err := tc.j.VerifyAccess(tc.token, now)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want accepted %v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, domain.ErrUnauthenticated) {
			t.Errorf("%s: %v is not ErrUnauthenticated", tc.name, err)
		}
	}
	if kidOf(t, issue(t, both)) != kid || kidOf(t, issue(t, secretOnly)) != "" {
		t.Error("with keys the key signs; without, the secret")
	}
	if len(secretOnly.PublicKeys()) != 0 {
		t.Error("a secret-only service publishes keys")
	}
}

func pemPublic(t testing.TB, pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestKeyFilesThatCannotBeUsed(t *testing.T) {
	t.Parallel()
	_, rsaLike, _ := ed25519.GenerateKey(rand.Reader)
	ecKey := pemOf(t, mustEC(t))
	for name, content := range map[string][]byte{
		"not PEM":       []byte("hello"),
		"a public key":  pemPublic(t, rsaLike.Public().(ed25519.PublicKey)),
		"an ECDSA key":  ecKey,
		"two keys":      append(pemOf(t, newKey(t)), pemOf(t, newKey(t))...),
		"broken PKCS#8": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("nonsense")}),
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "k.pem"), content, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := jwtauth.New(jwtauth.Config{KeysDir: dir})
		if err == nil || !strings.Contains(err.Error(), "k.pem") {
			t.Errorf("%s: New = %v, want an error naming the file", name, err)
		} else if bytes.Contains([]byte(err.Error()), content) || strings.Contains(err.Error(), "BEGIN") {
			t.Errorf("%s: the error quotes the file: %v", name, err)
		}
	}
	if _, err := jwtauth.New(jwtauth.Config{KeysDir: t.TempDir()}); err == nil {
		t.Error("an empty keys directory is accepted")
	}
	if _, err := jwtauth.New(jwtauth.Config{KeysDir: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("a missing keys directory is accepted")
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "userservice.db.jwt-key.pem")
	created, err := jwtauth.LoadOrCreateKeyFile(path)
	if err != nil || !created {
		t.Fatalf("first call: created %v, %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", st.Mode(), err)
	}
	first := newJWT(t, jwtauth.Config{KeyFile: path, Secret: []byte{}})
	token := issue(t, first)
	created, err = jwtauth.LoadOrCreateKeyFile(path)
	if err != nil || created {
		t.Fatalf("second call: created %v, %v", created, err)
	}
	// A restart reads the same key: tokens survive it.
	second := newJWT(t, jwtauth.Config{KeyFile: path, Secret: []byte{}})
	if _, err := second.VerifyAccess(token, now); err != nil {
		t.Errorf("a token does not survive a restart: %v", err)
	}
	if !bytes.Equal(first.DeriveKey("p"), second.DeriveKey("p")) || bytes.Equal(first.DeriveKey("p"), first.DeriveKey("q")) {
		t.Error("derived keys are not stable per purpose")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestDeriveKeyKeepsTheSecretsDerivation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeKey(t, dir, "k.pem", newKey(t))
	// With a secret, what was derived before keys existed stays the same.
	if !bytes.Equal(newJWT(t, jwtauth.Config{}).DeriveKey("p"), newJWT(t, jwtauth.Config{KeysDir: dir}).DeriveKey("p")) {
		t.Error("adding keys changed the derived key")
	}
}

func mustEC(t testing.TB) any {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
