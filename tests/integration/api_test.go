package integration

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/userservice/userservice/tests/harness"
)

// TestWrongLoginLooksTheSame logs in with an unknown email and with a wrong
// password, by form and by JSON: the answers cannot be told apart (docs/api.md).
func TestWrongLoginLooksTheSame(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		u := s.Create(t, root, user)
		wrong := s.Password()
		unknown := harness.Email("nobody")

		var bodies []harness.ErrorBody
		for _, body := range []any{
			url.Values{"username": {unknown}, "password": {u.Password}},
			url.Values{"username": {u.Email}, "password": {wrong}},
			url.Values{"username": {strings.ToUpper(u.Email)}, "password": {wrong}},
			url.Values{"username": {"not an email"}, "password": {wrong}},
			map[string]any{"email": unknown, "password": u.Password},
			map[string]any{"email": u.Email, "password": wrong},
		} {
			// RFC 6749 §5.2: a refused grant is 400 invalid_grant.
			r := s.Expect(t, http.StatusBadRequest, http.MethodPost, "/api/v1/auth/token", "", body)
			e := r.Error(t)
			if e.Detail != "Incorrect email or password" || e.Error != "invalid_grant" || e.ErrorDescription != e.Detail {
				t.Errorf("%s: want invalid_grant with the detail %q", r, "Incorrect email or password")
			}
			bodies = append(bodies, e)
		}
		for _, e := range bodies[1:] {
			if e.Detail != bodies[0].Detail || e.Code != bodies[0].Code || len(e.Errors) != 0 {
				t.Errorf("wrong logins differ: %+v and %+v", bodies[0], e)
			}
		}

		// The right password works by JSON too, whatever the email's case.
		r := s.Expect(t, http.StatusOK, http.MethodPost, "/api/v1/auth/token", "", map[string]any{"email": strings.ToUpper(u.Email), "password": u.Password})
		var p struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresIn   int64  `json:"expires_in"`
		}
		r.Decode(t, &p)
		if p.TokenType != "bearer" || p.ExpiresIn != 15*60 {
			t.Errorf("%s: token_type %q, expires_in %d; want bearer, 900", r, p.TokenType, p.ExpiresIn)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", r, cc)
		}
		s.Expect(t, http.StatusOK, http.MethodGet, me, p.AccessToken, nil)
	})
}

// TestSignUpIgnoresRole signs up asking to be superadmin: the account is a
// plain user (docs/api.md).
func TestSignUpIgnoresRole(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		a := &harness.Account{Email: harness.Email("climber"), Password: s.Password(), Role: user}
		r := s.Expect(t, http.StatusCreated, http.MethodPost, "/api/v1/auth/sign-up", "", harness.NewUserBody(a.Email, a.Password, superadmin))
		created := r.User(t)
		if created.Role != user {
			t.Errorf("%s: signed up with role %s, want user", r, created.Role)
		}
		if r.Header.Get("Location") != harness.UserPath(created.ID) || r.Header.Get("ETag") == "" {
			t.Errorf("%s: Location %q, ETag %q", r, r.Header.Get("Location"), r.Header.Get("ETag"))
		}
		s.Login(t, a)
		if got := s.Expect(t, http.StatusOK, http.MethodGet, me, a.Access, nil).User(t); got.Role != user || got.ID != created.ID {
			t.Errorf("/users/me: %+v, want user %d with role user", got, created.ID)
		}
		s.Expect(t, http.StatusForbidden, http.MethodGet, "/api/v1/users/search", a.Access, nil)
		s.Expect(t, http.StatusForbidden, http.MethodPost, "/api/v1/users/create-admin", a.Access, harness.NewUserBody(harness.Email("x"), s.Password(), admin))
		s.Expect(t, http.StatusForbidden, http.MethodPatch, harness.UserPath(a.ID)+"/role", a.Access, map[string]any{"role": admin})

		// The same email in another case is taken.
		r = s.Expect(t, http.StatusConflict, http.MethodPost, "/api/v1/auth/sign-up", "", harness.NewUserBody(strings.ToUpper(a.Email), s.Password(), ""))
		if e := r.Error(t); e.Code != "email_taken" {
			t.Errorf("%s: want code email_taken", r)
		}

		// Every bad field is named at once; a rejected password is never repeated.
		bad := harness.NewUserBody("not-an-email", "s-"+strings.ToLower(s.Password()[3:8]), "")
		s.Leaks.SecretPassword(bad["password"].(string))
		bad["gender"] = "robot"
		r = s.Expect(t, http.StatusUnprocessableEntity, http.MethodPost, "/api/v1/auth/sign-up", "", bad)
		var fields []string
		for _, f := range r.Error(t).Errors {
			fields = append(fields, f.Field)
		}
		for _, want := range []string{"email", "gender", "password"} {
			if !slices.Contains(fields, want) {
				t.Errorf("%s: no error for %s", r, want)
			}
		}
	})
}

