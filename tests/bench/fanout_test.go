package bench

// The fan-out row: one change reaching N WebSocket subscribers (one
// matching subscription each), end to end — a PUT through the REST API,
// the change log, the wake-up, the fan-out, the WebSocket writers, the
// network — beside the same broadcast from a bare melody server, in the
// same run: both serve their connections throughout, and take turns.
//
// Server and clients run in processes of their own (this test binary,
// started again with FANOUT_HELPER set), so that each side has its own
// file-descriptor budget (10,000 connections need 10,000 descriptors on
// each side) and so that the server's memory per connection is measured
// without the clients'. This process only conducts: it tells the server
// when to change (the server stamps the start), tells the client that
// time, and waits for the client to report every delivery.
//
// Settings, from the environment:
//
//	BENCH_FANOUT_SUBSCRIBERS   connections (default 10000)
//	BENCH_FANOUT_ROUNDS        changes measured (default 10) on each server,
//	                           one at a time, a round (one change on each) at
//	                           most every BENCH_FANOUT_EVERY (default 1s), so
//	                           both servers see the same event rate
//	BENCH_FANOUT_DATABASE_URL  the service's database (default: a SQLite
//	                           file; a postgres:// URL uses LISTEN/NOTIFY)

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"

	"github.com/userservice/userservice/bootstrap"
)

// fanoutTargets are the bounds on ours / bare. The service's
// connections are melody's, as bare's are, written by the same writer; a
// round of the service adds the REST write, the change log and the
// matching. So the rate bound is what the service reliably reaches beside
// bare melody (measured: median 0.97x, three runs in four at 0.86x or
// more, on a shared machine), not parity.
const (
	fanoutMinRateRatio = 0.85
	fanoutMaxP99Ratio  = 1.5
	fanoutMaxMemRatio  = 1.25
)

// fanoutTimeout bounds every step a helper reports on.
const fanoutTimeout = 2 * time.Minute

type fanoutConfig struct {
	subscribers int
	rounds      int
	every       time.Duration
	dbURL       string
}

func fanoutSettings(b *testing.B) fanoutConfig {
	c := fanoutConfig{subscribers: 10000, rounds: 10, every: time.Second, dbURL: os.Getenv("BENCH_FANOUT_DATABASE_URL")}
	for name, dst := range map[string]*int{"BENCH_FANOUT_SUBSCRIBERS": &c.subscribers, "BENCH_FANOUT_ROUNDS": &c.rounds} {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				b.Fatalf("%s=%q: want a positive integer", name, v)
			}
			*dst = n
		}
	}
	if v := os.Getenv("BENCH_FANOUT_EVERY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			b.Fatalf("BENCH_FANOUT_EVERY=%q: want a duration", v)
		}
		c.every = d
	}
	return c
}

// fanoutResult is one server's figures.
type fanoutResult struct {
	name        string
	deliveries  int64
	busy        time.Duration // the rounds' time from change to last delivery, summed
	p50, p99    time.Duration // of every delivery
	lastP50     time.Duration // to the last subscriber, over rounds
	lastP99     time.Duration
	rssPerConn  float64 // bytes
	heapPerConn float64 // bytes: heap and stacks in use, after a GC
}

func (r fanoutResult) rate() float64 { return float64(r.deliveries) / r.busy.Seconds() }

func BenchmarkFanout(b *testing.B) {
	cfg := fanoutSettings(b)
	for range b.N {
		bare, ours := fanoutRun(b, cfg)
		fanoutPrint(os.Stdout, cfg, bare, ours)
		b.ReportMetric(ours.rate(), "deliveries/s")
		b.ReportMetric(ours.rate()/bare.rate(), "rate-ratio")
		b.ReportMetric(float64(ours.lastP99)/float64(bare.lastP99), "p99-ratio")
		b.ReportMetric(ours.rssPerConn/bare.rssPerConn, "rss-ratio")
	}
}

