package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// importRoute is the route template of CSV imports, whose body limit and
// deadlines differ from every other route's.
const importRoute = apiPrefix + "/users/import"

// importJobsRoute starts background imports (handlers_console.go).
const importJobsRoute = apiPrefix + "/users/imports"

// maxPasswordField bounds the multipart default_password field (a password
// is at most 128 characters, 512 bytes in UTF-8).
const maxPasswordField = 1024

// ImportUsers streams a CSV file (the body, or the multipart field file)
// into the import use case and answers its report: 200, or 409 when a
// strict import (on_conflict=fail) was rejected and wrote nothing.
func (s *server) ImportUsers(c echo.Context, params ImportUsersParams) error {
	actor, opts, file, err := s.importUpload(c, string(deref(params.OnConflict)), params.DryRun, params.DefaultPassword)
	if err != nil {
		return err
	}
	report, err := s.imports.Import(c.Request().Context(), actor, file, opts)
	if err != nil {
		return err
	}
	body := importReportDTO(report)
	if report.Rejected {
		return c.JSON(http.StatusConflict, ImportRejected{
			Detail: fmt.Sprintf("nothing was imported: on_conflict=fail and %d of %d rows failed", report.Failed, report.TotalRows),
			Code:   "import_rejected", TotalRows: body.TotalRows, Imported: body.Imported, Updated: body.Updated,
			Skipped: body.Skipped, Failed: body.Failed, Errors: body.Errors, ErrorsTruncated: body.ErrorsTruncated, DryRun: body.DryRun,
		})
	}
	return c.JSON(http.StatusOK, body)
}

// importUpload reads what both kinds of import take: the actor, the
// options (the multipart default_password, which comes before the file,
// included) and the file, not yet read.
func (s *server) importUpload(c echo.Context, onConflict string, dryRun *bool, defaultPassword *string) (domain.Actor, ports.ImportOptions, io.Reader, error) {
	actor, err := actorOf(c)
	if err != nil {
		return actor, ports.ImportOptions{}, nil, err
	}
	if err := s.extendImportDeadline(c); err != nil {
		return actor, ports.ImportOptions{}, nil, err
	}
	opts := ports.ImportOptions{OnConflict: onConflict, DryRun: deref(dryRun), DefaultPassword: deref(defaultPassword)}
	file, err := importFile(c.Request(), &opts)
	return actor, opts, file, err
}

// extendImportDeadline lets an import upload (and, when synchronous, run)
// for longer than the server's timeouts allow an ordinary request; a
// recorder in tests has no deadlines.
func (s *server) extendImportDeadline(c echo.Context) error {
	rc := http.NewResponseController(c.Response().Writer)
	deadline := time.Now().Add(s.cfg.ImportTimeout)
	for _, set := range []func(time.Time) error{rc.SetReadDeadline, rc.SetWriteDeadline} {
		if err := set(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return fmt.Errorf("httpapi: extend the import's deadline: %w", err)
		}
	}
	return nil
}

// isImportUpload tells the routes that take a CSV upload, whose body limit
// and deadline are the import's.
func isImportUpload(c echo.Context) bool {
	return c.Path() == importRoute || c.Path() == importJobsRoute
}

// importFile finds the CSV in the request without buffering it: the body
// itself (text/csv, or no Content-Type), or the part named file of a
// multipart form. A default_password part before it fills opts.
func importFile(r *http.Request, opts *ports.ImportOptions) (io.Reader, error) {
	ct := r.Header.Get(echo.HeaderContentType)
	if ct == "" {
		return r.Body, nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, errUnsupportedMediaType("text/csv", "multipart/form-data")
	}
	switch mt {
	case "text/csv", "application/csv", "text/plain":
		if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
			return nil, &echo.HTTPError{Code: http.StatusUnsupportedMediaType, Message: "the CSV must be UTF-8"}
		}
		return r.Body, nil
	case "multipart/form-data":
	default:
		return nil, errUnsupportedMediaType("text/csv", "multipart/form-data")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, malformedMultipart(err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, &domain.Error{Kind: domain.KindMalformed, Code: "malformed_multipart",
				Message: "the multipart body has no field named file", Fields: []domain.FieldError{{Field: "file", Message: "is required"}}}
		}
		if err != nil {
			return nil, malformedMultipart(err)
		}
		switch part.FormName() {
		case "file":
			return part, nil
		case "default_password":
			if opts.DefaultPassword != "" {
				var v domain.ValidationError
				v.Add("default_password", "is given both in the query and in the form")
				return nil, v.Err()
			}
			b, err := io.ReadAll(io.LimitReader(part, maxPasswordField+1))
			if err != nil {
				return nil, malformedMultipart(err)
			}
			if len(b) > maxPasswordField {
				var v domain.ValidationError
				v.Add("default_password", "must be 8 to 128 characters")
				return nil, v.Err()
			}
			opts.DefaultPassword = string(b)
		default:
			return nil, &domain.Error{Kind: domain.KindMalformed, Code: "malformed_multipart",
				Message: fmt.Sprintf("unknown multipart field %q: only default_password and file are read", part.FormName())}
		}
	}
}

// malformedMultipart is a multipart body that cannot be read, or the body
// limit cutting it short (413).
func malformedMultipart(err error) error {
	return bodyReadError(err, "malformed_multipart", "the multipart body could not be read")
}

func importReportDTO(r ports.ImportReport) ImportReport {
	errs := make([]ImportError, len(r.Errors))
	for i, e := range r.Errors {
		errs[i] = ImportError{Line: e.Line, Field: e.Field, Message: e.Message}
	}
	return ImportReport{
		TotalRows: r.TotalRows, Imported: r.Imported, Updated: r.Updated, Skipped: r.Skipped,
		Failed: r.Failed, Errors: errs, ErrorsTruncated: r.ErrorsTruncated, DryRun: r.DryRun,
	}
}
