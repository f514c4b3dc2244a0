package httpapi

import (
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// viewPtr is u's public view, or null for no user (an audit entry's before
// of a creation, after of a deletion).
func viewPtr(u *domain.User) *User {
	if u == nil {
		return nil
	}
	v := ports.ViewOf(u)
	return &v
}

func userPageDTO(p ports.Page) UserPage {
	items := make([]User, len(p.Items))
	for i, u := range p.Items {
		items[i] = ports.ViewOf(u)
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
			Before:   viewPtr(c.Before),
			After:    viewPtr(c.After),
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
