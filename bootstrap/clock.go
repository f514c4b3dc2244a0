package bootstrap

import "time"

// systemClock is the real ports.Clock: UTC, truncated to microseconds, the
// precision PostgreSQL stores, so a stored time reads back equal.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