func fanoutPrint(w io.Writer, cfg fanoutConfig, bare, ours fanoutResult) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
	kib := func(v float64) string { return fmt.Sprintf("%.1f KiB", v/1024) }
	fmt.Fprintf(w, "\nfan-out: 1 change -> %d subscribers, %d changes, at most 1 per %v (%s)\n",
		cfg.subscribers, cfg.rounds, cfg.every, fanoutDBName(cfg.dbURL))
	fmt.Fprintf(w, "%-14s %14s %10s %10s %12s %12s %12s %12s\n", "", "deliveries/s", "p50", "p99", "last p50", "last p99", "RSS/conn", "heap/conn")
	for _, r := range []fanoutResult{bare, ours} {
		fmt.Fprintf(w, "%-14s %14.0f %10s %10s %12s %12s %12s %12s\n", r.name, r.rate(), ms(r.p50), ms(r.p99),
			ms(r.lastP50), ms(r.lastP99), kib(r.rssPerConn), kib(r.heapPerConn))
	}
	check := func(ok bool) string {
		if ok {
			return "holds"
		}
		return "MISSED"
	}
	rate, p99, mem := ours.rate()/bare.rate(), float64(ours.lastP99)/float64(bare.lastP99), ours.rssPerConn/bare.rssPerConn
	fmt.Fprintf(w, "ratio service/bare: deliveries/s %.2fx (>= %.2f: %s), p99 to the last subscriber %.2fx (<= %.2f: %s), RSS per connection %.2fx (<= %.2f: %s)\n\n",
		rate, fanoutMinRateRatio, check(rate >= fanoutMinRateRatio), p99, fanoutMaxP99Ratio, check(p99 <= fanoutMaxP99Ratio),
		mem, fanoutMaxMemRatio, check(mem <= fanoutMaxMemRatio))
}

func fanoutDBName(u string) string {
	if strings.HasPrefix(u, "postgres") {
		return "PostgreSQL"
	}
	return "SQLite"
}

// fanoutHelper is a started helper process and its line protocol.
type fanoutHelper struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

func fanoutStart(b *testing.B, env ...string) *fanoutHelper {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFanoutHelperProcess$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	h := &fanoutHelper{cmd: cmd, in: in, lines: make(chan string, 64)}
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "fanout: "); ok {
				h.lines <- line
			}
		}
	}()
	b.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return h
}

func (h *fanoutHelper) send(b *testing.B, format string, args ...any) {
	b.Helper()
	if _, err := fmt.Fprintf(h.in, format+"\n", args...); err != nil {
		b.Fatalf("writing to a helper: %v", err)
	}
}

// expect waits for a line starting with word and returns its fields.
func (h *fanoutHelper) expect(b *testing.B, word string) []string {
	b.Helper()
	select {
	case line, ok := <-h.lines:
		if !ok {
			b.Fatalf("a helper ended while %q was expected", word)
		}
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != word {
			b.Fatalf("a helper said %q, want %q", line, word)
		}
		return f[1:]
	case <-time.After(fanoutTimeout):
		b.Fatalf("no %q from a helper within %v", word, fanoutTimeout)
	}
	return nil
}

// fanoutSide is one server under measure with its client.
type fanoutSide struct {
	kind         string
	srv, cli     *fanoutHelper
	base, loaded []string // the server's "mem" before and after the connections
}

func fanoutOpen(b *testing.B, cfg fanoutConfig, kind string) *fanoutSide {
	b.Helper()
	srv := fanoutStart(b, "FANOUT_HELPER=server", "FANOUT_KIND="+kind, "FANOUT_DB="+cfg.dbURL)
	ready := srv.expect(b, "ready") // url token subscribe-message
	srv.send(b, "mem")
	base := srv.expect(b, "mem")
	cli := fanoutStart(b, "FANOUT_HELPER=client", "FANOUT_URL="+ready[0], "FANOUT_TOKEN="+ready[1],
		"FANOUT_SUBSCRIBE="+ready[2], "FANOUT_N="+strconv.Itoa(cfg.subscribers), "FANOUT_ROUNDS="+strconv.Itoa(cfg.rounds))
	cli.expect(b, "ready")
	srv.send(b, "mem")
	return &fanoutSide{kind: kind, srv: srv, cli: cli, base: base, loaded: srv.expect(b, "mem")}
}

// round makes change r and waits for its every delivery.
func (sd *fanoutSide) round(b *testing.B, r int) {
	b.Helper()
	sd.srv.send(b, "change %d", r)
	t0 := sd.srv.expect(b, "t0")
	sd.cli.send(b, "t0 %s %s", t0[0], t0[1])
	if got := sd.cli.expect(b, "done"); got[0] != strconv.Itoa(r) {
		b.Fatalf("%s, round %d: the client finished round %s", sd.kind, r, got[0])
	}
}

// fanoutRun measures both servers, side by side: both serve their
// connections throughout, and each round makes one change on each, in
// turns, first one then the other, so the rest of the machine's load
// (which comes and goes) weighs on both alike.
func fanoutRun(b *testing.B, cfg fanoutConfig) (bare, ours fanoutResult) {
	b.Helper()
	sides := []*fanoutSide{fanoutOpen(b, cfg, "bare"), fanoutOpen(b, cfg, "service")}
	for r := 1; r <= cfg.rounds; r++ {
		started := time.Now()
		for i := range sides {
			sides[(r+i)%len(sides)].round(b, r)
		}
		time.Sleep(time.Until(started.Add(cfg.every)))
	}
	return sides[0].result(b, cfg), sides[1].result(b, cfg)
}

// result collects the figures and ends the side.
func (sd *fanoutSide) result(b *testing.B, cfg fanoutConfig) fanoutResult {
	b.Helper()
	sd.cli.send(b, "finish")
	st := sd.cli.expect(b, "stats") // deliveries busy-ns p50 p99 last-p50 last-p99
	num := func(s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatalf("a helper's number %q: %v", s, err)
		}
		return n
	}
	res := fanoutResult{
		deliveries: num(st[0]), busy: time.Duration(num(st[1])),
		p50: time.Duration(num(st[2])), p99: time.Duration(num(st[3])),
		lastP50: time.Duration(num(st[4])), lastP99: time.Duration(num(st[5])),
		rssPerConn:  float64(num(sd.loaded[0])-num(sd.base[0])) / float64(cfg.subscribers),
		heapPerConn: float64(num(sd.loaded[1])-num(sd.base[1])) / float64(cfg.subscribers),
	}
	if sd.kind == "service" {
		res.name = "userservice"
	} else {
		res.name = "bare melody"
	}
	sd.srv.send(b, "quit")
	sd.cli.send(b, "quit")
	return res
}

// TestFanoutHelperProcess is BenchmarkFanout's server or client, in a
// process of its own; it runs only when the benchmark starts it.
func TestFanoutHelperProcess(t *testing.T) {
	role := os.Getenv("FANOUT_HELPER")
	if role == "" {
		t.Skip("a helper process of BenchmarkFanout")
	}
	raiseFileLimit()
	var err error
	switch role {
	case "server":
		err = fanoutServer(os.Getenv("FANOUT_KIND"), os.Getenv("FANOUT_DB"))
	case "client":
		err = fanoutClient()
	default:
		err = fmt.Errorf("unknown FANOUT_HELPER %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fan-out helper:", err)
		os.Exit(1)
	}
}

// raiseFileLimit lifts the soft descriptor limit to the hard one.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// fanoutSay writes one protocol line.
func fanoutSay(format string, args ...any) {
	fmt.Printf("fanout: "+format+"\n", args...)
}

// fanoutMem reports the process's RSS and its Go heap and stacks in use.
func fanoutMem() (rss, heap int64) {
	// Collect and give freed memory back, so RSS counts what is held.
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap = int64(ms.HeapInuse + ms.StackInuse)
	if raw, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(raw)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			rss = pages * int64(os.Getpagesize())
		}
	}
	return rss, heap
}

// fanoutPayload is what the bare server broadcasts: an event of the size
// the service sends.
func fanoutPayload(round int) []byte {
	return fmt.Appendf(nil, `{"type":"updated","user":{"id":2,"first_name":"Round","last_name":"O'Test","email":"target-%d@example.com","gender":"Female","ip_address":"10.1.2.3","role":"user","created_at":"2025-03-01T12:00:00.123456Z","updated_at":"2025-03-01T12:00:00.123456Z"},"seq":%d,"at":"2025-03-01T12:00:00.123456Z","subscription_id":"s1"}`, round, round)
}

