package ratelimit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	// go.yaml.in/yaml/v3 is the YAML organisation's continuation of the
	// archived gopkg.in/yaml.v3 (same API, maintained); it is already in
	// the module graph.
	"go.yaml.in/yaml/v3"

	"github.com/userservice/userservice/ports"
)

// limitsFile is the file of the policy directory this package reads.
const limitsFile = "ratelimits.yaml"

// keyKind is what a rule counts requests by.
type keyKind string

const (
	keyIP   keyKind = "ip"   // the client's address (an IPv6 client's /64)
	keyUser keyKind = "user" // the user of a valid access token
)

// defaultRoute in a rule's routes means every request that no rule lists.
const defaultRoute = "*"

// rule is one limit of the file, with the store holding its buckets.
type rule struct {
	name     string
	key      keyKind // empty for a rule applied by name from code (Allow)
	tokens   uint64
	interval time.Duration
	local    bool
	store    Store
}

// sameBuckets reports whether r and o are the same limit, whose store (and
// the budgets in it) a reload may keep.
func (r *rule) sameBuckets(o *rule) bool {
	return r.tokens == o.tokens && r.interval == o.interval && r.local == o.local
}

// route is a request as Echo routes it: the method and the route template
// (c.Path(), e.g. "/api/v1/users/:id").
type route struct{ method, path string }

func (r route) String() string { return r.method + " " + r.path }

// ruleSet is one loaded version of the limits file, never modified once
// built.
type ruleSet struct {
	file     []byte
	rules    []*rule // in file order
	byName   map[string]*rule
	byRoute  map[route][]*rule // in file order
	fallback []*rule           // the rules of every route no rule lists
	exempt   map[route]bool
}

// match returns the rules that apply to a request, in file order.
func (s *ruleSet) match(method, path string) []*rule {
	rt := route{method, path}
	if rules, ok := s.byRoute[rt]; ok {
		return rules
	}
	if s.exempt[rt] {
		return nil
	}
	return s.fallback
}

// limitsDoc is the file's shape. Unknown fields are rejected: a misspelt
// "toknes" must not silently leave a route at the default.
type limitsDoc struct {
	Rules  []ruleDoc `yaml:"rules"`
	Exempt []string  `yaml:"exempt"`
}

type ruleDoc struct {
	Name     string   `yaml:"name"`
	Routes   []string `yaml:"routes"`
	Key      string   `yaml:"key"`
	Tokens   uint64   `yaml:"tokens"`
	Interval string   `yaml:"interval"`
	Local    bool     `yaml:"local"`
}

var (
	ruleName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	// httpMethod is an upper-case method token; Echo compares methods as sent.
	httpMethod = regexp.MustCompile(`^[A-Z]+$`)
)

// readLimits reads and checks the limits file of dir. The file is read
// once, so the checks and the rules see the same bytes even while an editor
// is rewriting it. Stores are not made here.
func readLimits(dir string) (*ruleSet, error) {
	path := filepath.Join(dir, limitsFile)
	data, err := ports.ReadPolicyFile(path)
	if err != nil {
		return nil, err
	}
	set, line, err := parseLimits(data)
	if err != nil {
		return nil, &ports.PolicyFileError{File: path, Line: line, Err: err}
	}
	return set, nil
}

// parseLimits builds a rule set from the file's bytes. On error, line is
// the line at fault when known.
func parseLimits(data []byte) (set *ruleSet, line int, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc limitsDoc
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, 0, errors.New("the file is empty")
		}
		// yaml's messages carry their own line numbers.
		return nil, 0, err
	}
	if len(doc.Rules) == 0 {
		// Far more likely a half-written file than a wish to lift every limit.
		return nil, 0, errors.New("no rules")
	}
	lines := ruleLines(data)
	lineOf := func(i int) int {
		if i < len(lines) {
			return lines[i]
		}
		return 0
	}

	set = &ruleSet{
		file:    data,
		byName:  map[string]*rule{},
		byRoute: map[route][]*rule{},
		exempt:  map[route]bool{},
	}
	for _, raw := range doc.Exempt {
		rt, err := parseRoute(raw)
		if err != nil {
			return nil, 0, fmt.Errorf("exempt: %w", err)
		}
		set.exempt[rt] = true
	}
	for i, d := range doc.Rules {
		r, routes, err := checkRule(d)
		if err == nil && set.byName[r.name] != nil {
			err = fmt.Errorf("rule %q is defined twice", r.name)
		}
		if err != nil {
			return nil, lineOf(i), err
		}
		set.rules = append(set.rules, r)
		set.byName[r.name] = r
		for _, raw := range routes {
			if raw == defaultRoute {
				set.fallback = append(set.fallback, r)
				continue
			}
			rt, err := parseRoute(raw)
			if err != nil {
				return nil, lineOf(i), fmt.Errorf("rule %q: %w", r.name, err)
			}
			if set.exempt[rt] {
				return nil, lineOf(i), fmt.Errorf("rule %q: %s is also listed as exempt", r.name, rt)
			}
			for _, other := range set.byRoute[rt] {
				if other == r {
					return nil, lineOf(i), fmt.Errorf("rule %q lists %s twice", r.name, rt)
				}
			}
			set.byRoute[rt] = append(set.byRoute[rt], r)
		}
	}
	return set, 0, nil
}

