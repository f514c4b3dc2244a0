package domain

// Permission is a domain action the Authorizer decides on. Policies name
// these, never URLs, so HTTP, WebSocket and CSV are authorized alike.
type Permission string

// The permissions of the contract's matrix.
const (
	PermUsersList       Permission = "users.list"
	PermUsersRead       Permission = "users.read"
	PermUsersReadSelf   Permission = "users.read_self"
	PermUsersSearch     Permission = "users.search"
	PermUsersUpdate     Permission = "users.update"
	PermUsersRoleUpdate Permission = "users.role.update"
	// PermUsersPasswordUpdate is setting another account's password (one's
	// own needs only users.update and the current password): with it apart
	// from users.update, a role that may edit a profile cannot take the
	// account over.
	PermUsersPasswordUpdate Permission = "users.password.update"
	PermUsersCreate         Permission = "users.create"
	PermUsersDelete         Permission = "users.delete"
	PermUsersImport         Permission = "users.import"
	PermAuditRead           Permission = "audit.read"
	PermSubscribeID         Permission = "users.subscribe_id"
	PermSubscribeSearch     Permission = "users.subscribe_search"
	// PermPolicyRead reads the permission matrix in force (the console's
	// policy page).
	PermPolicyRead Permission = "policy.read"
	// PermTokensIntrospect lets a resource server's account ask whether
	// a token is in force (RFC 7662).
	PermTokensIntrospect Permission = "tokens.introspect"
)

// Permissions lists every permission the service asks about, in the order
// the console shows them.
func Permissions() []Permission {
	return []Permission{
		PermUsersList, PermUsersRead, PermUsersReadSelf, PermUsersSearch,
		PermUsersUpdate, PermUsersRoleUpdate, PermUsersPasswordUpdate, PermUsersCreate,
		PermUsersDelete, PermUsersImport, PermAuditRead, PermSubscribeID,
		PermSubscribeSearch, PermPolicyRead, PermTokensIntrospect,
	}
}
