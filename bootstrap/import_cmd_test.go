package bootstrap

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func importVars(t *testing.T) map[string]string {
	t.Helper()
	return map[string]string{
		"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "import.db"),
		"POLICY_DIR":   filepath.Join("..", "policies"),
	}
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func decodeReport(t *testing.T, stdout string) importReport {
	t.Helper()
	var r importReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("stdout is not a report: %v\n%s", err, stdout)
	}
	return r
}

const goodCSV = "first_name,last_name,email,gender,ip_address\n" +
	"Zoë,Ødegaard,zoe@example.com,Female,10.0.0.1\n" +
	"Jean-Luc,O'Doireidh,jl@example.org,male,2001:db8::1\n"

func TestImportCommandExitStatuses(t *testing.T) {
	t.Parallel()
	vars := importVars(t)
	good := writeFile(t, "good.csv", goodCSV)

	// Flags may follow the file. A dry run writes nothing.
	code, stdout, stderr := run(t, vars, "", "import", good, "--dry-run")
	if code != ExitOK {
		t.Fatalf("dry run: exit %d\n%s", code, stderr)
	}
	if r := decodeReport(t, stdout); r.TotalRows != 2 || r.Imported != 2 || !r.DryRun {
		t.Errorf("dry run report %+v", r)
	}
	code, stdout, stderr = run(t, vars, "", "import", "--default-password", "change me now", good)
	if code != ExitOK {
		t.Fatalf("good file: exit %d\n%s", code, stderr)
	}
	if r := decodeReport(t, stdout); r.TotalRows != 2 || r.Imported != 2 || r.DryRun || len(r.Errors) != 0 {
		t.Errorf("report %+v", r)
	}
	if !strings.Contains(stderr, "2 rows in") || strings.Contains(stdout+stderr, "change me now") {
		t.Errorf("stderr %q", stderr)
	}
	// Again: every row is stored already, skipped, and that is not a failure.
	code, stdout, _ = run(t, vars, "", "import", good)
	if r := decodeReport(t, stdout); code != ExitOK || r.Skipped != 2 || r.Imported != 0 {
		t.Errorf("re-run: exit %d, report %+v", code, r)
	}
	// Strict: a conflict rejects the whole file.
	mixed := writeFile(t, "mixed.csv", goodCSV+"New,Person,new@example.com,Agender,\n")
	code, stdout, stderr = run(t, vars, "", "import", mixed, "--on-conflict", "fail")
	if r := decodeReport(t, stdout); code != ExitFailure || r.Failed != 2 || r.Imported != 0 || !strings.Contains(stderr, "nothing was imported") {
		t.Errorf("strict: exit %d, report %+v\n%s", code, r, stderr)
	}
	// A bad row: the others are imported, exit 1.
	bad := writeFile(t, "bad.csv", "first_name,last_name,email,gender,ip_address\nAna,Bo,ana@example.com,Female,\nX,Y,not-an-email,Male,\n")
	code, stdout, stderr = run(t, vars, "", "import", bad)
	if r := decodeReport(t, stdout); code != ExitFailure || r.Imported != 1 || r.Failed != 1 || r.Errors[0].Line != 3 || r.Errors[0].Field != "email" {
		t.Errorf("bad row: exit %d, report %+v\n%s", code, r, stderr)
	}

	for name, args := range map[string][]string{
		"no file":           {"import"},
		"two files":         {"import", good, good},
		"missing file":      {"import", filepath.Join(t.TempDir(), "nope.csv")},
		"not CSV":           {"import", writeFile(t, "x.png", "\x89PNG\r\n\x1a\n\x00\x00")},
		"missing column":    {"import", writeFile(t, "cols.csv", "first_name,last_name,email\nA,B,a@b.co\n")},
		"empty file":        {"import", writeFile(t, "empty.csv", "")},
		"bad on-conflict":   {"import", good, "--on-conflict", "merge"},
		"short password":    {"import", good, "--default-password", "short"},
		"unknown flag":      {"import", good, "--force"},
		"report is a dir":   {"import", good, "--report", t.TempDir()},
		"file is directory": {"import", t.TempDir()},
	} {
		code, stdout, stderr := run(t, vars, "", args...)
		if code != ExitBadInput {
			t.Errorf("%s: exit %d, want %d\n%s%s", name, code, ExitBadInput, stdout, stderr)
		}
	}
}

func TestImportCommandWritesRejectedRowsNeutralised(t *testing.T) {
	t.Parallel()
	vars := importVars(t)
	file := writeFile(t, "in.csv", "email,first_name,last_name,gender,ip_address,notes\n"+
		"ok@example.com,Ok,Row,Male,,fine\n"+
		"\"=HYPERLINK(\"\"x\"\")@example.com\",-Eve,+Bad,@Robot,,\"=1+2\"\n"+
		"ok@example.com,Dup,Row,Male,,\tx\n")
	reportPath := filepath.Join(t.TempDir(), "rejected.csv")
	code, stdout, stderr := run(t, vars, "", "import", "--report", reportPath, file)
	if code != ExitFailure {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	f, err := os.Open(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("report rows %q, want a header and two rejected rows", rows)
	}
	if want := []string{"line", "errors", "email", "first_name", "last_name", "gender", "ip_address", "notes"}; !slices.Equal(rows[0], want) {
		t.Errorf("header %q, want %q", rows[0], want)
	}
	bad := rows[1]
	if bad[0] != "3" || !strings.Contains(bad[1], "email: ") || !strings.Contains(bad[1], "gender: ") {
		t.Errorf("rejected row %q", bad)
	}
	for i, want := range map[int]string{2: `'=HYPERLINK("x")@example.com`, 3: "'-Eve", 4: "'+Bad", 5: "'@Robot", 7: "'=1+2"} {
		if bad[i] != want {
			t.Errorf("cell %d = %q, want %q", i, bad[i], want)
		}
	}
	if dup := rows[2]; dup[0] != "4" || !strings.Contains(dup[1], "line 2") || dup[7] != "'\tx" {
		t.Errorf("duplicate row %q", dup)
	}
}
