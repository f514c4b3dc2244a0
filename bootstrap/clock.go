package bootstrap

import (
	"crypto/hmac"
	"crypto/sha256"
	"time"
)

// systemClock is the real ports.Clock: UTC, truncated to microseconds, the
// precision PostgreSQL stores, so a stored time reads back equal.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// deriveKey makes an independent key for purpose from the service secret, so
// one leaked derived key (e.g. for cursors) does not expose the JWT key.
func deriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}
