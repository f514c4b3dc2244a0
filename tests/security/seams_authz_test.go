package security

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/userservice/userservice/tests/harness"
)

// These tests are the attacks at the seams between features: a path to a
// user's data or credentials that each feature guards on its own, but that
// another feature reached around the guard.

// oldHash is an argon2id PHC string of password with weaker parameters than
// the service's (8 MiB, one pass): accepted on import, verified at login,
// and replaced there by a hash with the current parameters. It is quoted
// for a CSV cell (the parameters hold commas).
func oldHash(t *testing.T, password string) string {
	t.Helper()
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		t.Fatal(err)
	}
	key := argon2.IDKey([]byte(password), salt, 1, 8192, 1, 32)
	b64 := base64.RawStdEncoding.EncodeToString
	return fmt.Sprintf(`"$argon2id$v=%d$m=8192,t=1,p=1$%s$%s"`, argon2.Version, b64(salt), b64(key))
}

// importCSV posts data as an import by token with query q and decodes the
// report, which must come with status want.
func importCSV(t *testing.T, s *harness.Service, token, q, data string, want int) (importReport, harness.Response) {
	t.Helper()
	r := s.Expect(t, want, http.MethodPost, importPath+"?"+q, token, csvBody(data))
	var rep importReport
	r.Decode(t, &rep)
	return rep, r
}

// importRow is a CSV line for account a's email (as the stored user's
// profile, renamed to first), with hash in a password_hash column and role
// in a role column; the header is importRowHeader.
func importRow(a *harness.Account, first, hash, role string) string {
	return fmt.Sprintf("%s,O'Test,%s,female,10.1.2.3,%s,%s\n", first, a.Email, hash, role)
}

const importRowHeader = "first_name,last_name,email,gender,ip_address,password_hash,role\n"

// userByEmail finds the id of the user with email, as root sees it.
func userByEmail(t *testing.T, s *harness.Service, root *harness.Account, email string) (int64, bool) {
	t.Helper()
	r := s.Expect(t, http.StatusOK, http.MethodGet, search+"?email="+url.QueryEscape(email), root.Access, nil)
	var p struct {
		Items []harness.UserDTO `json:"items"`
	}
	r.Decode(t, &p)
	for _, u := range p.Items {
		if u.Email == email {
			return u.ID, true
		}
	}
	return 0, false
}

// TestSeams_3_AdminCannotTakeOverAPeerAdmin is issue point 3: an admin
// demoted a peer admin to user (allowed), set its password (then allowed on
// users), and promoted it back: a takeover in three calls. Setting another
// account's password is now users.password.update, superadmin only in the
// shipped policy; one's own password is unaffected.
func TestSeams_3_AdminCannotTakeOverAPeerAdmin(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		attacker := c.byRole[admin]
		peer := s.CreateAndLogin(t, c.root, admin)
		stolen := "Mallory-owns-this-1"
		role := harness.UserPath(peer.ID) + "/role"

		s.Expect(t, http.StatusOK, http.MethodPatch, role, attacker.Access, map[string]any{"role": user})
		r := s.Expect(t, http.StatusForbidden, http.MethodPut, harness.UserPath(peer.ID), attacker.Access, map[string]any{"password": stolen})
		// With the email too, as the old attack's variant did.
		s.Expect(t, http.StatusForbidden, http.MethodPut, harness.UserPath(peer.ID), attacker.Access,
			map[string]any{"email": harness.Email("mallory"), "password": stolen})
		s.Expect(t, http.StatusOK, http.MethodPatch, role, attacker.Access, map[string]any{"role": admin})
		if e := r.Error(t); e.Code != "forbidden" {
			t.Errorf("%s: code %q, want forbidden", r, e.Code)
		}

		// The peer's password is its own; the attacker's opens nothing.
		if got := loginStatus(t, s, peer); got != http.StatusOK {
			t.Errorf("the peer's own password: login %d, want 200", got)
		}
		if got := loginStatus(t, s, &harness.Account{Email: peer.Email, Password: stolen}); got != wrongLogin {
			t.Errorf("the attacker's password: login %d, want %d", got, wrongLogin)
		}
		// A plain user's password is out of an admin's reach too (the
		// policy's users.update on users stays: the profile, not the account).
		victim := c.byRole[user]
		s.Expect(t, http.StatusForbidden, http.MethodPut, harness.UserPath(victim.ID), attacker.Access, map[string]any{"password": stolen})
		s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(victim.ID), attacker.Access, map[string]any{"first_name": "Renamed"})

		// One's own password, with current_password, for every role; and a
		// superadmin sets anyone's.
		for _, r := range roles {
			a := c.byRole[r]
			next := s.Password()
			s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(a.ID), a.Access,
				map[string]any{"password": next, "current_password": a.Password})
			a.Password = next
			if got := loginStatus(t, s, a); got != http.StatusOK {
				t.Errorf("%s's own new password: login %d", r, got)
			}
		}
		reset := s.Password()
		s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(peer.ID), c.root.Access, map[string]any{"password": reset})
		if got := loginStatus(t, s, &harness.Account{Email: peer.Email, Password: reset}); got != http.StatusOK {
			t.Errorf("the password a superadmin set: login %d", got)
		}
	})
}

