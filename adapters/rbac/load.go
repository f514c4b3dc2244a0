package rbac

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/util"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// The files of the policy directory.
const (
	modelFile  = "model.conf"
	policyFile = "policy.csv"
)

// The values the request carries besides roles and permissions.
const (
	relSelf  = "self"
	relOther = "other"
	relNone  = "none" // the action has no target user
	none     = "-"    // no target role, or no new role
	wildcard = "*"
)

// policySet is one loaded version of the policy files: the enforcer built
// from them, never modified once built, and the bytes it was built from.
type policySet struct {
	enforcer *casbin.Enforcer
	model    []byte
	policy   []byte
	rules    int // permission rows, for the log

	// decisions remembers the enforcer's answers (question -> bool). They
	// cannot go stale: the set never changes once built (a reload builds a
	// new set, with an empty memory), and the functions a Casbin matcher can
	// call are pure (keyMatch, regexMatch, ipMatch, globMatch and kin; no
	// clock). Deciding one question costs Casbin ~10 us of CPU (matcher
	// evaluation over every row); a remembered answer, a map lookup. At most
	// maxDecisions answers are kept, so questions made of unexpected values
	// cannot grow it without bound.
	decisions  sync.Map // question -> bool
	remembered atomic.Int64
}

// question is one authorization question as Casbin is asked it.
type question struct{ sub, perm, rel, trole, nrole string }

// maxDecisions bounds the answers a policy set remembers: above every
// question the service can ask (roles x permissions x relations x target
// roles x new roles, about 2,000 today).
const maxDecisions = 4096

// decide answers q from memory, or asks the enforcer and remembers its
// answer. Errors are not remembered.
func (s *policySet) decide(q question) (bool, error) {
	if ok, found := s.decisions.Load(q); found {
		return ok.(bool), nil
	}
	ok, err := s.enforcer.Enforce(q.sub, q.perm, q.rel, q.trole, q.nrole)
	if err != nil {
		return false, err
	}
	if s.remembered.Load() < maxDecisions {
		if _, loaded := s.decisions.LoadOrStore(q, ok); !loaded {
			s.remembered.Add(1)
		}
	}
	return ok, nil
}

func (s *policySet) sameFiles(o *policySet) bool {
	return bytes.Equal(s.model, o.model) && bytes.Equal(s.policy, o.policy)
}

// load reads and checks both files of dir and builds an enforcer from them.
// Each file is read once, so the checks and the enforcer see the same bytes
// even while an editor is rewriting it. warnings are rows that load but, by
// naming no permission the service asks about, can never grant anything.
func load(dir string) (set *policySet, warnings []*ports.PolicyFileError, err error) {
	modelPath := filepath.Join(dir, modelFile)
	policyPath := filepath.Join(dir, policyFile)
	modelText, err := ports.ReadPolicyFile(modelPath)
	if err != nil {
		return nil, nil, err
	}
	policyText, err := ports.ReadPolicyFile(policyPath)
	if err != nil {
		return nil, nil, err
	}

	// The files are hand-edited, and Casbin panics on some malformed input;
	// a bad edit must be rejected like any other, not take the service down.
	defer func() {
		if r := recover(); r != nil {
			set, warnings, err = nil, nil, &ports.PolicyFileError{File: dir, Err: fmt.Errorf("casbin cannot load the files: %v", r)}
		}
	}()

	m, err := model.NewModelFromString(string(modelText))
	if err != nil {
		return nil, nil, &ports.PolicyFileError{File: modelPath, Err: err}
	}
	rules, warnings, err := parsePolicy(policyPath, policyText, m)
	if err != nil {
		return nil, nil, err
	}

	enforcer, err := casbin.NewEnforcer(m, false)
	if err != nil {
		return nil, nil, &ports.PolicyFileError{File: modelPath, Err: err}
	}
	for _, r := range rules {
		var added bool
		if r.sec == "g" {
			added, err = enforcer.AddNamedGroupingPolicy(r.ptype, r.values)
		} else {
			added, err = enforcer.AddNamedPolicy(r.ptype, r.values)
		}
		if err == nil && !added {
			err = errors.New("casbin did not add the row")
		}
		if err != nil {
			return nil, nil, &ports.PolicyFileError{File: policyPath, Line: r.line, Err: err}
		}
	}

	// Matchers are compiled on first use: ask one question now, so a model
	// whose matcher does not parse, or whose request does not have the five
	// parts the service sends, is rejected here rather than on every request.
	if _, err := enforcer.Enforce(domain.RoleUser.String(), string(domain.PermUsersList), relNone, none, none); err != nil {
		return nil, nil, &ports.PolicyFileError{File: modelPath, Err: fmt.Errorf("cannot decide a request: %w", err)}
	}

	n := 0
	for _, r := range rules {
		if r.sec == "p" {
			n++
		}
	}
	return &policySet{enforcer: enforcer, model: modelText, policy: policyText, rules: n}, warnings, nil
}

