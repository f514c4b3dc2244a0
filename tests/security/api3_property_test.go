package security

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/userservice/userservice/tests/harness"
)

// privileged are the properties no client sets: the service assigns them,
// or they are secrets that never leave it.
var privileged = map[string]any{
	"id":             424242,
	"role":           superadmin,
	"created_at":     "2000-01-01T00:00:00Z",
	"updated_at":     "2000-01-01T00:00:00Z",
	"password_hash":  "$2b$10$abcdefghijklmnopqrstuuSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS",
	"token_version":  0,
	"is_superadmin":  true,
	"Role":           superadmin,
	"user":           map[string]any{"role": superadmin},
	"must_change_pw": false,
}

// TestAPI3_PropertyLevel_MassAssignment is API3:2023 Broken Object Property
// Level Authorization, its mass-assignment half: each property a client
// must not set, smuggled into sign-up, create-admin and update bodies. A
// role at sign-up is ignored (docs/api.md: always user); every other such
// key is refused with 422 naming it, and nothing is written.
func TestAPI3_PropertyLevel_MassAssignment(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		u := c.byRole[user]
		adm := c.byRole[admin]
		keys := make([]string, 0, len(privileged))
		for k := range privileged {
			keys = append(keys, k)
		}
		slices.Sort(keys)

		refused := func(t *testing.T, r harness.Response, key string) {
			t.Helper()
			if r.Status != http.StatusUnprocessableEntity {
				t.Errorf("%s: want 422", r)
				return
			}
			if !slices.ContainsFunc(r.Error(t).Errors, func(f struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			}) bool {
				return f.Field == key
			}) {
				t.Errorf("%s: the errors do not name %q", r, key)
			}
		}
		for _, key := range keys {
			t.Run("sign-up/"+key, func(t *testing.T) {
				email := harness.Email("mass")
				body := harness.NewUserBody(email, s.Password(), "")
				body[key] = privileged[key]
				r := s.Do(t, http.MethodPost, signUp, "", body)
				if key == "role" {
					if r.Status != http.StatusCreated || r.User(t).Role != user {
						t.Errorf("%s: want 201 with role user", r)
					}
					return
				}
				refused(t, r, key)
				if got := s.Expect(t, http.StatusOK, http.MethodGet, search+"?email="+email, c.root.Access, nil); countItems(t, got) != 0 {
					t.Errorf("a refused sign-up left a user: %s", got)
				}
			})
			t.Run("create-admin/"+key, func(t *testing.T) {
				if key == "role" {
					return // create-admin takes a role: that is its purpose
				}
				body := harness.NewUserBody(harness.Email("mass"), s.Password(), user)
				body[key] = privileged[key]
				refused(t, s.Do(t, http.MethodPost, createUser, c.root.Access, body), key)
			})
			t.Run("update/"+key, func(t *testing.T) {
				before := snapshot(t, s, c.root, u.ID)
				refused(t, s.Do(t, http.MethodPut, harness.UserPath(u.ID), u.Access,
					map[string]any{"first_name": "Eve", key: privileged[key]}), key)
				// An admin may update a user's profile, and no more than a profile.
				refused(t, s.Do(t, http.MethodPut, harness.UserPath(u.ID), adm.Access,
					map[string]any{"first_name": "Eve", key: privileged[key]}), key)
				if after := snapshot(t, s, c.root, u.ID); after != before {
					t.Errorf("a refused update changed the user:\nbefore %s\nafter  %s", before, after)
				}
			})
		}

		// The JSON tricks a lax decoder falls for: an escaped key, a key
		// given twice (the last wins in most decoders).
		r := s.Expect(t, http.StatusCreated, http.MethodPost, signUp, "", harness.RawBody{ContentType: "application/json",
			Data: fmt.Sprintf(`{"first_name":"Zoë","last_name":"Ng","email":%q,"gender":"female","password":%q,"r\u006fle":"superadmin","role":"user","role":"superadmin"}`,
				harness.Email("dup"), s.Password())})
		if got := r.User(t).Role; got != user {
			t.Errorf("sign-up with escaped and repeated role keys made a %s", got)
		}
		s.Expect(t, http.StatusUnprocessableEntity, http.MethodPut, harness.UserPath(u.ID), u.Access,
			harness.RawBody{ContentType: "application/json", Data: `{"first_name":"Eve","r\u006fle":"superadmin"}`})
		// A user's role changes only through PATCH .../role, by policy.
		s.Expect(t, http.StatusForbidden, http.MethodPatch, harness.UserPath(u.ID)+"/role", u.Access, map[string]any{"role": superadmin})
		if me := s.Expect(t, http.StatusOK, http.MethodGet, me, u.Access, nil).User(t); me.Role != user || me.FirstName == "Eve" {
			t.Errorf("after the attempts the user is %+v", me)
		}
	})
}

