package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

func TestGetMe(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.users.MeFn = func(_ context.Context, a domain.Actor) (*domain.User, error) {
		if a != userActor {
			t.Errorf("actor = %+v", a)
		}
		return testUser(t, 7), nil
	}
	rec := h.get("/api/v1/users/me", userToken)
	wantStatus(t, rec, http.StatusOK)
	if got, want := rec.Header().Get("ETag"), `"3"`; got != want {
		t.Errorf("ETag = %q, want %q", got, want)
	}
	ip := "10.0.0.1"
	want := User{ID: 7, FirstName: "Zoë", LastName: "O'Doireidh", Email: "zoe@example.com",
		Gender: string(GenderFemale), IPAddress: &ip, Role: string(RoleUser),
		CreatedAt: testTime, UpdatedAt: testTime.Add(time.Hour)}
	if got := decode[User](t, rec); !reflect.DeepEqual(got, want) {
		t.Errorf("user = %+v, want %+v", got, want)
	}
	if !strings.Contains(rec.Body.String(), `"created_at":"2024-03-01T12:30:45.123456Z"`) {
		t.Errorf("created_at not RFC 3339 UTC: %s", rec.Body.String())
	}
}

func userPage(t *testing.T, ids ...int64) ports.Page {
	p := ports.Page{Total: int64(len(ids)), TotalExact: true, Page: 1, Size: 50, Pages: 1}
	for _, id := range ids {
		p.Items = append(p.Items, testUser(t, id))
	}
	return p
}

func TestListUsers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	var got ports.PageRequest
	h.users.ListFn = func(_ context.Context, _ domain.Actor, r ports.PageRequest) (ports.Page, error) {
		got = r
		p := userPage(t, 1, 2)
		p.NextCursor = "c2"
		p.TotalExact = false
		return p, nil
	}
	rec := h.get("/api/v1/users/list?page=3&size=2&cursor=abc", userToken)
	wantStatus(t, rec, http.StatusOK)
	if want := (ports.PageRequest{Page: 3, Size: 2, Cursor: "abc"}); got != want {
		t.Errorf("List got %+v, want %+v", got, want)
	}
	page := decode[UserPage](t, rec)
	if len(page.Items) != 2 || page.Items[1].ID != 2 || page.NextCursor == nil || *page.NextCursor != "c2" ||
		page.Total != 2 || page.TotalExact || page.Pages != 1 || page.Size != 50 || page.Page != 1 {
		t.Errorf("page = %+v", page)
	}
}

func TestEmptyPageHasEmptyItemsAndNullCursor(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.users.ListFn = func(context.Context, domain.Actor, ports.PageRequest) (ports.Page, error) {
		return ports.Page{TotalExact: true, Page: 9, Size: 50}, nil
	}
	rec := h.get("/api/v1/users/list?page=9", userToken)
	wantStatus(t, rec, http.StatusOK)
	for _, want := range []string{`"items":[]`, `"next_cursor":null`, `"pages":0`, `"total":0`, `"total_exact":true`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("body lacks %s: %s", want, rec.Body.String())
		}
	}
}

