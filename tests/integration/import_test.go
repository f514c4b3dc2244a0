package integration

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/userservice/userservice/adapters/passwords"
	"github.com/userservice/userservice/tests/harness"
)

// importReportDTO is the import's JSON report.
type importReportDTO struct {
	TotalRows int  `json:"total_rows"`
	Imported  int  `json:"imported"`
	Updated   int  `json:"updated"`
	Skipped   int  `json:"skipped"`
	Failed    int  `json:"failed"`
	DryRun    bool `json:"dry_run"`
	Errors    []struct {
		Line    int    `json:"line"`
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (r importReportDTO) counts() string {
	return fmt.Sprintf("total=%d imported=%d updated=%d skipped=%d failed=%d", r.TotalRows, r.Imported, r.Updated, r.Skipped, r.Failed)
}

func (r importReportDTO) problems() []string {
	var out []string
	for _, e := range r.Errors {
		out = append(out, fmt.Sprintf("%d:%s", e.Line, e.Field))
	}
	return out
}

// multipartImport is a multipart body with fields in order.
func multipartImport(t *testing.T, fields ...[2]string) harness.RawBody {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range fields {
		if f[0] == "file" {
			fw, err := w.CreateFormFile("file", "users.csv")
			if err != nil {
				t.Fatal(err)
			}
			fw.Write([]byte(f[1]))
			continue
		}
		if err := w.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return harness.RawBody{ContentType: w.FormDataContentType(), Data: b.String()}
}

// tokenPair is what /auth/token answers.
type tokenPair struct {
	AccessToken            string `json:"access_token"`
	PasswordChangeRequired bool   `json:"password_change_required"`
}

func loginAs(t *testing.T, s *harness.Service, email, password string, want int) tokenPair {
	t.Helper()
	r := s.Expect(t, want, http.MethodPost, "/api/v1/auth/token", "", url.Values{"username": {email}, "password": {password}})
	var p tokenPair
	if want == http.StatusOK {
		r.Decode(t, &p)
	}
	return p
}

func TestImportOverHTTP(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		admin := s.CreateAndLogin(t, root, "admin")

		bcryptPw, argonPw, defaultPw := s.Password(), s.Password(), s.Password()
		bcryptHash, err := bcrypt.GenerateFromPassword([]byte(bcryptPw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		argonHash, err := passwords.NewArgon2id(passwords.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}).Hash(argonPw)
		if err != nil {
			t.Fatal(err)
		}
		fromBcrypt, fromArgon, withDefault := harness.Email("bcrypt"), harness.Email("argon"), harness.Email("default")
		file := "\uFEFFemail,first_name,last_name,gender,ip_address,id,password_hash,nickname\r\n" +
			fromBcrypt + ",Zoë,Ødegaard,female,10.0.0.1,,\"" + string(bcryptHash) + "\",z\r\n" +
			fromArgon + ",Łukasz,Nguyễn,MALE,2001:db8::1,,\"" + argonHash + "\",\r\n" +
			withDefault + ",\"Jean-Luc\",\"O'Doireidh\",Agender,,987654,,\r\n" +
			"not-an-email,Bad,Row,Robot,,,,\r\n" +
			strings.ToUpper(fromBcrypt) + ",Again,Later,Female,,,,\r\n" +
			harness.Email("md5") + ",Old,Hash,Female,,,5f4dcc3b5aa765d61d8327deb882cf99,\r\n"

		// Only superadmins may import (the shipped policy).
		s.Expect(t, http.StatusForbidden, http.MethodPost, "/api/v1/users/import", admin.Access, harness.RawBody{ContentType: "text/csv", Data: file})

		// A dry run reports and writes nothing.
		r := s.Expect(t, http.StatusOK, http.MethodPost, "/api/v1/users/import?dry_run=true", root.Access, harness.RawBody{ContentType: "text/csv", Data: file})
		var rep importReportDTO
		r.Decode(t, &rep)
		if !rep.DryRun || rep.Imported != 3 {
			t.Errorf("dry run: %s", rep.counts())
		}
		loginAs(t, s, fromBcrypt, bcryptPw, http.StatusBadRequest)

		r = s.Expect(t, http.StatusOK, http.MethodPost, "/api/v1/users/import", root.Access,
			multipartImport(t, [2]string{"default_password", defaultPw}, [2]string{"file", file}))
		rep = importReportDTO{}
		r.Decode(t, &rep)
		if got, want := rep.counts(), "total=6 imported=3 updated=0 skipped=0 failed=3"; got != want {
			t.Errorf("report %s, want %s", got, want)
		}
		if got, want := strings.Join(rep.problems(), " "), "1:nickname 5:email 5:gender 6:email 7:password_hash"; got != want {
			t.Errorf("problems %q, want %q", got, want)
		}

		// Imported hashes log in with the original passwords, with no forced change.
		for _, c := range []struct{ email, password string }{{fromBcrypt, bcryptPw}, {fromArgon, argonPw}} {
			if p := loginAs(t, s, c.email, c.password, http.StatusOK); p.PasswordChangeRequired {
				t.Errorf("%s: password change required", c.email)
			}
		}
		// The id column was kept.
		u := s.Expect(t, http.StatusOK, http.MethodGet, harness.UserPath(987654), root.Access, nil).User(t)
		if u.Email != withDefault {
			t.Errorf("user 987654 is %s", u.Email)
		}

		// The default password works once, and only to change itself.
		p := loginAs(t, s, withDefault, defaultPw, http.StatusOK)
		if !p.PasswordChangeRequired {
			t.Fatal("a default-password user is not told to change it")
		}
		s.Expect(t, http.StatusForbidden, http.MethodGet, "/api/v1/users/me", p.AccessToken, nil)
		s.Expect(t, http.StatusForbidden, http.MethodGet, "/api/v1/users/list", p.AccessToken, nil)
		s.Expect(t, http.StatusForbidden, http.MethodPut, harness.UserPath(987654), p.AccessToken, map[string]any{"first_name": "Sneaky"})
		newPw := s.Password()
		s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(987654), p.AccessToken, map[string]any{"password": newPw, "current_password": defaultPw})
		loginAs(t, s, withDefault, defaultPw, http.StatusBadRequest)
		p = loginAs(t, s, withDefault, newPw, http.StatusOK)
		if p.PasswordChangeRequired {
			t.Error("still required to change the password after changing it")
		}
		s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", p.AccessToken, nil)

		// Every imported user is in the change log, created by the importer.
		r = s.Expect(t, http.StatusOK, http.MethodGet, fmt.Sprintf("/api/v1/audit?action=created&actor_id=%d", root.ID), root.Access, nil)
		var audit struct {
			Items []struct {
				TargetID int64 `json:"target_id"`
			} `json:"items"`
		}
		r.Decode(t, &audit)
		found := false
		for _, it := range audit.Items {
			found = found || it.TargetID == 987654
		}
		if !found {
			t.Errorf("the imported user 987654 has no created entry by the importer: %s", r)
		}

		// Without a default password a new user has no usable password.
		noPw := harness.Email("nopw")
		s.Expect(t, http.StatusOK, http.MethodPost, "/api/v1/users/import", root.Access,
			harness.RawBody{ContentType: "text/csv", Data: "first_name,last_name,email,gender,ip_address\nAna,Bo," + noPw + ",Female,\n"})
		loginAs(t, s, noPw, "any password at all", http.StatusBadRequest)

		// on_conflict: skip leaves the stored user, update changes it, fail is all or nothing.
		again := "first_name,last_name,email,gender,ip_address\nRenamed,Person," + fromArgon + ",Male,\nNew,Person," + harness.Email("new") + ",Male,\n"
		r = s.Expect(t, http.StatusOK, http.MethodPost, "/api/v1/users/import?on_conflict=skip", root.Access, harness.RawBody{ContentType: "text/csv", Data: again})
		rep = importReportDTO{}
		r.Decode(t, &rep)
		if got := rep.counts(); got != "total=2 imported=1 updated=0 skipped=1 failed=0" {
			t.Errorf("skip: %s", got)
		}
		strict := "first_name,last_name,email,gender,ip_address\nNew,Person," + harness.Email("strict") + ",Male,\nX,Y," + fromArgon + ",Male,\n"
		r = s.Expect(t, http.StatusConflict, http.MethodPost, "/api/v1/users/import?on_conflict=fail", root.Access, harness.RawBody{ContentType: "text/csv", Data: strict})
		rep = importReportDTO{}
		r.Decode(t, &rep)
		if got := rep.counts(); got != "total=2 imported=0 updated=0 skipped=1 failed=1" || strings.Join(rep.problems(), " ") != "3:email" {
			t.Errorf("fail: %s %v", got, rep.problems())
		}
		r = s.Expect(t, http.StatusOK, http.MethodPost, "/api/v1/users/import?on_conflict=update", root.Access, harness.RawBody{ContentType: "text/csv", Data: again})
		rep = importReportDTO{}
		r.Decode(t, &rep)
		if got := rep.counts(); got != "total=2 imported=0 updated=1 skipped=1 failed=0" {
			t.Errorf("update: %s", got)
		}
		p = loginAs(t, s, fromArgon, argonPw, http.StatusOK)
		me := s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", p.AccessToken, nil).User(t)
		if me.FirstName != "Renamed" || me.Gender != "Male" {
			t.Errorf("updated user %+v", me)
		}

		// A file that is not CSV is a 400.
		s.Expect(t, http.StatusBadRequest, http.MethodPost, "/api/v1/users/import", root.Access, harness.RawBody{ContentType: "text/csv", Data: "\x89PNG\r\n\x1a\n"})
	})
}