// TestSeams_4_ImportMergeIsAuthorizedLikePUT is issue point 4: with
// users.import granted to admins (an edited policy), an on_conflict=update
// import overwrote a superadmin's password hash although PUT /users/{id}
// was 403 for the same admin. The decision table below puts every change an
// import merge can carry (a profile, a password hash, a role) to every
// target role, by an admin and by a superadmin, both ways: as the REST call
// and as an import row. The answers must agree, and a refused row is
// reported under "permission" and writes nothing.
func TestSeams_4_ImportMergeIsAuthorizedLikePUT(t *testing.T) {
	t.Parallel()
	opts := harness.Options{PolicyRows: []string{"p, admin, users.import, *, *, *"}}
	harness.OnEachBackend(t, opts, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		actors := map[string]*harness.Account{admin: c.byRole[admin], superadmin: c.byRole[superadmin]}
		type change struct {
			name string
			// rest is the REST call making the change to the user at path.
			rest func(path string) (method, p string, body map[string]any)
			// row is the import row making it to a.
			row func(a *harness.Account) string
		}
		newPassword := "Mallory-owns-this-1"
		changes := []change{
			{"profile",
				func(p string) (string, string, map[string]any) {
					return http.MethodPut, p, map[string]any{"first_name": "Renamed"}
				},
				func(a *harness.Account) string { return importRow(a, "Renamed", "", "") }},
			{"password",
				func(p string) (string, string, map[string]any) {
					return http.MethodPut, p, map[string]any{"password": newPassword}
				},
				func(a *harness.Account) string { return importRow(a, "Zoë", oldHash(t, newPassword), "") }},
			{"role to user",
				func(p string) (string, string, map[string]any) {
					return http.MethodPatch, p + "/role", map[string]any{"role": user}
				},
				func(a *harness.Account) string { return importRow(a, "Zoë", "", user) }},
			{"role to superadmin",
				func(p string) (string, string, map[string]any) {
					return http.MethodPatch, p + "/role", map[string]any{"role": superadmin}
				},
				func(a *harness.Account) string { return importRow(a, "Zoë", "", superadmin) }},
		}
		for _, actorRole := range []string{admin, superadmin} {
			actor := actors[actorRole]
			for _, targetRole := range roles {
				for _, ch := range changes {
					if strings.HasPrefix(ch.name, "role to ") && strings.TrimPrefix(ch.name, "role to ") == targetRole {
						continue // no change
					}
					t.Run(fmt.Sprintf("%s/%s/%s", actorRole, targetRole, ch.name), func(t *testing.T) {
						// REST on one target, the import on another alike.
						viaREST := s.Create(t, c.root, targetRole)
						method, p, body := ch.rest(harness.UserPath(viaREST.ID))
						restAllowed := s.Do(t, method, p, actor.Access, body).Status == http.StatusOK

						viaImport := s.Create(t, c.root, targetRole)
						before := snapshot(t, s, c.root, viaImport.ID)
						rep, _ := importCSV(t, s, actor.Access, "on_conflict=update", importRowHeader+ch.row(viaImport), http.StatusOK)
						var fields []string
						for _, e := range rep.Errors {
							fields = append(fields, e.Field)
						}
						refused := slices.Contains(fields, "permission")
						roleChange := strings.HasPrefix(ch.name, "role")
						switch {
						case roleChange:
							// An import changes no role, allowed or not
							// (PATCH .../role does), so the row fails
							// either way; what it must not do is pass a
							// role the actor may not give as anything but
							// a refusal: under "permission" as PATCH
							// refuses it, or under "role" when the actor
							// may not even create users with that role.
							refused = refused || (slices.Contains(fields, "role") && strings.Contains(rep.Errors[0].Message, "may not"))
							if rep.Failed != 1 {
								t.Errorf("a role change by import: report %+v", rep)
							}
							if !restAllowed && !refused {
								t.Fatalf("PATCH refused the role, the import row was not refused (report %+v)", rep)
							}
						case refused == restAllowed:
							t.Fatalf("REST allowed=%v, but the import row was refused=%v (report %+v)", restAllowed, refused, rep)
						case rep.Failed+rep.Updated != 1:
							t.Errorf("report %+v, want the row updated or failed", rep)
						}
						if refused || roleChange {
							if rep.Updated != 0 {
								t.Errorf("a refused row: report %+v", rep)
							}
							if after := snapshot(t, s, c.root, viaImport.ID); after != before {
								t.Errorf("a refused row changed the user:\n%s\n%s", before, after)
							}
						}
						if ch.name == "password" {
							want := wrongLogin
							if !refused {
								want = http.StatusOK
							}
							got := loginStatus(t, s, &harness.Account{Email: viaImport.Email, Password: newPassword})
							if got != want {
								t.Errorf("login with the imported password: %d, want %d", got, want)
							}
							if got := loginStatus(t, s, viaImport); got == http.StatusOK && !refused {
								t.Error("the old password still works after an allowed import of a new hash")
							}
						}
					})
				}
			}
		}
	})
}

