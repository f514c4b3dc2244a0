package gormstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
	"github.com/userservice/userservice/tests/gen"
	"github.com/userservice/userservice/tests/testdb"
)

// planUsers is how many generated users the plan tests load: enough that
// PostgreSQL's planner prefers an index wherever one serves, so the plans
// are those of a large table, while loading stays a few seconds.
const planUsers = 60000

// planNode is a node of EXPLAIN (FORMAT JSON).
type planNode struct {
	NodeType string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Index    string     `json:"Index Name"`
	Plans    []planNode `json:"Plans"`
}

func (n planNode) walk(visit func(planNode)) {
	visit(n)
	for _, c := range n.Plans {
		c.walk(visit)
	}
}

func (n planNode) String() string {
	var b strings.Builder
	var write func(planNode, int)
	write = func(n planNode, depth int) {
		fmt.Fprintf(&b, "%s%s", strings.Repeat("  ", depth), n.NodeType)
		if n.Relation != "" {
			fmt.Fprintf(&b, " on %s", n.Relation)
		}
		if n.Index != "" {
			fmt.Fprintf(&b, " using %s", n.Index)
		}
		b.WriteByte('\n')
		for _, c := range n.Plans {
			write(c, depth+1)
		}
	}
	write(n, 0)
	return b.String()
}

// statement is one SQL statement the repository ran, with its values.
type statement struct {
	sql  string
	vars []any
}

// recorder keeps the queries the store's GORM instance runs, as built by
// the code under test.
type recorder struct {
	mu    sync.Mutex
	stmts []statement
}

func (r *recorder) take() []statement {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.stmts
	r.stmts = nil
	return out
}

// loadPlanStore returns a PostgreSQL store holding planUsers generated users,
// analyzed, with every query it runs recorded; and the users, as the domain
// holds them, for the expected results.
func loadPlanStore(t *testing.T) (*Store, *recorder, *pgx.Conn, []*domain.User) {
	t.Helper()
	url := testdb.PostgresURL(t)
	s, err := Open(t.Context(), url, discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.MigrateUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(t.Context()) })
	const seed = 4
	if _, err := gen.CopyPostgres(t.Context(), conn, gen.LoadOptions{Seed: seed, N: planUsers, RebuildIndexes: true}); err != nil {
		t.Fatal(err)
	}
	g := gen.New(seed, planUsers)
	users := make([]*domain.User, planUsers)
	for i := range users {
		if users[i], err = g.Next().Domain(int64(i + 1)); err != nil {
			t.Fatal(err)
		}
	}
	return s, record(t, s), conn, users
}

