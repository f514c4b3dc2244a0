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
func multipartImport(t *testing.T, fields ...[2]string) rawBody {
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
	return rawBody{contentType: w.FormDataContentType(), data: b.String()}
}

// tokenPair is what /auth/token answers.
type tokenPair struct {
	AccessToken            string `json:"access_token"`
	PasswordChangeRequired bool   `json:"password_change_required"`
}

func (s *service) loginAs(t *testing.T, email, password string, want int) tokenPair {
	t.Helper()
	r := s.expect(t, want, http.MethodPost, "/api/v1/auth/token", "", url.Values{"username": {email}, "password": {password}})
	var p tokenPair
	if want == http.StatusOK {
		r.decode(t, &p)
	}
	return p
}

func TestImportOverHTTP(t *testing.T) {
	t.Parallel()
	onEachBackend(t, options{}, func(t *testing.T, s *service) {
		root := s.seedSuperadmin(t)
		admin := s.createAndLogin(t, root, "admin")

		bcryptPw, argonPw, defaultPw := s.password(), s.password(), s.password()
		bcryptHash, err := bcrypt.GenerateFromPassword([]byte(bcryptPw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		argonHash, err := passwords.NewArgon2id(passwords.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}).Hash(argonPw)
		if err != nil {
			t.Fatal(err)
		}
		fromBcrypt, fromArgon, withDefault := email("bcrypt"), email("argon"), email("default")
		file := "\uFEFFemail,first_name,last_name,gender,ip_address,id,password_hash,nickname\r\n" +
			fromBcrypt + ",Zoë,Ødegaard,female,10.0.0.1,,\"" + string(bcryptHash) + "\",z\r\n" +
			fromArgon + ",Łukasz,Nguyễn,MALE,2001:db8::1,,\"" + argonHash + "\",\r\n" +
			withDefault + ",\"Jean-Luc\",\"O'Doireidh\",Agender,,987654,,\r\n" +
			"not-an-email,Bad,Row,Robot,,,,\r\n" +
			strings.ToUpper(fromBcrypt) + ",Again,Later,Female,,,,\r\n" +
			email("md5") + ",Old,Hash,Female,,,5f4dcc3b5aa765d61d8327deb882cf99,\r\n"

		// Only superadmins may import (the shipped policy).
		s.expect(t, http.StatusForbidden, http.MethodPost, "/api/v1/users/import", admin.access, rawBody{"text/csv", file})

		// A dry run reports and writes nothing.
		r := s.expect(t, http.StatusOK, http.MethodPost, "/api/v1/users/import?dry_run=true", root.access, rawBody{"text/csv", file})
		var rep importReportDTO
		r.decode(t, &rep)
		if !rep.DryRun || rep.Imported != 3 {
			t.Errorf("dry run: %s", rep.counts())
		}
		s.loginAs(t, fromBcrypt, bcryptPw, http.StatusUnauthorized)

		r = s.expect(t, http.StatusOK, http.MethodPost, "/api/v1/users/import", root.access,
			multipartImport(t, [2]string{"default_password", defaultPw}, [2]string{"file", file}))
		rep = importReportDTO{}
		r.decode(t, &rep)
		if got, want := rep.counts(), "total=6 imported=3 updated=0 skipped=0 failed=3"; got != want {
			t.Errorf("report %s, want %s", got, want)
		}
		if got, want := strings.Join(rep.problems(), " "), "1:nickname 5:email 5:gender 6:email 7:password_hash"; got != want {
			t.Errorf("problems %q, want %q", got, want)
		}

		// Imported hashes log in with the original passwords, with no forced change.
		for _, c := range []struct{ email, password string }{{fromBcrypt, bcryptPw}, {fromArgon, argonPw}} {
			if p := s.loginAs(t, c.email, c.password, http.StatusOK); p.PasswordChangeRequired {
				t.Errorf("%s: password change required", c.email)
			}
		}
		// The id column was kept.
		u := s.expect(t, http.StatusOK, http.MethodGet, userPath(987654), root.access, nil).user(t)
		if u.Email != withDefault {
			t.Errorf("user 987654 is %s", u.Email)
		}

		// The default password works once, and only to change itself.
		p := s.loginAs(t, withDefault, defaultPw, http.StatusOK)
		if !p.PasswordChangeRequired {
			t.Fatal("a default-password user is not told to change it")
		}
		s.expect(t, http.StatusForbidden, http.MethodGet, "/api/v1/users/me", p.AccessToken, nil)
		s.expect(t, http.StatusForbidden, http.MethodGet, "/api/v1/users/list", p.AccessToken, nil)
		s.expect(t, http.StatusForbidden, http.MethodPut, userPath(987654), p.AccessToken, map[string]any{"first_name": "Sneaky"})
		newPw := s.password()
		s.expect(t, http.StatusOK, http.MethodPut, userPath(987654), p.AccessToken, map[string]any{"password": newPw, "current_password": defaultPw})
		s.loginAs(t, withDefault, defaultPw, http.StatusUnauthorized)
		p = s.loginAs(t, withDefault, newPw, http.StatusOK)
		if p.PasswordChangeRequired {
			t.Error("still required to change the password after changing it")
		}
		s.expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", p.AccessToken, nil)

		// Every imported user is in the change log, created by the importer.
		r = s.expect(t, http.StatusOK, http.MethodGet, fmt.Sprintf("/api/v1/audit?action=created&actor_id=%d", root.id), root.access, nil)
		var audit struct {
			Items []struct {
				TargetID int64 `json:"target_id"`
			} `json:"items"`
		}
		r.decode(t, &audit)
		found := false
		for _, it := range audit.Items {
			found = found || it.TargetID == 987654
		}
		if !found {
			t.Errorf("the imported user 987654 has no created entry by the importer: %s", r)
		}

		// Without a default password a new user has no usable password.
		noPw := email("nopw")
		r = s.expect(t, http.StatusOK, http.MethodPost, "/api/v1/users/import", root.access,
			rawBody{"text/csv", "first_name,last_name,email,gender,ip_address\nAna,Bo," + noPw + ",Female,\n"})
		s.loginAs(t, noPw, "any password at all", http.StatusUnauthorized)

		// on_conflict: skip leaves the stored user, update changes it, fail is all or nothing.
		again := "first_name,last_name,email,gender,ip_address\nRenamed,Person," + fromArgon + ",Male,\nNew,Person," + email("new") + ",Male,\n"
		r = s.expect(t, http.StatusOK, http.MethodPost, "/api/v1/users/import?on_conflict=skip", root.access, rawBody{"text/csv", again})
		rep = importReportDTO{}
		r.decode(t, &rep)
		if got := rep.counts(); got != "total=2 imported=1 updated=0 skipped=1 failed=0" {
			t.Errorf("skip: %s", got)
		}
		strict := "first_name,last_name,email,gender,ip_address\nNew,Person," + email("strict") + ",Male,\nX,Y," + fromArgon + ",Male,\n"
		r = s.expect(t, http.StatusConflict, http.MethodPost, "/api/v1/users/import?on_conflict=fail", root.access, rawBody{"text/csv", strict})
		rep = importReportDTO{}
		r.decode(t, &rep)
		if got := rep.counts(); got != "total=2 imported=0 updated=0 skipped=1 failed=1" || strings.Join(rep.problems(), " ") != "3:email" {
			t.Errorf("fail: %s %v", got, rep.problems())
		}
		r = s.expect(t, http.StatusOK, http.MethodPost, "/api/v1/users/import?on_conflict=update", root.access, rawBody{"text/csv", again})
		rep = importReportDTO{}
		r.decode(t, &rep)
		if got := rep.counts(); got != "total=2 imported=0 updated=1 skipped=1 failed=0" {
			t.Errorf("update: %s", got)
		}
		p = s.loginAs(t, fromArgon, argonPw, http.StatusOK)
		me := s.expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", p.AccessToken, nil).user(t)
		if me.FirstName != "Renamed" || me.Gender != "Male" {
			t.Errorf("updated user %+v", me)
		}

		// A file that is not CSV is a 400.
		s.expect(t, http.StatusBadRequest, http.MethodPost, "/api/v1/users/import", root.access, rawBody{"text/csv", "\x89PNG\r\n\x1a\n"})
	})
}
