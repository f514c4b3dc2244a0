package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// fakeImport is a func-field fake of ports.ImportService.
type fakeImport struct {
	ImportFn func(ctx context.Context, actor domain.Actor, file io.Reader, opts ports.ImportOptions) (ports.ImportReport, error)
}

var _ ports.ImportService = (*fakeImport)(nil)

func (f *fakeImport) Import(ctx context.Context, a domain.Actor, file io.Reader, opts ports.ImportOptions) (ports.ImportReport, error) {
	if f.ImportFn == nil {
		return ports.ImportReport{}, errUnexpected
	}
	return f.ImportFn(ctx, a, file, opts)
}

// importCall is what the fake saw of one import.
type importCall struct {
	actor domain.Actor
	file  string
	opts  ports.ImportOptions
}

// recordImports makes the fake read the whole file and answer report.
func (h *harness) recordImports(report ports.ImportReport) *[]importCall {
	var calls []importCall
	h.imp.ImportFn = func(_ context.Context, a domain.Actor, file io.Reader, opts ports.ImportOptions) (ports.ImportReport, error) {
		b, err := io.ReadAll(file)
		if err != nil {
			return ports.ImportReport{}, fmt.Errorf("import: reading: %w", err)
		}
		calls = append(calls, importCall{actor: a, file: string(b), opts: opts})
		return report, nil
	}
	return &calls
}

const csvFile = "first_name,last_name,email,gender,ip_address\nZoë,Ødegaard,zoe@example.com,Female,10.0.0.1\n"

var sampleReport = ports.ImportReport{TotalRows: 3, Imported: 1, Updated: 0, Skipped: 1, Failed: 1, DryRun: true,
	Errors: []ports.ImportError{{Line: 1, Field: "nickname", Message: "unknown column; ignored"}, {Line: 4, Field: "email", Message: "is not a valid email address"}}}

func multipartBody(t *testing.T, fields ...[2]string) (string, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range fields {
		var err error
		if f[0] == "file" {
			var fw io.Writer
			fw, err = w.CreateFormFile("file", "users.csv")
			if err == nil {
				_, err = io.WriteString(fw, f[1])
			}
		} else {
			err = w.WriteField(f[0], f[1])
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String(), w.FormDataContentType()
}

func TestImportTakesACSVBodyAndAnswersTheReport(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	calls := h.recordImports(sampleReport)
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/users/import?on_conflict=update&dry_run=true&default_password=change+me+now",
		token: adminToken, body: csvFile, contentType: "text/csv; charset=utf-8"})
	wantStatus(t, rec, http.StatusOK)
	got := decode[ImportReport](t, rec)
	want := ImportReport{TotalRows: 3, Imported: 1, Skipped: 1, Failed: 1, DryRun: true, Errors: []ImportError{
		{Line: 1, Field: "nickname", Message: "unknown column; ignored"}, {Line: 4, Field: "email", Message: "is not a valid email address"}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("report %+v, want %+v", got, want)
	}
	if len(*calls) != 1 {
		t.Fatalf("%d imports", len(*calls))
	}
	c := (*calls)[0]
	if c.actor != adminActor || c.file != csvFile {
		t.Errorf("import by %+v of %q", c.actor, c.file)
	}
	if c.opts.OnConflict != "update" || !c.opts.DryRun || c.opts.DefaultPassword != "change me now" {
		t.Errorf("options %+v", c.opts)
	}
	// An empty report still has an errors array, never null.
	h.recordImports(ports.ImportReport{Errors: []ports.ImportError{}})
	rec = h.do(request{method: http.MethodPost, path: "/api/v1/users/import", token: adminToken, body: csvFile, contentType: "text/csv"})
	wantStatus(t, rec, http.StatusOK)
	if !strings.Contains(rec.Body.String(), `"errors":[]`) {
		t.Errorf("body %s", rec.Body.String())
	}
}

func TestImportTakesAMultipartFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	calls := h.recordImports(sampleReport)
	body, ct := multipartBody(t, [2]string{"default_password", "change me now"}, [2]string{"file", csvFile})
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/users/import?on_conflict=fail", token: adminToken, body: body, contentType: ct})
	wantStatus(t, rec, http.StatusOK)
	if len(*calls) != 1 || (*calls)[0].file != csvFile || (*calls)[0].opts.DefaultPassword != "change me now" || (*calls)[0].opts.OnConflict != "fail" {
		t.Fatalf("calls %+v", *calls)
	}

	for name, c := range map[string]struct {
		fields [][2]string
		query  string
		status int
		code   string
	}{
		"no file":              {[][2]string{{"default_password", "change me now"}}, "", http.StatusBadRequest, "malformed_multipart"},
		"unknown field":        {[][2]string{{"notes", "x"}, {"file", csvFile}}, "", http.StatusBadRequest, "malformed_multipart"},
		"password given twice": {[][2]string{{"default_password", "change me now"}, {"file", csvFile}}, "?default_password=another+one", http.StatusUnprocessableEntity, "validation_failed"},
		"password too long":    {[][2]string{{"default_password", strings.Repeat("x", 2000)}, {"file", csvFile}}, "", http.StatusUnprocessableEntity, "validation_failed"},
	} {
		body, ct := multipartBody(t, c.fields...)
		rec := h.do(request{method: http.MethodPost, path: "/api/v1/users/import" + c.query, token: adminToken, body: body, contentType: ct})
		t.Run(name, func(t *testing.T) { wantError(t, rec, c.status, c.code) })
	}
	if len(*calls) != 1 {
		t.Errorf("bad forms reached the use case: %d calls", len(*calls))
	}
}