func countItems(t *testing.T, r harness.Response) int {
	t.Helper()
	var p harness.PageDTO
	r.Decode(t, &p)
	return len(p.Items)
}

// TestAPI3_PropertyLevel_NoExcessiveExposure is API3:2023's other half:
// every answer that carries a user (each route, as each role), every page
// item, every audit entry and every WebSocket event holds the public
// properties and nothing else. The leak scan run when the test ends
// checks that no password, hash, token or secret appears anywhere in them.
func TestAPI3_PropertyLevel_NoExcessiveExposure(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		ws := s.ConnectWS(t, c.root.Access)
		ws.Subscribe(map[string]any{"action": "subscribe_search", "email": "@example.com"})

		checkUser := func(where string, u map[string]any) {
			t.Helper()
			var keys []string
			for k := range u {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			want := slices.Sorted(slices.Values(publicUserKeys))
			if !slices.Equal(keys, want) {
				t.Errorf("%s: a user with members %q, want exactly %q", where, keys, want)
			}
		}
		asUser := func(r harness.Response) {
			t.Helper()
			var u map[string]any
			r.Decode(t, &u)
			checkUser(r.Method+" "+r.Path, u)
		}
		asPage := func(r harness.Response) {
			t.Helper()
			var p struct{ Items []map[string]any }
			r.Decode(t, &p)
			if len(p.Items) == 0 {
				t.Errorf("%s: an empty page proves nothing", r)
			}
			for _, u := range p.Items {
				checkUser(r.Method+" "+r.Path, u)
			}
		}
		for _, role := range roles {
			a := c.byRole[role]
			asUser(s.Expect(t, http.StatusOK, http.MethodGet, me, a.Access, nil))
			asUser(s.Expect(t, http.StatusOK, http.MethodGet, harness.UserPath(c.root.ID), a.Access, nil))
			asPage(s.Expect(t, http.StatusOK, http.MethodGet, list, a.Access, nil))
		}
		asPage(s.Expect(t, http.StatusOK, http.MethodGet, search+"?email=example", c.byRole[admin].Access, nil))
		created := s.Expect(t, http.StatusCreated, http.MethodPost, signUp, "", harness.NewUserBody(harness.Email("new"), s.Password(), ""))
		asUser(created)
		id := created.User(t).ID
		asUser(s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(id), c.root.Access, map[string]any{"password": s.Password(), "last_name": "Quinn"}))
		asUser(s.Expect(t, http.StatusOK, http.MethodPatch, harness.UserPath(id)+"/role", c.root.Access, map[string]any{"role": admin}))
		s.Expect(t, http.StatusNoContent, http.MethodDelete, harness.UserPath(id), c.root.Access, nil)

		// The audit trail records changes, not secrets: before and after
		// are users like any other.
		r := s.Expect(t, http.StatusOK, http.MethodGet, audit+"?target_id="+strconv.FormatInt(id, 10), c.root.Access, nil)
		var entries struct {
			Items []struct {
				Action string         `json:"action"`
				Before map[string]any `json:"before"`
				After  map[string]any `json:"after"`
			}
		}
		r.Decode(t, &entries)
		if len(entries.Items) < 4 {
			t.Errorf("%s: want the creation, the password and profile change, the role change and the deletion", r)
		}
		for _, e := range entries.Items {
			for _, u := range []map[string]any{e.Before, e.After} {
				if u != nil {
					checkUser("the audit entry of "+e.Action, u)
				}
			}
		}

		// And so are the events the WebSocket delivered for those changes.
		events := 0
		for events < 4 {
			m := ws.Next()
			if m.Type() == "created" || m.Type() == "updated" || m.Type() == "deleted" {
				checkUser("a "+m.Type()+" event", m.User())
				events++
			}
		}
	})
}
