package bench

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/userservice/userservice/tests/pgcluster"
)

// pgbenchRun is a custom pgbench script run against the bench database.
type pgbenchRun struct {
	name    string
	script  string
	mode    string // -M: prepared (named statements) or extended (planned each time)
	clients int
	vars    map[string]string // -D name=value; the script reads them as :name
}

var (
	pgbenchTxs    = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	pgbenchFailed = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
	pgbenchTPS    = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
)

// pgbench runs r for a warm-up, then for d (in whole seconds, at least
// one) with every transaction's latency logged, and measures it.
func (e *env) pgbench(ctx context.Context, r pgbenchRun, d time.Duration) (Measurement, error) {
	tool, err := pgcluster.FindTool(e.cfg.pgBin, "pgbench")
	if err != nil {
		return Measurement{}, err
	}
	dir, err := os.MkdirTemp("", "userservice-pgbench-")
	if err != nil {
		return Measurement{}, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "script.sql")
	if err := os.WriteFile(script, []byte(r.script), 0o644); err != nil {
		return Measurement{}, err
	}
	run := func(d time.Duration, logged bool) (string, error) {
		args := []string{"-n", "-f", script, "-M", r.mode, "-c", strconv.Itoa(r.clients),
			"-j", strconv.Itoa(min(r.clients, runtime.NumCPU())), "-T", strconv.Itoa(int(math.Ceil(d.Seconds())))}
		if logged {
			args = append(args, "-l", "--log-prefix", filepath.Join(dir, "log"))
		}
		names := make([]string, 0, len(r.vars))
		for k := range r.vars {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			args = append(args, "-D", k+"="+r.vars[k])
		}
		cmd := exec.CommandContext(ctx, tool, append(args, e.dbURL)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("pgbench %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	if _, err := run(min(d/5, 2*time.Second), false); err != nil {
		return Measurement{}, err
	}
	out, err := run(d, true)
	if err != nil {
		return Measurement{}, err
	}
	m := Measurement{Name: r.name, Conns: r.clients}
	txs, tps := pgbenchTxs.FindStringSubmatch(out), pgbenchTPS.FindStringSubmatch(out)
	if txs == nil || tps == nil {
		return Measurement{}, fmt.Errorf("pgbench printed no transaction count or tps:\n%s", out)
	}
	m.Ops, _ = strconv.ParseInt(txs[1], 10, 64)
	rate, _ := strconv.ParseFloat(tps[1], 64)
	if rate > 0 {
		m.Elapsed = time.Duration(float64(m.Ops) / rate * float64(time.Second))
	}
	if f := pgbenchFailed.FindStringSubmatch(out); f != nil && f[1] != "0" {
		return Measurement{}, fmt.Errorf("pgbench: %s transactions failed:\n%s", f[1], out)
	}
	lat, err := pgbenchLatencies(filepath.Join(dir, "log"))
	if err != nil {
		return Measurement{}, err
	}
	m.P50, m.P99 = percentiles(lat)
	m.samples = lat
	return m, nil
}

// pgbenchLatencies reads the per-transaction logs of -l: each line is
// "client transaction latency_µs script epoch µs".
func pgbenchLatencies(prefix string) ([]time.Duration, error) {
	files, err := filepath.Glob(prefix + ".*")
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no pgbench transaction logs at %s.*", prefix)
	}
	var lat []time.Duration
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				fh.Close()
				return nil, fmt.Errorf("pgbench log %s: %q", f, sc.Text())
			}
			lat = append(lat, time.Duration(us)*time.Microsecond)
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return lat, nil
}
