package ratelimit

import (
	"os"
	"testing"

	"github.com/userservice/userservice/tests/testdb"
)

// TestMain terminates the Redis container testdb may start.
func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }
