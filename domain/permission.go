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
	PermUsersCreate     Permission = "users.create"
	PermUsersDelete     Permission = "users.delete"
	PermUsersImport     Permission = "users.import"
	PermAuditRead       Permission = "audit.read"
	PermSubscribeID     Permission = "users.subscribe_id"
	PermSubscribeSearch Permission = "users.subscribe_search"
	// PermTokensIntrospect lets a resource server's account ask whether
	// a token is in force (RFC 7662).
	PermTokensIntrospect Permission = "tokens.introspect"
)
