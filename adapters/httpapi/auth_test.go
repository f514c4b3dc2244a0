package httpapi

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

func loginHarness(t *testing.T, pair ports.TokenPair) (*harness, *[2]string) {
	h := newHarness(t, Config{})
	var got [2]string
	h.auth.LoginFn = func(_ context.Context, email, password string, _ netip.Addr) (ports.TokenPair, error) {
		got = [2]string{email, password}
		if password != "correct horse" {
			return ports.TokenPair{}, domain.ErrBadCredentials
		}
		return pair, nil
	}
	return h, &got
}

func TestAuthTokenAcceptsTheOAuth2FormAndJSON(t *testing.T) {
	t.Parallel()
	pair := ports.TokenPair{AccessToken: "acc", ExpiresIn: 900, RefreshToken: "ref"}
	form := url.Values{"username": {"zoe@example.com"}, "password": {"correct horse"}}
	swaggerUIForm := url.Values{"grant_type": {"password"}, "username": {"zoe@example.com"},
		"password": {"correct horse"}, "scope": {""}, "client_id": {"x"}, "client_secret": {"y"}}
	for name, r := range map[string]request{
		"form":               {body: form.Encode(), contentType: "application/x-www-form-urlencoded"},
		"form as Swagger UI": {body: swaggerUIForm.Encode(), contentType: "application/x-www-form-urlencoded; charset=UTF-8"},
		"json":               {body: `{"email":"zoe@example.com","password":"correct horse"}`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h, got := loginHarness(t, pair)
			r.method, r.path = http.MethodPost, "/api/v1/auth/token"
			rec := h.do(r)
			wantStatus(t, rec, http.StatusOK)
			if *got != [2]string{"zoe@example.com", "correct horse"} {
				t.Errorf("Login got %q", *got)
			}
			tp := decode[TokenPair](t, rec)
			want := TokenPair{AccessToken: "acc", TokenType: "bearer", ExpiresIn: 900, RefreshToken: "ref"}
			if tp != want {
				t.Errorf("body = %+v, want %+v", tp, want)
			}
			if !strings.Contains(rec.Body.String(), `"password_change_required":false`) {
				t.Errorf("password_change_required missing: %s", rec.Body.String())
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
		})
	}
}

func TestAuthTokenSaysWhenThePasswordMustChange(t *testing.T) {
	t.Parallel()
	h, _ := loginHarness(t, ports.TokenPair{AccessToken: "a", ExpiresIn: 1, RefreshToken: "r", PasswordChangeRequired: true})
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/auth/token",
		body: `{"email":"zoe@example.com","password":"correct horse"}`})
	wantStatus(t, rec, http.StatusOK)
	if !decode[TokenPair](t, rec).PasswordChangeRequired {
		t.Errorf("password_change_required not true: %s", rec.Body.String())
	}
}

func TestAuthTokenWrongPassword(t *testing.T) {
	t.Parallel()
	h, _ := loginHarness(t, ports.TokenPair{})
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/auth/token",
		body: "username=zoe%40example.com&password=nope", contentType: "application/x-www-form-urlencoded"})
	// RFC 6749 §5.2: a refused grant is 400 invalid_grant, which OAuth2
	// clients and Swagger UI show; detail and code stay for older clients.
	body := wantOAuthError(t, rec, http.StatusBadRequest, "invalid_grant", "bad_credentials")
	if body.Detail != "Incorrect email or password" || body.ErrorDescription != body.Detail {
		t.Errorf("detail = %q, error_description = %q", body.Detail, body.ErrorDescription)
	}
}

func TestAuthTokenRejectsBadInput(t *testing.T) {
	t.Parallel()
	const formCT = "application/x-www-form-urlencoded"
	// RFC 6749 §5.2: everything wrong with the request is 400
	// invalid_request (a 413 or 415 keeps its status), with the fields named.
	tests := []struct {
		name       string
		r          request
		status     int
		oauth      string
		code       string
		badFields  []string
		noDecoding bool
	}{
		{name: "other grant type", r: request{body: "grant_type=client_credentials&username=a&password=b", contentType: formCT},
			status: http.StatusBadRequest, oauth: "unsupported_grant_type", code: "unsupported_grant_type"},
		{name: "form without username", r: request{body: "password=b", contentType: formCT},
			status: http.StatusBadRequest, oauth: "invalid_request", code: "validation_failed", badFields: []string{"username"}},
		{name: "form without anything", r: request{body: "x=1", contentType: formCT},
			status: http.StatusBadRequest, oauth: "invalid_request", code: "validation_failed", badFields: []string{"username", "password"}},
		{name: "refresh grant without refresh_token", r: request{body: "grant_type=refresh_token", contentType: formCT},
			status: http.StatusBadRequest, oauth: "invalid_request", code: "validation_failed", badFields: []string{"refresh_token"}},
		{name: "a parameter twice", r: request{body: "username=a&username=b&password=c", contentType: formCT},
			status: http.StatusBadRequest, oauth: "invalid_request", code: "repeated_parameter"},
		{name: "malformed form", r: request{body: "username=%zz", contentType: formCT},
			status: http.StatusBadRequest, oauth: "invalid_request", code: "malformed_form"},
		{name: "json without password", r: request{body: `{"email":"a@b.c"}`},
			status: http.StatusBadRequest, oauth: "invalid_request", code: "validation_failed", badFields: []string{"password"}},
		{name: "json with unknown key", r: request{body: `{"email":"a@b.c","password":"x","username":"a"}`},
			status: http.StatusBadRequest, oauth: "invalid_request", code: "validation_failed", badFields: []string{"username"}},
		{name: "json number password", r: request{body: `{"email":"a@b.c","password":12345678}`},
			status: http.StatusBadRequest, oauth: "invalid_request", code: "validation_failed", badFields: []string{"password"}},
		{name: "plain text", r: request{body: "hello", contentType: "text/plain"},
			status: http.StatusUnsupportedMediaType, oauth: "invalid_request", code: "unsupported_media_type"},
		{name: "malformed json", r: request{body: `{"email":`},
			status: http.StatusBadRequest, oauth: "invalid_request", code: "malformed_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Config{}) // Login not set: reaching it fails the test with a 500
			tt.r.method, tt.r.path = http.MethodPost, "/api/v1/auth/token"
			rec := h.do(tt.r)
			ob := wantOAuthError(t, rec, tt.status, tt.oauth, tt.code)
			body := Error{Detail: ob.Detail, Code: ob.Code, Errors: ob.Errors}
			fields := fieldErrors(body)
			for _, f := range tt.badFields {
				if !strings.Contains(ob.ErrorDescription, f+" ") {
					t.Errorf("error_description %q does not name %q", ob.ErrorDescription, f)
				}
			}
			for _, f := range tt.badFields {
				if fields[f] == "" {
					t.Errorf("no error for field %q: %+v", f, fields)
				}
			}
		})
	}
}