// TestSeams_6_TokenOfADeletedAccountNeverAuthenticates is issue point 6: a
// deleted user's unexpired token authenticated as the next account given
// that id, by an import asking for it explicitly. A deleted user's id is
// now never given again, so the token names nobody, forever.
func TestSeams_6_TokenOfADeletedAccountNeverAuthenticates(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		victim := s.CreateAndLogin(t, c.root, admin)
		s.Expect(t, http.StatusOK, http.MethodGet, me, victim.Access, nil)
		s.Expect(t, http.StatusNoContent, http.MethodDelete, harness.UserPath(victim.ID), c.root.Access, nil)

		// The import asks for the deleted id; the newcomer gets another.
		heir := &harness.Account{Email: harness.Email("heir"), Password: s.Password()}
		row := fmt.Sprintf("id,first_name,last_name,email,gender,ip_address,password_hash\n%d,Heir,Test,%s,female,10.1.2.3,%s\n",
			victim.ID, heir.Email, oldHash(t, heir.Password))
		rep, _ := importCSV(t, s, c.root.Access, "", row, http.StatusOK)
		if rep.Imported != 1 || rep.Failed != 0 {
			t.Fatalf("import report %+v, want the row imported", rep)
		}
		id, ok := userByEmail(t, s, c.root, heir.Email)
		if !ok {
			t.Fatal("the imported user is not found")
		}
		if id == victim.ID {
			t.Fatalf("the deleted user's id %d was given to a new account", id)
		}
		s.Expect(t, http.StatusNotFound, http.MethodGet, harness.UserPath(victim.ID), c.root.Access, nil)

		// The deleted account's tokens open nothing: REST, refresh, WebSocket.
		s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, victim.Access, nil)
		s.Expect(t, http.StatusUnauthorized, http.MethodPost, refresh, "", map[string]any{"refresh_token": victim.Refresh})
		ws, _, err := s.DialWS(t, harness.WSOptions{Token: victim.Access})
		if err == nil {
			ws.ExpectClose(4401)
		}
		// The heir's own login works, under its own id.
		s.Login(t, heir)
		if got := s.Expect(t, http.StatusOK, http.MethodGet, me, heir.Access, nil).User(t).ID; got != id {
			t.Errorf("the heir is %d, want %d", got, id)
		}
	})
}