// TestConditionalUpdate uses ETag and If-Match (docs/api.md): a stale tag is
// a 412 and changes nothing.
func TestConditionalUpdate(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		u := s.CreateAndLogin(t, root, user)
		path := harness.UserPath(u.ID)

		e1 := s.Expect(t, http.StatusOK, http.MethodGet, path, root.Access, nil).Header.Get("ETag")
		if e1 == "" {
			t.Fatal("GET /users/{id}: no ETag")
		}
		if got := s.Expect(t, http.StatusOK, http.MethodGet, me, u.Access, nil).Header.Get("ETag"); got != e1 {
			t.Errorf("/users/me ETag %s, /users/{id} ETag %s: the same user, the same tag", got, e1)
		}
		r := s.Expect(t, http.StatusOK, http.MethodPut, path, u.Access, map[string]any{"first_name": "Anna"}, "If-Match", e1)
		e2 := r.Header.Get("ETag")
		if e2 == "" || e2 == e1 {
			t.Errorf("%s: ETag %q after a change, was %q", r, e2, e1)
		}

		// Somebody changed the user since e1 was read.
		r = s.Expect(t, http.StatusPreconditionFailed, http.MethodPut, path, root.Access, map[string]any{"first_name": "Bella"}, "If-Match", e1)
		if e := r.Error(t); e.Code != "stale" {
			t.Errorf("%s: want code stale", r)
		}
		r = s.Expect(t, http.StatusOK, http.MethodGet, path, root.Access, nil)
		if r.User(t).FirstName != "Anna" || r.Header.Get("ETag") != e2 {
			t.Errorf("%s: the stale update changed the user", r)
		}

		// A role change is a change too.
		s.Expect(t, http.StatusOK, http.MethodPatch, path+"/role", root.Access, map[string]any{"role": admin})
		s.Expect(t, http.StatusPreconditionFailed, http.MethodPut, path, root.Access, map[string]any{"first_name": "Cleo"}, "If-Match", e2)
		e3 := s.Expect(t, http.StatusOK, http.MethodGet, path, root.Access, nil).Header.Get("ETag")
		s.Expect(t, http.StatusOK, http.MethodPut, path, root.Access, map[string]any{"first_name": "Cleo"}, "If-Match", `"stale", `+e3)
		s.Expect(t, http.StatusOK, http.MethodPut, path, root.Access, map[string]any{"first_name": "Dora"}, "If-Match", "*")
		s.Expect(t, http.StatusPreconditionFailed, http.MethodPut, path, root.Access, map[string]any{"first_name": "Emma"}, "If-Match", "W/"+e3)
		s.Expect(t, http.StatusOK, http.MethodPut, path, root.Access, map[string]any{"first_name": "Emma"})

		// Another user's email is taken, in any case; null clears the address.
		r = s.Expect(t, http.StatusConflict, http.MethodPut, path, root.Access, map[string]any{"email": strings.ToUpper(root.Email)})
		if e := r.Error(t); e.Code != "email_taken" {
			t.Errorf("%s: want code email_taken", r)
		}
		r = s.Expect(t, http.StatusOK, http.MethodPut, path, root.Access, map[string]any{"ip_address": nil, "gender": "NON-BINARY"})
		if got := r.User(t); got.IPAddress != nil || got.Gender != "Non-binary" {
			t.Errorf("%s: want no address and gender Non-binary", r)
		}
	})
}

