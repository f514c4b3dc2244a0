package security

import (
	"os"
	"testing"

	"github.com/userservice/userservice/tests/testdb"
)

// TestMain terminates the PostgreSQL container testdb may start.
func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }
