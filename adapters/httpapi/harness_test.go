package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// errUnexpected is what a fake returns for a call the test did not set up.
var errUnexpected = errors.New("unexpected call to a fake")

// fakeUsers is a func-field fake of ports.UserService.
type fakeUsers struct {
	MeFn            func(ctx context.Context, actor domain.Actor) (*domain.User, error)
	GetFn           func(ctx context.Context, actor domain.Actor, id int64) (*domain.User, error)
	ListFn          func(ctx context.Context, actor domain.Actor, req ports.PageRequest) (ports.Page, error)
	SearchFn        func(ctx context.Context, actor domain.Actor, req ports.PageRequest) (ports.Page, error)
	CreateFn        func(ctx context.Context, actor domain.Actor, req ports.CreateUserRequest) (*domain.User, error)
	UpdateProfileFn func(ctx context.Context, actor domain.Actor, id int64, req ports.UpdateUserRequest) (*domain.User, error)
	ChangeRoleFn    func(ctx context.Context, actor domain.Actor, id int64, role string) (*domain.User, error)
	DeleteFn        func(ctx context.Context, actor domain.Actor, id int64) error
}

var _ ports.UserService = (*fakeUsers)(nil)

func (f *fakeUsers) Me(ctx context.Context, a domain.Actor) (*domain.User, error) {
	if f.MeFn == nil {
		return nil, errUnexpected
	}
	return f.MeFn(ctx, a)
}

func (f *fakeUsers) Get(ctx context.Context, a domain.Actor, id int64) (*domain.User, error) {
	if f.GetFn == nil {
		return nil, errUnexpected
	}
	return f.GetFn(ctx, a, id)
}

func (f *fakeUsers) List(ctx context.Context, a domain.Actor, r ports.PageRequest) (ports.Page, error) {
	if f.ListFn == nil {
		return ports.Page{}, errUnexpected
	}
	return f.ListFn(ctx, a, r)
}

func (f *fakeUsers) Search(ctx context.Context, a domain.Actor, r ports.PageRequest) (ports.Page, error) {
	if f.SearchFn == nil {
		return ports.Page{}, errUnexpected
	}
	return f.SearchFn(ctx, a, r)
}

func (f *fakeUsers) Create(ctx context.Context, a domain.Actor, r ports.CreateUserRequest) (*domain.User, error) {
	if f.CreateFn == nil {
		return nil, errUnexpected
	}
	return f.CreateFn(ctx, a, r)
}

func (f *fakeUsers) UpdateProfile(ctx context.Context, a domain.Actor, id int64, r ports.UpdateUserRequest) (*domain.User, error) {
	if f.UpdateProfileFn == nil {
		return nil, errUnexpected
	}
	return f.UpdateProfileFn(ctx, a, id, r)
}

func (f *fakeUsers) ChangeRole(ctx context.Context, a domain.Actor, id int64, role string) (*domain.User, error) {
	if f.ChangeRoleFn == nil {
		return nil, errUnexpected
	}
	return f.ChangeRoleFn(ctx, a, id, role)
}

func (f *fakeUsers) Delete(ctx context.Context, a domain.Actor, id int64) error {
	if f.DeleteFn == nil {
		return errUnexpected
	}
	return f.DeleteFn(ctx, a, id)
}

func (f *fakeUsers) EnsureSuperadmin(context.Context, domain.Actor, ports.SuperadminRequest) (*domain.User, bool, error) {
	return nil, false, errUnexpected
}

// fakeAuth is a func-field fake of ports.AuthService. Without
// AuthenticateFn it knows the tokens of tokenActors.
type fakeAuth struct {
	SignUpFn       func(ctx context.Context, req ports.CreateUserRequest) (*domain.User, error)
	LoginFn        func(ctx context.Context, email, password string, client netip.Addr) (ports.TokenPair, error)
	RefreshFn      func(ctx context.Context, token string) (ports.TokenPair, error)
	LogoutFn       func(ctx context.Context, actor domain.Actor, token string) error
	AuthenticateFn func(ctx context.Context, token string) (domain.Actor, error)
	IntrospectFn   func(ctx context.Context, actor domain.Actor, token string) (ports.Introspection, error)
	RevokeFn       func(ctx context.Context, token string) error
}

