package csvimport

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

var now = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func decode(t *testing.T, text string) ports.ImportRows {
	t.Helper()
	rows, err := New().Decode(strings.NewReader(text), now)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return rows
}

func readAll(t *testing.T, rows ports.ImportRows) []ports.ImportRow {
	t.Helper()
	var out []ports.ImportRow
	for {
		row, err := rows.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, row)
	}
}

// problems renders a row's errors as "field: message" lines.
func problems(r ports.ImportRow) []string {
	var out []string
	for _, e := range r.Errors {
		out = append(out, e.Field+": "+e.Message)
	}
	return out
}

func TestGoodFileAnyOrderBOMCRLFQuotes(t *testing.T) {
	t.Parallel()
	text := "\uFEFF\"email\",Gender , ip_address,last_name,first_name,role,id,password_hash,notes\r\n" +
		"ZOE@Example.com,female,10.0.0.1,\"O'Doireidh Jr.\",Zoë,admin,17,$2b$10$abc,\r\n" +
		"\r\n" + // blank lines are skipped, but counted
		"jean@example.org,MALE,,\"de la Tour\",Jean-Luc,,,,\"two,\r\nlines\"\r\n" +
		"\"li\"\"x@example.net\",Agender,2001:DB8::1,Li,Ming,  User ,,,\r\n"
	rows := decode(t, text)
	if got := rows.Unknown(); !slices.Equal(got, []string{"notes"}) {
		t.Errorf("Unknown() = %q, want notes", got)
	}
	if got := rows.Header(); got[0] != "email" || len(got) != 9 {
		t.Errorf("Header() = %q", got)
	}
	got := readAll(t, rows)
	if len(got) != 3 {
		t.Fatalf("%d rows, want 3: %+v", len(got), got)
	}
	// Row 2 spans lines 4 and 5 (a quoted newline); row 3 starts on line 6.
	for i, want := range []int{2, 4, 6} {
		if got[i].Line != want {
			t.Errorf("row %d: Line = %d, want %d", i, got[i].Line, want)
		}
	}
	for i, r := range got[:2] {
		if r.User == nil {
			t.Fatalf("row %d rejected: %v", i, problems(r))
		}
	}
	if got[2].User != nil {
		t.Fatalf("row with a quote in the email accepted")
	}
	if p := problems(got[2]); len(p) != 1 || !strings.HasPrefix(p[0], "email: ") {
		t.Errorf("row 3 problems = %q, want one about email", p)
	}

	zoe := got[0]
	s := zoe.User.Stored()
	if s.ID != 17 || s.Email != "zoe@example.com" || s.Gender != "Female" || s.LastName != "O'Doireidh Jr." ||
		s.FirstName != "Zoë" || s.Role != "admin" || s.IPAddress != "10.0.0.1" || !s.CreatedAt.Equal(now) {
		t.Errorf("row 1 = %+v", s)
	}
	if !zoe.RoleGiven || zoe.PasswordHash != "$2b$10$abc" {
		t.Errorf("row 1: RoleGiven %v, PasswordHash %q", zoe.RoleGiven, zoe.PasswordHash)
	}
	if len(zoe.Cells) != 9 || zoe.Cells[3] != "O'Doireidh Jr." {
		t.Errorf("row 1 cells = %q", zoe.Cells)
	}
	jean := got[1]
	if js := jean.User.Stored(); js.ID != 0 || js.LastName != "de la Tour" || js.IPAddress != "" || js.Role != "user" {
		t.Errorf("row 2 = %+v", js)
	}
	if jean.Cells[8] != "two,\nlines" {
		t.Errorf("row 2 notes = %q, want the quoted CRLF read as a newline", jean.Cells[8])
	}
	if jean.RoleGiven || jean.PasswordHash != "" {
		t.Errorf("row 2: RoleGiven %v, PasswordHash %q", jean.RoleGiven, jean.PasswordHash)
	}
}

func TestUnknownColumnsAreReportedOnce(t *testing.T) {
	t.Parallel()
	rows := decode(t, "first_name,last_name,email,gender,ip_address,nickname,Nickname ,age\nA,B,a@b.co,Male,,x,y,3\n")
	if got, want := rows.Unknown(), []string{"nickname", "age"}; !slices.Equal(got, want) {
		t.Errorf("Unknown() = %q, want %q", got, want)
	}
	got := readAll(t, rows)
	if len(got) != 1 || got[0].User == nil {
		t.Fatalf("rows = %+v", got)
	}
}

func TestUnusableFilesAreRejectedUpFront(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		text   string
		fields []string // the fields the error names
	}{
		"empty":            {"", nil},
		"only a BOM":       {"\uFEFF", nil},
		"binary":           {"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", []string{"first_name", "last_name", "email", "gender", "ip_address"}},
		"JSON":             {`[{"first_name":"A"}]` + "\n", nil},
		"semicolons":       {"first_name;last_name;email;gender;ip_address\n", []string{"first_name", "last_name", "email", "gender", "ip_address"}},
		"missing columns":  {"first_name,last_name,email\nA,B,a@b.co\n", []string{"gender", "ip_address"}},
		"duplicate column": {"first_name,last_name,email,gender,ip_address,EMAIL\n", []string{"email"}},
		"bad quoting":      {"first_name,\"last_name\"x,email\n", nil},
		"endless header":   {strings.Repeat("x", MaxRowBytes+10*bufSize), nil},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := New().Decode(strings.NewReader(c.text), now)
			e := domain.AsError(err)
			if e == nil || e.Kind != domain.KindMalformed {
				t.Fatalf("Decode = %v, want a KindMalformed error", err)
			}
			var fields []string
			for _, f := range e.Fields {
				fields = append(fields, f.Field)
			}
			if !slices.Equal(fields, c.fields) {
				t.Errorf("error fields = %q, want %q (%v)", fields, c.fields, err)
			}
		})
	}
}