// fanoutServer serves until stdin closes or says quit; "change R" makes
// change R and answers "t0 R UNIXNANO" (the time just before it), "mem"
// answers "mem RSS HEAP".
func fanoutServer(kind, dbURL string) error {
	var (
		wsURL, token, subscribe string
		change                  func(round int) error
		stop                    func()
	)
	switch kind {
	case "bare":
		m := melody.New()
		m.Config.MaxMessageSize = 4096
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = m.HandleRequest(w, r)
		})}
		go func() { _ = srv.Serve(ln) }()
		wsURL, token, subscribe = "ws://"+ln.Addr().String()+"/", "-", "-"
		change = func(round int) error { return m.Broadcast(fanoutPayload(round)) }
		stop = func() { _ = m.Close(); _ = srv.Close() }
	case "service":
		svc, err := fanoutService(dbURL)
		if err != nil {
			return err
		}
		wsURL, token = svc.wsURL, svc.token
		subscribe = url.QueryEscape(fmt.Sprintf(`{"action":"subscribe_id","user_id":%d}`, svc.target))
		change = svc.change
		stop = svc.stop
	default:
		return fmt.Errorf("unknown FANOUT_KIND %q", kind)
	}
	defer stop()
	fanoutSay("ready %s %s %s", wsURL, token, subscribe)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 1 && f[0] == "mem":
			rss, heap := fanoutMem()
			fanoutSay("mem %d %d", rss, heap)
		case len(f) == 2 && f[0] == "change":
			round, _ := strconv.Atoi(f[1])
			t0 := time.Now()
			if err := change(round); err != nil {
				return fmt.Errorf("change %d: %w", round, err)
			}
			fanoutSay("t0 %d %d", round, t0.UnixNano())
		case len(f) == 1 && f[0] == "quit":
			return nil
		}
	}
	return sc.Err()
}

type fanoutSvc struct {
	wsURL, token string
	target       int64
	change       func(round int) error
	stop         func()
}

var fanoutBudgets = regexp.MustCompile(`(?m)^(\s*tokens:\s*)\d+`)