var _ ports.AuthService = (*fakeAuth)(nil)

var (
	userActor  = domain.Actor{ID: 7, Role: domain.RoleUser}
	adminActor = domain.Actor{ID: 1, Role: domain.RoleSuperadmin}
)

const (
	userToken  = "user-token"
	adminToken = "admin-token"
)

func (f *fakeAuth) SignUp(ctx context.Context, r ports.CreateUserRequest) (*domain.User, error) {
	if f.SignUpFn == nil {
		return nil, errUnexpected
	}
	return f.SignUpFn(ctx, r)
}

func (f *fakeAuth) Login(ctx context.Context, email, password string, client netip.Addr) (ports.TokenPair, error) {
	if f.LoginFn == nil {
		return ports.TokenPair{}, errUnexpected
	}
	return f.LoginFn(ctx, email, password, client)
}

func (f *fakeAuth) Refresh(ctx context.Context, token string) (ports.TokenPair, error) {
	if f.RefreshFn == nil {
		return ports.TokenPair{}, errUnexpected
	}
	return f.RefreshFn(ctx, token)
}

func (f *fakeAuth) Logout(ctx context.Context, a domain.Actor, token string) error {
	if f.LogoutFn == nil {
		return errUnexpected
	}
	return f.LogoutFn(ctx, a, token)
}

func (f *fakeAuth) Authenticate(ctx context.Context, token string) (domain.Actor, error) {
	if f.AuthenticateFn != nil {
		return f.AuthenticateFn(ctx, token)
	}
	switch token {
	case userToken:
		return userActor, nil
	case adminToken:
		return adminActor, nil
	}
	return domain.Actor{}, domain.ErrUnauthenticated
}

func (f *fakeAuth) Introspect(ctx context.Context, a domain.Actor, token string) (ports.Introspection, error) {
	if f.IntrospectFn == nil {
		return ports.Introspection{}, errUnexpected
	}
	return f.IntrospectFn(ctx, a, token)
}

func (f *fakeAuth) Revoke(ctx context.Context, token string) error {
	if f.RevokeFn == nil {
		return errUnexpected
	}
	return f.RevokeFn(ctx, token)
}

// fakeKeys is a fixed ports.KeySet.
type fakeKeys []ports.JWK

func (k fakeKeys) PublicKeys() []ports.JWK { return k }

// fakeAudit is a func-field fake of ports.AuditService.
type fakeAudit struct {
	AuditFn func(ctx context.Context, actor domain.Actor, req ports.AuditRequest) (ports.AuditPage, error)
}

var _ ports.AuditService = (*fakeAudit)(nil)

func (f *fakeAudit) Audit(ctx context.Context, a domain.Actor, r ports.AuditRequest) (ports.AuditPage, error) {
	if f.AuditFn == nil {
		return ports.AuditPage{}, errUnexpected
	}
	return f.AuditFn(ctx, a, r)
}

