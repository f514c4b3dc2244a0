// Command usergen writes realistic users as the import's CSV (docs/api.md),
// deterministically from a seed (see package gen):
//
//	go run ./tests/gen/cmd/usergen -n 1000000 -seed 1 > users.csv
//
// The repository's sample, tests/fixtures/users.csv, was made with it:
//
//	go run ./tests/gen/cmd/usergen -n 1000 -seed 1 -o tests/fixtures/users.csv
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/userservice/userservice/tests/gen"
)

func main() {
	n := flag.Int("n", 1000, "number of users")
	seed := flag.Uint64("seed", 1, "seed: the same seed gives the same users")
	out := flag.String("o", "-", "output file (- is standard output)")
	id := flag.Bool("id", false, "add an id column (1, 2, ...)")
	role := flag.Bool("role", false, "add a role column")
	hash := flag.String("password-hash", "", "add a password_hash column with this hash on every row")
	flag.Parse()
	if err := run(*out, *seed, *n, gen.CSVOptions{ID: *id, Role: *role, PasswordHash: *hash}); err != nil {
		fmt.Fprintln(os.Stderr, "usergen:", err)
		os.Exit(1)
	}
}

func run(out string, seed uint64, n int, opts gen.CSVOptions) error {
	if out == "-" {
		return gen.WriteCSV(os.Stdout, seed, n, opts)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := gen.WriteCSV(f, seed, n, opts); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
