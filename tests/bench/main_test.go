package bench

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
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