func TestSearchUsersPassesEveryFilter(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	var got ports.PageRequest
	h.users.SearchFn = func(_ context.Context, _ domain.Actor, r ports.PageRequest) (ports.Page, error) {
		got = r
		return userPage(t, 5), nil
	}
	rec := h.get("/api/v1/users/search?first_name=Zo%C3%8B&last_name=o%27d&email=%25_%5C&gender=female"+
		"&role=admin&ip_address=10.0.0.0%2F8&page=2&size=10&cursor=cc&sort=-last_name", adminToken)
	wantStatus(t, rec, http.StatusOK)
	want := ports.PageRequest{
		Filter: domain.FilterParams{FirstName: "ZoË", LastName: "o'd", Email: `%_\`, Gender: "female",
			Role: "admin", IPAddress: "10.0.0.0/8"},
		Sort: "-last_name", Page: 2, Size: 10, Cursor: "cc",
	}
	if got != want {
		t.Errorf("Search got %+v, want %+v", got, want)
	}
}

func TestSearchRefusesUnknownAndRepeatedParameters(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{}) // Search not set: reaching it would be a 500
	rec := h.get("/api/v1/users/search?emial=x&first_name=a", adminToken)
	body := wantError(t, rec, http.StatusBadRequest, "unknown_parameter")
	if !strings.Contains(body.Detail, `"emial"`) || fieldErrors(body)["emial"] == "" {
		t.Errorf("error does not name the parameter: %+v", body)
	}

	rec = h.get("/api/v1/users/search?zz=1&aa=2", adminToken)
	if body := wantError(t, rec, http.StatusBadRequest, "unknown_parameter"); body.Detail != `unknown query parameters: "aa", "zz"` {
		t.Errorf("detail = %q", body.Detail)
	}

	rec = h.get("/api/v1/users/search?email=a&email=b", adminToken)
	if body := wantError(t, rec, http.StatusBadRequest, "repeated_parameter"); !strings.Contains(body.Detail, `"email"`) {
		t.Errorf("detail = %q", body.Detail)
	}

	rec = h.get("/api/v1/users/list?sort=email", userToken)
	wantError(t, rec, http.StatusBadRequest, "unknown_parameter")

	rec = h.get("/api/v1/users/search?email=%zz", adminToken)
	wantError(t, rec, http.StatusBadRequest, "malformed_query")
}

func TestPageParameters(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	for _, tt := range []struct {
		query  string
		status int
		field  string
	}{
		{"page=abc", http.StatusBadRequest, ""},
		{"size=1.5", http.StatusBadRequest, ""},
		{"page=0", http.StatusUnprocessableEntity, "page"},
		{"size=0", http.StatusUnprocessableEntity, "size"},
		{"size=101", http.StatusUnprocessableEntity, "size"},
		{"page=-1&size=1000", http.StatusUnprocessableEntity, "size"},
	} {
		rec := h.get("/api/v1/users/list?"+tt.query, userToken)
		code := "malformed"
		if tt.status == http.StatusUnprocessableEntity {
			code = "validation_failed"
		}
		body := wantError(t, rec, tt.status, code)
		if tt.field != "" && fieldErrors(body)[tt.field] == "" {
			t.Errorf("%s: no error for %s: %+v", tt.query, tt.field, body)
		}
		if tt.status == http.StatusBadRequest && !strings.Contains(body.Detail, "parameter") {
			t.Errorf("%s: detail = %q", tt.query, body.Detail)
		}
	}
}

func TestCreateUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	var got ports.CreateUserRequest
	h.users.CreateFn = func(_ context.Context, a domain.Actor, r ports.CreateUserRequest) (*domain.User, error) {
		if a != adminActor {
			t.Errorf("actor = %+v", a)
		}
		got = r
		return testUser(t, 9), nil
	}
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/users/create-admin", token: adminToken,
		body: `{"first_name":"A","last_name":"B","email":"a@b.co","gender":"Male","password":"12345678","role":"admin"}`})
	wantStatus(t, rec, http.StatusCreated)
	want := ports.CreateUserRequest{User: domain.NewUserParams{FirstName: "A", LastName: "B", Email: "a@b.co", Gender: "Male"},
		Role: "admin", Password: "12345678"}
	if got != want {
		t.Errorf("Create got %+v, want %+v", got, want)
	}
	if rec.Header().Get("Location") != "/api/v1/users/9" || rec.Header().Get("ETag") == "" {
		t.Errorf("headers = %v", rec.Header())
	}
	decode[User](t, rec)
}

func TestGetUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.users.GetFn = func(_ context.Context, _ domain.Actor, id int64) (*domain.User, error) {
		if id != 12 {
			return nil, domain.ErrNotFound
		}
		return testUser(t, 12), nil
	}
	rec := h.get("/api/v1/users/12", userToken)
	wantStatus(t, rec, http.StatusOK)
	if got, want := rec.Header().Get("ETag"), `"3"`; got != want {
		t.Errorf("ETag = %q, want %q", got, want)
	}
	if u := decode[User](t, rec); u.ID != 12 {
		t.Errorf("id = %d", u.ID)
	}

	wantError(t, h.get("/api/v1/users/13", userToken), http.StatusNotFound, "not_found")
	body := wantError(t, h.get("/api/v1/users/abc", userToken), http.StatusBadRequest, "malformed")
	if body.Detail != `invalid value for parameter "id": must be an integer` {
		t.Errorf("detail = %q", body.Detail)
	}
}

func updateHarness(t *testing.T) (*harness, *ports.UpdateUserRequest) {
	h := newHarness(t, Config{})
	var got ports.UpdateUserRequest
	h.users.UpdateProfileFn = func(_ context.Context, _ domain.Actor, id int64, r ports.UpdateUserRequest) (*domain.User, error) {
		got = r
		return testUser(t, id), nil
	}
	return h, &got
}

func strp(s string) *string { return &s }

func TestUpdateUserPassesOnlyTheKeysSent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want ports.UpdateUserRequest
	}{
		{"one field", `{"first_name":"Ann"}`, ports.UpdateUserRequest{Patch: domain.ProfilePatch{FirstName: strp("Ann")}}},
		{"every field", `{"first_name":"A","last_name":"B","email":"e@x.io","gender":"male","ip_address":"::1",
			"password":"new password","current_password":"old password"}`,
			ports.UpdateUserRequest{Patch: domain.ProfilePatch{FirstName: strp("A"), LastName: strp("B"), Email: strp("e@x.io"),
				Gender: strp("male"), IPAddress: strp("::1")}, Password: strp("new password"), CurrentPassword: strp("old password")}},
		{"null ip clears", `{"ip_address":null}`, ports.UpdateUserRequest{Patch: domain.ProfilePatch{IPAddress: strp("")}}},
		{"empty ip clears", `{"ip_address":""}`, ports.UpdateUserRequest{Patch: domain.ProfilePatch{IPAddress: strp("")}}},
		{"nothing", `{}`, ports.UpdateUserRequest{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, got := updateHarness(t)
			rec := h.do(request{method: http.MethodPut, path: "/api/v1/users/7", token: userToken, body: tt.body})
			wantStatus(t, rec, http.StatusOK)
			// httptest's requests come from 192.0.2.1: the handler passes
			// the client's address on, for counting wrong current_passwords.
			tt.want.Client = netip.MustParseAddr("192.0.2.1")
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("UpdateProfile got %s, want %s", dump(*got), dump(tt.want))
			}
			if rec.Header().Get("ETag") == "" {
				t.Error("no ETag on the updated user")
			}
		})
	}
}

func dump(r ports.UpdateUserRequest) string {
	s := func(p *string) string {
		if p == nil {
			return "nil"
		}
		return `"` + *p + `"`
	}
	return "{" + strings.Join([]string{s(r.Patch.FirstName), s(r.Patch.LastName), s(r.Patch.Email), s(r.Patch.Gender),
		s(r.Patch.IPAddress), s(r.Password), s(r.CurrentPassword), fmt.Sprint(r.IfMatch)}, " ") + "}"
}

func TestUpdateUserIfMatch(t *testing.T) {
	t.Parallel()
	h, got := updateHarness(t)
	rec := h.do(request{method: http.MethodPut, path: "/api/v1/users/7", token: userToken, body: `{"last_name":"C"}`,
		header: http.Header{"If-Match": {`W/"2", "4"`}}})
	wantStatus(t, rec, http.StatusOK)
	if want := (&ports.IfMatch{Versions: []int64{4}}); !reflect.DeepEqual(got.IfMatch, want) {
		t.Errorf("IfMatch = %+v, want %+v", got.IfMatch, want)
	}

	h.users.UpdateProfileFn = func(context.Context, domain.Actor, int64, ports.UpdateUserRequest) (*domain.User, error) {
		return nil, domain.ErrStale
	}
	rec = h.do(request{method: http.MethodPut, path: "/api/v1/users/7", token: userToken, body: `{"last_name":"C"}`,
		header: http.Header{"If-Match": {`"old"`}}})
	wantError(t, rec, http.StatusPreconditionFailed, "stale")
}

func TestUpdateUserRejectsRoleUnknownKeysAndWrongTypes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{}) // UpdateProfile not set: reaching it would be a 500
	rec := h.do(request{method: http.MethodPut, path: "/api/v1/users/7", token: userToken, body: `{"role":"superadmin"}`})
	if f := fieldErrors(wantError(t, rec, http.StatusUnprocessableEntity, "validation_failed")); !strings.Contains(f["role"], "PATCH") {
		t.Errorf("errors = %v", f)
	}

	rec = h.do(request{method: http.MethodPut, path: "/api/v1/users/7", token: userToken,
		body: `{"frist_name":"A","email":5,"gender":null,"password":["x"]}`})
	f := fieldErrors(wantError(t, rec, http.StatusUnprocessableEntity, "validation_failed"))
	want := map[string]string{"frist_name": "unknown field", "email": "must be a string", "gender": "must be a string",
		"password": "must be a string"}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("errors = %v, want %v", f, want)
	}
}

func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	for name, body := range map[string]string{
		"syntax":          `{"first_name":`,
		"trailing object": `{"first_name":"A"} {"last_name":"B"}`,
		"trailing junk":   `{"first_name":"A"}x`,
		"array":           `[{"first_name":"A"}]`,
		"string":          `"A"`,
		"null":            `null`,
		"empty":           ` `,
	} {
		rec := h.do(request{method: http.MethodPut, path: "/api/v1/users/7", token: userToken, body: body})
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", name, rec.Code, rec.Body.String())
		}
		wantError(t, rec, http.StatusBadRequest, "malformed_json")
	}
	rec := h.do(request{method: http.MethodPut, path: "/api/v1/users/7", token: userToken, body: `first_name=A`,
		contentType: "application/x-www-form-urlencoded"})
	wantError(t, rec, http.StatusUnsupportedMediaType, "unsupported_media_type")
}

func TestChangeUserRole(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	var gotID int64
	var gotRole string
	h.users.ChangeRoleFn = func(_ context.Context, _ domain.Actor, id int64, role string) (*domain.User, error) {
		gotID, gotRole = id, role
		return testUser(t, id), nil
	}
	rec := h.do(request{method: http.MethodPatch, path: "/api/v1/users/8/role", token: adminToken, body: `{"role":"admin"}`})
	wantStatus(t, rec, http.StatusOK)
	if gotID != 8 || gotRole != "admin" {
		t.Errorf("ChangeRole(%d, %q)", gotID, gotRole)
	}
	if rec.Header().Get("ETag") == "" {
		t.Error("no ETag")
	}

	rec = h.do(request{method: http.MethodPatch, path: "/api/v1/users/8/role", token: adminToken, body: `{}`})
	if f := fieldErrors(wantError(t, rec, http.StatusUnprocessableEntity, "validation_failed")); f["role"] != "is required" {
		t.Errorf("errors = %v", f)
	}

	h.users.ChangeRoleFn = func(context.Context, domain.Actor, int64, string) (*domain.User, error) {
		return nil, domain.ErrOwnRoleChange
	}
	rec = h.do(request{method: http.MethodPatch, path: "/api/v1/users/1/role", token: adminToken, body: `{"role":"user"}`})
	wantError(t, rec, http.StatusForbidden, "own_role_change")
}

func TestDeleteUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	var gotID int64
	h.users.DeleteFn = func(_ context.Context, _ domain.Actor, id int64) error {
		gotID = id
		if id == 1 {
			return domain.ErrLastSuperadmin
		}
		return nil
	}
	rec := h.do(request{method: http.MethodDelete, path: "/api/v1/users/5", token: adminToken})
	wantStatus(t, rec, http.StatusNoContent)
	if gotID != 5 || rec.Body.Len() != 0 {
		t.Errorf("Delete(%d), body %q", gotID, rec.Body.String())
	}
	rec = h.do(request{method: http.MethodDelete, path: "/api/v1/users/1", token: adminToken})
	wantError(t, rec, http.StatusConflict, "last_superadmin")
}

func TestListAudit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	var got ports.AuditRequest
	h.audit.AuditFn = func(_ context.Context, a domain.Actor, r ports.AuditRequest) (ports.AuditPage, error) {
		if a != adminActor {
			t.Errorf("actor = %+v", a)
		}
		got = r
		return ports.AuditPage{
			Items: []domain.Change{
				{Seq: 10, At: testTime, ActorID: 0, Action: domain.ActionCreated, TargetID: 3, After: testUser(t, 3)},
				{Seq: 11, At: testTime, ActorID: 1, Action: domain.ActionDeleted, TargetID: 3, Before: testUser(t, 3)},
			},
			Total: 2, TotalExact: true, Page: 1, Size: 2, Pages: 1, NextCursor: "n",
		}, nil
	}
	rec := h.get("/api/v1/audit?target_id=3&actor_id=0&action=created&since=2024-01-01T00:00:00Z"+
		"&until=2024-02-01T00:00:00%2B02:00&cursor=c&size=2", adminToken)
	wantStatus(t, rec, http.StatusOK)
	if got.TargetID == nil || *got.TargetID != 3 || got.ActorID == nil || *got.ActorID != 0 || got.Action != "created" ||
		!got.Since.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) ||
		!got.Until.Equal(time.Date(2024, 1, 31, 22, 0, 0, 0, time.UTC)) || got.Cursor != "c" || got.Size != 2 {
		t.Errorf("Audit got %+v", got)
	}
	page := decode[AuditPage](t, rec)
	if len(page.Items) != 2 || page.Items[0].Before != nil || page.Items[0].After == nil || page.Items[0].After.ID != 3 ||
		page.Items[1].After != nil || page.Items[1].Action != AuditEntryActionDeleted || *page.NextCursor != "n" {
		t.Errorf("page = %+v", page)
	}
	for _, want := range []string{`"before":null`, `"after":null`, `"actor_id":0`, `"seq":10`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("body lacks %s: %s", want, rec.Body.String())
		}
	}
	if strings.Contains(strings.ToLower(rec.Body.String()), "argon2") {
		t.Errorf("audit entry leaks a password hash: %s", rec.Body.String())
	}

	got = ports.AuditRequest{}
	rec = h.get("/api/v1/audit", adminToken)
	wantStatus(t, rec, http.StatusOK)
	if !reflect.DeepEqual(got, ports.AuditRequest{}) {
		t.Errorf("no filters should give a zero request, got %+v", got)
	}

	wantError(t, h.get("/api/v1/audit?since=yesterday", adminToken), http.StatusBadRequest, "malformed")
	wantError(t, h.get("/api/v1/audit?size=0", adminToken), http.StatusUnprocessableEntity, "validation_failed")
	wantError(t, h.get("/api/v1/audit?target=3", adminToken), http.StatusBadRequest, "unknown_parameter")
}
