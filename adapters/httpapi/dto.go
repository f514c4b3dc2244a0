package httpapi

import (
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// userDTO whitelists a user's public fields. Anything else the aggregate
// holds (password hash, token version, forced-change flag) has no field here,
// so it cannot leak by accident.
func userDTO(u *domain.User) User {
	out := User{
		Id:        u.ID(),
		FirstName: u.FirstName(),
		LastName:  u.LastName(),
		Email:     u.Email().String(),
		Gender:    Gender(u.Gender().String()),
		Role:      Role(u.Role().String()),
		CreatedAt: u.CreatedAt().UTC(),
		UpdatedAt: u.UpdatedAt().UTC(),
	}
	if ip := u.IP(); ip.IsValid() {
		s := ip.String()
		out.IpAddress = &s
	}
	return out
}

func userDTOPtr(u *domain.User) *User {
	if u == nil {
		return nil
	}
	dto := userDTO(u)
	return &dto
}

func userPageDTO(p ports.Page) UserPage {
	items := make([]User, len(p.Items))
	for i, u := range p.Items {
		items[i] = userDTO(u)
	}
	return UserPage{
		Items: items, Total: p.Total, TotalExact: p.TotalExact,
		Page: p.Page, Size: p.Size, Pages: p.Pages, NextCursor: cursorDTO(p.NextCursor),
	}
}

func auditPageDTO(p ports.AuditPage) AuditPage {
	items := make([]AuditEntry, len(p.Items))
	for i, c := range p.Items {
		items[i] = AuditEntry{
			Seq:      c.Seq,
			At:       c.At.UTC(),
			ActorId:  c.ActorID,
			Action:   AuditEntryAction(c.Action),
			TargetId: c.TargetID,
			Before:   userDTOPtr(c.Before),
			After:    userDTOPtr(c.After),
		}
	}
	return AuditPage{
		Items: items, Total: p.Total, TotalExact: p.TotalExact,
		Page: p.Page, Size: p.Size, Pages: p.Pages, NextCursor: cursorDTO(p.NextCursor),
	}
}

// cursorDTO is null on the last page, as the contract's envelope says.
func cursorDTO(c string) *string {
	if c == "" {
		return nil
	}
	return &c
}

func tokenPairDTO(p ports.TokenPair) TokenPair {
	return TokenPair{
		AccessToken:            p.AccessToken,
		TokenType:              TokenPairTokenTypeBearer,
		ExpiresIn:              p.ExpiresIn,
		RefreshToken:           p.RefreshToken,
		PasswordChangeRequired: p.PasswordChangeRequired,
	}
}
