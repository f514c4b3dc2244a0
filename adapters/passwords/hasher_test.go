package passwords

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// cheap keeps unit tests fast; the format and code paths are those of the
// default parameters.
func cheap() Params { return Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32} }

// Published vectors from other implementations: they prove the PHC and bcrypt
// handling agrees with what the FastAPI service (passlib, argon2-cffi, PHP
// style $2y$) may have stored.
const (
	// argon2-cffi's README: PasswordHasher().hash("correct horse battery staple").
	cffiHash     = "$argon2id$v=19$m=65536,t=3,p=4$MIIRqgvgQbgj220jfp0MPA$YfwJSVjtjSU0zzV/P3S9nnQ/USre2wvJMjfCIjrTQbg"
	cffiPassword = "correct horse battery staple"
	// PHP manual, password_verify: password_hash("rasmuslerdorf", PASSWORD_DEFAULT).
	phpHash     = "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"
	phpPassword = "rasmuslerdorf"
)

var phcPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$`)

func TestHashDefaultFormat(t *testing.T) {
	t.Parallel()
	h := NewArgon2id(DefaultParams())
	hash, err := h.Hash("s3cret-passw0rd")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not carry the OWASP parameters", hash)
	}
	m := phcPattern.FindStringSubmatch(hash)
	if m == nil {
		t.Fatalf("hash %q is not a PHC string with unpadded base64", hash)
	}
	salt, err := base64.RawStdEncoding.DecodeString(m[4])
	if err != nil || len(salt) != 16 {
		t.Errorf("salt: %d bytes, err %v; want 16", len(salt), err)
	}
	key, err := base64.RawStdEncoding.DecodeString(m[5])
	if err != nil || len(key) != 32 {
		t.Errorf("key: %d bytes, err %v; want 32", len(key), err)
	}
	ok, rehash, err := h.Verify(hash, "s3cret-passw0rd")
	if !ok || rehash || err != nil {
		t.Errorf("Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

func TestRoundTripAndWrongPassword(t *testing.T) {
	t.Parallel()
	h := NewArgon2id(cheap())
	for _, pw := range []string{"correct horse", "Zoë's pässwörd ✓", strings.Repeat("x", 128), ""} {
		hash, err := h.Hash(pw)
		if err != nil {
			t.Fatal(err)
		}
		if !IsSupportedHash(hash) {
			t.Errorf("IsSupportedHash(own hash) = false")
		}
		if ok, rehash, err := h.Verify(hash, pw); !ok || rehash || err != nil {
			t.Errorf("Verify(right password %q) = %v, %v, %v; want true, false, nil", pw, ok, rehash, err)
		}
		for _, wrong := range []string{pw + "x", strings.ToUpper(pw) + "!", "x" + pw} {
			if ok, rehash, err := h.Verify(hash, wrong); ok || rehash || err != nil {
				t.Errorf("Verify(wrong password %q) = %v, %v, %v; want false, false, nil", wrong, ok, rehash, err)
			}
		}
	}
}

func TestSaltIsRandom(t *testing.T) {
	t.Parallel()
	h := NewArgon2id(cheap())
	a, _ := h.Hash("same")
	b, _ := h.Hash("same")
	if a == b {
		t.Fatalf("two hashes of one password are equal: the salt is not random")
	}
}

func TestArgon2idFromArgon2Cffi(t *testing.T) {
	t.Parallel()
	h := NewArgon2id(cheap())
	ok, rehash, err := h.Verify(cffiHash, cffiPassword)
	if !ok || !rehash || err != nil {
		t.Fatalf("Verify(argon2-cffi vector) = %v, %v, %v; want true, true (other params), nil", ok, rehash, err)
	}
	if ok, _, err := h.Verify(cffiHash, "Tr0ub4dor&3"); ok || err != nil {
		t.Fatalf("Verify(argon2-cffi vector, wrong password) = %v, %v; want false, nil", ok, err)
	}
}

func TestBcrypt(t *testing.T) {
	t.Parallel()
	h := NewArgon2id(cheap())
	generated, err := bcrypt.GenerateFromPassword([]byte("from-fastapi"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(generated), "$2a$") {
		t.Fatalf("x/crypto/bcrypt made %q, expected a $2a$ hash", generated)
	}
	// $2a$, $2b$ and $2y$ name one algorithm for passwords of this length, so
	// the same salt and digest must verify under each prefix.
	tail := string(generated[3:])
	cases := []struct {
		name, hash, password string
	}{
		{"2a generated", "$2a" + tail, "from-fastapi"},
		{"2b generated", "$2b" + tail, "from-fastapi"},
		{"2y generated", "$2y" + tail, "from-fastapi"},
		{"2y PHP manual vector", phpHash, phpPassword},
		{"2a from the PHP vector", "$2a" + phpHash[3:], phpPassword},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if !IsSupportedHash(c.hash) {
				t.Errorf("IsSupportedHash = false")
			}
			if ok, rehash, err := h.Verify(c.hash, c.password); !ok || !rehash || err != nil {
				t.Errorf("Verify(right) = %v, %v, %v; want true, true (move to argon2id), nil", ok, rehash, err)
			}
			if ok, rehash, err := h.Verify(c.hash, c.password+"!"); ok || rehash || err != nil {
				t.Errorf("Verify(wrong) = %v, %v, %v; want false, false, nil", ok, rehash, err)
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	t.Parallel()
	current := cheap()
	h := NewArgon2id(current)
	change := map[string]func(*Params){
		"memory":      func(p *Params) { p.Memory *= 2 },
		"time":        func(p *Params) { p.Time++ },
		"threads":     func(p *Params) { p.Threads++ },
		"salt length": func(p *Params) { p.SaltLen = 8 },
		"key length":  func(p *Params) { p.KeyLen = 16 },
	}
	for name, f := range change {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			old := current
			f(&old)
			hash, err := NewArgon2id(old).Hash("pw")
			if err != nil {
				t.Fatal(err)
			}
			if ok, rehash, err := h.Verify(hash, "pw"); !ok || !rehash || err != nil {
				t.Errorf("Verify = %v, %v, %v; want true, true, nil", ok, rehash, err)
			}
			// The rehash advice needs the right password: a wrong one learns nothing.
			if ok, rehash, err := h.Verify(hash, "nope"); ok || rehash || err != nil {
				t.Errorf("Verify(wrong) = %v, %v, %v; want false, false, nil", ok, rehash, err)
			}
		})
	}
}

// malformed are hashes Verify must refuse with ErrMalformedHash; they seed
// the fuzz target too.
var malformed = []string{
	"",
	"plaintext-password",
	"$argon2id$",
	"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$",
	"$argon2id$v=19$m=64,t=1,p=1$$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=19$m=4,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=19$m=4294967296,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=19$m=64,t=99999,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=19$m=64,t=1,p=256$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=19$m=-64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=19$m=+64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=19$t=1,m=64,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=19$m=64,t=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=19$m=64,t=1,p=1,keyid=x$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5",           // salt of 4 bytes
	"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5",                 // key of 6 bytes
	"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNh!HRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5", // not base64
	"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5$extra",
	"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2d$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$argon2id$v=19$m=64,t=1,p=1$" + strings.Repeat("A", 600) + "$a2V5a2V5a2V5a2V5a2V5a2V5",
	"$2a$",
	"$2a$10$",
	"$2x$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a", // crypt_blowfish's buggy variant
	"$2$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1aa",
	"$2y$03$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a", // cost below 4
	"$2y$31$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a", // cost 31: days per login
	"$2y$1x$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a",
	"$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1",   // one short
	"$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1aa", // one long
	"$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1=",  // not bcrypt base64
	"$2y$10 .vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a",
	"$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1\x00",
	"$3a$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a",
	"$pbkdf2-sha256$29000$N2bsnbN2bq1VSgmBEKI0Bg$3bWSaNGWlw6qZKOHk5M9Rz1wE5eXTmgNRZpvBO7QSoM",
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	h := NewArgon2id(cheap())
	const password = "the-password-in-question"
	for _, hash := range malformed {
		ok, rehash, err := h.Verify(hash, password)
		if ok || rehash || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("Verify(%q) = %v, %v, %v; want false, false, ErrMalformedHash", hash, ok, rehash, err)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, password) || strings.Contains(msg, "$") {
			t.Errorf("Verify(%q) error %q quotes the password or the hash", hash, msg)
		}
		if IsSupportedHash(hash) {
			t.Errorf("IsSupportedHash(%q) = true", hash)
		}
	}
}

func TestIsSupportedHash(t *testing.T) {
	t.Parallel()
	own, err := NewArgon2id(cheap()).Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	h := NewArgon2id(cheap())
	for _, hash := range []string{own, cffiHash, phpHash, "$2a" + phpHash[3:], "$2b" + phpHash[3:]} {
		if !IsSupportedHash(hash) {
			t.Errorf("IsSupportedHash(%q) = false", hash)
		}
		if !h.Supports(hash) {
			t.Errorf("Supports(%q) = false", hash)
		}
	}
	for _, hash := range []string{"", "plain text", "$2x" + phpHash[3:], "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$2b$31" + phpHash[6:]} {
		if h.Supports(hash) {
			t.Errorf("Supports(%q) = true", hash)
		}
	}
}

func TestNewArgon2idRejectsUnusableParams(t *testing.T) {
	t.Parallel()
	bad := map[string]func(*Params){
		"zero time":           func(p *Params) { p.Time = 0 },
		"zero threads":        func(p *Params) { p.Threads = 0 },
		"memory under 8/p":    func(p *Params) { p.Memory = 4 },
		"memory over bound":   func(p *Params) { p.Memory = maxArgonMemory + 1 },
		"short salt":          func(p *Params) { p.SaltLen = 4 },
		"short key":           func(p *Params) { p.KeyLen = 8 },
		"long key":            func(p *Params) { p.KeyLen = 65 },
		"time over the bound": func(p *Params) { p.Time = maxArgonTime + 1 },
	}
	for name, f := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := cheap()
			f(&p)
			defer func() {
				if recover() == nil {
					t.Errorf("NewArgon2id(%+v) did not panic", p)
				}
			}()
			NewArgon2id(p)
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	h := NewArgon2id(cheap())
	if got, want := cap(h.sem), runtime.GOMAXPROCS(0); got != want {
		t.Errorf("semaphore size %d, want GOMAXPROCS %d", got, want)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte("bc"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 16 {
		wg.Go(func() {
			pw := fmt.Sprintf("password-%d", i)
			hash, err := h.Hash(pw)
			if err != nil {
				errs <- err
				return
			}
			if ok, _, err := h.Verify(hash, pw); !ok || err != nil {
				errs <- fmt.Errorf("goroutine %d: own hash did not verify (%v)", i, err)
			}
			if ok, _, err := h.Verify(string(bc), "bc"); !ok || err != nil {
				errs <- fmt.Errorf("goroutine %d: bcrypt hash did not verify (%v)", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(h.sem); n != 0 {
		t.Errorf("%d semaphore slots still held after all calls returned", n)
	}
}

// FuzzVerify feeds arbitrary hashes and passwords to Verify: it must never
// panic, a rejected hash must be ErrMalformedHash with a message that neither
// quotes the hash nor depends on the password, and Verify must agree with the
// syntactic check that vets imported hashes.
func FuzzVerify(f *testing.F) {
	own, err := NewArgon2id(cheap()).Hash("seed")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(own, "seed")
	f.Add(own, "wrong")
	f.Add(phpHash, phpPassword)
	f.Add("$2a$04$"+strings.Repeat(".", 53), "x")
	for _, m := range malformed {
		f.Add(m, "password")
	}
	h := NewArgon2id(cheap())
	// Random parameters must stay cheap, or the fuzzer spends its time
	// computing legitimate but enormous hashes.
	h.limits = limits{memory: 1024, time: 2, threads: 4, bcryptCost: 5}

	f.Fuzz(func(t *testing.T, hash, password string) {
		ok, rehash, err := h.Verify(hash, password)
		if supported := isSupported(hash, h.limits); supported != (err == nil) {
			t.Fatalf("isSupported = %v but Verify error = %v", supported, err)
		}
		if err == nil {
			if rehash && !ok {
				t.Fatalf("needsRehash without a match")
			}
			return
		}
		if ok || rehash {
			t.Fatalf("Verify = %v, %v with error %v", ok, rehash, err)
		}
		if !errors.Is(err, ErrMalformedHash) {
			t.Fatalf("error %v is not ErrMalformedHash", err)
		}
		if strings.Contains(err.Error(), "$") {
			t.Fatalf("error %q quotes the hash", err)
		}
		_, _, other := h.Verify(hash, password+"-other")
		if other == nil || other.Error() != err.Error() {
			t.Fatalf("error text depends on the password: %q vs %v", err, other)
		}
	})
}
