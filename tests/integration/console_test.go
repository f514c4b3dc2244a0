package integration

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/userservice/userservice/adapters/gormstore"
	"github.com/userservice/userservice/application"
	"github.com/userservice/userservice/ports"
	"github.com/userservice/userservice/tests/harness"
)

// permissionsDTO is GET /users/{id}/permissions.
type permissionsDTO struct {
	Read     bool     `json:"read"`
	Update   bool     `json:"update"`
	Delete   bool     `json:"delete"`
	Role     []string `json:"role"`
	Password bool     `json:"password"`
	Audit    bool     `json:"audit"`
}

// TestPermissionsMatchTheActions holds every answer of GET
// /users/{id}/permissions to what the action it announces then does, for
// every actor role and every target (a user of each role, and oneself):
// allowed exactly when the action succeeds. Each action runs on fresh
// accounts, so one's effect cannot decide another's.
func TestPermissionsMatchTheActions(t *testing.T) {
	harness.OnEachBackend(t, harness.Options{Quiet: true}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		roles := []string{"user", "admin", "superadmin"}
		type action struct {
			name    string
			allowed func(p permissionsDTO) bool
			do      func(actor, target *harness.Account) harness.Response
		}
		actions := []action{
			{"update", func(p permissionsDTO) bool { return p.Update }, func(a, tg *harness.Account) harness.Response {
				return s.Do(t, http.MethodPut, harness.UserPath(tg.ID), a.Access, map[string]any{"first_name": "Changed"})
			}},
			{"password", func(p permissionsDTO) bool { return p.Password }, func(a, tg *harness.Account) harness.Response {
				body := map[string]any{"password": s.Password()}
				if a.ID == tg.ID {
					body["current_password"] = a.Password
				}
				return s.Do(t, http.MethodPut, harness.UserPath(tg.ID), a.Access, body)
			}},
			{"delete", func(p permissionsDTO) bool { return p.Delete }, func(a, tg *harness.Account) harness.Response {
				return s.Do(t, http.MethodDelete, harness.UserPath(tg.ID), a.Access, nil)
			}},
			{"audit", func(p permissionsDTO) bool { return p.Audit }, func(a, tg *harness.Account) harness.Response {
				return s.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/audit?target_id=%d", tg.ID), a.Access, nil)
			}},
		}
		for _, r := range roles {
			actions = append(actions, action{"role " + r, func(p permissionsDTO) bool { return slices.Contains(p.Role, r) },
				func(a, tg *harness.Account) harness.Response {
					return s.Do(t, http.MethodPatch, harness.UserPath(tg.ID)+"/role", a.Access, map[string]any{"role": r})
				}})
		}
		allowedSeen, refusedSeen := 0, 0
		for _, actorRole := range roles {
			for _, target := range append(slices.Clone(roles), "self") {
				for _, act := range actions {
					actor := s.CreateAndLogin(t, root, actorRole)
					tg := actor
					if target != "self" {
						tg = s.Create(t, root, target)
					}
					var p permissionsDTO
					s.Expect(t, http.StatusOK, http.MethodGet, harness.UserPath(tg.ID)+"/permissions", actor.Access, nil).Decode(t, &p)
					if !p.Read {
						t.Errorf("%s on %s: read is false, yet the permissions were answered", actorRole, target)
					}
					res := act.do(actor, tg)
					succeeded := res.Status < 300
					if want := act.allowed(p); want != succeeded {
						t.Errorf("%s on %s, %s: permissions say %v, the action answered %s", actorRole, target, act.name, want, res)
					}
					if succeeded {
						allowedSeen++
					} else {
						refusedSeen++
					}
				}
			}
		}
		// The shipped policy allows some and refuses some: a test that saw
		// only one kind would prove little.
		if allowedSeen < 10 || refusedSeen < 10 {
			t.Errorf("allowed %d, refused %d: the matrix is not exercised", allowedSeen, refusedSeen)
		}

		// A missing user: 404 for whoever may read users.
		s.Expect(t, http.StatusNotFound, http.MethodGet, harness.UserPath(99999999)+"/permissions", root.Access, nil)
		// No token: 401.
		s.Expect(t, http.StatusUnauthorized, http.MethodGet, harness.UserPath(root.ID)+"/permissions", "", nil)
	})
}

