package ports

import (
	"time"

	"github.com/userservice/userservice/domain"
)

// UserView is a user's public shape: what the REST API answers (users,
// pages, an audit entry's before and after), what a WebSocket event carries
// and what the change log stores. One type for all of them keeps them equal
// key for key; the password hash, the token version, the forced-change flag
// and the version have no field here, so they cannot leak by accident.
type UserView struct {
	// The keys are in alphabetical order, the order the REST answers have
	// always had: a client comparing answers as text sees no change.
	CreatedAt time.Time `json:"created_at"`
	Email     string    `json:"email"`
	FirstName string    `json:"first_name"`
	Gender    string    `json:"gender"`
	ID        int64     `json:"id"`
	IPAddress *string   `json:"ip_address"` // null when unset, never absent
	LastName  string    `json:"last_name"`
	Role      string    `json:"role"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ViewOf is u's public view, times in UTC at the microsecond precision
// storage keeps, so a view made before a write equals one made after a read.
func ViewOf(u *domain.User) UserView {
	v := UserView{
		ID: u.ID(), FirstName: u.FirstName(), LastName: u.LastName(), Email: u.Email().String(),
		Gender: u.Gender().String(), Role: u.Role().String(),
		CreatedAt: u.CreatedAt().UTC().Truncate(time.Microsecond),
		UpdatedAt: u.UpdatedAt().UTC().Truncate(time.Microsecond),
	}
	if ip := u.IP(); ip.IsValid() {
		s := ip.String()
		v.IPAddress = &s
	}
	return v
}

// Stored is the user v shows, as storage would hold it without its secrets
// and internals: how the change log reads back a stored view. A view with
// no ip_address (null, or absent in one written before it was always
// present) has none.
func (v UserView) Stored() domain.StoredUser {
	s := domain.StoredUser{
		ID: v.ID, FirstName: v.FirstName, LastName: v.LastName, Email: v.Email,
		Gender: v.Gender, Role: v.Role, CreatedAt: v.CreatedAt.UTC(), UpdatedAt: v.UpdatedAt.UTC(),
	}
	if v.IPAddress != nil {
		s.IPAddress = *v.IPAddress
	}
	return s
}
