package main

import (
	"strings"
	"testing"
)

// stream is a test2json record of two packages: a pass, a failure, and three
// skips, two of them for the same reason in different packages.
const stream = `{"Action":"start","Package":"example.com/m/a"}
{"Action":"run","Package":"example.com/m/a","Test":"TestPass"}
{"Action":"output","Package":"example.com/m/a","Test":"TestPass","Output":"=== RUN   TestPass\n"}
{"Action":"pass","Package":"example.com/m/a","Test":"TestPass"}
{"Action":"output","Package":"example.com/m/a","Test":"TestDB","Output":"=== RUN   TestDB\n"}
{"Action":"output","Package":"example.com/m/a","Test":"TestDB","Output":"    testdb.go:140: testdb: no PostgreSQL server (none)\n"}
{"Action":"output","Package":"example.com/m/a","Test":"TestDB","Output":"--- SKIP: TestDB (0.00s)\n"}
{"Action":"skip","Package":"example.com/m/a","Test":"TestDB"}
{"Action":"output","Package":"example.com/m/b","Test":"TestDB2","Output":"    other_test.go:9: testdb: no PostgreSQL server (none)\n"}
{"Action":"skip","Package":"example.com/m/b","Test":"TestDB2"}
{"Action":"skip","Package":"example.com/m/b","Test":"TestQuiet"}
{"Action":"output","Package":"example.com/m/b","Test":"TestBroken","Output":"    x_test.go:3: boom\n"}
{"Action":"fail","Package":"example.com/m/b","Test":"TestBroken"}
{"Action":"fail","Package":"example.com/m/b"}
`

func TestSummarize(t *testing.T) {
	s, err := summarize(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	if s.passed != 1 || s.failed != 1 || s.skipped != 3 {
		t.Fatalf("counted %d passed, %d failed, %d skipped; want 1, 1, 3", s.passed, s.failed, s.skipped)
	}
	if len(s.groups) != 2 {
		t.Fatalf("%d skip groups, want 2: %+v", len(s.groups), s.groups)
	}
	db := s.groups[0]
	if db.reason != "testdb: no PostgreSQL server (none)" || db.tests != 2 || len(db.packages) != 2 {
		t.Errorf("first group = %+v; want the database reason, 2 tests in 2 packages", *db)
	}
	var out strings.Builder
	s.print(&out)
	if !strings.HasSuffix(out.String(), "\n1 passed, 1 failed, 3 skipped\n") {
		t.Errorf("the closing line is missing:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "1 skipped in example.com/m/b:\n      (no reason given)") {
		t.Errorf("a skip without a reason is not named:\n%s", out.String())
	}
}

func TestSummarizeRefusesGarbage(t *testing.T) {
	if _, err := summarize(strings.NewReader("{not json\n")); err == nil {
		t.Error("a malformed event was accepted")
	}
}
