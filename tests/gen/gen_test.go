package gen

import (
	"bytes"
	"encoding/csv"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/userservice/userservice/domain"
)

func TestSameSeedSameUsers(t *testing.T) {
	t.Parallel()
	a, b, c := New(7, 1000), New(7, 1000), New(8, 1000)
	differ := 0
	for range 1000 {
		ua, ub, uc := a.Next(), b.Next(), c.Next()
		if ua != ub {
			t.Fatalf("seed 7 gave %+v, then %+v", ua, ub)
		}
		if ua != uc {
			differ++
		}
	}
	if differ < 900 {
		t.Errorf("seeds 7 and 8 gave %d different users of 1000", differ)
	}
}

// TestUsersAreValidAndVaried checks what searches and benchmarks rely on:
// every user is valid input, emails are unique, and the set holds every
// gender, admins, IPv4, IPv6 and no address, non-ASCII names, and common and
// rare names.
func TestUsersAreValidAndVaried(t *testing.T) {
	t.Parallel()
	const n = 20000
	g := New(1, n)
	emails := map[string]bool{}
	genders := map[string]int{}
	firsts := map[string]int{}
	var admins, v4, v6, none, nonASCII int
	var last User
	for i := range n {
		u := g.Next()
		if u.Seq != i {
			t.Fatalf("user %d has Seq %d", i, u.Seq)
		}
		du, err := u.Domain(int64(i + 1))
		if err != nil {
			t.Fatalf("user %+v: %v", u, err)
		}
		// CopyPostgres writes the generated values as they are: they must
		// be what the domain would store.
		if st := du.Stored(); st.FirstName != u.FirstName || st.LastName != u.LastName || st.Email != u.Email ||
			st.Gender != u.Gender || st.IPAddress != u.IPAddress || st.Role != u.Role {
			t.Errorf("generated %+v is stored as %+v: generated values should be canonical", u, st)
		}
		if emails[u.Email] {
			t.Fatalf("email %s generated twice", u.Email)
		}
		emails[u.Email] = true
		genders[u.Gender]++
		firsts[u.FirstName]++
		if u.Role == domain.RoleAdmin.String() {
			admins++
		}
		switch a, err := netip.ParseAddr(u.IPAddress); {
		case u.IPAddress == "":
			none++
		case err != nil:
			t.Fatalf("address %q: %v", u.IPAddress, err)
		case a.Is4():
			v4++
		default:
			v6++
		}
		if !isASCII(u.FirstName) || !isASCII(u.LastName) {
			nonASCII++
		}
		if i > 0 && u.CreatedAt.Before(last.CreatedAt) {
			t.Errorf("user %d created at %v, before user %d at %v", i, u.CreatedAt, i-1, last.CreatedAt)
		}
		last = u
	}
	for _, gd := range domain.Genders() {
		if genders[gd.String()] == 0 {
			t.Errorf("no user has gender %s", gd)
		}
	}
	if admins == 0 || v4 < n/2 || v6 < n/20 || none == 0 || nonASCII < n/4 {
		t.Errorf("admins %d, IPv4 %d, IPv6 %d, no address %d, non-ASCII names %d of %d", admins, v4, v6, none, nonASCII, n)
	}
	counts := make([]int, 0, len(firsts))
	for _, c := range firsts {
		counts = append(counts, c)
	}
	slices.Sort(counts)
	if counts[len(counts)-1] < n/50 || counts[0] > 2 {
		t.Errorf("first names are not skewed: rarest %d, commonest %d of %d", counts[0], counts[len(counts)-1], n)
	}
}

func isASCII(s string) bool { return utf8.RuneCountInString(s) == len(s) }

// TestAddressesCluster checks that addresses fall in the blocks, so CIDR
// filters select groups of users.
func TestAddressesCluster(t *testing.T) {
	t.Parallel()
	g := New(3, 5000)
	in := map[netip.Prefix]int{}
	for range 5000 {
		u := g.Next()
		if u.IPAddress == "" {
			continue
		}
		a := netip.MustParseAddr(u.IPAddress)
		i := slices.IndexFunc(ipBlocks, func(p netip.Prefix) bool { return p.Contains(a) })
		if i < 0 {
			t.Fatalf("address %s is in no block", a)
		}
		in[ipBlocks[i]]++
	}
	if len(in) < len(ipBlocks)/2 || in[ipBlocks[0]] < 100 {
		t.Errorf("addresses fall in %d of %d blocks, %d in the first", len(in), len(ipBlocks), in[ipBlocks[0]])
	}
}

func TestWriteCSV(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	const hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
	if err := WriteCSV(&buf, 5, 300, CSVOptions{ID: true, FirstID: 1000, Role: true, PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"first_name", "last_name", "email", "gender", "ip_address", "id", "role", "password_hash"}
	if !slices.Equal(rows[0], want) {
		t.Fatalf("header %q, want %q", rows[0], want)
	}
	if len(rows) != 301 {
		t.Fatalf("%d rows, want a header and 300 users", len(rows))
	}
	g := New(5, 300)
	for i, r := range rows[1:] {
		u := g.Next()
		if r[0] != u.FirstName || r[2] != u.Email || r[4] != u.IPAddress || r[5] != strconv.Itoa(1000+i) || r[6] != u.Role || r[7] != hash {
			t.Fatalf("row %d is %q for %+v", i+1, r, u)
		}
	}
}
