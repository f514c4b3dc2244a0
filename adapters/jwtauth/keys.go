package jwtauth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/userservice/userservice/ports"
)

// KeyFileSuffix is the ending of the files read from a keys directory; other
// files (a README, an editor's backup, Kubernetes' ..data links) are ignored.
const KeyFileSuffix = ".pem"

// signingKey is one Ed25519 key pair and its key id.
type signingKey struct {
	kid  string
	file string // the file it came from, for log lines; never its contents
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

// keyRing is the keys in force: the newest signs, all verify. It is never
// changed once built; a reload swaps in a new ring.
type keyRing struct {
	signer *signingKey
	all    []*signingKey // newest first
	byKID  map[string]ed25519.PublicKey
}

func newRing(keys []*signingKey) *keyRing {
	r := &keyRing{all: keys, byKID: make(map[string]ed25519.PublicKey, len(keys))}
	if len(keys) > 0 {
		r.signer = keys[0]
	}
	for _, k := range keys {
		r.byKID[k.kid] = k.pub
	}
	return r
}

// kids lists the ring's key ids, newest first, for log lines.
func (r *keyRing) kids() []string {
	out := make([]string, len(r.all))
	for i, k := range r.all {
		out[i] = k.kid
	}
	return out
}

func (r *keyRing) same(o *keyRing) bool {
	return o != nil && slices.Equal(r.kids(), o.kids())
}

// thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key: the
// SHA-256 of its required members in lexicographic order, base64url. It is
// the key id, so every instance names a key alike without configuration.
func thumbprint(pub ed25519.PublicKey) string {
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func keyOf(priv ed25519.PrivateKey, file string) *signingKey {
	pub := priv.Public().(ed25519.PublicKey)
	return &signingKey{kid: thumbprint(pub), file: file, priv: priv, pub: pub}
}

// parseKeyFile reads one PEM file holding a PKCS#8 Ed25519 private key. Its
// errors name the file and what is wrong, never its contents.
func parseKeyFile(path string) (*signingKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, pathErr(err))
	}
	block, rest := pem.Decode(data)
	switch {
	case block == nil:
		return nil, fmt.Errorf("%s holds no PEM block", path)
	case block.Type != "PRIVATE KEY":
		return nil, fmt.Errorf("%s: want a PKCS#8 \"PRIVATE KEY\" PEM block, got %q", path, block.Type)
	case len(strings.TrimSpace(string(rest))) > 0:
		return nil, fmt.Errorf("%s holds more than one PEM block; want one key per file", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		// x509's text describes the structure, never the key material.
		return nil, fmt.Errorf("%s is not a PKCS#8 private key: %w", path, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s holds a %T, want an Ed25519 key (openssl genpkey -algorithm ed25519)", path, key)
	}
	return keyOf(priv, path), nil
}

// readKeysDir reads every *.pem file of dir (hidden files skipped, symlinks
// followed, as Kubernetes mounts secrets). The newest key is the one whose
// file name sorts last in byte order: name files by date
// (2026-12-06.pem) and the latest signs. It returns the keys it could read,
// newest first, and one error per file it could not; an unreadable
// directory is an error with no keys. Two files holding one key count once.
func readKeysDir(dir string) ([]*signingKey, []error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{fmt.Errorf("reading the keys directory %s: %w", dir, pathErr(err))}
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, KeyFileSuffix) {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	slices.Reverse(names)
	var keys []*signingKey
	var problems []error
	seen := map[string]bool{}
	for _, name := range names {
		path := filepath.Join(dir, name)
		if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
			continue // a directory or a dangling link named *.pem is not a key
		}
		k, err := parseKeyFile(path)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if !seen[k.kid] {
			seen[k.kid] = true
			keys = append(keys, k)
		}
	}
	return keys, problems
}

// LoadOrCreateKeyFile reads the Ed25519 key at path, or, when there is no
// file there, generates one and writes it (PKCS#8 PEM, mode 0600) so the
// next start signs with the same key. Two processes starting at once end up
// with the same key: the file is written aside and linked into place, which
// fails when the other got there first, and then its key is read.
func LoadOrCreateKeyFile(path string) (created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		_, err := parseKeyFile(path)
		return false, err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("reading %s: %w", path, pathErr(err))
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return false, fmt.Errorf("generating a signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return false, fmt.Errorf("encoding the signing key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return false, fmt.Errorf("writing the signing key beside %s: %w", path, pathErr(err))
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600: the key is never readable by others.
	werr := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return false, fmt.Errorf("writing the signing key beside %s: %w", path, pathErr(werr))
	}
	switch err := os.Link(tmp.Name(), path); {
	case err == nil:
		created = true
	case !errors.Is(err, fs.ErrExist):
		return false, fmt.Errorf("writing the signing key %s: %w", path, pathErr(err))
	}
	_, err = parseKeyFile(path)
	return created, err
}

// jwk is the public JWK of k (RFC 8037 §2): never a private member.
func (k *signingKey) jwk() ports.JWK {
	return ports.JWK{
		KeyType:   "OKP",
		Curve:     "Ed25519",
		X:         base64.RawURLEncoding.EncodeToString(k.pub),
		KeyID:     k.kid,
		Algorithm: "EdDSA",
		Use:       "sig",
	}
}

// pathErr drops the path and operation from a file error, which the
// callers' own messages name.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