// capabilitiesDTO is GET /permissions.
type capabilitiesDTO struct {
	List            bool     `json:"list"`
	Search          bool     `json:"search"`
	Create          []string `json:"create"`
	Import          bool     `json:"import"`
	Audit           bool     `json:"audit"`
	Policy          bool     `json:"policy"`
	SubscribeSearch bool     `json:"subscribe_search"`
}

// TestCapabilitiesMatchTheActions checks GET /permissions against the
// actions it announces, for each role.
func TestCapabilitiesMatchTheActions(t *testing.T) {
	harness.OnEachBackend(t, harness.Options{Quiet: true}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		for _, role := range []string{"user", "admin", "superadmin"} {
			a := s.CreateAndLogin(t, root, role)
			var c capabilitiesDTO
			s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/permissions", a.Access, nil).Decode(t, &c)
			check := func(what string, allowed bool, r harness.Response) {
				if ok := r.Status < 300; ok != allowed {
					t.Errorf("%s: %s announced %v, the action answered %s", role, what, allowed, r)
				}
			}
			check("list", c.List, s.Do(t, http.MethodGet, "/api/v1/users/list", a.Access, nil))
			check("search", c.Search, s.Do(t, http.MethodGet, "/api/v1/users/search", a.Access, nil))
			check("audit", c.Audit, s.Do(t, http.MethodGet, "/api/v1/audit", a.Access, nil))
			check("policy", c.Policy, s.Do(t, http.MethodGet, "/api/v1/policy", a.Access, nil))
			check("import", c.Import, s.Do(t, http.MethodPost, "/api/v1/users/import?dry_run=true", a.Access,
				harness.RawBody{ContentType: "text/csv", Data: "first_name,last_name,email,gender,ip_address\n"}))
			for _, r := range []string{"user", "admin", "superadmin"} {
				check("create "+r, slices.Contains(c.Create, r), s.Do(t, http.MethodPost, "/api/v1/users/create-admin", a.Access,
					harness.NewUserBody(harness.Email("cap"), s.Password(), r)))
			}
			if want := role != "user"; c.SubscribeSearch != want || c.Search != want {
				t.Errorf("%s: search %v, subscribe_search %v; the shipped policy says %v", role, c.Search, c.SubscribeSearch, want)
			}
		}
	})
}

// policyDTO is GET /policy.
type policyDTO struct {
	Roles       []string `json:"roles"`
	Permissions []string `json:"permissions"`
	Grants      []struct {
		Role       string  `json:"role"`
		Permission string  `json:"permission"`
		Relation   string  `json:"relation"`
		TargetRole *string `json:"target_role"`
		NewRole    *string `json:"new_role"`
	} `json:"grants"`
}

func (p policyDTO) grants(role, perm string) int {
	n := 0
	for _, g := range p.Grants {
		if g.Role == role && g.Permission == perm {
			n++
		}
	}
	return n
}