// fanoutService starts the service as production does (bootstrap.New and
// Run), with the shipped policies but rate limits out of the way, a
// superadmin, and a target user whose changes are fanned out.
func fanoutService(dbURL string) (*fanoutSvc, error) {
	dir, err := os.MkdirTemp("", "fanout-")
	if err != nil {
		return nil, err
	}
	if dbURL == "" {
		dbURL = "sqlite:" + filepath.Join(dir, "userservice.db")
	}
	policies := filepath.Join(dir, "policies")
	if err := os.Mkdir(policies, 0o755); err != nil {
		return nil, err
	}
	for _, name := range []string{"model.conf", "policy.csv", "ratelimits.yaml"} {
		raw, err := os.ReadFile(filepath.Join("../../policies", name))
		if err != nil {
			return nil, err
		}
		if name == "ratelimits.yaml" {
			raw = fanoutBudgets.ReplaceAll(raw, []byte("${1}30000"))
		}
		if err := os.WriteFile(filepath.Join(policies, name), raw, 0o644); err != nil {
			return nil, err
		}
	}
	ctx := context.Background()
	password := "Pw-" + rand.Text()
	vars := map[string]string{"DATABASE_URL": dbURL, "POLICY_DIR": policies, "USERSERVICE_SUPERADMIN_PASSWORD": password}
	var out bytes.Buffer
	env := bootstrap.Env{Getenv: func(k string) string { return vars[k] }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
	if code := bootstrap.Main(ctx, []string{"superadmin", "--email", "root@bench.example"}, env); code != bootstrap.ExitOK {
		return nil, fmt.Errorf("userservice superadmin: %d: %s", code, out.String())
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app, err := bootstrap.New(ctx, bootstrap.Config{
		DatabaseURL: dbURL, HTTPAddr: "127.0.0.1:0", JWTSecret: []byte("fanout-" + rand.Text() + rand.Text()),
		AccessTTL: time.Hour, RefreshTTL: time.Hour, PolicyDir: policies, LogFormat: "text", LogLevel: slog.LevelWarn,
	}, log)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- app.Run(rctx) }()
	base := "http://" + app.Addr() + "/api/v1"
	svc := &fanoutSvc{wsURL: "ws://" + app.Addr() + "/api/v1/users/ws", stop: func() {
		cancel()
		<-served
		app.Close()
		_ = os.RemoveAll(dir)
	}}
	call := func(method, path, tok, ctype string, body string, out any) error {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", ctype)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		var resp *http.Response
		for attempt := 0; ; attempt++ { // Run may not serve yet
			resp, err = http.DefaultClient.Do(req)
			if err == nil || attempt == 50 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		if out != nil {
			return json.Unmarshal(raw, out)
		}
		return nil
	}
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	form := url.Values{"username": {"root@bench.example"}, "password": {password}}.Encode()
	if err := call(http.MethodPost, "/auth/token", "", "application/x-www-form-urlencoded", form, &pair); err != nil {
		svc.stop()
		return nil, err
	}
	svc.token = pair.AccessToken
	var target struct{ ID int64 }
	body := `{"first_name":"Target","last_name":"O'Test","email":"target-` + strings.ToLower(rand.Text()) + `@bench.example","gender":"female","ip_address":"10.1.2.3","password":"` + password + `","role":"user"}`
	if err := call(http.MethodPost, "/users/create-admin", svc.token, "application/json", body, &target); err != nil {
		svc.stop()
		return nil, err
	}
	svc.target = target.ID
	svc.change = func(round int) error {
		// Names take letters only: spell the round in letters.
		name := "Round" + strings.Map(func(r rune) rune { return 'a' + r - '0' }, strconv.Itoa(round))
		return call(http.MethodPut, "/users/"+strconv.FormatInt(target.ID, 10), svc.token, "application/json",
			`{"first_name":"`+name+`"}`, nil)
	}
	return svc, nil
}

// fanoutClient opens the connections, subscribes, and records when each
// message arrives; stdin brings each round's start ("t0 R UNIXNANO"), and
// "finish" asks for the figures.
func fanoutClient() error {
	n, _ := strconv.Atoi(os.Getenv("FANOUT_N"))
	rounds, _ := strconv.Atoi(os.Getenv("FANOUT_ROUNDS"))
	target, token := os.Getenv("FANOUT_URL"), os.Getenv("FANOUT_TOKEN")
	subscribe, err := url.QueryUnescape(os.Getenv("FANOUT_SUBSCRIBE"))
	if err != nil {
		return err
	}
	recv := make([][]int64, rounds) // [round][conn] unix nanos
	for r := range recv {
		recv[r] = make([]int64, n)
	}
	done := make([]atomic.Int64, rounds)

	d := websocket.Dialer{HandshakeTimeout: time.Minute, ReadBufferSize: 1024, WriteBufferSize: 512}
	header := http.Header{}
	if token != "-" {
		header.Set("Authorization", "Bearer "+token)
	}
	conns := make([]*websocket.Conn, n)
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs = make(chan error, 64)
	)
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, _, err := d.Dial(target, header)
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				if subscribe != "-" {
					var ack struct{ Type string }
					if err := c.WriteMessage(websocket.TextMessage, []byte(subscribe)); err != nil {
						errs <- err
						return
					}
					if err := c.ReadJSON(&ack); err != nil || ack.Type != "subscribed" {
						errs <- fmt.Errorf("connection %d: subscribing: %v %v", i, ack, err)
						return
					}
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	var outMu sync.Mutex
	for i, c := range conns {
		go func() {
			for r := 0; ; r++ {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
				now := time.Now().UnixNano()
				if r >= rounds {
					continue
				}
				recv[r][i] = now
				if done[r].Add(1) == int64(n) {
					outMu.Lock()
					fanoutSay("done %d", r+1)
					outMu.Unlock()
				}
			}
		}()
	}
	outMu.Lock()
	fanoutSay("ready")
	outMu.Unlock()

	t0 := make([]int64, rounds)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "t0":
			r, _ := strconv.Atoi(f[1])
			if r >= 1 && r <= rounds {
				t0[r-1], _ = strconv.ParseInt(f[2], 10, 64)
			}
		case len(f) == 1 && f[0] == "finish":
			var all, last []time.Duration
			var busy time.Duration
			for r := range rounds {
				var worst int64
				for _, at := range recv[r] {
					all = append(all, time.Duration(at-t0[r]))
					worst = max(worst, at)
				}
				last = append(last, time.Duration(worst-t0[r]))
				busy += time.Duration(worst - t0[r])
			}
			outMu.Lock()
			fanoutSay("stats %d %d %d %d %d %d", len(all), busy, fanoutPct(all, 50), fanoutPct(all, 99), fanoutPct(last, 50), fanoutPct(last, 99))
			outMu.Unlock()
		case len(f) == 1 && f[0] == "quit":
			for _, c := range conns {
				_ = c.Close()
			}
			return nil
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// fanoutPct is the p-th percentile (nearest rank) of ds.
func fanoutPct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}
