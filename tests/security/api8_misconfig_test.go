package security

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/userservice/userservice/bootstrap"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/tests/harness"
)

// TestAPI8_Misconfiguration_SecurityHeaders is API8:2023 Security
// Misconfiguration: every kind of answer, errors included, carries
// nosniff, frame denial, no referrer and a Content-Security-Policy; no answer
// but the docs may be cached; none names the server's software.
func TestAPI8_Misconfiguration_SecurityHeaders(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		answers := []harness.Response{
			s.Expect(t, http.StatusOK, http.MethodGet, me, root.Access, nil),
			s.Expect(t, http.StatusOK, http.MethodGet, list, root.Access, nil),
			s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, "", nil),
			s.Expect(t, http.StatusBadRequest, http.MethodPost, tokenPath, "", url.Values{"username": {root.Email}, "password": {"wrong-password"}}),
			s.Expect(t, http.StatusNotFound, http.MethodGet, "/api/v1/nothing", "", nil),
			s.Expect(t, http.StatusMethodNotAllowed, http.MethodDelete, tokenPath, "", nil),
			s.Expect(t, http.StatusBadRequest, http.MethodPost, signUp, "", harness.RawBody{ContentType: "application/json", Data: "{"}),
			s.Expect(t, http.StatusOK, http.MethodGet, "/healthz", "", nil),
			s.Expect(t, http.StatusOK, http.MethodGet, "/docs", "", nil),
		}
		// The token answer too; the harness redacts its tokens.
		answers = append(answers, s.Expect(t, http.StatusOK, http.MethodPost, tokenPath, "", url.Values{"username": {root.Email}, "password": {root.Password}}))
		for _, r := range answers {
			h := r.Header
			for name, want := range map[string]string{
				"X-Content-Type-Options": "nosniff",
				"X-Frame-Options":        "DENY",
				"Referrer-Policy":        "no-referrer",
			} {
				if h.Get(name) != want {
					t.Errorf("%s %s: %s %q, want %q", r.Method, r.Path, name, h.Get(name), want)
				}
			}
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
				t.Errorf("%s %s: Content-Security-Policy %q", r.Method, r.Path, csp)
			}
			if r.Path != "/docs" && h.Get("Cache-Control") != "no-store" {
				t.Errorf("%s %s: Cache-Control %q, want no-store", r.Method, r.Path, h.Get("Cache-Control"))
			}
			for _, name := range []string{"Server", "X-Powered-By", "X-AspNet-Version"} {
				if h.Get(name) != "" {
					t.Errorf("%s %s: %s %q names the software", r.Method, r.Path, name, h.Get(name))
				}
			}
		}
	})
}

// TestAPI8_Misconfiguration_ErrorsRevealNothing is API8:2023: answers to
// broken requests say what was wrong with the request and nothing about
// the service's insides (no stack, no SQL, no Go, no driver), and TRACE
// echoes nothing back.
func TestAPI8_Misconfiguration_ErrorsRevealNothing(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		var answers []harness.Response
		for _, tc := range []struct {
			method, path string
			body         any
		}{
			{http.MethodGet, "/api/v1/users/abc", nil},
			{http.MethodGet, "/api/v1/users/99999999999999999999", nil},
			{http.MethodGet, list + "?cursor=%27%3B--", nil},
			{http.MethodGet, search + "?sort=id%3B%20DROP%20TABLE%20users", nil},
			{http.MethodGet, audit + "?since=%27", nil},
			{http.MethodPut, harness.UserPath(root.ID), harness.RawBody{ContentType: "application/json", Data: `{"first_name":}`}},
			{http.MethodPut, harness.UserPath(root.ID), harness.RawBody{ContentType: "application/json", Data: `{"first_name":"\ud800"}`}},
			{http.MethodPost, createUser, harness.RawBody{ContentType: "application/json", Data: `{"email":["a"]}`}},
			{http.MethodPost, importPath, harness.RawBody{ContentType: "multipart/form-data; boundary=x", Data: "--x\r\nbroken"}},
			{http.MethodPatch, harness.UserPath(1<<40) + "/role", map[string]any{"role": "user"}},
			{"TRACE", me, nil},
			{"PROPFIND", me, nil},
		} {
			answers = append(answers, s.Do(t, tc.method, tc.path, root.Access, tc.body, "X-Canary", "canary-value-1234"))
		}
		for _, r := range answers {
			if r.Status < 400 {
				t.Errorf("%s: want a refusal", r)
			}
			body := strings.ToLower(string(r.Body))
			for _, tell := range []string{"goroutine", ".go:", "runtime.", "panic", "sqlstate", "gorm", "pgx", "pq:",
				"sqlite", "syntax error at", "strconv.", "json: cannot", "canary-value", "bearer "} {
				if strings.Contains(body, tell) {
					t.Errorf("%s: the answer tells %q", r, tell)
				}
			}
		}
	})
}

