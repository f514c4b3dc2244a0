package contract

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

const (
	propertyUsers   = 1000
	propertyFilters = 300
	// createWorkers bounds the concurrent creations of the setup: enough to
	// overlap round trips, few enough for a small PostgreSQL pool.
	createWorkers = 6
)

// TestSearchMatchesFilter holds the repository's SQL search equal to
// domain.Filter.Matches on random users and random filters: what a search
// returns is exactly what a WebSocket subscription with the same filter
// would match. CONTRACT_SEED=n replays a failing run.
func TestSearchMatchesFilter(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	if s := os.Getenv("CONTRACT_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CONTRACT_SEED: %v", err)
		}
	}
	t.Logf("CONTRACT_SEED=%d", seed)
	for _, impl := range implementations() {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			r := impl.open(t)
			rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
			users := populate(t, r, randomUsers(t, rng, propertyUsers))
			matched := 0
			for i := range propertyFilters {
				p := randomFilter(rng, users)
				f, err := domain.ParseFilter(p)
				if err != nil {
					t.Fatalf("filter %d %+v: %v", i, p, err)
				}
				var want []int64
				for _, u := range users {
					if f.Matches(u) {
						want = append(want, u.ID())
					}
				}
				got, err := r.users.Search(t.Context(), ports.SearchQuery{Filter: f})
				if err != nil {
					t.Fatalf("Search(%+v): %v", p, err)
				}
				if !slices.Equal(ids(got), want) {
					t.Errorf("filter %d %+v: Search returned %d users, Matches accepts %d\n got %v\nwant %v",
						i, p, len(got), len(want), ids(got), want)
					continue
				}
				if n, exact, err := r.users.Count(t.Context(), f, 0); err != nil || !exact || n != int64(len(want)) {
					t.Errorf("filter %d %+v: Count = %d, %v, %v; want %d, exact", i, p, n, exact, err, len(want))
				}
				if len(want) > 0 && len(want) < len(users) {
					matched++
				}
			}
			// Filters that match everyone or no one prove little.
			if matched < propertyFilters/3 {
				t.Errorf("only %d of %d filters selected some but not all users", matched, propertyFilters)
			}
		})
	}
}

// ipBlocks cluster addresses so CIDR filters select groups, not singletons.
func ipBlocks() []string {
	return []string{
		"10.0.0.0/24", "10.0.1.0/24", "10.1.0.0/16", "192.168.0.0/28", "172.16.5.0/30",
		"2001:db8::/120", "2001:db8:0:1::/64", "fe80::/112", "2001:db8:ffff::/48",
	}
}

