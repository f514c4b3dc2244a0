package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// op is one operation of a load: a request, a hash. rng is the worker's
// own, seeded per worker, so runs pick the same ids in the same order.
type op func(ctx context.Context, rng *rand.Rand) error

// load runs op in conns goroutines, each calling it again as soon as it
// returns: first for a warm-up (a fifth of d, at most 2 s: connections,
// caches and prepared statements get made), then for d, measured. It fails
// at the first error of either phase: a scenario whose requests fail
// measures nothing.
func load(ctx context.Context, name string, conns int, d time.Duration, fn op) (Measurement, error) {
	warm := min(d/5, 2*time.Second)
	if _, err := loadFor(ctx, conns, warm, fn); err != nil {
		return Measurement{}, fmt.Errorf("%s (warm-up): %w", name, err)
	}
	lat, err := loadFor(ctx, conns, d, fn)
	if err != nil {
		return Measurement{}, fmt.Errorf("%s: %w", name, err)
	}
	m := Measurement{Name: name, Conns: conns, Ops: int64(len(lat.all)), Elapsed: lat.elapsed, samples: lat.all}
	m.P50, m.P99 = percentiles(lat.all)
	return m, nil
}

// rounds is how many times compare alternates its runs.
const rounds = 3

// compare measures runs (each given its share of the time, d/rounds per
// round) one after the other, rounds times over, and merges each run's
// rounds. On a machine whose load drifts (a shared host, a CI runner) the
// drift then weighs on the scenario and its baselines alike, rather than on
// whichever ran while a neighbour was busy.
func compare(d time.Duration, runs ...func(d time.Duration) (Measurement, error)) ([]Measurement, error) {
	all := make([][]Measurement, len(runs))
	for range rounds {
		for i, run := range runs {
			m, err := run(d / rounds)
			if err != nil {
				return nil, err
			}
			all[i] = append(all[i], m)
		}
	}
	out := make([]Measurement, len(runs))
	for i, ms := range all {
		out[i] = merge(ms...)
	}
	return out, nil
}

type latencies struct {
	all     []time.Duration
	elapsed time.Duration
}

func loadFor(ctx context.Context, conns int, d time.Duration, fn op) (latencies, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	per := make([][]time.Duration, conns)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 0xbe7c4))
			lat := make([]time.Duration, 0, 1<<14)
			for ctx.Err() == nil {
				t0 := time.Now()
				if t0.After(deadline) {
					break
				}
				if err := fn(ctx, rng); err != nil {
					cancel(err)
					break
				}
				lat = append(lat, time.Since(t0))
			}
			per[w] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return latencies{}, err
	}
	var all []time.Duration
	for _, l := range per {
		all = append(all, l...)
	}
	return latencies{all: all, elapsed: elapsed}, nil
}

// percentiles returns the 50th and 99th percentiles (nearest rank).
func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	at := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.5) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return at(0.50), at(0.99)
}

// httpClient returns a client keeping up to conns connections to one host
// alive, as a load generator's connections.
func httpClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			DisableCompression:  true,
		},
		Timeout: time.Minute,
	}
}

// call sends one request and fails unless the status is want; the body is
// read to the end (so the connection is reused) and returned.
func call(ctx context.Context, c *http.Client, method, url, token, contentType, body string, want int) ([]byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d: %.300s", method, url, resp.StatusCode, want, b)
	}
	return b, nil
}