func TestARejectedStrictImportIs409WithTheReport(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	rejected := sampleReport
	rejected.Rejected, rejected.DryRun = true, false
	h.recordImports(rejected)
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/users/import?on_conflict=fail", token: adminToken, body: csvFile, contentType: "text/csv"})
	wantStatus(t, rec, http.StatusConflict)
	got := decode[ImportRejected](t, rec)
	if got.Code != "import_rejected" || !strings.Contains(got.Detail, "1 of 3 rows failed") || got.Failed != 1 || len(got.Errors) != 2 || got.Errors[1].Line != 4 {
		t.Errorf("body %+v", got)
	}
}

func TestImportErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.imp.ImportFn = func(_ context.Context, a domain.Actor, file io.Reader, _ ports.ImportOptions) (ports.ImportReport, error) {
		b, _ := io.ReadAll(file)
		switch string(b) {
		case "forbidden":
			return ports.ImportReport{}, fmt.Errorf("authorize users.import: %w", domain.ErrForbidden)
		case "malformed":
			return ports.ImportReport{}, &domain.Error{Kind: domain.KindMalformed, Code: "malformed_csv", Message: "the header lacks the required column(s) email"}
		}
		return ports.ImportReport{}, errUnexpected
	}
	cases := []struct {
		name        string
		r           request
		status      int
		code        string
		wantMessage string
	}{
		{"not signed in", request{method: http.MethodPost, path: "/api/v1/users/import", body: csvFile, contentType: "text/csv"}, http.StatusUnauthorized, "unauthenticated", ""},
		{"not allowed", request{method: http.MethodPost, path: "/api/v1/users/import", token: userToken, body: "forbidden", contentType: "text/csv"}, http.StatusForbidden, "forbidden", ""},
		{"not CSV", request{method: http.MethodPost, path: "/api/v1/users/import", token: adminToken, body: "malformed", contentType: "text/csv"}, http.StatusBadRequest, "malformed_csv", "email"},
		{"JSON body", request{method: http.MethodPost, path: "/api/v1/users/import", token: adminToken, body: `{"a":1}`}, http.StatusUnsupportedMediaType, "unsupported_media_type", ""},
		{"other charset", request{method: http.MethodPost, path: "/api/v1/users/import", token: adminToken, body: csvFile, contentType: "text/csv; charset=latin1"}, http.StatusUnsupportedMediaType, "unsupported_media_type", ""},
		{"unknown parameter", request{method: http.MethodPost, path: "/api/v1/users/import?onconflict=skip", token: adminToken, body: csvFile, contentType: "text/csv"}, http.StatusBadRequest, "unknown_parameter", "onconflict"},
		{"bad dry_run", request{method: http.MethodPost, path: "/api/v1/users/import?dry_run=maybe", token: adminToken, body: csvFile, contentType: "text/csv"}, http.StatusBadRequest, "malformed", "dry_run"},
	}
	for _, c := range cases {
		rec := h.do(c.r)
		t.Run(c.name, func(t *testing.T) {
			e := wantError(t, rec, c.status, c.code)
			if !strings.Contains(e.Detail, c.wantMessage) {
				t.Errorf("detail %q does not mention %q", e.Detail, c.wantMessage)
			}
		})
	}
}

func TestImportHasItsOwnBodyLimit(t *testing.T) {
	t.Parallel()
	// Ordinary bodies are capped at 64 bytes here, imports at 4 KiB.
	h := newHarness(t, Config{BodyLimit: 64, ImportBodyLimit: 4096})
	calls := h.recordImports(sampleReport)
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/users/import", token: adminToken, body: csvFile + strings.Repeat("A,B,a@b.co,Male,\n", 100), contentType: "text/csv"})
	wantStatus(t, rec, http.StatusOK)
	if len(*calls) != 1 {
		t.Fatalf("%d calls", len(*calls))
	}
	big := csvFile + strings.Repeat("A,B,a@b.co,Male,\n", 1000)
	// Declared too large: refused before reading.
	rec = h.do(request{method: http.MethodPost, path: "/api/v1/users/import", token: adminToken, body: big, contentType: "text/csv"})
	wantError(t, rec, http.StatusRequestEntityTooLarge, "too_large")
	// Streamed without a length: cut off while the use case reads it.
	req, _ := http.NewRequest(http.MethodPost, "/api/v1/users/import", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	rec = httptest.NewRecorder()
	h.e.ServeHTTP(rec, req)
	wantError(t, rec, http.StatusRequestEntityTooLarge, "too_large")
	// And in a multipart body.
	body, ct := multipartBody(t, [2]string{"file", big})
	rec = h.do(request{method: http.MethodPost, path: "/api/v1/users/import", token: adminToken, body: body, contentType: ct})
	wantError(t, rec, http.StatusRequestEntityTooLarge, "too_large")
	if len(*calls) != 1 {
		t.Errorf("%d calls completed past the limit", len(*calls)-1)
	}
}