// TestPolicyReadIsSuperadminsAndShowsThePolicyInForce: policy.read is the
// superadmins' in the shipped policy, the matrix reflects the file
// (inheritance resolved), and an edit granting it to admins takes effect.
func TestPolicyReadIsSuperadminsAndShowsThePolicyInForce(t *testing.T) {
	harness.OnEachBackend(t, harness.Options{Quiet: true}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		admin := s.CreateAndLogin(t, root, "admin")
		user := s.CreateAndLogin(t, root, "user")
		s.Expect(t, http.StatusForbidden, http.MethodGet, "/api/v1/policy", admin.Access, nil)
		s.Expect(t, http.StatusForbidden, http.MethodGet, "/api/v1/policy", user.Access, nil)
		s.Expect(t, http.StatusUnauthorized, http.MethodGet, "/api/v1/policy", "", nil)
		var p policyDTO
		s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/policy", root.Access, nil).Decode(t, &p)
		if !slices.Contains(p.Permissions, "policy.read") || !slices.Equal(p.Roles, []string{"user", "admin", "superadmin"}) {
			t.Fatalf("policy lists roles %v and permissions %v", p.Roles, p.Permissions)
		}
		for _, c := range []struct {
			role, perm string
			want       bool
		}{
			{"superadmin", "policy.read", true}, {"admin", "policy.read", false},
			{"admin", "users.search", true}, {"user", "users.search", false},
			{"superadmin", "users.list", true}, // inherited from user
			{"user", "users.delete", false}, {"superadmin", "users.delete", true},
		} {
			if got := p.grants(c.role, c.perm) > 0; got != c.want {
				t.Errorf("policy: %s %s granted %v, want %v", c.role, c.perm, got, c.want)
			}
		}
		// admin's role changes: only on others of role user or admin, to user or admin.
		for _, g := range p.Grants {
			if g.Role == "admin" && g.Permission == "users.role.update" {
				if g.Relation != "other" || g.TargetRole == nil || *g.TargetRole == "superadmin" || g.NewRole == nil || *g.NewRole == "superadmin" {
					t.Errorf("admin granted a role change the policy does not give: %+v", g)
				}
			}
		}
		if n := p.grants("admin", "users.role.update"); n != 4 {
			t.Errorf("admin has %d role-change grants, want 4 (user or admin, to user or admin)", n)
		}

		// An edit of the file is what the matrix shows next.
		shipped, err := os.ReadFile(filepath.Join(s.PolicyDir, "policy.csv"))
		if err != nil {
			t.Fatal(err)
		}
		s.WritePolicy(t, string(shipped)+"\np, admin, policy.read, *, *, *\n")
		deadline := time.Now().Add(harness.WaitFor)
		for s.Do(t, http.MethodGet, "/api/v1/policy", admin.Access, nil).Status != http.StatusOK {
			if time.Now().After(deadline) {
				t.Fatal("granting policy.read to admins did not take effect")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// importJobDTO is an import job.
type importJobDTO struct {
	ID       string           `json:"id"`
	Status   string           `json:"status"`
	DryRun   bool             `json:"dry_run"`
	RowsRead int              `json:"rows_read"`
	Imported int              `json:"imported"`
	Failed   int              `json:"failed"`
	Reason   string           `json:"reason"`
	Report   *importReportDTO `json:"report"`
}

func waitForJob(t *testing.T, s *harness.Service, token, id string) importJobDTO {
	t.Helper()
	deadline := time.Now().Add(harness.WaitFor)
	for {
		var j importJobDTO
		s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/imports/"+id, token, nil).Decode(t, &j)
		if j.Status != "running" {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("import job %s still running after %s: %+v", id, harness.WaitFor, j)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestImportJobs runs the sample file as a background job, dry and for
// real: 202 with the job and its Location, progress pushed to the
// starter's WebSocket, the report at the end; only the starter reads a job,
// and only who may import starts one.
func TestImportJobs(t *testing.T) {
	sample, err := os.ReadFile(filepath.Join("..", "fixtures", "users.csv"))
	if err != nil {
		t.Fatal(err)
	}
	harness.OnEachBackend(t, harness.Options{Quiet: true}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		other := s.CreateAndLogin(t, root, "superadmin")
		admin := s.CreateAndLogin(t, root, "admin")
		csv := harness.RawBody{ContentType: "text/csv", Data: string(sample)}

		s.Expect(t, http.StatusUnauthorized, http.MethodPost, "/api/v1/users/imports", "", csv)
		s.Expect(t, http.StatusForbidden, http.MethodPost, "/api/v1/users/imports", admin.Access, csv)
		r := s.Expect(t, http.StatusUnprocessableEntity, http.MethodPost, "/api/v1/users/imports?on_conflict=fail&default_password=short", root.Access, csv)
		if e := r.Error(t); len(e.Errors) != 1 || e.Errors[0].Field != "default_password" {
			t.Errorf("%s: want the default_password named", r)
		}

		ws := s.ConnectWS(t, root.Access)
		for _, dry := range []bool{true, false} {
			r := s.Expect(t, http.StatusAccepted, http.MethodPost, fmt.Sprintf("/api/v1/users/imports?dry_run=%v", dry), root.Access, csv)
			var started importJobDTO
			r.Decode(t, &started)
			if started.ID == "" || started.Status != "running" || started.DryRun != dry {
				t.Fatalf("%s: want a running job", r)
			}
			if loc := r.Header.Get("Location"); loc != "/api/v1/users/imports/"+started.ID {
				t.Errorf("Location = %q", loc)
			}
			// Progress reaches the starter's WebSocket, ending with the status.
			for {
				m := ws.Expect("import_progress")
				if m.Str("job_id") != started.ID {
					t.Fatalf("import_progress for job %q, want %q", m.Str("job_id"), started.ID)
				}
				if m.Str("status") != "running" {
					if m.Str("status") != "succeeded" || m.Num("rows_read") != 1000 || m.Num("imported") != 1000 {
						t.Errorf("final import_progress: %v", m)
					}
					break
				}
			}
			j := waitForJob(t, s, root.Access, started.ID)
			if j.Status != "succeeded" || j.Report == nil || j.Report.TotalRows != 1000 || j.Report.Imported != 1000 || j.Report.DryRun != dry || j.RowsRead != 1000 {
				t.Errorf("dry_run=%v: job ended %+v, report %+v", dry, j, j.Report)
			}
			// Someone else's job does not exist for them, not even for a superadmin.
			s.Expect(t, http.StatusNotFound, http.MethodGet, "/api/v1/users/imports/"+started.ID, other.Access, nil)
			s.Expect(t, http.StatusNotFound, http.MethodGet, "/api/v1/users/imports/"+started.ID, admin.Access, nil)
		}
		// The real import wrote the users; the dry run did not double them.
		var page struct {
			Total int `json:"total"`
		}
		s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/search?email=%40gmail.com&size=1", root.Access, nil).Decode(t, &page)
		if page.Total == 0 {
			t.Error("the real import wrote no @gmail.com users")
		}
		// Again, with skip: every row is stored already.
		r = s.Expect(t, http.StatusAccepted, http.MethodPost, "/api/v1/users/imports", root.Access, csv)
		var again importJobDTO
		r.Decode(t, &again)
		if j := waitForJob(t, s, root.Access, again.ID); j.Report == nil || j.Report.Skipped != 1000 {
			t.Errorf("second import: %+v", j.Report)
		}
		// A strict import of a file with a bad row fails with a reason and writes nothing.
		bad := harness.RawBody{ContentType: "text/csv", Data: "first_name,last_name,email,gender,ip_address\nA,B,not-an-email,Male,\nC,D," + harness.Email("strict") + ",Male,\n"}
		r = s.Expect(t, http.StatusAccepted, http.MethodPost, "/api/v1/users/imports?on_conflict=fail", root.Access, bad)
		var strict importJobDTO
		r.Decode(t, &strict)
		if j := waitForJob(t, s, root.Access, strict.ID); j.Status != "failed" || !strings.Contains(j.Reason, "nothing was imported") || j.Report == nil || j.Report.Imported != 0 {
			t.Errorf("strict import with a bad row: %+v", j)
		}
		s.Expect(t, http.StatusNotFound, http.MethodGet, "/api/v1/users/imports/NOSUCHJOB", root.Access, nil)
	})
}

// TestImportJobLostWithItsInstanceIsFailedOnRestart: a job left running by
// an instance that stopped (its heartbeat old) is marked failed, with the
// reason, by the instance that starts next.
func TestImportJobLostWithItsInstanceIsFailedOnRestart(t *testing.T) {
	for _, b := range harness.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			first := harness.Start(t, b, harness.Options{Quiet: true})
			root := first.SeedSuperadmin(t)
			// What an instance stopped mid-import leaves behind: a running
			// job whose heartbeat is a minute old.
			store, err := gormstore.Open(t.Context(), first.DBURL, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			lost := time.Now().Add(-time.Minute)
			job := ports.ImportJob{ID: "LOSTJOB" + strings.ToUpper(harness.Email("x")[2:10]), ActorID: root.ID, Status: ports.ImportJobRunning,
				OnConflict: "skip", RowsRead: 2000, Imported: 2000, CreatedAt: lost, HeartbeatAt: lost}
			if err := store.ImportJobs().CreateJob(t.Context(), job); err != nil {
				t.Fatal(err)
			}
			store.Close()
			if err := first.Stop(); err != nil {
				t.Fatal(err)
			}

			second := harness.Start(t, b, harness.Options{Quiet: true, DBURL: first.DBURL, PolicyDir: first.PolicyDir, JWTSecret: first.JWTSecret, KeysDir: first.KeysDir})
			second.Login(t, root)
			var j importJobDTO
			second.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/imports/"+job.ID, root.Access, nil).Decode(t, &j)
			if j.Status != "failed" || j.Reason != application.ReasonInstanceLost || j.RowsRead != 2000 {
				t.Errorf("after the restart the lost job is %+v, want failed with %q", j, application.ReasonInstanceLost)
			}
		})
	}
}