// page reads one page envelope, checking that every member is there.
func page(t *testing.T, s *harness.Service, path, token string) harness.PageDTO {
	t.Helper()
	r := s.Expect(t, http.StatusOK, http.MethodGet, path, token, nil)
	var raw map[string]json.RawMessage
	r.Decode(t, &raw)
	for _, k := range []string{"items", "total", "total_exact", "page", "size", "pages", "next_cursor"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("%s: the envelope has no %q", r, k)
		}
	}
	var p harness.PageDTO
	r.Decode(t, &p)
	if p.Items == nil || p.Total == nil || p.TotalExact == nil || p.Page == nil || p.Size == nil || p.Pages == nil {
		t.Fatalf("%s: an incomplete envelope", r)
	}
	if want := (*p.Total + int64(*p.Size) - 1) / int64(*p.Size); *p.Pages != want {
		t.Errorf("%s: pages %d, want ceil(total/size) = %d", r, *p.Pages, want)
	}
	return p
}

// walk follows next_cursor from path to the last page and returns the ids
// in the order seen, checking each page against the first.
func walk(t *testing.T, s *harness.Service, path, token string, size int) []int64 {
	t.Helper()
	first := page(t, s, path, token)
	var ids []int64
	p := first
	for n := 1; ; n++ {
		if *p.Page != n || *p.Size != size || *p.Total != *first.Total || !*p.TotalExact {
			t.Errorf("%s page %d: page %d, size %d, total %d (exact %v); want page %d, size %d, total %d (exact)",
				path, n, *p.Page, *p.Size, *p.Total, *p.TotalExact, n, size, *first.Total)
		}
		for _, u := range p.Items {
			ids = append(ids, u.ID)
		}
		if p.NextCursor == nil {
			if int64(n) != *first.Pages && *first.Total > 0 {
				t.Errorf("%s: the cursor ran out after page %d of %d", path, n, *first.Pages)
			}
			return ids
		}
		if len(p.Items) != size {
			t.Errorf("%s page %d: %d items and a next cursor", path, n, len(p.Items))
		}
		if n > 100 {
			t.Fatalf("%s: more than 100 pages", path)
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		p = page(t, s, path+sep+"cursor="+url.QueryEscape(*p.NextCursor), token)
	}
}

// TestPaging walks list and search by page and by cursor (docs/api.md: the
// page envelope, cursors, the order, pages past the last, and parameter
// errors).
func TestPaging(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		u := s.CreateAndLogin(t, root, user)
		all := []int64{root.ID, u.ID}
		tagged := map[int64]string{}
		for i := range 9 {
			role := []string{user, admin, superadmin}[i%3]
			a := s.CreateNamed(t, root, role, "pagetag")
			all = append(all, a.ID)
			tagged[a.ID] = a.Email
		}
		slices.Sort(all)

		// The list, by cursor: every user once, in id order.
		const size = 3
		first := page(t, s, "/api/v1/users/list?size=3", u.Access)
		if *first.Total != int64(len(all)) || *first.Pages != 4 || !*first.TotalExact || first.NextCursor == nil {
			t.Errorf("first page: total %d, pages %d, exact %v, next %v; want %d, 4, exact, a cursor",
				*first.Total, *first.Pages, *first.TotalExact, first.NextCursor, len(all))
		}
		if ids := walk(t, s, "/api/v1/users/list?size=3", u.Access, size); !slices.Equal(ids, all) {
			t.Errorf("walking the list by cursor saw %v, want every user once in id order: %v", ids, all)
		}

		// By page number, the same pages; past the last, an empty page.
		var byPage []int64
		for n := 1; n <= 4; n++ {
			for _, it := range page(t, s, "/api/v1/users/list?size=3&page="+strconv.Itoa(n), u.Access).Items {
				byPage = append(byPage, it.ID)
			}
		}
		if !slices.Equal(byPage, all) {
			t.Errorf("the list by page number saw %v, want %v", byPage, all)
		}
		past := page(t, s, "/api/v1/users/list?size=3&page=9", u.Access)
		if len(past.Items) != 0 || past.NextCursor != nil || *past.Total != int64(len(all)) {
			t.Errorf("a page past the last: %d items, next %v, total %d", len(past.Items), past.NextCursor, *past.Total)
		}

		// A search with a filter and a sort, by cursor.
		var want []int64
		for id := range tagged {
			want = append(want, id)
		}
		slices.SortFunc(want, func(a, b int64) int { return strings.Compare(tagged[b], tagged[a]) })
		if ids := walk(t, s, "/api/v1/users/search?email=PAGETAG&sort=-email&size=2", root.Access, 2); !slices.Equal(ids, want) {
			t.Errorf("walking a search by cursor saw %v, want the tagged users by email descending: %v", ids, want)
		}
		if admins := walk(t, s, "/api/v1/users/search?role=admin&size=2", root.Access, 2); len(admins) != 3 {
			t.Errorf("role=admin found %v, want the 3 admins", admins)
		}

		// Filters: Unicode-aware case folding, CIDR blocks, gender in any
		// case, literal wildcards; all applied together.
		for _, tc := range []struct {
			query string
			want  int64
		}{
			{"email=pagetag&first_name=ZOË", 9},
			{"email=pagetag&first_name=zoe", 0},
			{"email=pagetag&last_name=o'test", 9},
			{"email=pagetag&ip_address=10.0.0.0/8", 9},
			{"email=pagetag&ip_address=10.1.2.3", 9},
			{"email=pagetag&ip_address=192.168.0.0/16", 0},
			{"email=pagetag&gender=FEMALE", 9},
			{"email=pagetag&gender=male", 0},
			{"email=pagetag&role=superadmin", 3},
			{"email=page%25tag", 0},
			{"email=page_tag", 0},
		} {
			if got := page(t, s, "/api/v1/users/search?"+tc.query, root.Access); *got.Total != tc.want || int64(len(got.Items)) != tc.want {
				t.Errorf("search?%s: total %d, %d items; want %d", tc.query, *got.Total, len(got.Items), tc.want)
			}
		}

		// email_exact: the one user with that whole address, in any letter
		// case, with every other filter and a sort; a part of an address
		// finds no one (docs/api.md).
		one := all[len(all)-1]
		addr := tagged[one]
		for _, tc := range []struct {
			query string
			want  []int64
		}{
			{"email_exact=" + url.QueryEscape(strings.ToUpper(addr)), []int64{one}},
			{"email_exact=" + url.QueryEscape(addr) + "&email=PAGETAG&first_name=zo&last_name=test&gender=female&ip_address=10.0.0.0/8&role=" + []string{user, admin, superadmin}[8%3] + "&sort=-created_at", []int64{one}},
			{"email_exact=" + url.QueryEscape(addr) + "&gender=male", nil},
			{"email_exact=" + url.QueryEscape("x"+addr), nil},
			{"email_exact=" + url.QueryEscape(strings.Replace(addr, "@", "@x", 1)), nil},
		} {
			got := page(t, s, "/api/v1/users/search?"+tc.query, root.Access)
			var ids []int64
			for _, it := range got.Items {
				ids = append(ids, it.ID)
			}
			if !slices.Equal(ids, tc.want) || *got.Total != int64(len(tc.want)) {
				t.Errorf("search?%s: %v (total %d), want %v", tc.query, ids, *got.Total, tc.want)
			}
		}

		// The audit log pages the same way, by seq.
		var seqs []int64
		path := "/api/v1/audit?size=4"
		for n := 1; ; n++ {
			r := s.Expect(t, http.StatusOK, http.MethodGet, path, root.Access, nil)
			var ap struct {
				Items []struct {
					Seq      int64 `json:"seq"`
					TargetID int64 `json:"target_id"`
					Action   string
				} `json:"items"`
				Total      int64   `json:"total"`
				Page       int     `json:"page"`
				Pages      int64   `json:"pages"`
				NextCursor *string `json:"next_cursor"`
			}
			r.Decode(t, &ap)
			if ap.Page != n || ap.Total != int64(len(all)) || ap.Pages != (ap.Total+3)/4 {
				t.Errorf("%s: page %d, total %d, pages %d; want page %d, total %d (one creation each)", r, ap.Page, ap.Total, ap.Pages, n, len(all))
			}
			for _, e := range ap.Items {
				seqs = append(seqs, e.Seq)
			}
			if ap.NextCursor == nil || n > 10 {
				break
			}
			path = "/api/v1/audit?cursor=" + url.QueryEscape(*ap.NextCursor)
		}
		if len(seqs) != len(all) || !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
			t.Errorf("walking the audit log saw seqs %v, want %d entries in increasing order", seqs, len(all))
		}

		// Nothing found: an empty page, no pages.
		none := page(t, s, "/api/v1/users/search?email=nobody-has-this", root.Access)
		if *none.Total != 0 || *none.Pages != 0 || len(none.Items) != 0 || none.NextCursor != nil {
			t.Errorf("an empty search: %+v", none)
		}

		// A cursor is the service's own, for the query it came from.
		cursor := *first.NextCursor
		forged := []byte(cursor)
		forged[len(forged)/2] ^= 1
		for _, path := range []string{
			"/api/v1/users/list?cursor=" + url.QueryEscape(string(forged)),
			"/api/v1/users/list?cursor=" + url.QueryEscape(cursor[:len(cursor)-2]),
			"/api/v1/users/list?cursor=garbage",
			"/api/v1/users/list?size=5&cursor=" + url.QueryEscape(cursor),
			"/api/v1/users/search?email=pagetag&cursor=" + url.QueryEscape(cursor),
			"/api/v1/users/search?sort=-id&cursor=" + url.QueryEscape(cursor),
			"/api/v1/audit?cursor=" + url.QueryEscape(cursor),
		} {
			if e := s.Expect(t, http.StatusBadRequest, http.MethodGet, path, root.Access, nil).Error(t); e.Code != "invalid_cursor" {
				t.Errorf("GET %s: code %q, want invalid_cursor", path, e.Code)
			}
		}
		s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/list?size=3&cursor="+url.QueryEscape(cursor), root.Access, nil)

		// Parameters: unknown or repeated ones are 400s naming them; bad values 400 or 422.
		for _, tc := range []struct {
			path  string
			want  int
			names string // the parameter the error must name
		}{
			{"/api/v1/users/search?emial=zoe", http.StatusBadRequest, "emial"},
			{"/api/v1/users/search?email=zoe&first_nam=Zo", http.StatusBadRequest, "first_nam"},
			{"/api/v1/users/list?role=admin", http.StatusBadRequest, "role"},
			{"/api/v1/users/search?role=admin&role=user", http.StatusBadRequest, "role"},
			{"/api/v1/audit?actor=1", http.StatusBadRequest, "actor"},
			{"/api/v1/users/list?page=abc", http.StatusBadRequest, "page"},
			{"/api/v1/users/list?size=0", http.StatusUnprocessableEntity, "size"},
			{"/api/v1/users/list?size=101", http.StatusUnprocessableEntity, "size"},
			{"/api/v1/users/list?page=0", http.StatusUnprocessableEntity, "page"},
			{"/api/v1/users/search?sort=password", http.StatusUnprocessableEntity, "sort"},
			{"/api/v1/users/search?ip_address=10.0.0.0/33", http.StatusUnprocessableEntity, "ip_address"},
			{"/api/v1/users/search?email_exact=example.com", http.StatusUnprocessableEntity, "email_exact"},
			{"/api/v1/users/search?email_exact=%40example.com", http.StatusUnprocessableEntity, "email_exact"},
			{"/api/v1/users/search?email_exact=a%40b.com&email_exact=c%40d.com", http.StatusBadRequest, "email_exact"},
		} {
			r := s.Expect(t, tc.want, http.MethodGet, tc.path, root.Access, nil)
			e := r.Error(t)
			named := strings.Contains(e.Detail, tc.names)
			for _, f := range e.Errors {
				named = named || f.Field == tc.names
			}
			if !named {
				t.Errorf("%s: the error does not name %q", r, tc.names)
			}
		}
	})
}