// rule is one row of policy.csv.
type rule struct {
	line   int
	sec    string // "p" or "g"
	ptype  string
	values []string
}

// parsePolicy reads policy.csv the way Casbin's file adapter does (one CSV
// row a line, # comments, spaces around values ignored) but, unlike it,
// rejects what the adapter would load silently or panic on: unknown row
// types, wrong column counts, empty values, unknown roles and relations.
// Duplicate rows are dropped, as Casbin does.
func parsePolicy(path string, text []byte, m model.Model) (rules []rule, warnings []*ports.PolicyFileError, err error) {
	seen := make(map[string]bool)
	permissionRows := 0
	for i, raw := range strings.Split(string(text), "\n") {
		n := i + 1
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(format string, args ...any) ([]rule, []*ports.PolicyFileError, error) {
			return nil, nil, &ports.PolicyFileError{File: path, Line: n, Err: fmt.Errorf(format, args...)}
		}
		r := csv.NewReader(strings.NewReader(line))
		r.TrimLeadingSpace = true
		fields, err := r.Read()
		if err != nil {
			return bad("not a row of comma-separated values: %w", err)
		}
		for j := range fields {
			fields[j] = strings.TrimSpace(fields[j])
		}
		ptype := fields[0]
		if ptype == "" {
			return bad("the row type (p or g) is missing")
		}
		sec := ptype[:1]
		ast, ok := m[sec][ptype]
		if !ok || (sec != "p" && sec != "g") {
			return bad("unknown row type %q: the model defines permission rows (p) and role inheritance rows (g)", ptype)
		}
		values := fields[1:]
		if len(values) != len(ast.Tokens) {
			return bad("a %s row needs %d values, this one has %d", ptype, len(ast.Tokens), len(values))
		}
		for j, v := range values {
			if v == "" {
				return bad("value %d is empty", j+1)
			}
			column := "_" // the columns of a g row are all named _
			if sec == "p" {
				column = strings.TrimPrefix(ast.Tokens[j], ptype+"_")
			} else if j >= 2 {
				continue // a role domain, which this service does not use
			}
			if err := checkValue(column, v); err != nil {
				return bad("%w", err)
			}
			if column == "perm" && !knownPermission(v) {
				warnings = append(warnings, &ports.PolicyFileError{File: path, Line: n,
					Err: fmt.Errorf("permission %q matches no permission the service asks about", v)})
			}
		}
		key := strings.Join(fields, "\x00")
		if seen[key] {
			continue
		}
		seen[key] = true
		if sec == "p" {
			permissionRows++
		}
		rules = append(rules, rule{line: n, sec: sec, ptype: ptype, values: values})
	}
	if permissionRows == 0 {
		// An empty file is far more likely a half-written or truncated one
		// than a wish to forbid everything to everyone.
		return nil, nil, &ports.PolicyFileError{File: path, Err: errors.New("no permission rows (p)")}
	}
	return rules, warnings, nil
}

// checkValue checks v against what the model's column of that name holds.
// Columns this package does not know (an operator's addition to the model)
// are left to the model.
func checkValue(column, v string) error {
	switch column {
	case "sub", "_":
		if _, err := domain.ParseRole(v); err != nil {
			return fmt.Errorf("unknown role %q: want user, admin or superadmin", v)
		}
	case "rel":
		switch v {
		case relSelf, relOther, relNone, wildcard:
		default:
			return fmt.Errorf("unknown relation %q: want self, other, none or *", v)
		}
	case "trole", "nrole":
		if v == none || v == wildcard {
			return nil
		}
		if _, err := domain.ParseRole(v); err != nil {
			return fmt.Errorf("unknown role %q: want user, admin, superadmin, - or *", v)
		}
	}
	return nil
}

// knownPermission reports whether pattern matches at least one permission
// the service asks about. A row that matches none is most likely a typo; it is
// loaded with a warning rather than rejected, so a policy written for a newer
// version of the service still loads into an older one.
func knownPermission(pattern string) bool {
	for _, p := range domain.Permissions() {
		if util.KeyMatch(string(p), pattern) {
			return true
		}
	}
	return false
}