// TestSeams_8_ImportReportIsBounded is issue point 8: a 60 MB file of bad
// rows made a 245 MB report, held in memory. A report now details at most
// 1,000 failed rows, says errors_truncated, and keeps its counts exact: its
// size no longer grows with the file.
func TestSeams_8_ImportReportIsBounded(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		file := func(bad int) string {
			var b strings.Builder
			b.WriteString(csvHeader)
			fmt.Fprintf(&b, "Good,Row,%s,female,10.1.2.3\n", harness.Email("good"))
			for i := range bad {
				fmt.Fprintf(&b, "Bad,Row,not-an-email-%d,female,10.1.2.3\n", i)
			}
			return b.String()
		}
		sizes := map[int]int{}
		for _, bad := range []int{999, 1000, 1001, 3000} {
			rep, r := importCSV(t, s, c.root.Access, "", file(bad), http.StatusOK)
			if rep.TotalRows != bad+1 || rep.Imported != 1 || rep.Failed != bad {
				t.Errorf("%d bad rows: report counts %d total, %d imported, %d failed", bad, rep.TotalRows, rep.Imported, rep.Failed)
			}
			lines := map[int]bool{}
			for _, e := range rep.Errors {
				lines[e.Line] = true
			}
			if want := min(bad, 1000); len(lines) != want {
				t.Errorf("%d bad rows: %d rows detailed, want %d", bad, len(lines), want)
			}
			if rep.ErrorsTruncated != (bad > 1000) {
				t.Errorf("%d bad rows: errors_truncated %v", bad, rep.ErrorsTruncated)
			}
			sizes[bad] = len(r.Body)
		}
		// Three times the bad rows, the same report but for its counts.
		if grown := sizes[3000] - sizes[1001]; grown > 16 {
			t.Errorf("the report grew by %d bytes from 1,001 to 3,000 bad rows", grown)
		}
		// A strict import's 409 is bounded alike.
		rep, _ := importCSV(t, s, c.root.Access, "on_conflict=fail", file(1500), http.StatusConflict)
		if rep.Failed != 1500 || !rep.ErrorsTruncated || len(rep.Errors) != 1000 {
			t.Errorf("strict import: %d failed, %d errors, truncated %v", rep.Failed, len(rep.Errors), rep.ErrorsTruncated)
		}
	})
}

// TestSeams_11_InternalWritesAreSilent is issue point 11: a migrated user's
// first login upgraded their password hash as an ordinary update, so an
// `updated` event told every subscriber of that id when they first logged
// in, the ETag changed and /audit recorded it. A hash upgrade and the token
// invalidation after a replayed refresh token are now internal: no event,
// no new ETag, no audit entry. The absence of an event is shown without
// waiting for one: a visible change made afterwards must be the very next
// event the subscriber gets.
func TestSeams_11_InternalWritesAreSilent(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		migrated := &harness.Account{Email: harness.Email("migrated"), Password: s.Password()}
		row := fmt.Sprintf("%sMigrated,Test,%s,female,10.1.2.3,%s\n", strings.TrimSuffix(csvHeader, "\n")+",password_hash\n",
			migrated.Email, oldHash(t, migrated.Password))
		if rep, _ := importCSV(t, s, c.root.Access, "", row, http.StatusOK); rep.Imported != 1 {
			t.Fatalf("import: %+v", rep)
		}
		id, ok := userByEmail(t, s, c.root, migrated.Email)
		if !ok {
			t.Fatal("the imported user is not found")
		}
		migrated.ID = id

		ws := s.ConnectWS(t, c.root.Access)
		defer ws.Close()
		sub := ws.Subscribe(map[string]any{"action": "subscribe_id", "user_id": id}).Str("subscription_id")
		before := snapshot(t, s, c.root, id)
		audited := auditActions(t, s, c.root, id)

		// The first login re-hashes the password; the second login and a
		// refresh use the new hash; then a spent refresh token is replayed,
		// which ends the user's tokens.
		s.Login(t, migrated)
		s.Login(t, migrated)
		spent := migrated.Refresh
		s.Expect(t, http.StatusOK, http.MethodPost, refresh, "", map[string]any{"refresh_token": spent})
		s.Expect(t, http.StatusUnauthorized, http.MethodPost, refresh, "", map[string]any{"refresh_token": spent})
		// The replay did end the tokens: that part is no bookkeeping.
		s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, migrated.Access, nil)

		if after := snapshot(t, s, c.root, id); after != before {
			t.Errorf("the user changed in public (ETag or body):\n%s\n%s", before, after)
		}
		if got := auditActions(t, s, c.root, id); !slices.Equal(got, audited) {
			t.Errorf("audit actions %q, were %q", got, audited)
		}
		s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(id), c.root.Access, map[string]any{"first_name": "Marker"})
		ev := ws.Event("updated", sub)
		if got := ev.User().Str("first_name"); got != "Marker" {
			t.Errorf("the first event after the logins is %v, want the marker update", ev)
		}
		if got := ev.Num("seq"); got <= 0 {
			t.Errorf("event seq %d", got)
		}
	})
}