// TestAPI8_Misconfiguration_CrossOrigin is API8:2023 for browsers: without
// CORS_ALLOWED_ORIGINS no other site's page may read an answer or open a
// WebSocket; with it, exactly the listed origins may, and still no other.
// Clients that send no Origin (not browsers) and the service's own pages
// are unaffected.
func TestAPI8_Misconfiguration_CrossOrigin(t *testing.T) {
	t.Parallel()
	const app, evil = "https://app.example.com", "https://evil.example.com"
	for _, configured := range []bool{false, true} {
		opts := harness.Options{}
		if configured {
			opts.Configure = func(c *bootstrap.Config) { c.AllowedOrigins = []string{app} }
		}
		t.Run(fmt.Sprintf("CORS_ALLOWED_ORIGINS set %v", configured), func(t *testing.T) {
			t.Parallel()
			harness.OnEachBackend(t, opts, func(t *testing.T, s *harness.Service) {
				root := s.SeedSuperadmin(t)
				for _, origin := range []string{app, evil, "null"} {
					allowed := configured && origin == app
					pre := s.Do(t, http.MethodOptions, me, "", nil, "Origin", origin,
						"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization")
					got := s.Do(t, http.MethodGet, me, root.Access, nil, "Origin", origin)
					for _, r := range []harness.Response{pre, got} {
						acao := r.Header.Get("Access-Control-Allow-Origin")
						if allowed && acao != origin || !allowed && acao != "" {
							t.Errorf("%s from %s: Access-Control-Allow-Origin %q (allowed: %v)", r.Method, origin, acao, allowed)
						}
						if r.Header.Get("Access-Control-Allow-Credentials") != "" {
							t.Errorf("%s from %s: credentials allowed", r.Method, origin)
						}
					}
					ws, res, err := s.DialWS(t, harness.WSOptions{Token: root.Access, Header: http.Header{"Origin": {origin}}})
					switch {
					case allowed && err != nil:
						t.Errorf("WebSocket from %s: refused (%v), want connected", origin, err)
					case !allowed && (err == nil || res == nil || res.StatusCode != http.StatusForbidden):
						t.Errorf("WebSocket from %s: %v %v, want 403", origin, err, res)
					case err == nil:
						ws.Close()
					}
				}
				// The service's own pages (/docs) and clients without Origin.
				for _, h := range []http.Header{{"Origin": {s.Base}}, {}} {
					ws, _, err := s.DialWS(t, harness.WSOptions{Token: root.Access, Header: h})
					if err != nil {
						t.Errorf("WebSocket with %v: %v, want connected", h, err)
						continue
					}
					ws.Send(map[string]any{"action": "ping"})
					ws.Expect("pong")
					ws.Close()
				}
			})
		})
	}
}

