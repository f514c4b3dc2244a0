package application

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// memChangeLog holds entries in seq order and filters them like storage.
type memChangeLog struct {
	// ports.ChangeLog is nil: the reads of the real-time service, which the
	// audit never makes, are not implemented.
	ports.ChangeLog
	entries []domain.Change
}

func (l *memChangeLog) match(q ports.AuditQuery) []domain.Change {
	var out []domain.Change
	for _, c := range l.entries {
		switch {
		case q.TargetID != nil && c.TargetID != *q.TargetID,
			q.ActorID != nil && c.ActorID != *q.ActorID,
			q.Action != "" && c.Action != q.Action,
			!q.Since.IsZero() && c.At.Before(q.Since),
			!q.Until.IsZero() && !c.At.Before(q.Until):
			continue
		}
		out = append(out, c)
	}
	return out
}

func (l *memChangeLog) ChangesAfter(_ context.Context, after int64, limit int) ([]domain.Change, error) {
	return l.Audit(context.Background(), ports.AuditQuery{AfterSeq: after, Limit: limit})
}

func (l *memChangeLog) Audit(_ context.Context, q ports.AuditQuery) ([]domain.Change, error) {
	var out []domain.Change
	for _, c := range l.match(q) {
		if c.Seq > q.AfterSeq && (q.Limit <= 0 || len(out) < q.Limit) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (l *memChangeLog) CountAudit(_ context.Context, q ports.AuditQuery, limit int64) (int64, bool, error) {
	n := int64(len(l.match(q)))
	return n, n <= limit, nil
}

func newAuditFixture(t *testing.T, n int) (*Audit, *fakeAuthz) {
	t.Helper()
	log := &memChangeLog{}
	for i := 1; i <= n; i++ {
		action := domain.ActionUpdated
		if i%3 == 0 {
			action = domain.ActionRoleChanged
		}
		log.entries = append(log.entries, domain.Change{Seq: int64(i), At: testNow.Add(time.Duration(i) * time.Minute),
			ActorID: int64(i % 2), Action: action, TargetID: int64(i % 5)})
	}
	authz := &fakeAuthz{decide: shippedPolicy}
	return NewAudit(Deps{Changes: log, Authz: authz, CursorKey: testCursorKey}), authz
}

func TestAuditIsForSuperadminsOnly(t *testing.T) {
	t.Parallel()
	a, authz := newAuditFixture(t, 3)
	for _, role := range []domain.Role{domain.RoleUser, domain.RoleAdmin} {
		if _, err := a.Audit(context.Background(), domain.Actor{ID: 9, Role: role}, ports.AuditRequest{}); !errors.Is(err, domain.ErrForbidden) {
			t.Errorf("%s: got %v, want ErrForbidden", role, err)
		}
	}
	if _, err := a.Audit(context.Background(), domain.Actor{ID: 9, Role: domain.RoleSuperadmin, PasswordChangeRequired: true}, ports.AuditRequest{}); !errors.Is(err, domain.ErrPasswordChange) {
		t.Errorf("forced password change: got %v", err)
	}
	calls := authz.recorded()
	if len(calls) != 2 || calls[0].Permission != domain.PermAuditRead {
		t.Fatalf("authorizer calls %+v", calls)
	}
}

func TestAuditPagesByCursorWithFilters(t *testing.T) {
	t.Parallel()
	a, _ := newAuditFixture(t, 25)
	ctx := context.Background()
	super := domain.Actor{ID: 1, Role: domain.RoleSuperadmin}
	target := int64(2)
	req := ports.AuditRequest{TargetID: &target, Size: 2}
	var seen []int64
	for page := 1; ; page++ {
		p, err := a.Audit(ctx, super, req)
		if err != nil {
			t.Fatal(err)
		}
		if p.Page != page || p.Total != 5 || !p.TotalExact || p.Pages != 3 {
			t.Fatalf("page %d envelope %+v", page, p)
		}
		for _, c := range p.Items {
			seen = append(seen, c.Seq)
		}
		if p.NextCursor == "" {
			break
		}
		req.Cursor = p.NextCursor
	}
	want := []int64{2, 7, 12, 17, 22}
	if len(seen) != len(want) {
		t.Fatalf("seqs %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("seqs %v, want %v", seen, want)
		}
	}

	// A cursor is bound to its filters: reused with others it is refused.
	first, err := a.Audit(ctx, super, ports.AuditRequest{TargetID: &target, Size: 2})
	if err != nil {
		t.Fatal(err)
	}
	other := int64(3)
	if _, err := a.Audit(ctx, super, ports.AuditRequest{TargetID: &other, Size: 2, Cursor: first.NextCursor}); domain.KindOf(err) != domain.KindMalformed {
		t.Fatalf("cursor with other filters: got %v", err)
	}
	if _, err := a.Audit(ctx, super, ports.AuditRequest{Cursor: "garbage!"}); domain.KindOf(err) != domain.KindMalformed {
		t.Fatalf("garbage cursor: got %v", err)
	}
}

func TestAuditValidatesInput(t *testing.T) {
	t.Parallel()
	a, _ := newAuditFixture(t, 3)
	super := domain.Actor{ID: 1, Role: domain.RoleSuperadmin}
	_, err := a.Audit(context.Background(), super, ports.AuditRequest{Action: "exploded", Size: 101, Since: testNow, Until: testNow})
	e := domain.AsError(err)
	if e == nil || e.Kind != domain.KindInvalid || len(e.Fields) != 3 {
		t.Fatalf("got %v, want three invalid fields", err)
	}
	p, err := a.Audit(context.Background(), super, ports.AuditRequest{Action: "role_changed"})
	if err != nil || p.Total != 1 || len(p.Items) != 1 || p.Items[0].Action != domain.ActionRoleChanged {
		t.Fatalf("action filter: %+v, %v", p, err)
	}
}
