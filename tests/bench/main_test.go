package bench

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
)

// TestMain prints the table and writes the JSON after the benchmarks, then
// stops what setup started. Without -bench (as in `go test ./...`) it does
// nothing else: no benchmark runs, so nothing is started.
func TestMain(m *testing.M) {
	flag.Parse()
	// An interrupted run still stops the cluster and removes its files
	// (a million users leave about a gigabyte behind).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "bench: interrupted, stopping the environment")
		if err := shared.close(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(130)
	}()
	code := m.Run()
	if len(shared.report.rows) > 0 {
		if l := loadAverage(); l != "" {
			fact("load average (1, 5, 15 min) at the end: %s: the machine's other work shares the cores", l)
		}
		shared.report.print(os.Stdout)
		path, err := shared.report.writeJSON("results")
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			code = max(code, 1)
		} else {
			fmt.Println("results written to tests/bench/" + path)
		}
	}
	if err := shared.close(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: stopping the environment:", err)
		code = max(code, 1)
	}
	os.Exit(code)
}

// loadAverage returns /proc/loadavg's first three fields, or "" where there
// is none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
