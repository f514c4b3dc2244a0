package application

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// pagingFixture seeds n users (ids 1..n) and returns a superadmin actor,
// the last of them.
func pagingFixture(t *testing.T, n int) (*fixture, domain.Actor) {
	t.Helper()
	f := newFixture(t)
	for i := 1; i < n; i++ {
		f.seed(t, i, domain.RoleUser, "")
	}
	return f, actorOf(f.seed(t, n, domain.RoleSuperadmin, ""))
}

func ids(p ports.Page) []int64 {
	var out []int64
	for _, u := range p.Items {
		out = append(out, u.ID())
	}
	return out
}

func TestPageFigures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, actor := pagingFixture(t, 7)
	cases := []struct {
		page, size int
		wantIDs    []int64
		wantPages  int64
		wantCursor bool
	}{
		{1, 3, []int64{1, 2, 3}, 3, true},
		{2, 3, []int64{4, 5, 6}, 3, true},
		{3, 3, []int64{7}, 3, false},
		{4, 3, nil, 3, false},
		{1, 7, []int64{1, 2, 3, 4, 5, 6, 7}, 1, false},
		{1, 100, []int64{1, 2, 3, 4, 5, 6, 7}, 1, false},
		{0, 0, []int64{1, 2, 3, 4, 5, 6, 7}, 1, false}, // defaults: page 1, size 50
		{100, 100, nil, 1, false},                      // 10,000 rows deep: the deepest page allowed
	}
	for _, tc := range cases {
		p, err := f.users.List(ctx, actor, ports.PageRequest{Page: tc.page, Size: tc.size})
		if err != nil {
			t.Fatalf("page %d size %d: %v", tc.page, tc.size, err)
		}
		if !slices.Equal(ids(p), tc.wantIDs) || p.Pages != tc.wantPages || (p.NextCursor != "") != tc.wantCursor ||
			p.Total != 7 || !p.TotalExact || p.Items == nil {
			t.Fatalf("page %d size %d: got ids %v pages %d total %d cursor %q", tc.page, tc.size, ids(p), p.Pages, p.Total, p.NextCursor)
		}
		wantPage, wantSize := max(tc.page, 1), tc.size
		if wantSize == 0 {
			wantSize = 50
		}
		if p.Page != wantPage || p.Size != wantSize {
			t.Fatalf("page %d size %d: envelope says page %d size %d", tc.page, tc.size, p.Page, p.Size)
		}
	}
	if got := f.repo.lastCountLimit(); got != 10000 {
		t.Fatalf("counted exactly up to %d, want 10000", got)
	}
}

// Offset pages stop at 10,000 rows (page * size); cursors go on.
func TestPageTooDeep(t *testing.T) {
	t.Parallel()
	f, actor := pagingFixture(t, 3)
	for _, tc := range []struct{ page, size int }{{101, 100}, {201, 0}, {10001, 1}, {1 << 60, 100}} {
		_, err := f.users.List(context.Background(), actor, ports.PageRequest{Page: tc.page, Size: tc.size})
		if de := domain.AsError(err); de == nil || de.Kind != domain.KindMalformed || de.Code != "page_too_deep" || !strings.Contains(de.Message, "cursor") {
			t.Errorf("page %d size %d: %v, want page_too_deep naming cursor", tc.page, tc.size, err)
		}
	}
	for _, tc := range []struct{ page, size int }{{100, 100}, {200, 0}, {10000, 1}} {
		if _, err := f.users.List(context.Background(), actor, ports.PageRequest{Page: tc.page, Size: tc.size}); err != nil {
			t.Errorf("page %d size %d: %v, want a page", tc.page, tc.size, err)
		}
	}
}

