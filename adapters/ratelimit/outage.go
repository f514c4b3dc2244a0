package ratelimit

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// outageReminder is how often, while the store keeps failing, the log says
// so again: often enough to be seen, rarely enough not to drown the log at
// one line per request.
const outageReminder = time.Minute

// outage tracks failures of the store, so that an outage is logged when it
// starts, reminded of while it lasts and logged again when it ends, instead
// of once per request let through.
type outage struct {
	log      *slog.Logger
	failOpen prometheus.Counter

	down atomic.Bool // fast path: read on every successful take

	mu        sync.Mutex
	since     time.Time // when the outage began
	lastLog   time.Time
	unlimited int // requests let through since lastLog
	total     int // requests let through since the outage began
}

// failed records a request let through because the store failed.
func (o *outage) failed(err error) {
	o.failOpen.Inc()
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.unlimited++
	o.total++
	switch {
	case !o.down.Load():
		o.down.Store(true)
		o.since, o.lastLog, o.unlimited, o.total = now, now, 0, 1
		o.log.Warn("rate-limit store unreachable: requests are let through unlimited until it answers again", "error", err)
	case now.Sub(o.lastLog) >= outageReminder:
		o.log.Warn("rate-limit store still unreachable: requests are let through unlimited",
			"since", o.since, "let_through", o.unlimited, "error", err)
		o.lastLog, o.unlimited = now, 0
	}
}

// ok records a take the store answered.
func (o *outage) ok() {
	if !o.down.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down.Load() {
		o.down.Store(false)
		o.log.Info("rate-limit store answers again: limits are enforced",
			"outage", time.Since(o.since).Round(time.Millisecond), "let_through", o.total)
	}
}
