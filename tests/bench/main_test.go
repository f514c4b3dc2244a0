package bench

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// TestMain prints the table and writes the JSON after the benchmarks, then
// stops what setup started. Without -bench (as in `go test ./...`) it does
// nothing else: no benchmark runs, so nothing is started.
func TestMain(m *testing.M) {
	flag.Parse()
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
