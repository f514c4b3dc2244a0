package application

import (
	"context"
	"fmt"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// Stats implements the overview (ports.StatsService).
type Stats struct {
	repo    ports.UserRepository
	changes ports.ChangeLog
	authz   ports.Authorizer
	clock   ports.Clock
}

var _ ports.StatsService = (*Stats)(nil)

// NewStats returns the overview use case over Repo, Changes, Authz and Clock.
func NewStats(deps Deps) *Stats {
	if deps.Repo == nil || deps.Changes == nil || deps.Authz == nil || deps.Clock == nil {
		panic("application.NewStats: Repo, Changes, Authz and Clock are required")
	}
	return &Stats{repo: deps.Repo, changes: deps.Changes, authz: deps.Authz, clock: deps.Clock}
}

// Stats counts users by role and the change log's entries per day over the
// last ports.StatsDays days. It is authorized as search is
// (domain.PermUsersSearch): the counts are totals a searcher can already
// have, one search per role, and the daily activity is what a search
// subscription already shows. Each figure is one indexed count (users by
// role; change-log entries by time), so the cost does not grow with what is
// stored past the exact-count limit.
func (st *Stats) Stats(ctx context.Context, actor domain.Actor) (ports.Stats, error) {
	if err := requireNoPasswordChange(actor); err != nil {
		return ports.Stats{}, err
	}
	if err := authorize(ctx, st.authz, actor, domain.PermUsersSearch, nil, domain.Role{}); err != nil {
		return ports.Stats{}, err
	}
	out := ports.Stats{ByRole: map[domain.Role]int64{}, Exact: true}
	for _, r := range domain.Roles() {
		f, err := domain.ParseFilter(domain.FilterParams{Role: r.String()})
		if err != nil {
			return out, err
		}
		n, exact, err := st.repo.Count(ctx, f, exactCountLimit)
		if err != nil {
			return out, fmt.Errorf("count %s users: %w", r, err)
		}
		out.ByRole[r] = n
		out.Exact = out.Exact && exact
	}
	oldest, err := st.changes.Audit(ctx, ports.AuditQuery{Limit: 1})
	if err != nil {
		return out, fmt.Errorf("read the oldest change: %w", err)
	}
	if len(oldest) > 0 {
		out.KeptSince = oldest[0].At
	}
	now := st.clock.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	for i := ports.StatsDays - 1; i >= 0; i-- {
		day := today.AddDate(0, 0, -i)
		d := ports.DayStats{Day: day}
		next := day.AddDate(0, 0, 1)
		if !out.KeptSince.IsZero() && !next.After(out.KeptSince) {
			// Nothing is kept from that day: no need to ask.
			out.Days = append(out.Days, d)
			continue
		}
		q := ports.AuditQuery{Since: day, Until: next}
		if d.Changes, _, err = st.changes.CountAudit(ctx, q, exactCountLimit); err != nil {
			return out, fmt.Errorf("count changes: %w", err)
		}
		if d.Changes > 0 {
			q.Action = domain.ActionCreated
			if d.Created, _, err = st.changes.CountAudit(ctx, q, exactCountLimit); err != nil {
				return out, fmt.Errorf("count creations: %w", err)
			}
		}
		out.Days = append(out.Days, d)
	}
	return out, nil
}