// TestAPI8_Injection_FiltersAreLiterals covers injection, API8 of the 2019
// list, which the 2023 list folds into API8 Security Misconfiguration (and
// API10): SQL and LIKE metacharacters, quotes and payloads in every text
// filter are literal characters. The oracle is the same substring test done
// here in Go over every user: the search must answer exactly those users,
// never an error and never everyone. NUL and invalid UTF-8 are refused
// (422, as documented); sort and the other filters take only their values.
// A WebSocket subscription with the same filter gets the same literal
// semantics.
func TestAPI8_Injection_FiltersAreLiterals(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		rows := []string{
			"Percy,Cent,pct%lit@example.com",
			"Una,Derscore,under_lit@example.com",
			"Quinn,O'Quote,quote'lit@example.com",
			"Dash,Hy-Phen,dash-lit@example.org",
			"Zoë,Émile,zoe.lit@example.net",
			"Plain,Person,plain@example.com",
		}
		var csv strings.Builder
		csv.WriteString(csvHeader)
		for i, r := range rows {
			fmt.Fprintf(&csv, "%s,female,10.9.0.%d\n", r, i+1)
		}
		s.Expect(t, http.StatusOK, http.MethodPost, importPath, root.Access, csvBody(csv.String()))

		var all harness.PageDTO
		s.Expect(t, http.StatusOK, http.MethodGet, list+"?size=100", root.Access, nil).Decode(t, &all)
		if len(all.Items) != len(rows)+1 {
			t.Fatalf("want %d users, have %d", len(rows)+1, len(all.Items))
		}
		field := func(u harness.UserDTO, name string) string {
			switch name {
			case "first_name":
				return u.FirstName
			case "last_name":
				return u.LastName
			}
			return u.Email
		}
		payloads := []string{
			"%", "_", `\`, "'", "''", `"`, "%%", "_%", "%_", `\%`, `\_`, `%\`, "e%e", "t_l", "_lit", "%lit",
			"' OR '1'='1", "' OR 1=1 --", `"; DROP TABLE users; --`, "') OR ('a'='a", "1' UNION SELECT password_hash FROM users--",
			"*", ".*", "[a-z]", "^p", "$", "{\"$ne\": null}", "|| 1", "<script>", "${jndi:ldap://x}", "ZOË", "émile", "'quote",
		}
		for _, name := range []string{"first_name", "last_name", "email"} {
			for _, p := range payloads {
				var want []int64
				for _, u := range all.Items {
					if strings.Contains(domain.Fold(field(u, name)), domain.Fold(p)) {
						want = append(want, u.ID)
					}
				}
				r := s.Expect(t, http.StatusOK, http.MethodGet, search+"?size=100&"+name+"="+url.QueryEscape(p), root.Access, nil)
				var page harness.PageDTO
				r.Decode(t, &page)
				var got []int64
				for _, u := range page.Items {
					got = append(got, u.ID)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s=%q matched users %v, want exactly %v (those whose %s contains it)", name, p, got, want, name)
				}
			}
			for _, bad := range []string{"a%00b", "%00", "%FF", "a%C3%28"} {
				s.Expect(t, http.StatusUnprocessableEntity, http.MethodGet, search+"?"+name+"="+bad, root.Access, nil)
			}
		}
		for _, q := range []string{
			"sort=id%3BDROP%20TABLE%20users", "sort=email%20desc", "sort=-id,email", "sort=(select%201)", "sort=1",
			"sort=password_hash", "sort=%00", "gender=female'%20OR%20'1'='1", "role=admin'--", "role=superadmin%00",
			"ip_address=10.0.0.1'%20OR%201=1", "ip_address=10.0.0.0/8;", "ip_address=%25",
		} {
			r := s.Do(t, http.MethodGet, search+"?"+q, root.Access, nil)
			if r.Status != http.StatusUnprocessableEntity && r.Status != http.StatusBadRequest {
				t.Errorf("%s: want 422 (or 400)", r)
			}
		}
		for _, q := range []string{"action=created'%20OR%20'1'='1", "target_id=1%20OR%201=1", "actor_id=1;--", "since=now()"} {
			r := s.Do(t, http.MethodGet, audit+"?"+q, root.Access, nil)
			if r.Status != http.StatusUnprocessableEntity && r.Status != http.StatusBadRequest {
				t.Errorf("%s: want 422 (or 400)", r)
			}
		}

		// The in-memory engine of subscriptions: "%" matches the one email
		// with a percent sign, not every change.
		ws := s.ConnectWS(t, root.Access)
		sub := ws.Subscribe(map[string]any{"action": "subscribe_search", "email": "%"}).Str("subscription_id")
		ws.Send(map[string]any{"action": "subscribe_search", "email": "a\u0000b"})
		if m := ws.Next(); m.Type() != "error" {
			t.Errorf("a NUL in a subscription filter: %v, want an error", m)
		}
		// Events come in commit order: had the change to plain@ matched,
		// its event would come first.
		for _, email := range []string{"plain@example.com", "pct%lit@example.com"} {
			i := slices.IndexFunc(all.Items, func(u harness.UserDTO) bool { return u.Email == email })
			s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(all.Items[i].ID), root.Access, map[string]any{"first_name": "Changed"})
		}
		m := ws.Next()
		if m.Type() != "updated" || m.Str("subscription_id") != sub || m.User().Str("email") != "pct%lit@example.com" {
			t.Errorf("want the update of pct%%lit@example.com first, got %v", m)
		}
	})
}
