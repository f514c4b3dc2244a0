package application

import (
	"slices"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// ifMatchFails reports whether a conditional write must be refused as stale:
// its precondition, when it has one, admits neither any version nor u's.
func ifMatchFails(m *ports.IfMatch, u *domain.User) bool {
	return m != nil && !m.Any && !slices.Contains(m.Versions, u.Version())
}