// record keeps every query s runs from now on.
func record(t *testing.T, s *Store) *recorder {
	t.Helper()
	rec := &recorder{}
	err := s.db.Callback().Query().After("gorm:query").Register("plans_test:record", func(db *gorm.DB) {
		if db.DryRun { // building a statement to EXPLAIN, not running it
			return
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.stmts = append(rec.stmts, statement{db.Statement.SQL.String(), slices.Clone(db.Statement.Vars)})
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// explain returns PostgreSQL's plan for st, planned for its values.
func explain(t *testing.T, conn *pgx.Conn, st statement) planNode {
	t.Helper()
	var out []struct{ Plan planNode }
	args := append([]any{pgx.QueryExecModeCacheDescribe}, st.vars...)
	if err := conn.QueryRow(t.Context(), "EXPLAIN (FORMAT JSON) "+st.sql, args...).Scan(&out); err != nil {
		t.Fatalf("EXPLAIN %s: %v", st.sql, err)
	}
	return out[0].Plan
}

// planCase is a query shape: a page (Search) and its count (Count).
type planCase struct {
	name  string
	query ports.SearchQuery
	// index is the index the page must be read through ("a|b": either);
	// "" accepts any index.
	index string
	// ordered means the index returns the page in order: no Sort node.
	ordered bool
	// broad filters match more than the exact count's bound; counting them
	// may read the table itself, stopping at the bound.
	broad bool
}

// TestSearchAtScale loads planUsers generated users once for its subtests,
// which run one after the other: the plan checks read every statement the
// store runs.
func TestSearchAtScale(t *testing.T) {
	t.Parallel()
	s, rec, conn, users := loadPlanStore(t)
	t.Run("plans use indexes", func(t *testing.T) { checkPlans(t, s, rec, conn, users) })
	t.Run("counts", func(t *testing.T) { checkCounts(t, s, users) })
}

// checkPlans checks, with EXPLAIN, the statements Search and Count really
// run for the main shapes of docs/api.md: every sort with and without a
// keyset cursor walks its own index in order (descending ones backwards),
// selective substring filters use the trigram indexes, a CIDR block the
// address key, and no selective query reads the users table sequentially.
func checkPlans(t *testing.T, s *Store, rec *recorder, conn *pgx.Conn, users []*domain.User) {
	mid := users[len(users)/2]

	parse := func(p domain.FilterParams) domain.Filter {
		f, err := domain.ParseFilter(p)
		if err != nil {
			t.Fatalf("ParseFilter(%+v): %v", p, err)
		}
		return f
	}
	// A selective pair: a rare first name and a rare last name that one
	// user has, each cut to an inner substring so LIKE '%...%' matters.
	rareFirst, rareLast := rarePair(t, users)
	selective := parse(domain.FilterParams{FirstName: rareFirst, LastName: rareLast})

	var cases []planCase
	indexOf := map[domain.SortField]string{
		domain.SortID: "users_pkey", domain.SortEmail: "users_email_id",
		domain.SortLastName: "users_last_name_id", domain.SortCreatedAt: "users_created_at_id",
	}
	for _, field := range []domain.SortField{domain.SortID, domain.SortEmail, domain.SortLastName, domain.SortCreatedAt} {
		for _, desc := range []bool{false, true} {
			sort := domain.Sort{Field: field, Desc: desc}
			key := sort.KeyOf(mid)
			cases = append(cases,
				planCase{name: "first page, sort " + sort.String(), query: ports.SearchQuery{Sort: sort, Limit: 51},
					index: indexOf[field], ordered: true, broad: true},
				planCase{name: "keyset page, sort " + sort.String(), query: ports.SearchQuery{Sort: sort, After: &key, Limit: 51},
					index: indexOf[field], ordered: true, broad: true},
				planCase{name: "selective search, keyset page, sort " + sort.String(),
					query: ports.SearchQuery{Filter: selective, Sort: sort, After: &key, Limit: 51}},
			)
		}
	}
	cases = append(cases,
		planCase{name: "selective 2-filter substring search", query: ports.SearchQuery{Filter: selective, Limit: 51}},
		planCase{name: "exact email", query: ports.SearchQuery{Filter: parse(domain.FilterParams{Email: mid.Email().String()}), Limit: 51},
			index: "users_email_trgm"},
		// email_exact is one B-tree descent on the unique email: through
		// the UNIQUE constraint's index or through (email, id), whose
		// leading column is the same key; PostgreSQL costs the two alike
		// and takes either.
		planCase{name: "email_exact", query: ports.SearchQuery{Filter: parse(domain.FilterParams{EmailExact: strings.ToUpper(mid.Email().String())}), Limit: 51},
			index: emailBTrees},
		planCase{name: "email_exact with other filters, keyset page, sort -created_at", query: ports.SearchQuery{
			Filter: parse(domain.FilterParams{EmailExact: mid.Email().String(), Gender: mid.Gender().String(), FirstName: "a"}),
			Sort:   domain.Sort{Field: domain.SortCreatedAt, Desc: true}, After: ptrTo(domain.Sort{Field: domain.SortCreatedAt, Desc: true}.KeyOf(users[len(users)-1])), Limit: 51},
			index: emailBTrees},
		planCase{name: "email substring", query: ports.SearchQuery{Filter: parse(domain.FilterParams{Email: ascii(rareLast) + "."}), Limit: 51}},
		planCase{name: "small IPv4 CIDR block", query: ports.SearchQuery{Filter: parse(domain.FilterParams{IPAddress: "10.0.3.0/28"}), Limit: 51},
			index: "users_ip_key"},
		planCase{name: "small IPv6 CIDR block, sort -created_at", query: ports.SearchQuery{
			Filter: parse(domain.FilterParams{IPAddress: "2001:db8::/64"}), Sort: domain.Sort{Field: domain.SortCreatedAt, Desc: true}, Limit: 51},
			index: "users_ip_key"},
		planCase{name: "large CIDR block", query: ports.SearchQuery{Filter: parse(domain.FilterParams{IPAddress: "10.0.0.0/8"}), Limit: 51},
			broad: true},
		planCase{name: "exact address", query: ports.SearchQuery{Filter: parse(domain.FilterParams{IPAddress: mid.IP().String()}), Limit: 51},
			index: "users_ip_key"},
		planCase{name: "rare gender, sort last_name", query: ports.SearchQuery{
			Filter: parse(domain.FilterParams{Gender: "agender"}), Sort: domain.Sort{Field: domain.SortLastName}, Limit: 51}},
		planCase{name: "common gender, keyset page, sort -email", query: ports.SearchQuery{
			Filter: parse(domain.FilterParams{Gender: "female"}), Sort: domain.Sort{Field: domain.SortEmail, Desc: true},
			After: &domain.SortKey{ID: mid.ID(), Text: mid.Email().String()}, Limit: 51},
			index: "users_email_id", ordered: true, broad: true},
		planCase{name: "role admin", query: ports.SearchQuery{Filter: parse(domain.FilterParams{Role: "admin"}), Limit: 51}},
	)

	for _, c := range cases {
		rec.take()
		if _, err := s.users.Search(t.Context(), c.query); err != nil {
			t.Fatalf("%s: Search: %v", c.name, err)
		}
		page := rec.take()
		if _, _, err := s.users.Count(t.Context(), c.query.Filter, 10000); err != nil {
			t.Fatalf("%s: Count: %v", c.name, err)
		}
		counts := rec.take()
		if len(page) != 1 || len(counts) != 1 {
			t.Fatalf("%s: Search ran %d queries and Count %d, want one each: %v %v", c.name, len(page), len(counts), page, counts)
		}
		checkPlan(t, c, "page", explain(t, conn, page[0]), false)
		checkPlan(t, c, "count", explain(t, conn, counts[0]), c.broad)
	}
}

func ptrTo[T any](v T) *T { return &v }

// emailBTrees are the B-tree indexes whose leading column is the unique email.
const emailBTrees = "users_email_key|users_email_id"

// checkPlan fails t when plan reads users sequentially (unless mayScan: a
// count of a broad filter, which stops at the bound), or misses what c
// expects of its page.
func checkPlan(t *testing.T, c planCase, what string, plan planNode, mayScan bool) {
	t.Helper()
	var seq, sorted bool
	var indexes []string
	plan.walk(func(n planNode) {
		switch {
		case n.NodeType == "Seq Scan" && n.Relation == "users":
			seq = true
		case n.NodeType == "Sort":
			sorted = true
		case n.Index != "":
			indexes = append(indexes, n.Index)
		}
	})
	switch {
	case seq && !mayScan:
		t.Errorf("%s: the %s reads users sequentially:\n%s", c.name, what, plan)
	case !seq && len(indexes) == 0:
		t.Errorf("%s: the %s uses no index:\n%s", c.name, what, plan)
	case what != "page":
	case c.index != "" && !slices.ContainsFunc(strings.Split(c.index, "|"), func(i string) bool { return slices.Contains(indexes, i) }):
		t.Errorf("%s: the page does not use %s:\n%s", c.name, c.index, plan)
	case c.ordered && sorted:
		t.Errorf("%s: the page is sorted, not read in index order:\n%s", c.name, plan)
	}
}

// rarePair returns inner substrings of a first and a last name that are each
// rare among users (under 1%) and that some user has together.
func rarePair(t *testing.T, users []*domain.User) (first, last string) {
	t.Helper()
	firsts, lasts := map[string]int{}, map[string]int{}
	for _, u := range users {
		firsts[domain.Fold(u.FirstName())]++
		lasts[domain.Fold(u.LastName())]++
	}
	rare := func(counts map[string]int, name string) bool {
		return counts[name] < len(users)/100 && len([]rune(name)) >= 6 && !strings.ContainsAny(name, " -'.")
	}
	for _, u := range users {
		f, l := domain.Fold(u.FirstName()), domain.Fold(u.LastName())
		if rare(firsts, f) && rare(lasts, l) {
			return inner(f), inner(l)
		}
	}
	t.Fatal("no user has a rare first and last name")
	return "", ""
}

// inner drops the first and last letter of s.
func inner(s string) string {
	r := []rune(s)
	return string(r[1 : len(r)-1])
}

// ascii keeps the ASCII letters of s.
func ascii(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r
		}
		return -1
	}, s)
}

// checkCounts checks Count against the users themselves on a table larger
// than the exact-count bound: selective filters are counted exactly, broad
// ones are estimated (exact=false) above the bound and not wildly off.
func checkCounts(t *testing.T, s *Store, users []*domain.User) {
	rareFirst, rareLast := rarePair(t, users)
	cases := []domain.FilterParams{
		{},
		{Gender: "Female"},
		{Email: "gmail"},
		{FirstName: rareFirst, LastName: rareLast},
		{FirstName: rareFirst},
		{IPAddress: "10.0.0.0/8"},
		{IPAddress: "2001:db8::/32", Gender: "male"},
		{Role: "admin"},
	}
	for _, p := range cases {
		f, err := domain.ParseFilter(p)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, u := range users {
			if f.Matches(u) {
				want++
			}
		}
		got, exact, err := s.users.Count(t.Context(), f, 10000)
		switch {
		case err != nil:
			t.Errorf("Count(%+v): %v", p, err)
		case want <= 10000 && (!exact || got != int64(want)):
			t.Errorf("Count(%+v) = %d, exact %v; want exactly %d", p, got, exact, want)
		case want > 10000 && (exact || got <= 10000 || got < int64(want)/2 || got > int64(want)*2):
			t.Errorf("Count(%+v) = %d, exact %v; want an estimate above 10000 near %d", p, got, exact, want)
		}
	}
}

// TestSearchesArePlannedForTheirValues checks that searches are not left to
// a prepared statement's generic plan, which PostgreSQL adopts after five
// runs and which cannot tell a rare substring from a common one: on one
// connection, after many searches, no search statement is prepared.
func TestSearchesArePlannedForTheirValues(t *testing.T) {
	t.Parallel()
	s := openPostgresForPlans(t)
	s.pools[0].SetMaxOpenConns(1) // one connection: the one asked below
	for i := range 8 {
		f, err := domain.ParseFilter(domain.FilterParams{FirstName: fmt.Sprint("zoë", i), IPAddress: "10.0.0.0/8"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.users.Search(t.Context(), ports.SearchQuery{Filter: f, Limit: 51}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.users.Count(t.Context(), f, 10000); err != nil {
			t.Fatal(err)
		}
	}
	var prepared []string
	err := s.db.WithContext(t.Context()).Raw(`SELECT statement FROM pg_prepared_statements
		 WHERE statement LIKE '%first\_name\_fold LIKE%' AND statement NOT LIKE '%pg\_prepared\_statements%'`).
		Find(&prepared).Error
	if err != nil {
		t.Fatal(err)
	}
	if len(prepared) > 0 {
		t.Errorf("search statements are prepared, open to generic plans:\n%s", strings.Join(prepared, "\n"))
	}
	// The check can fail: a primary-key read is prepared on that connection.
	if _, err := s.users.Get(t.Context(), 1); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("Get(1) on an empty table: %v", err)
	}
	var n int
	if err := s.db.WithContext(t.Context()).Raw("SELECT count(*) FROM pg_prepared_statements").Row().Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("no statement is prepared at all: pg_prepared_statements shows nothing here")
	}
}

func openPostgresForPlans(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), testdb.PostgresURL(t), discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.MigrateUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestEmailExactUsesTheUniqueIndexOnSQLite checks with EXPLAIN QUERY PLAN
// that SQLite answers email_exact, alone and with other filters and a
// sort, by searching the unique email index (the index of the UNIQUE
// constraint, which SQLite names sqlite_autoindex_users_N).
func TestEmailExactUsesTheUniqueIndexOnSQLite(t *testing.T) {
	t.Parallel()
	s := openSQLite(t, filepath.Join(t.TempDir(), "plans.db"), discard())
	g := gen.New(7, 300)
	var last *domain.User
	for i := range 300 {
		u, err := g.Next().Domain(int64(i + 1))
		if err != nil {
			t.Fatal(err)
		}
		if last, err = s.users.Create(t.Context(), u, domain.Operator()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.WithContext(t.Context()).Exec("ANALYZE").Error; err != nil {
		t.Fatal(err)
	}
	rec := record(t, s)
	sorts := []domain.Sort{{}, {Field: domain.SortCreatedAt, Desc: true}, {Field: domain.SortLastName}}
	for _, sort := range sorts {
		p := domain.FilterParams{EmailExact: strings.ToUpper(last.Email().String())}
		if sort.Field != domain.SortID {
			p.Gender, p.LastName = last.Gender().String(), "e"
		}
		f, err := domain.ParseFilter(p)
		if err != nil {
			t.Fatal(err)
		}
		rec.take()
		got, err := s.users.Search(t.Context(), ports.SearchQuery{Filter: f, Sort: sort, Limit: 51})
		if err != nil {
			t.Fatal(err)
		}
		if p.LastName == "" && (len(got) != 1 || got[0].ID() != last.ID()) {
			t.Fatalf("email_exact %s found %d users", p.EmailExact, len(got))
		}
		stmts := rec.take()
		if len(stmts) != 1 {
			t.Fatalf("Search ran %d queries: %v", len(stmts), stmts)
		}
		var rows []struct {
			ID, Parent, NotUsed int
			Detail              string
		}
		if err := s.db.WithContext(t.Context()).Raw("EXPLAIN QUERY PLAN "+stmts[0].sql, stmts[0].vars...).
			Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		var details []string
		for _, r := range rows {
			details = append(details, r.Detail)
		}
		plan := strings.Join(details, "\n")
		if !strings.Contains(plan, "USING INDEX sqlite_autoindex_users_") || !strings.Contains(plan, "(email=?)") {
			t.Errorf("email_exact, sort %s: not searched by the unique email index:\n%s", sort, plan)
		}
	}
}
