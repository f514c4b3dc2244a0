// Package rbac is the Authorizer of the service: Casbin deciding over the
// model and policy files of the policy directory (policies/ by default), so
// operators change who may do what by editing data, without a code change or a
// restart. A new version of the files replaces the policy in force only when
// it loads completely; otherwise the previous policy stays and one log line
// says which file is wrong and why.
package rbac

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

var _ ports.Authorizer = (*Authorizer)(nil)

// Authorizer answers authorization questions from the policy in force. It is
// safe for concurrent use: deciding reads one immutable loaded policy through
// an atomic pointer, and a reload builds a new one beside it before swapping.
type Authorizer struct {
	dir     string
	log     *slog.Logger
	current atomic.Pointer[policySet]

	// reloading serialises reloads, so a slow reload that read older files
	// cannot swap in after a quicker one that read newer files.
	reloading sync.Mutex
	// failed records that the last reload was rejected, so the next good one
	// is logged even when it brings back exactly the policy in force.
	failed bool
}

// New loads dir/model.conf and dir/policy.csv. Missing or invalid files are an
// error: a service must not start without its policy. log may be nil.
func New(dir string, log *slog.Logger) (*Authorizer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	set, warnings, err := load(dir)
	if err != nil {
		return nil, fmt.Errorf("rbac: loading the policy: %w", err)
	}
	a := &Authorizer{dir: dir, log: log}
	a.warn(warnings)
	a.current.Store(set)
	return a, nil
}

// Authorize returns nil when the policy in force allows req, and
// domain.ErrForbidden when it does not.
func (a *Authorizer) Authorize(_ context.Context, req ports.AuthzRequest) error {
	if req.Actor.Role.IsZero() {
		return domain.ErrForbidden
	}
	rel, targetRole := relNone, none
	if req.Target != nil {
		rel = relOther
		if req.Actor.IsSelf(req.Target) {
			rel = relSelf
		}
		targetRole = req.Target.Role().String()
	}
	newRole := none
	if !req.NewRole.IsZero() {
		newRole = req.NewRole.String()
	}
	ok, err := a.current.Load().decide(question{req.Actor.Role.String(), string(req.Permission), rel, targetRole, newRole})
	if err != nil {
		return fmt.Errorf("rbac: deciding %s: %w", req.Permission, err)
	}
	if !ok {
		return domain.ErrForbidden
	}
	return nil
}

// Reload reads the policy files again and puts them in force if they load
// completely. When they do not, it logs one error line naming the file and
// the reason, keeps the previous policy, and returns the error.
func (a *Authorizer) Reload() error {
	a.reloading.Lock()
	defer a.reloading.Unlock()

	set, warnings, err := load(a.dir)
	if err != nil {
		a.failed = true
		attrs := ports.FileErrorAttrs(err)
		a.log.Error("policy rejected; the previous policy stays in force", attrs...)
		return fmt.Errorf("rbac: reloading the policy: %w", err)
	}
	if !a.failed && set.sameFiles(a.current.Load()) {
		// Another file of the directory changed (or the same bytes were
		// written again): nothing to swap, nothing to tell the operator.
		return nil
	}
	a.failed = false
	a.warn(warnings)
	a.current.Store(set)
	a.log.Info("policy reloaded", "dir", a.dir, "rules", set.rules)
	return nil
}

// warn logs the doubts about a policy that loaded anyway.
func (a *Authorizer) warn(warnings []*ports.PolicyFileError) {
	for _, w := range warnings {
		a.log.Warn("policy row grants nothing", "file", w.File, "line", w.Line, "reason", w.Err)
	}
}
