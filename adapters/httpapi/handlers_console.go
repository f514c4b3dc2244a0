package httpapi

import (
	"errors"
	"io"
	"net/http"
	"os"

	"github.com/labstack/echo/v4"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// The operations the console needs beyond the user API: what the caller may
// do, the policy, an overview, and imports that run in the background.

// GetUserPermissions answers what the caller may do to user id.
func (s *server) GetUserPermissions(c echo.Context, id UserID) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	p, err := s.access.Permissions(c.Request().Context(), actor, id)
	if err != nil {
		return err
	}
	roles := make([]Role, len(p.Roles))
	for i, r := range p.Roles {
		roles[i] = Role(r.String())
	}
	return c.JSON(http.StatusOK, UserPermissions{
		Read: p.Read, Update: p.Update, Delete: p.Delete, Role: roles, Password: p.Password, Audit: p.Audit,
	})
}

// GetPolicy answers the permission matrix in force.
func (s *server) GetPolicy(c echo.Context) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	m, err := s.access.Policy(c.Request().Context(), actor)
	if err != nil {
		return err
	}
	out := PolicyMatrix{Roles: make([]Role, len(m.Roles)), Permissions: make([]string, len(m.Permissions)),
		Grants: make([]PolicyGrant, len(m.Grants))}
	for i, r := range m.Roles {
		out.Roles[i] = Role(r.String())
	}
	for i, p := range m.Permissions {
		out.Permissions[i] = string(p)
	}
	optRole := func(r domain.Role) *string {
		if r.IsZero() {
			return nil
		}
		s := r.String()
		return &s
	}
	for i, g := range m.Grants {
		out.Grants[i] = PolicyGrant{Role: Role(g.Role.String()), Permission: string(g.Permission),
			Relation: PolicyGrantRelation(g.Relation), TargetRole: optRole(g.TargetRole), NewRole: optRole(g.NewRole)}
	}
	return c.JSON(http.StatusOK, out)
}

// GetStats answers the overview's figures.
func (s *server) GetStats(c echo.Context) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	st, err := s.stats.Stats(c.Request().Context(), actor)
	if err != nil {
		return err
	}
	var out Stats
	out.ByRole.User = st.ByRole[domain.RoleUser]
	out.ByRole.Admin = st.ByRole[domain.RoleAdmin]
	out.ByRole.Superadmin = st.ByRole[domain.RoleSuperadmin]
	out.TotalExact = st.Exact
	if !st.KeptSince.IsZero() {
		t := st.KeptSince.UTC()
		out.KeptSince = &t
	}
	out.Days = make([]DayStats, len(st.Days))
	for i, d := range st.Days {
		out.Days[i] = DayStats{Day: openapi_types.Date{Time: d.Day}, Created: d.Created, Changes: d.Changes}
	}
	return c.JSON(http.StatusOK, out)
}

// StartImport uploads the CSV in full to a temporary file, then starts the
// import job on it and answers 202 with the job.
func (s *server) StartImport(c echo.Context, params StartImportParams) error {
	actor, opts, file, err := s.importUpload(c, string(deref(params.OnConflict)), params.DryRun, params.DefaultPassword)
	if err != nil {
		return err
	}
	job, err := s.jobs.StartImport(c.Request().Context(), actor, opts, func() (io.ReadCloser, error) {
		return spool(file)
	})
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, importJobsRoute+"/"+job.ID)
	return c.JSON(http.StatusAccepted, importJobDTO(job))
}

// GetImportJob answers a job to the user who started it.
func (s *server) GetImportJob(c echo.Context, jobID string) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	job, err := s.jobs.ImportJob(c.Request().Context(), actor, jobID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, importJobDTO(job))
}

// spooledFile is an upload kept in a temporary file, removed on Close.
type spooledFile struct{ *os.File }

func (f spooledFile) Close() error {
	return errors.Join(f.File.Close(), os.Remove(f.Name()))
}

// spool copies the upload to a temporary file, so the job can read it
// after the request has ended. A body cut short by the limit is 413.
func spool(r io.Reader) (io.ReadCloser, error) {
	f, err := os.CreateTemp("", "userservice-import-*.csv")
	if err != nil {
		return nil, err
	}
	file := spooledFile{f}
	if _, err := io.Copy(f, r); err != nil {
		file.Close()
		return nil, malformedMultipart(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		file.Close()
		return nil, err
	}
	return file, nil
}

func importJobDTO(j ports.ImportJob) ImportJob {
	out := ImportJob{
		Id: j.ID, Status: ImportJobStatus(j.Status), OnConflict: ImportJobOnConflict(j.OnConflict), DryRun: j.DryRun,
		RowsRead: j.RowsRead, Imported: j.Imported, Updated: j.Updated, Skipped: j.Skipped, Failed: j.Failed,
		CreatedAt: j.CreatedAt.UTC(), HeartbeatAt: j.HeartbeatAt.UTC(),
	}
	if j.Report != nil {
		r := importReportDTO(*j.Report)
		out.Report = &r
	}
	if j.Reason != "" {
		out.Reason = &j.Reason
	}
	if !j.FinishedAt.IsZero() {
		t := j.FinishedAt.UTC()
		out.FinishedAt = &t
	}
	return out
}

// GetCapabilities answers what the caller may do with no user in view.
func (s *server) GetCapabilities(c echo.Context) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	cp, err := s.access.Capabilities(c.Request().Context(), actor)
	if err != nil {
		return err
	}
	create := make([]Role, len(cp.Create))
	for i, r := range cp.Create {
		create[i] = Role(r.String())
	}
	return c.JSON(http.StatusOK, Capabilities{List: cp.List, Search: cp.Search, Create: create, Import: cp.Import,
		Audit: cp.Audit, Policy: cp.Policy, SubscribeSearch: cp.SubscribeSearch})
}