// checkRule turns one entry of the file into a rule (without its store).
func checkRule(d ruleDoc) (*rule, []string, error) {
	if !ruleName.MatchString(d.Name) {
		return nil, nil, fmt.Errorf("rule name %q: want 1-63 characters of a-z, 0-9, - and _, starting with a letter or digit", d.Name)
	}
	r := &rule{name: d.Name, tokens: d.Tokens, local: d.Local}
	if d.Tokens == 0 {
		return nil, nil, fmt.Errorf("rule %q: tokens must be at least 1", d.Name)
	}
	interval, err := time.ParseDuration(d.Interval)
	if err != nil {
		return nil, nil, fmt.Errorf("rule %q: interval %q: want a duration such as 1m, 10s or 1h", d.Name, d.Interval)
	}
	if interval < time.Millisecond || interval%time.Millisecond != 0 {
		return nil, nil, fmt.Errorf("rule %q: interval %s: want a whole number of milliseconds, at least 1ms", d.Name, interval)
	}
	r.interval = interval
	// go-limiter's memory store refills interval/tokens tokens per elapsed
	// interval (interval in nanoseconds), capped at tokens: a bucket larger
	// than the square root of that is full once and then starved. Refuse
	// such a rule rather than enforce a budget nobody wrote.
	if max := uint64(math.Sqrt(float64(interval.Nanoseconds()))); d.Tokens > max {
		return nil, nil, fmt.Errorf("rule %q: %d tokens per %s cannot refill (at most %d per %s; use a shorter interval)", d.Name, d.Tokens, interval, max, interval)
	}

	switch {
	case len(d.Routes) == 0 && d.Key != "":
		return nil, nil, fmt.Errorf("rule %q: key applies to routes, and the rule lists none (a rule without routes is applied by name from code, which chooses the key)", d.Name)
	case len(d.Routes) == 0:
	case d.Key == "":
		r.key = keyIP
	default:
		switch k := keyKind(d.Key); k {
		case keyIP, keyUser:
			r.key = k
		case "email":
			// Counting every login per email let anyone lock an account's
			// owner out from anywhere with a few wrong passwords a minute.
			return nil, nil, fmt.Errorf("rule %q: key email is no longer supported: failed logins are counted per account and client network by the rules %s and %s, which do not lock the owner out (see the shipped %s)", d.Name, RuleFailures, RuleFailuresAccount, limitsFile)
		default:
			return nil, nil, fmt.Errorf("rule %q: key %q: want ip or user", d.Name, d.Key)
		}
	}
	return r, d.Routes, nil
}

// parseRoute reads "METHOD /template".
func parseRoute(s string) (route, error) {
	f := strings.Fields(s)
	if len(f) != 2 || !httpMethod.MatchString(f[0]) || !strings.HasPrefix(f[1], "/") {
		return route{}, fmt.Errorf("route %q: want an upper-case method and a route template, e.g. \"GET /api/v1/users/:id\"", s)
	}
	return route{f[0], f[1]}, nil
}

// ruleLines finds the line of each entry of rules, so a rejected rule can
// be pointed at. The file has already been decoded, so failures here only
// mean no line numbers.
func ruleLines(data []byte) []int {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 {
		return nil
	}
	doc := root.Content[0]
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value != "rules" {
			continue
		}
		var lines []int
		for _, n := range doc.Content[i+1].Content {
			lines = append(lines, n.Line)
		}
		return lines
	}
	return nil
}
