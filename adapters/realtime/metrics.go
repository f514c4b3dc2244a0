package realtime

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connections   prometheus.Gauge
	subscriptions prometheus.Gauge
	delivered     prometheus.Counter
	dropped       prometheus.Counter
	slowClosed    prometheus.Counter
	closed        *prometheus.CounterVec
	lag           prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "userservice_ws_connections",
			Help: "Open WebSocket connections, authenticated or not yet.",
		}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "userservice_ws_subscriptions",
			Help: "Live subscriptions over all WebSocket connections.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "userservice_ws_events_delivered_total",
			Help: "Events queued for a subscriber (live and replayed).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "userservice_ws_events_dropped_total",
			Help: "Events not sent because their connection was closing, mostly for not reading.",
		}),
		slowClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "userservice_ws_slow_disconnects_total",
			Help: "Connections closed with 1008 because their send buffer was full (the client did not read).",
		}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userservice_ws_server_closes_total",
			Help: "Connections the server closed, by close code (1001 shutdown, 1008 slow reader, 4401 authentication).",
		}, []string{"code"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "userservice_ws_fanout_lag_seconds",
			Help:    "Time from a change's entry in the change log to its event being queued for a subscriber (replays excluded).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	for _, c := range []prometheus.Collector{m.connections, m.subscriptions, m.delivered, m.dropped, m.slowClosed, m.closed, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("realtime: registering metrics: %w", err)
		}
	}
	return m, nil
}
