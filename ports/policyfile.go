package ports

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// PolicyFileError says where a file of the policy directory (the Casbin
// model and policy, the rate limits) is wrong, for the operator editing it.
// The adapters that read those files return it, and log a rejected reload
// with FileErrorAttrs.
type PolicyFileError struct {
	File string
	Line int // 0: the file as a whole
	Err  error
}

func (e *PolicyFileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s line %d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *PolicyFileError) Unwrap() error { return e.Err }

// FileErrorAttrs are the log attributes of a rejected policy file: its
// file, line and reason when err holds a PolicyFileError, else err itself.
func FileErrorAttrs(err error) []any {
	var fe *PolicyFileError
	if !errors.As(err, &fe) {
		return []any{"error", err}
	}
	attrs := []any{"file", fe.File, "error", fe.Err}
	if fe.Line > 0 {
		attrs = append(attrs, "line", fe.Line)
	}
	return attrs
}

// ReadPolicyFile reads a file of the policy directory whole (so every check
// sees the same bytes even while an editor rewrites it); a failure is a
// PolicyFileError naming the path once.
func ReadPolicyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if err != nil {
		return nil, &PolicyFileError{File: path, Err: err}
	}
	return b, nil
}
