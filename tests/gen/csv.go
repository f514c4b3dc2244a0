package gen

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
)

// CSVOptions chooses the optional columns of WriteCSV.
type CSVOptions struct {
	// ID adds an id column: FirstID + Seq (FirstID 0 counts as 1).
	ID      bool
	FirstID int64
	// Role adds a role column.
	Role bool
	// PasswordHash, when set, adds a password_hash column with this hash on
	// every row (hash one password once; the import accepts bcrypt and
	// argon2id).
	PasswordHash string
}

// WriteCSV writes n users of seed as the import's CSV (docs/api.md): a header
// row, then one row per user with first_name, last_name, email, gender,
// ip_address and the optional columns of opts.
func WriteCSV(w io.Writer, seed uint64, n int, opts CSVOptions) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	cw := csv.NewWriter(bw)
	header := []string{"first_name", "last_name", "email", "gender", "ip_address"}
	if opts.ID {
		header = append(header, "id")
	}
	if opts.Role {
		header = append(header, "role")
	}
	if opts.PasswordHash != "" {
		header = append(header, "password_hash")
	}
	if err := cw.Write(header); err != nil {
		return fmt.Errorf("gen: write CSV: %w", err)
	}
	first := max(opts.FirstID, 1)
	g := New(seed, n)
	row := make([]string, 0, len(header))
	for range n {
		u := g.Next()
		row = append(row[:0], u.FirstName, u.LastName, u.Email, u.Gender, u.IPAddress)
		if opts.ID {
			row = append(row, strconv.FormatInt(first+int64(u.Seq), 10))
		}
		if opts.Role {
			row = append(row, u.Role)
		}
		if opts.PasswordHash != "" {
			row = append(row, opts.PasswordHash)
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("gen: write CSV: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("gen: write CSV: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("gen: write CSV: %w", err)
	}
	return nil
}
