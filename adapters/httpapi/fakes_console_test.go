package httpapi

import (
	"context"
	"io"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// fakeConsole is a func-field fake of the console's driving ports.
type fakeConsole struct {
	PermissionsFn func(ctx context.Context, actor domain.Actor, id int64) (ports.UserPermissions, error)
	PolicyFn      func(ctx context.Context, actor domain.Actor) (ports.PolicyMatrix, error)
	StatsFn       func(ctx context.Context, actor domain.Actor) (ports.Stats, error)
	StartImportFn func(ctx context.Context, actor domain.Actor, opts ports.ImportOptions, spool func() (io.ReadCloser, error)) (ports.ImportJob, error)
	ImportJobFn   func(ctx context.Context, actor domain.Actor, id string) (ports.ImportJob, error)
}

var (
	_ ports.AccessService    = (*fakeConsole)(nil)
	_ ports.StatsService     = (*fakeConsole)(nil)
	_ ports.ImportJobService = (*fakeConsole)(nil)
)

func (f *fakeConsole) Permissions(ctx context.Context, a domain.Actor, id int64) (ports.UserPermissions, error) {
	if f.PermissionsFn == nil {
		return ports.UserPermissions{}, errUnexpected
	}
	return f.PermissionsFn(ctx, a, id)
}

func (f *fakeConsole) Policy(ctx context.Context, a domain.Actor) (ports.PolicyMatrix, error) {
	if f.PolicyFn == nil {
		return ports.PolicyMatrix{}, errUnexpected
	}
	return f.PolicyFn(ctx, a)
}

func (f *fakeConsole) Stats(ctx context.Context, a domain.Actor) (ports.Stats, error) {
	if f.StatsFn == nil {
		return ports.Stats{}, errUnexpected
	}
	return f.StatsFn(ctx, a)
}

func (f *fakeConsole) StartImport(ctx context.Context, a domain.Actor, opts ports.ImportOptions, spool func() (io.ReadCloser, error)) (ports.ImportJob, error) {
	if f.StartImportFn == nil {
		return ports.ImportJob{}, errUnexpected
	}
	return f.StartImportFn(ctx, a, opts, spool)
}

func (f *fakeConsole) ImportJob(ctx context.Context, a domain.Actor, id string) (ports.ImportJob, error) {
	if f.ImportJobFn == nil {
		return ports.ImportJob{}, errUnexpected
	}
	return f.ImportJobFn(ctx, a, id)
}

func (f *fakeConsole) Capabilities(context.Context, domain.Actor) (ports.Capabilities, error) {
	return ports.Capabilities{}, errUnexpected
}
