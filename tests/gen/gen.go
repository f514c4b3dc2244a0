// Package gen makes realistic users for tests and benchmarks, deterministically
// from a seed: the same seed gives the same users, byte for byte, on every
// machine and Go version (math/rand/v2's PCG is specified).
//
// The users look like a real user base: names from many languages, with
// non-ASCII letters (Zoë, Łukasz, Ødegaard, Σοφία, İnönü) and skewed
// frequencies, so some substrings are common and others rare; emails at a few
// domains, unique by construction; all eight genders; a few admins; IPv4 and
// IPv6 addresses clustered in blocks (so CIDR filters select groups), a few
// users without one; creation times rising with the sequence number over three
// years.
//
// Use New and Next for users one by one, WriteCSV for the import format of
// docs/api.md, and CopyPostgres to load a migrated PostgreSQL database fast.
// cmd/usergen writes the CSV from the command line.
package gen

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/userservice/userservice/domain"
)

// User is one generated user, as raw input (NewUserParams' fields and the
// CSV columns of the import).
type User struct {
	// Seq is the user's position in its generator's sequence, from 0.
	Seq       int
	FirstName string
	LastName  string
	Email     string
	Gender    string
	IPAddress string // "" for a user without an address
	Role      string // "user" or "admin"
	CreatedAt time.Time
}

// Params returns u as the domain's input for a new user with the given id
// (0: storage assigns one).
func (u User) Params(id int64) domain.NewUserParams {
	p := domain.NewUserParams{
		ID: id, FirstName: u.FirstName, LastName: u.LastName, Email: u.Email,
		Gender: u.Gender, IPAddress: u.IPAddress, Role: domain.RoleUser,
	}
	if u.Role == domain.RoleAdmin.String() {
		p.Role = domain.RoleAdmin
	}
	return p
}

// Domain returns u as a domain user with the given id, created (and last
// updated) at u.CreatedAt. Generated users are valid by construction, so an
// error means this package is broken.
func (u User) Domain(id int64) (*domain.User, error) {
	return domain.NewUser(u.Params(id), u.CreatedAt)
}

// epochUnix is the creation time of the first user of every sequence:
// 2022-01-01T00:00:00Z.
const epochUnix = 1640995200

// spread is the time over which the users of a sequence were created; the
// step between users shrinks as sequences grow, so it is computed per user
// from Seq, not accumulated.
const spread = 3 * 365 * 24 * time.Hour

// Generator makes the users of one seed, in order. It is not safe for
// concurrent use; give each goroutine its own.
type Generator struct {
	rng   *rand.Rand
	first *rand.Zipf
	last  *rand.Zipf
	block *rand.Zipf
	n     int // users the whole sequence will have, for creation times
	seq   int
	buf   strings.Builder
}

// New returns the generator of seed for a sequence of n users (n only spreads
// the creation times over the three years; Next may go past it).
func New(seed uint64, n int) *Generator {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed_0f_05e75))
	return &Generator{
		rng: rng,
		// Zipf skews the pools: the first names of the lists are common,
		// the last ones rare, as in any real user base.
		first: rand.NewZipf(rng, 1.07, 4, uint64(len(firstNames)-1)),
		last:  rand.NewZipf(rng, 1.05, 6, uint64(len(lastNames)-1)),
		block: rand.NewZipf(rng, 1.2, 2, uint64(len(ipBlocks)-1)),
		n:     max(n, 1),
	}
}

// Next returns the next user of the sequence.
func (g *Generator) Next() User {
	u := User{Seq: g.seq, Role: domain.RoleUser.String()}
	g.seq++
	r := g.rng

	u.FirstName = firstNames[g.first.Uint64()]
	if r.IntN(25) == 0 { // a double first name: Jean-Luc, Mary Ann
		sep := " "
		if r.IntN(2) == 0 {
			sep = "-"
		}
		u.FirstName += sep + firstNames[g.first.Uint64()]
	}
	u.LastName = lastNames[g.last.Uint64()]
	if r.IntN(12) == 0 { // a double last name: Nuñez-García
		u.LastName += "-" + lastNames[g.last.Uint64()]
	}
	u.Email = g.email(u.FirstName, u.LastName, u.Seq)
	u.Gender = pickGender(r)
	if r.IntN(1000) == 0 {
		u.Role = domain.RoleAdmin.String()
	}
	if r.IntN(20) != 0 { // one in twenty has no address
		u.IPAddress = randomAddr(r, ipBlocks[g.block.Uint64()]).String()
	}
	// Sign-ups arrive in sequence order, a few seconds of jitter apart.
	at := time.Unix(epochUnix, 0).UTC().Add(time.Duration(float64(spread) * float64(u.Seq) / float64(g.n)))
	u.CreatedAt = at.Add(time.Duration(r.IntN(5_000_000)) * time.Microsecond)
	return u
}

// email builds a unique address: a local part from the names (ASCII, as most
// providers require) and the sequence number, at one of a few domains. The
// local part ends in the decimal sequence number after a non-digit, so two
// users never share an address.
func (g *Generator) email(first, last string, seq int) string {
	r := g.rng
	b := &g.buf
	b.Reset()
	f, l := ascii(first), ascii(last)
	switch r.IntN(5) {
	case 0:
		b.WriteString(f)
	case 1:
		if f != "" {
			b.WriteString(f[:1])
		}
		b.WriteString(l)
	case 2:
		b.WriteString(f)
		b.WriteByte('_')
		b.WriteString(l)
	default:
		b.WriteString(f)
		b.WriteByte('.')
		b.WriteString(l)
	}
	if b.Len() == 0 {
		b.WriteString("user")
	}
	b.WriteByte('.')
	b.WriteString(strconv.Itoa(seq))
	b.WriteByte('@')
	b.WriteString(pickWeighted(r, emailDomains))
	return b.String()
}

// ascii lower-cases s and spells it in ASCII letters for an email's local
// part: transliterated where a spelling is known, dropped otherwise;
// spaces, hyphens and apostrophes are dropped too.
func ascii(s string) string {
	var b strings.Builder
	for _, c := range domain.Fold(s) {
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteRune(c)
		default:
			b.WriteString(transliteration[c])
		}
	}
	return b.String()
}

// weighted is a value with a relative weight.
type weighted struct {
	value  string
	weight int
}

func pickWeighted(r *rand.Rand, xs []weighted) string {
	total := 0
	for _, x := range xs {
		total += x.weight
	}
	n := r.IntN(total)
	for _, x := range xs {
		if n < x.weight {
			return x.value
		}
		n -= x.weight
	}
	return xs[len(xs)-1].value
}

// pickGender returns every gender of the contract, the first two most often.
func pickGender(r *rand.Rand) string {
	gs := domain.Genders()
	if n := r.IntN(100); n < 92 {
		return gs[n%2].String()
	}
	return gs[2+r.IntN(len(gs)-2)].String()
}

// randomAddr returns an address inside block.
func randomAddr(r *rand.Rand, block netip.Prefix) netip.Addr {
	b := block.Addr().AsSlice()
	for i := range b {
		fixed := block.Bits() - i*8 // bits of this byte fixed by the prefix
		switch {
		case fixed >= 8:
		case fixed <= 0:
			b[i] = byte(r.IntN(256))
		default:
			b[i] |= byte(r.IntN(256)) >> fixed
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
