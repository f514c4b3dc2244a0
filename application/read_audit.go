package application

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// Audit implements the audit-log use case over the change log.
type Audit struct {
	changes   ports.ChangeLog
	authz     ports.Authorizer
	cursorKey []byte
}

var _ ports.AuditService = (*Audit)(nil)

const auditCursorPurpose = "userservice/audit-page"

// NewAudit returns the audit use case; CursorKey rules are NewUsers'.
func NewAudit(deps Deps) *Audit {
	if len(deps.CursorKey) < MinCursorKeyLen {
		panic(fmt.Sprintf("application.NewAudit: CursorKey must be at least %d bytes", MinCursorKeyLen))
	}
	return &Audit{changes: deps.Changes, authz: deps.Authz, cursorKey: append([]byte(nil), deps.CursorKey...)}
}

// Audit returns one page of change-log entries matching req, in seq order.
// Pages continue by cursor (the last seq seen), so paging stays constant
// time however long the log grows; the cursor is bound to the filters.
func (a *Audit) Audit(ctx context.Context, actor domain.Actor, req ports.AuditRequest) (ports.AuditPage, error) {
	if err := requireNoPasswordChange(actor); err != nil {
		return ports.AuditPage{}, err
	}
	if err := authorize(ctx, a.authz, actor, domain.PermAuditRead, nil, domain.Role{}); err != nil {
		return ports.AuditPage{}, err
	}
	var v domain.ValidationError
	q := ports.AuditQuery{TargetID: req.TargetID, ActorID: req.ActorID, Since: req.Since, Until: req.Until}
	if req.Action != "" {
		var err error
		q.Action, err = domain.ParseChangeAction(req.Action)
		v.Check("action", err)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		v.Add("until", "must be later than since")
	}
	if req.Size < 0 || req.Size > maxPageSize {
		v.Add("size", fmt.Sprintf("must be between 1 and %d", maxPageSize))
	}
	if err := v.Err(); err != nil {
		return ports.AuditPage{}, err
	}
	binding := auditBinding(q)
	page, size := 1, req.Size
	if req.Cursor != "" {
		c, err := decodeCursor(a.cursorKey, req.Cursor, domain.Sort{}, binding)
		if err != nil {
			return ports.AuditPage{}, err
		}
		if size != 0 && size != c.size {
			return ports.AuditPage{}, errInvalidCursor
		}
		page, size, q.AfterSeq = c.page, c.size, c.after.ID
	}
	if size == 0 {
		size = defaultPageSize
	}
	total, exact, err := a.changes.CountAudit(ctx, q, exactCountLimit)
	if err != nil {
		return ports.AuditPage{}, fmt.Errorf("count audit entries: %w", err)
	}
	q.Limit = size + 1
	items, err := a.changes.Audit(ctx, q)
	if err != nil {
		return ports.AuditPage{}, fmt.Errorf("read audit entries: %w", err)
	}
	p := ports.AuditPage{Items: []domain.Change{}, Total: total, TotalExact: exact, Page: page, Size: size,
		Pages: (total + int64(size) - 1) / int64(size)}
	if len(items) > size {
		items = items[:size]
		next := cursor{page: page + 1, size: size, after: domain.SortKey{ID: items[len(items)-1].Seq}}
		p.NextCursor = encodeCursor(a.cursorKey, next, domain.Sort{}, binding)
	}
	if len(items) > 0 {
		p.Items = items
	}
	return p, nil
}

func auditBinding(q ports.AuditQuery) []string {
	id := func(p *int64) string {
		if p == nil {
			return "-"
		}
		return strconv.FormatInt(*p, 10)
	}
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return []string{auditCursorPurpose, id(q.TargetID), id(q.ActorID), string(q.Action), at(q.Since), at(q.Until)}
}
