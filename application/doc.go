// Package application holds the use cases: Users implements
// ports.UserService and Auth implements ports.AuthService with the driven
// ports. Authorization is asked here, once per use case, so HTTP, WebSocket
// and the command line are checked alike; the invariants no policy may break
// stay in domain and are applied inside the repository's transaction.
package application