// randomCase changes the case of some letters, as a user typing a filter
// (or an address) might.
func randomCase(rng *rand.Rand, s string) string {
	return strings.Map(func(r rune) rune {
		switch rng.IntN(4) {
		case 0:
			return unicode.ToUpper(r)
		case 1:
			return unicode.ToLower(r)
		case 2:
			return unicode.ToTitle(r)
		}
		return r
	}, s)
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// randomAddr returns an address inside the CIDR block.
func randomAddr(rng *rand.Rand, block string) netip.Addr {
	p := netip.MustParsePrefix(block)
	b := p.Addr().AsSlice()
	for i := range b {
		free := p.Bits() - i*8 // bits of this byte fixed by the prefix
		switch {
		case free >= 8:
		case free <= 0:
			b[i] = byte(rng.IntN(256))
		default:
			b[i] |= byte(rng.IntN(256)) >> free
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func randomUsers(t *testing.T, rng *rand.Rand, n int) []*domain.User {
	t.Helper()
	// Non-ASCII letters, case pairs that fold specially (final sigma,
	// dotted İ, the Kelvin sign, ß, titlecase digraphs), apostrophes,
	// hyphens, spaces, periods; emails with LIKE's wildcards in them.
	firstNames := []string{
		"Zoë", "Ølaf", "Łukasz", "Σίσυφος", "İlker", "Jean-Luc", "D'Arcy", "Mary Ann", "Søren",
		"Ōtani", "ǅenan", "\u212Aatrin", "Ärwin", "Ingrid", "ΣΟΦΙΑ", "Nuño", "Chloé", "Ĳsbrand",
	}
	lastNames := []string{
		"O'Doireidh", "Nuñez-García", "Åström", "Dvořák", "Müller", "Weiß", "van der Berg",
		"MacLeod", "Σίσυφος", "İnönü", "Ødegaard", "St. John", "Ó Briain", "Jones", "Łódź", "ǄURIĆ",
	}
	locals := []string{"zoe", "olaf", "first_last", "a%b", "j.doe", "x_", "mary+ann", "d_arcy", "100%"}
	domains := []string{"gmail.com", "Example.ORG", "mail.example.net", "bücher.example", "x_y.example.com"}
	blocks := ipBlocks()
	base := now()
	out := make([]*domain.User, n)
	for i := range out {
		p := domain.NewUserParams{
			FirstName: randomCase(rng, pick(rng, firstNames)),
			LastName:  randomCase(rng, pick(rng, lastNames)),
			Email:     randomCase(rng, pick(rng, locals)+strconv.Itoa(i)+"@"+pick(rng, domains)),
			Gender:    randomCase(rng, pick(rng, domain.Genders()).String()),
			Role:      pick(rng, domain.Roles()),
		}
		if rng.IntN(10) > 0 {
			a := randomAddr(rng, pick(rng, blocks))
			p.IPAddress = a.String()
			if a.Is4() && rng.IntN(4) == 0 {
				p.IPAddress = "::ffff:" + a.String() // stored unmapped
			}
		}
		out[i] = newUser(t, p, base)
	}
	return out
}

// populate creates users through the repository, several at a time, and
// returns them as stored, in id order.
func populate(t *testing.T, r repos, users []*domain.User) []*domain.User {
	t.Helper()
	out := make([]*domain.User, len(users))
	errs := make([]error, createWorkers)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := range createWorkers {
		wg.Go(func() {
			for i := range next {
				if errs[w] != nil {
					continue
				}
				out[i], errs[w] = r.users.Create(t.Context(), users[i], domain.Operator())
			}
		})
	}
	for i := range users {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("creating the users: %v", err)
		}
	}
	slices.SortFunc(out, func(a, b *domain.User) int { return cmp.Compare(a.ID(), b.ID()) })
	return out
}

// randomSubstring returns a piece of s (whole runes) in random case,
// sometimes with a LIKE wildcard or escape character that must stay literal.
func randomSubstring(rng *rand.Rand, s string) string {
	rs := []rune(s)
	n := 1 + rng.IntN(min(len(rs), 5))
	if rng.IntN(6) == 0 {
		n = len(rs)
	}
	start := rng.IntN(len(rs) - n + 1)
	sub := []rune(randomCase(rng, string(rs[start:start+n])))
	if rng.IntN(6) == 0 {
		at := rng.IntN(len(sub) + 1)
		sub = slices.Insert(sub, at, []rune(pick(rng, []string{"%", "_", `\`, `\%`, "%%"}))...)
	}
	return string(sub)
}

// randomIPFilter returns an address or CIDR block, mostly around stored
// addresses, in any of the spellings a client may send.
func randomIPFilter(rng *rand.Rand, users []*domain.User) string {
	var a netip.Addr
	for range 10 {
		if a = pick(rng, users).IP(); a.IsValid() {
			break
		}
	}
	if !a.IsValid() || rng.IntN(8) == 0 {
		a = randomAddr(rng, pick(rng, ipBlocks()))
	}
	switch rng.IntN(6) {
	case 0:
		return a.String()
	case 1:
		if a.Is4() {
			return "::ffff:" + a.String()
		}
		return strings.ToUpper(a.StringExpanded())
	case 2:
		return pick(rng, []string{"0.0.0.0/0", "::/0", "::ffff:0:0/96", "10.0.0.0/8", "2001:db8::/32"})
	}
	bits := rng.IntN(a.BitLen() + 1)
	p, _ := a.Prefix(bits)
	if a.Is4() && rng.IntN(4) == 0 {
		return fmt.Sprintf("::ffff:%s/%d", p.Addr(), 96+bits)
	}
	return p.String()
}

// randomFilter returns filter input: one to three criteria drawn from stored
// values (so many filters select something), now and then one that matches
// nothing or everything.
func randomFilter(rng *rand.Rand, users []*domain.User) domain.FilterParams {
	var p domain.FilterParams
	if rng.IntN(30) == 0 {
		return p
	}
	for range 1 + rng.IntN(3) {
		u := pick(rng, users)
		switch rng.IntN(7) {
		case 0:
			p.FirstName = randomSubstring(rng, u.FirstName())
		case 1:
			p.LastName = randomSubstring(rng, u.LastName())
		case 2:
			p.Email = randomSubstring(rng, u.Email().String())
			if rng.IntN(8) == 0 {
				p.Email = pick(rng, []string{"%", "_", `\`, "@", "%@", "_x", "ü"})
			}
		case 3:
			p.Gender = randomCase(rng, pick(rng, domain.Genders()).String())
		case 4:
			p.Role = pick(rng, domain.Roles()).String()
		case 5:
			p.IPAddress = randomIPFilter(rng, users)
		case 6:
			// A whole stored address in another letter case, or one no
			// user has.
			p.EmailExact = randomCase(rng, u.Email().String())
			if rng.IntN(8) == 0 {
				p.EmailExact = "nobody-" + u.Email().String()
			}
		}
	}
	return p
}
