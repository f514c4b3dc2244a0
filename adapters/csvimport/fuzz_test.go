package csvimport

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// checkRow holds a decoded row to the decoder's promises.
func checkRow(t *testing.T, row ports.ImportRow) {
	t.Helper()
	if (row.User == nil) == (len(row.Errors) == 0) {
		t.Fatalf("line %d: User %v with errors %v: want exactly one of them", row.Line, row.User != nil, row.Errors)
	}
	known := append(append([]string{FieldRow}, required...), optional...)
	for _, e := range row.Errors {
		if !slices.Contains(known, e.Field) || e.Message == "" {
			t.Fatalf("line %d: error %+v names no known field or has no message", row.Line, e)
		}
	}
	if row.User == nil {
		return
	}
	s := row.User.Stored()
	// What was accepted validates again to itself: nothing unvalidated
	// slipped through.
	again, err := domain.NewUser(domain.NewUserParams{
		ID: s.ID, FirstName: s.FirstName, LastName: s.LastName, Email: s.Email,
		Gender: s.Gender, IPAddress: s.IPAddress, Role: row.User.Role(),
	}, now)
	if err != nil {
		t.Fatalf("line %d: accepted user %+v does not validate again: %v", row.Line, s, err)
	}
	if again.Stored() != s {
		t.Fatalf("line %d: accepted user is not canonical: %+v, again %+v", row.Line, s, again.Stored())
	}
	if s.ID < 0 || s.Email != domain.Fold(s.Email) {
		t.Fatalf("line %d: accepted user %+v", row.Line, s)
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder: it either refuses the
// file up front as malformed, or yields rows in line order, each valid or
// with named problems, and never panics or loops.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		"first_name,last_name,email,gender,ip_address\nZoë,O'Doireidh,zoe@example.com,Female,10.0.0.1\n",
		"\uFEFFemail,gender,ip_address,last_name,first_name,id,role,password_hash\r\na@b.co,male,::1,B,A,7,admin,$2b$10$x\r\n",
		"first_name,last_name,email,gender,ip_address\n\"A\nB\",\"C\"\"D\",e@f.gh,Agender,\n,,,,\nx,y\n",
		"first_name,last_name,email,gender,ip_address\nA,B\"C,a@b.co,Male,\n\"unterminated",
		"\x00\x01\x02",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := New().Decode(bytes.NewReader(data), now)
		if err != nil {
			if domain.KindOf(err) != domain.KindMalformed {
				t.Fatalf("Decode error %v is not KindMalformed", err)
			}
			return
		}
		prev := 1
		for range len(data) + 1 {
			row, err := rows.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if row.Line <= prev {
				t.Fatalf("row at line %d after line %d", row.Line, prev)
			}
			prev = row.Line
			checkRow(t, row)
		}
		t.Fatalf("more rows than bytes")
	})
}

// FuzzRow writes one row of arbitrary cells with a CSV writer and reads it
// back: the cells survive the round trip, and the row is accepted only with
// the values the cells say, canonicalised.
func FuzzRow(f *testing.F) {
	f.Add("17", "Zoë", "O'Doireidh", "ZOE@example.com", "female", "10.0.0.1", "admin", "$2b$10$x")
	f.Add("", "Jean-Luc", "Picard", "jl@example.org", "Male", "", "", "")
	f.Add("x", "", "\"", "a,b@c.d", "robot", "::ffff:1.2.3.4", "root", "\r\n")
	f.Fuzz(func(t *testing.T, id, first, last, email, gender, ip, role, hash string) {
		cells := []string{id, first, last, email, gender, ip, role, hash}
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		_ = w.Write([]string{ColID, ColFirstName, ColLastName, ColEmail, ColGender, ColIPAddress, ColRole, ColPasswordHash})
		_ = w.Write(cells)
		w.Flush()
		rows, err := New().Decode(&b, now)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		row, err := rows.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if _, err := rows.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("a second row: %v", err)
		}
		checkRow(t, row)
		if row.Line != 2 {
			t.Fatalf("Line = %d, want 2", row.Line)
		}
		// CSV reads a quoted CRLF as LF; everything else comes back as written.
		for i, c := range cells {
			if want := strings.ReplaceAll(c, "\r\n", "\n"); row.Cells[i] != want {
				t.Fatalf("cell %d = %q, want %q", i, row.Cells[i], want)
			}
		}
		if row.User == nil {
			return
		}
		s := row.User.Stored()
		if want := domain.Fold(strings.TrimSpace(email)); s.Email != want {
			t.Fatalf("email %q stored as %q, want %q", email, s.Email, want)
		}
		wantID, _ := strconv.ParseInt(strings.TrimSpace(id), 10, 64)
		if s.ID != wantID {
			t.Fatalf("id %q stored as %d", id, s.ID)
		}
		wantRole := strings.ToLower(strings.TrimSpace(role))
		if wantRole == "" {
			wantRole = "user"
		}
		if s.Role != wantRole || row.RoleGiven != (strings.TrimSpace(role) != "") {
			t.Fatalf("role %q stored as %q (given %v)", role, s.Role, row.RoleGiven)
		}
		if row.PasswordHash != strings.TrimSpace(strings.ReplaceAll(hash, "\r\n", "\n")) {
			t.Fatalf("password_hash %q read as %q", hash, row.PasswordHash)
		}
	})
}
