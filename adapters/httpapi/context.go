package httpapi

import (
	"context"

	"github.com/userservice/userservice/domain"
)

type ctxKey int

const (
	actorKey ctxKey = iota
	requestIDKey
)

func withActor(ctx context.Context, a domain.Actor) context.Context {
	return context.WithValue(ctx, actorKey, a)
}

// ActorFrom returns the actor the authentication middleware stored in ctx.
func ActorFrom(ctx context.Context) (domain.Actor, bool) {
	a, ok := ctx.Value(actorKey).(domain.Actor)
	return a, ok
}

func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestIDFrom returns the request id of the request ctx belongs to, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}