func TestEachKindOfBadRowNamesItsLineAndField(t *testing.T) {
	t.Parallel()
	const header = "id,first_name,last_name,email,gender,ip_address,role\n"
	for _, c := range []struct {
		name string
		row  string
		want []string // fields
	}{
		{"id not a number", "x1,A,B,a@b.co,Male,,", []string{"id"}},
		{"id zero", "0,A,B,a@b.co,Male,,", []string{"id"}},
		{"id negative", "-4,A,B,a@b.co,Male,,", []string{"id"}},
		{"empty first name", ",  ,B,a@b.co,Male,,", []string{"first_name"}},
		{"digits in last name", ",A,B2,a@b.co,Male,,", []string{"last_name"}},
		{"name too long", "," + strings.Repeat("é", 101) + ",B,a@b.co,Male,,", []string{"first_name"}},
		{"bad email", ",A,B,not-an-email,Male,,", []string{"email"}},
		{"email without a dot", ",A,B,a@localhost,Male,,", []string{"email"}},
		{"bad gender", ",A,B,a@b.co,Robot,,", []string{"gender"}},
		{"bad ip", ",A,B,a@b.co,Male,300.1.1.1,", []string{"ip_address"}},
		{"ip with zone", ",A,B,a@b.co,Male,fe80::1%eth0,", []string{"ip_address"}},
		{"bad role", ",A,B,a@b.co,Male,,root", []string{"role"}},
		{"everything", "x,,,,,x,x", []string{"id", "role", "first_name", "last_name", "email", "gender", "ip_address"}},
		{"too few fields", ",A,B,a@b.co", []string{"row"}},
		{"too many fields", ",A,B,a@b.co,Male,,,,", []string{"row"}},
		{"bare quote", `,A,B"x,a@b.co,Male,,`, []string{"row"}},
		{"invalid UTF-8", ",A\xff,B,a@b.co,Male,,", []string{"first_name"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			text := header + "1,Good,Row,good@b.co,Female,,\n" + c.row + "\n" + "2,After,Row,after@b.co,Female,,\n"
			got := readAll(t, decode(t, text))
			if len(got) != 3 {
				t.Fatalf("%d rows, want 3: %+v", len(got), got)
			}
			bad := got[1]
			if bad.Line != 3 {
				t.Errorf("Line = %d, want 3", bad.Line)
			}
			if bad.User != nil {
				t.Fatalf("bad row accepted")
			}
			var fields []string
			for _, e := range bad.Errors {
				fields = append(fields, e.Field)
				if e.Message == "" {
					t.Errorf("field %s has no message", e.Field)
				}
			}
			if !slices.Equal(fields, c.want) {
				t.Errorf("fields = %q, want %q (%q)", fields, c.want, problems(bad))
			}
			if got[0].User == nil || got[2].User == nil || got[2].Line != 4 {
				t.Errorf("the rows around the bad one were not read cleanly: %+v", got)
			}
		})
	}
}

func TestARowOverTheLimitEndsTheFile(t *testing.T) {
	t.Parallel()
	head := "first_name,last_name,email,gender,ip_address\nA,B,a@b.co,Male,\n"
	// An endless quoted field: without the bound it would be read to the end of memory.
	endless := io.MultiReader(strings.NewReader(head+`C,"`), infinite('x'))
	rows, err := New().Decode(endless, now)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, rows)
	if len(got) != 2 || got[0].User == nil {
		t.Fatalf("rows = %+v", got)
	}
	if got[1].Line != 3 || len(got[1].Errors) != 1 || got[1].Errors[0].Field != FieldRow ||
		!strings.Contains(got[1].Errors[0].Message, "the rest of the file was not read") {
		t.Errorf("long row = %+v", got[1])
	}
}

type infinite byte

func (b infinite) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

func TestReadErrorsComeBackWrapped(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection reset")
	_, err := New().Decode(iotest.ErrReader(boom), now)
	if !errors.Is(err, boom) {
		t.Errorf("Decode = %v, want the read error", err)
	}
	r := io.MultiReader(strings.NewReader("first_name,last_name,email,gender,ip_address\nA,B,a@b.co,Male,\n"), iotest.ErrReader(boom))
	rows, err := New().Decode(r, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rows.Next(); err != nil {
		t.Fatalf("first row: %v", err)
	}
	if _, err := rows.Next(); !errors.Is(err, boom) {
		t.Errorf("Next = %v, want the read error", err)
	}
}

func TestHeaderOnlyHasNoRows(t *testing.T) {
	t.Parallel()
	if got := readAll(t, decode(t, "first_name,last_name,email,gender,ip_address")); len(got) != 0 {
		t.Errorf("rows = %+v", got)
	}
}

func TestRowsDoNotShareMemory(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	b.WriteString("first_name,last_name,email,gender,ip_address\n")
	b.WriteString("A,B,a@b.co,Male,\nC,D,c@d.co,Female,\n")
	got := readAll(t, decode(t, b.String()))
	if got[0].Cells[0] != "A" || got[1].Cells[0] != "C" {
		t.Errorf("cells = %q, %q", got[0].Cells, got[1].Cells)
	}
}