func TestEmptyResultHasNoPages(t *testing.T) {
	t.Parallel()
	f, actor := pagingFixture(t, 2)
	p, err := f.users.Search(context.Background(), actor, ports.PageRequest{Filter: domain.FilterParams{Email: "nobody"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 0 || p.Pages != 0 || len(p.Items) != 0 || p.Items == nil || p.NextCursor != "" {
		t.Fatalf("got %+v", p)
	}
}

func TestPageRequestValidation(t *testing.T) {
	t.Parallel()
	f, actor := pagingFixture(t, 1)
	cases := []struct {
		req  ports.PageRequest
		want []string
	}{
		{ports.PageRequest{Size: 101}, []string{"size"}},
		{ports.PageRequest{Size: -1}, []string{"size"}},
		{ports.PageRequest{Page: -1}, []string{"page"}},
		{ports.PageRequest{Sort: "password"}, []string{"sort"}},
		{ports.PageRequest{Page: -1, Size: 500, Sort: "?", Filter: domain.FilterParams{Gender: "x", IPAddress: "y"}},
			[]string{"gender", "ip_address", "page", "size", "sort"}},
	}
	for _, tc := range cases {
		_, err := f.users.Search(context.Background(), actor, tc.req)
		if got := fieldsOf(t, err); !slices.Equal(got, tc.want) {
			t.Fatalf("%+v: fields %v, want %v", tc.req, got, tc.want)
		}
	}
	// List ignores filters: a bad one is not even read.
	if _, err := f.users.List(context.Background(), actor, ports.PageRequest{Filter: domain.FilterParams{Gender: "x"}}); err != nil {
		t.Fatalf("list with a filter: %v", err)
	}
}

// walk follows next cursors from the first page, returning every id seen.
func walk(t *testing.T, f *fixture, actor domain.Actor, req ports.PageRequest) []int64 {
	t.Helper()
	var all []int64
	for page := 1; ; page++ {
		p, err := f.users.Search(context.Background(), actor, req)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		if p.Page != page {
			t.Fatalf("page %d says it is page %d", page, p.Page)
		}
		all = append(all, ids(p)...)
		if p.NextCursor == "" {
			return all
		}
		req.Cursor = p.NextCursor
		req.Size = 0 // the cursor remembers the size
		if page > 20 {
			t.Fatal("cursors do not end")
		}
	}
}

func TestCursorsWalkEveryOrder(t *testing.T) {
	t.Parallel()
	f, actor := pagingFixture(t, 11)
	for _, sort := range []string{"", "-id", "email", "-email", "last_name", "-last_name", "created_at", "-created_at"} {
		t.Run(sort, func(t *testing.T) {
			t.Parallel()
			req := ports.PageRequest{Sort: sort, Size: 3}
			want := ids(mustSearch(t, f, actor, ports.PageRequest{Sort: sort, Size: 100}))
			if got := walk(t, f, actor, req); !slices.Equal(got, want) {
				t.Fatalf("walked %v, want %v", got, want)
			}
		})
	}
	t.Run("with a filter", func(t *testing.T) {
		t.Parallel()
		req := ports.PageRequest{Filter: domain.FilterParams{Role: "user", LastName: "LEEE"}, Size: 1}
		want := ids(mustSearch(t, f, actor, ports.PageRequest{Filter: req.Filter, Size: 100}))
		if len(want) < 2 {
			t.Fatalf("the filter should match several users, matched %v", want)
		}
		if got := walk(t, f, actor, req); !slices.Equal(got, want) {
			t.Fatalf("walked %v, want %v", got, want)
		}
	})
}

func mustSearch(t *testing.T, f *fixture, actor domain.Actor, req ports.PageRequest) ports.Page {
	t.Helper()
	p, err := f.users.Search(context.Background(), actor, req)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCursorUsesKeysetAndItsOwnPageNumber(t *testing.T) {
	t.Parallel()
	f, actor := pagingFixture(t, 7)
	first := mustSearch(t, f, actor, ports.PageRequest{Size: 3})
	// Deleting a user before the cursor's position would shift an offset,
	// not a keyset.
	if err := f.users.Delete(context.Background(), actor, 1); err != nil {
		t.Fatal(err)
	}
	next := mustSearch(t, f, actor, ports.PageRequest{Page: 9, Cursor: first.NextCursor})
	if got := ids(next); !slices.Equal(got, []int64{4, 5, 6}) || next.Page != 2 || next.Size != 3 {
		t.Fatalf("got ids %v page %d size %d", got, next.Page, next.Size)
	}
}

func TestBadCursorsAreMalformed(t *testing.T) {
	t.Parallel()
	f, actor := pagingFixture(t, 7)
	base := ports.PageRequest{Sort: "email", Filter: domain.FilterParams{Email: "example"}, Size: 2}
	cur := mustSearch(t, f, actor, base).NextCursor
	raw, err := base64.RawURLEncoding.DecodeString(cur)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := NewUsers(Deps{Repo: f.repo, Authz: f.authz, Clock: fixedClock{testNow}, CursorKey: []byte("another key of thirty-two bytes!")})
	forged, err := otherKey.Search(context.Background(), actor, base)
	if err != nil {
		t.Fatal(err)
	}

	with := func(change func(*ports.PageRequest)) ports.PageRequest {
		r := base
		r.Cursor = cur
		change(&r)
		return r
	}
	cases := map[string]ports.PageRequest{
		"garbage":           with(func(r *ports.PageRequest) { r.Cursor = "!!not base64!!" }),
		"too short":         with(func(r *ports.PageRequest) { r.Cursor = "AA" }),
		"truncated":         with(func(r *ports.PageRequest) { r.Cursor = cur[:len(cur)-4] }),
		"other key":         with(func(r *ports.PageRequest) { r.Cursor = forged.NextCursor }),
		"other sort":        with(func(r *ports.PageRequest) { r.Sort = "-email" }),
		"other filter":      with(func(r *ports.PageRequest) { r.Filter.Email = "exampl" }),
		"filter dropped":    with(func(r *ports.PageRequest) { r.Filter = domain.FilterParams{} }),
		"exact email added": with(func(r *ports.PageRequest) { r.Filter.EmailExact = "user1@example.com" }),
		"other page size":   with(func(r *ports.PageRequest) { r.Size = 3 }),
		"appended bytes":    with(func(r *ports.PageRequest) { r.Cursor = cur + "AAAA" }),
		"empty after tail":  with(func(r *ports.PageRequest) { r.Cursor = base64.RawURLEncoding.EncodeToString(raw[len(raw)-16:]) }),
	}
	for i := range raw {
		flipped := slices.Clone(raw)
		flipped[i] ^= 0x01
		cases[fmt.Sprintf("flipped byte %d", i)] = with(func(r *ports.PageRequest) {
			r.Cursor = base64.RawURLEncoding.EncodeToString(flipped)
		})
	}
	for name, req := range cases {
		_, err := f.users.Search(context.Background(), actor, req)
		if domain.KindOf(err) != domain.KindMalformed {
			t.Errorf("%s: got %v, want a malformed error", name, err)
		}
	}
	// The same filter spelt differently is the same filter.
	same := with(func(r *ports.PageRequest) { r.Filter.Email = "EXAMPLE"; r.Size = 0 })
	if _, err := f.users.Search(context.Background(), actor, same); err != nil {
		t.Fatalf("equivalent filter: %v", err)
	}
	// List and Search share cursors only when they mean the same thing.
	if _, err := f.users.List(context.Background(), actor, ports.PageRequest{Sort: "email", Cursor: cur}); domain.KindOf(err) != domain.KindMalformed {
		t.Fatalf("list with a filtered search's cursor: %v", err)
	}
}

func FuzzDecodeCursor(f *testing.F) {
	key := testCursorKey
	for _, sort := range []domain.Sort{{}, {Field: domain.SortEmail}, {Field: domain.SortCreatedAt, Desc: true}} {
		f.Add(encodeCursor(key, cursor{page: 2, size: 50, after: domain.SortKey{ID: 9, Text: "a@b.c", Time: testNow}}, sort, usersBinding(sort, domain.Filter{})), int(sort.Field), sort.Desc)
	}
	f.Add("", 0, false)
	f.Fuzz(func(t *testing.T, s string, field int, desc bool) {
		sort := domain.Sort{Field: domain.SortField(uint(field) % 4), Desc: desc}
		c, err := decodeCursor(key, s, sort, usersBinding(sort, domain.Filter{}))
		if err != nil {
			if domain.KindOf(err) != domain.KindMalformed {
				t.Fatalf("error of kind %v", domain.KindOf(err))
			}
			return
		}
		// Whatever decodes re-encodes to itself: nothing else authenticates.
		if again := encodeCursor(key, c, sort, usersBinding(sort, domain.Filter{})); again != s {
			t.Fatalf("decoded %q to %+v, which encodes as %q", s, c, again)
		}
	})
}

// TestExactEmailPageIsOneQuery: at most one user has an address, so a search
// by email_exact reads that user alone, with no count, and the envelope is
// the one a count would give (page 1 holds the match, later pages nothing).
func TestExactEmailPageIsOneQuery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, actor := pagingFixture(t, 3)
	for _, tc := range []struct {
		email, gender string
		page          int
		wantIDs       []int64
		wantTotal     int64
	}{
		{"USER2@example.com", "", 1, []int64{2}, 1},
		{"user2@example.com", "", 2, nil, 1},
		{"user2@example.com", "male", 1, nil, 0}, // the other filters still apply
		{"nobody@example.com", "", 1, nil, 0},
	} {
		f.repo.lastCountLimit()
		p, err := f.users.Search(ctx, actor, ports.PageRequest{Page: tc.page, Size: 10,
			Filter: domain.FilterParams{EmailExact: tc.email, Gender: tc.gender}})
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if !slices.Equal(ids(p), tc.wantIDs) || p.Total != tc.wantTotal || p.Pages != tc.wantTotal || !p.TotalExact ||
			p.NextCursor != "" || p.Items == nil || p.Page != tc.page {
			t.Errorf("%+v: ids %v total %d pages %d exact %v cursor %q", tc, ids(p), p.Total, p.Pages, p.TotalExact, p.NextCursor)
		}
		if f.repo.lastCountLimit() != -1 {
			t.Errorf("%+v: the search counted, for a filter one user at most matches", tc)
		}
	}
}