func TestAuthRefresh(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.auth.RefreshFn = func(_ context.Context, token string) (ports.TokenPair, error) {
		if token != "old-refresh" {
			return ports.TokenPair{}, domain.ErrUnauthenticated
		}
		return ports.TokenPair{AccessToken: "a2", ExpiresIn: 900, RefreshToken: "r2"}, nil
	}
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/auth/refresh", body: `{"refresh_token":"old-refresh"}`})
	wantStatus(t, rec, http.StatusOK)
	if tp := decode[TokenPair](t, rec); tp.AccessToken != "a2" || tp.RefreshToken != "r2" || tp.TokenType != "bearer" {
		t.Errorf("body = %+v", tp)
	}

	rec = h.do(request{method: http.MethodPost, path: "/api/v1/auth/refresh", body: `{"refresh_token":"spent"}`})
	wantError(t, rec, http.StatusUnauthorized, "unauthenticated")

	rec = h.do(request{method: http.MethodPost, path: "/api/v1/auth/refresh", body: `{}`})
	if f := fieldErrors(wantError(t, rec, http.StatusUnprocessableEntity, "validation_failed")); f["refresh_token"] != "is required" {
		t.Errorf("errors = %v", f)
	}
}

func TestAuthLogout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	var gotActor domain.Actor
	var gotToken string
	h.auth.LogoutFn = func(_ context.Context, a domain.Actor, token string) error {
		gotActor, gotToken = a, token
		return nil
	}
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/auth/logout", token: userToken, body: `{"refresh_token":"r1"}`})
	wantStatus(t, rec, http.StatusNoContent)
	if rec.Body.Len() != 0 {
		t.Errorf("204 with a body: %q", rec.Body.String())
	}
	if gotActor != userActor || gotToken != "r1" {
		t.Errorf("Logout(%+v, %q)", gotActor, gotToken)
	}

	rec = h.do(request{method: http.MethodPost, path: "/api/v1/auth/logout", body: `{"refresh_token":"r1"}`})
	wantError(t, rec, http.StatusUnauthorized, "unauthenticated")
}

func TestAuthSignUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	var got ports.CreateUserRequest
	h.auth.SignUpFn = func(_ context.Context, r ports.CreateUserRequest) (*domain.User, error) {
		got = r
		return testUser(t, 42), nil
	}
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/auth/sign-up", body: `{
		"first_name":"Zoë","last_name":"O'Doireidh","email":"Zoe@Example.com","gender":"female",
		"ip_address":"10.0.0.1","password":"correct horse","role":"superadmin"}`})
	wantStatus(t, rec, http.StatusCreated)
	want := ports.CreateUserRequest{
		User: domain.NewUserParams{FirstName: "Zoë", LastName: "O'Doireidh", Email: "Zoe@Example.com",
			Gender: "female", IPAddress: "10.0.0.1"},
		Password: "correct horse",
	}
	if got != want {
		t.Errorf("SignUp got %+v, want %+v (the role must be dropped)", got, want)
	}
	if loc := rec.Header().Get("Location"); loc != "/api/v1/users/42" {
		t.Errorf("Location = %q", loc)
	}
	if rec.Header().Get("ETag") == "" {
		t.Error("no ETag")
	}
	if u := decode[User](t, rec); u.ID != 42 || u.Role != string(RoleUser) {
		t.Errorf("user = %+v", u)
	}
}

func TestAuthSignUpReportsEveryBadField(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/auth/sign-up",
		body: `{"first_name":1,"email":"a@b.c","gender":"Male","password":"12345678","nickname":"z"}`})
	fields := fieldErrors(wantError(t, rec, http.StatusUnprocessableEntity, "validation_failed"))
	want := map[string]string{"first_name": "must be a string", "last_name": "is required", "nickname": "unknown field"}
	for f, msg := range want {
		if fields[f] != msg {
			t.Errorf("errors[%s] = %q, want %q (all: %v)", f, fields[f], msg, fields)
		}
	}
}

func TestAuthSignUpConflict(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.auth.SignUpFn = func(context.Context, ports.CreateUserRequest) (*domain.User, error) {
		return nil, domain.ErrEmailTaken
	}
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/auth/sign-up",
		body: `{"first_name":"A","last_name":"B","email":"a@b.co","gender":"Male","password":"12345678","ip_address":null}`})
	if body := wantError(t, rec, http.StatusConflict, "email_taken"); body.Detail != "email already registered" {
		t.Errorf("detail = %q", body.Detail)
	}
}
