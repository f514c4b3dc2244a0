package application

import (
	"context"
	"net/netip"
	"strconv"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// throttleOf is deps.Throttle, or one that limits nothing when there is none.
func throttleOf(deps Deps) ports.LoginThrottle {
	if deps.Throttle == nil {
		return unthrottled{}
	}
	return deps.Throttle
}

// unthrottled limits nothing, for Deps without a Throttle.
type unthrottled struct{}

func (unthrottled) Attempt(context.Context, string, netip.Addr) (func(bool), error) {
	return func(bool) {}, nil
}

// throttleAccount names the account whose password is being guessed, for the
// throttle: a stored user by id (however its email is spelt in a login), a
// login naming no account by the email as given, so guessing at an unknown
// address is limited exactly like guessing at a known one and the limit
// tells nothing about which addresses are registered.
func throttleAccount(u *domain.User, email string) string {
	if u != nil {
		return "user:" + strconv.FormatInt(u.ID(), 10)
	}
	if e, err := domain.ParseEmail(email); err == nil {
		return "email:" + e.String()
	}
	return "email:" + domain.Fold(email)
}