// syncBuffer collects log output written from request goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is one server over fresh fakes; set the fakes' funcs before use.
type harness struct {
	t     *testing.T
	e     *echo.Echo
	users *fakeUsers
	auth  *fakeAuth
	audit *fakeAudit
	imp   *fakeImport
	cons  *fakeConsole
	ready func(context.Context) error
	reg   *prometheus.Registry
	logs  *syncBuffer
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, users: &fakeUsers{}, auth: &fakeAuth{}, audit: &fakeAudit{}, imp: &fakeImport{},
		cons: &fakeConsole{}, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	h.ready = func(context.Context) error { return nil }
	e, err := New(Deps{
		Users: h.users, Auth: h.auth, Audit: h.audit, Import: h.imp, Keys: testKeys,
		Access: h.cons, Stats: h.cons, Jobs: h.cons,
		Ready:    func(ctx context.Context) error { return h.ready(ctx) },
		Log:      slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry: h.reg,
		Version:  "v1.2.3-test",
	}, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.e = e
	return h
}

// testKeys is what the harness's server publishes as its JWK Set.
var testKeys = fakeKeys{{KeyType: "OKP", Curve: "Ed25519", X: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
	KeyID: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", Algorithm: "EdDSA", Use: "sig"}}

// request is one HTTP request to send through the harness.
type request struct {
	method, path string
	body         string
	contentType  string // default application/json when body is set
	token        string
	header       http.Header
	remote, host string // the peer's address and the Host header, when set
}

func (h *harness) do(r request) *httptest.ResponseRecorder {
	h.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, r.path, body)
	if r.body != "" {
		ct := r.contentType
		if ct == "" {
			ct = echo.MIMEApplicationJSON
		}
		req.Header.Set(echo.HeaderContentType, ct)
	}
	if r.token != "" {
		req.Header.Set(echo.HeaderAuthorization, "Bearer "+r.token)
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.remote != "" {
		req.RemoteAddr = r.remote
	}
	if r.host != "" {
		req.Host = r.host
	}
	rec := httptest.NewRecorder()
	h.e.ServeHTTP(rec, req)
	return rec
}

func (h *harness) get(path, token string) *httptest.ResponseRecorder {
	h.t.Helper()
	return h.do(request{method: http.MethodGet, path: path, token: token})
}

// decode parses rec's JSON body into a fresh T, failing the test otherwise.
func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, rec.Body.String(), err)
	}
	return v
}

// wantStatus fails the test unless rec has status.
func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, status int) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body.String())
	}
}

// wantError checks the status and the error body's shape and code, and
// returns the body.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) Error {
	t.Helper()
	wantStatus(t, rec, status)
	if ct := rec.Header().Get(echo.HeaderContentType); !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	body := decode[Error](t, rec)
	if body.Detail == "" {
		t.Errorf("error body has no detail: %s", rec.Body.String())
	}
	if body.Code != code {
		t.Errorf("code = %q, want %q (body %s)", body.Code, code, rec.Body.String())
	}
	return body
}

// wantOAuthError checks an RFC 6749 §5.2 error: the status, the error
// code, a description, and the service's detail and code beside them.
func wantOAuthError(t *testing.T, rec *httptest.ResponseRecorder, status int, oauthCode, code string) OAuthError {
	t.Helper()
	wantStatus(t, rec, status)
	body := decode[OAuthError](t, rec)
	if string(body.Error) != oauthCode || body.Code != code {
		t.Errorf("error, code = %q, %q; want %q, %q (body %s)", body.Error, body.Code, oauthCode, code, rec.Body.String())
	}
	if body.ErrorDescription == "" || body.Detail == "" || !strings.HasPrefix(body.ErrorDescription, body.Detail) {
		t.Errorf("error_description %q, detail %q: want both, the description starting with the detail", body.ErrorDescription, body.Detail)
	}
	return body
}

// fieldErrors returns the body's errors as field -> message.
func fieldErrors(e Error) map[string]string {
	out := map[string]string{}
	if e.Errors != nil {
		for _, f := range *e.Errors {
			out[f.Field] = f.Message
		}
	}
	return out
}

var testTime = time.Date(2024, 3, 1, 12, 30, 45, 123456000, time.UTC)

// testUser is a stored user with every secret set, so leaks show.
func testUser(t *testing.T, id int64) *domain.User {
	t.Helper()
	u, err := domain.RestoreUser(domain.StoredUser{
		ID: id, FirstName: "Zoë", LastName: "O'Doireidh", Email: "zoe@example.com",
		Gender: "Female", IPAddress: "10.0.0.1", Role: "user",
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2VjcmV0c2FsdA$aGFzaGhhc2hoYXNo", MustChangePassword: true,
		TokenVersion: 41, Version: 3, CreatedAt: testTime, UpdatedAt: testTime.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}
