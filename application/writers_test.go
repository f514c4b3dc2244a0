package application

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// The writers of a user, found rather than listed. A user is written only
// through the methods of the storage ports below; every method that is not
// known to only read is a writer, so a method added to a port is a writer
// until someone says otherwise here.
var (
	writerPorts = []reflect.Type{
		reflect.TypeFor[ports.UserRepository](),
		reflect.TypeFor[ports.ImportSession](),
	}
	// notWriters are the ports' methods that write no user.
	notWriters = map[string]string{
		"UserRepository.Get":                 "reads",
		"UserRepository.GetByEmail":          "reads",
		"UserRepository.Search":              "reads",
		"UserRepository.Count":               "reads",
		"UserRepository.Ping":                "reads",
		"UserRepository.PasswordHashClasses": "reads",
		"ImportSession.Writers":              "a number",
		"ImportSession.Commit":               "makes durable what Write wrote, each row authorized there",
		"ImportSession.Close":                "rolls back",
	}
	// internalWriters write bookkeeping that is no change of the user; the
	// repository refuses any other change through them (see
	// ports.UserRepository.UpdateInternal), so they need no authorization.
	internalWriters = map[string]bool{"UserRepository.UpdateInternal": true}
	// unauthorizedCallers may write a user without the policy: each guards
	// itself, for a reason the policy cannot express.
	unauthorizedCallers = map[string]string{
		"Auth.SignUp": "anyone may sign up; the role is forced to user and no stored user is touched",
		"Users.EnsureSuperadmin": "operator only (checked first): how the first superadmin comes to be, " +
			"which no policy edit may prevent",
		"Users.promote": "EnsureSuperadmin's, operator only",
	}
)

// writerMethods returns the writer methods of the ports, as
// "Interface.Method".
func writerMethods(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, it := range writerPorts {
		for m := range it.Methods() {
			name := it.Name() + "." + m.Name
			if _, ok := notWriters[name]; !ok {
				out[name] = true
			}
		}
	}
	for name := range notWriters {
		if out[name] {
			t.Fatalf("%s is listed as no writer and found as one", name)
		}
	}
	return out
}

// TestEveryUserWriterIsAuthorized holds every way to write a user to the
// one check, authorizeWrite: the same decision whichever way the write
// comes in (REST, WebSocket, CSV import, a use case added later).
//
// It type-checks this package's source and finds every call of a writer
// method of the storage ports (writerMethods: every method not known to
// only read, so a new method is covered without being listed). Such a call
// must reach authorizeWrite: through the function it is handed (the
// read-modify-write callback of Update, Delete or an import's Write, which
// runs on the stored user, locked, so the decision is made on what is being
// changed), or, for a call handed no function (Create), through the
// function making it. "Reach" follows calls within this package. A writer
// added without the check fails here, whatever its name and wherever it
// lives; the only ways past are internalWriters (the repository refuses any
// visible change through them) and unauthorizedCallers, each with its
// reason, which a reviewer sees change.
func TestEveryUserWriterIsAuthorized(t *testing.T) {
	t.Parallel()
	writers := writerMethods(t)
	fset, files, info, pkg := typeCheckThisPackage(t)
	check := pkg.Scope().Lookup("authorizeWrite")
	if check == nil {
		t.Fatal("authorizeWrite is gone: rename it here too")
	}
	g := newCallGraph(info, pkg)
	for _, f := range files {
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			g.addDecl(fd)
		}
	}

	found := map[string]int{}
	for _, fd := range g.decls {
		caller := declName(fd)
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			method := portMethod(info, call)
			if method == "" || !writers[method] {
				return true
			}
			found[method]++
			at := fset.Position(call.Pos())
			if internalWriters[method] {
				return true
			}
			if _, ok := unauthorizedCallers[caller]; ok {
				return true
			}
			if passThrough(t, info, pkg, fd, method) {
				return true
			}
			var callbacks []ast.Node
			for _, arg := range call.Args {
				if tv, ok := info.Types[arg]; ok {
					if _, isFunc := tv.Type.Underlying().(*types.Signature); isFunc {
						callbacks = append(callbacks, arg)
					}
				}
			}
			if len(callbacks) == 0 {
				if !g.reaches(fd, check) {
					t.Errorf("%s: %s calls %s without authorizeWrite", at, caller, method)
				}
				return true
			}
			for _, cb := range callbacks {
				if !g.nodeReaches(cb, check) {
					t.Errorf("%s: %s hands %s a function that does not call authorizeWrite on the stored user", at, caller, method)
				}
			}
			return true
		})
	}
	// The test must see the writers it guards: Create, Update, Delete and
	// an import's Write are all called somewhere.
	for _, m := range []string{"UserRepository.Create", "UserRepository.Update", "UserRepository.Delete", "ImportSession.Write"} {
		if found[m] == 0 {
			t.Errorf("no call of %s found: the analysis is broken", m)
		}
	}
	for name := range unauthorizedCallers {
		if !slices.ContainsFunc(g.decls, func(fd *ast.FuncDecl) bool { return declName(fd) == name }) {
			t.Errorf("unauthorizedCallers names %s, which is gone: remove it", name)
		}
	}
}

// passThrough reports whether fd is a method of a type that is itself the
// storage port (a decorator, such as the token cache's evicting repository)
// forwarding method to the port it wraps. Every call of the decorator goes
// through the port, where it is held to the check like any other, so the
// forwarding call is not a writer of its own.
func passThrough(t *testing.T, info *types.Info, pkg *types.Package, fd *ast.FuncDecl, method string) bool {
	t.Helper()
	iface, name, _ := strings.Cut(method, ".")
	if fd.Recv == nil || fd.Name.Name != name {
		return false
	}
	fn, ok := info.Defs[fd.Name].(*types.Func)
	if !ok {
		return false
	}
	recv := fn.Type().(*types.Signature).Recv()
	for _, imp := range pkg.Imports() {
		if imp.Path() != "github.com/userservice/userservice/ports" {
			continue
		}
		obj := imp.Scope().Lookup(iface)
		if obj == nil {
			t.Fatalf("ports.%s is gone", iface)
		}
		port, ok := obj.Type().Underlying().(*types.Interface)
		return ok && recv != nil && types.Implements(recv.Type(), port)
	}
	return false
}

// typeCheckThisPackage parses and type-checks the package's non-test files.
func typeCheckThisPackage(t *testing.T) (*token.FileSet, []*ast.File, *types.Info, *types.Package) {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	info := &types.Info{
		Types:      map[ast.Expr]types.TypeAndValue{},
		Uses:       map[*ast.Ident]types.Object{},
		Defs:       map[*ast.Ident]types.Object{},
		Selections: map[*ast.SelectorExpr]*types.Selection{},
	}
	conf := types.Config{Importer: importer.ForCompiler(fset, "source", nil)}
	pkg, err := conf.Check("github.com/userservice/userservice/application", fset, files, info)
	if err != nil {
		t.Fatalf("type-checking the package: %v", err)
	}
	return fset, files, info, pkg
}

// portMethod names the ports interface method call calls, as
// "Interface.Method", or "" when it calls something else.
func portMethod(info *types.Info, call *ast.CallExpr) string {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return ""
	}
	s, ok := info.Selections[sel]
	if !ok || s.Kind() != types.MethodVal {
		return ""
	}
	named, ok := types.Unalias(s.Recv()).(*types.Named)
	if !ok || named.Obj().Pkg() == nil || named.Obj().Pkg().Path() != "github.com/userservice/userservice/ports" {
		return ""
	}
	if _, isInterface := named.Underlying().(*types.Interface); !isInterface {
		return ""
	}
	return named.Obj().Name() + "." + sel.Sel.Name
}

// callGraph is which functions and methods of the package each calls.
type callGraph struct {
	info  *types.Info
	pkg   *types.Package
	decls []*ast.FuncDecl
	byObj map[types.Object]*ast.FuncDecl
}

func newCallGraph(info *types.Info, pkg *types.Package) *callGraph {
	return &callGraph{info: info, pkg: pkg, byObj: map[types.Object]*ast.FuncDecl{}}
}

func (g *callGraph) addDecl(fd *ast.FuncDecl) {
	g.decls = append(g.decls, fd)
	g.byObj[g.info.Defs[fd.Name]] = fd
}

// callees are the package's functions n calls or refers to (a method value
// handed on counts: it will be called).
func (g *callGraph) callees(n ast.Node) []types.Object {
	var out []types.Object
	ast.Inspect(n, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			if obj, ok := g.info.Uses[id].(*types.Func); ok && obj.Pkg() == g.pkg {
				out = append(out, obj)
			}
		}
		return true
	})
	return out
}

// nodeReaches reports whether n (a function body or a function value)
// calls target, directly or through the package's functions.
func (g *callGraph) nodeReaches(n ast.Node, target types.Object) bool {
	seen := map[types.Object]bool{}
	queue := g.callees(n)
	for len(queue) > 0 {
		obj := queue[0]
		queue = queue[1:]
		if obj == target {
			return true
		}
		if seen[obj] {
			continue
		}
		seen[obj] = true
		if fd, ok := g.byObj[obj]; ok {
			queue = append(queue, g.callees(fd.Body)...)
		}
	}
	return false
}

func (g *callGraph) reaches(fd *ast.FuncDecl, target types.Object) bool {
	return g.nodeReaches(fd.Body, target)
}

// declName is "Recv.Name" for a method, "Name" for a function.
func declName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	typ := fd.Recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	if id, ok := typ.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// TestAuthorizeWriteDecisionTable writes out, in the contract's terms, who
// may make which write to whom (the shipped policy, shippedPolicy here),
// and holds authorizeWrite to it for every actor role and every target:
// oneself or another user of each role. The profile and password rows are
// also put through UpdateProfile, the use case behind PUT /users/{id}, which
// must answer the same.
func TestAuthorizeWriteDecisionTable(t *testing.T) {
	t.Parallel()
	plain := func(r domain.Role) bool { return r == domain.RoleUser || r == domain.RoleAdmin }
	// profile: "update own profile: everyone; another's: admins on users,
	// superadmins on anyone".
	profile := func(a domain.Role, self bool, target domain.Role) bool {
		return self || a == domain.RoleSuperadmin || (a == domain.RoleAdmin && target == domain.RoleUser)
	}
	// roleTo: "admins between user and admin on users who are not
	// superadmin; superadmins any role, anyone; never one's own".
	roleTo := func(to domain.Role) func(domain.Role, bool, domain.Role) bool {
		return func(a domain.Role, self bool, target domain.Role) bool {
			return !self && (a == domain.RoleSuperadmin || (a == domain.RoleAdmin && plain(target) && plain(to)))
		}
	}
	rows := []struct {
		name    string
		write   userWrite
		allowed func(actor domain.Role, self bool, target domain.Role) bool
		put     *ports.UpdateUserRequest // the same write as PUT, when it is one
	}{
		{"profile", userWrite{perm: domain.PermUsersUpdate}, profile,
			&ports.UpdateUserRequest{Patch: domain.ProfilePatch{FirstName: ptr("Eve")}}},
		{"password", userWrite{perm: domain.PermUsersUpdate, password: true},
			// "one's own: unaffected; another's: users.password.update,
			// superadmin only"
			func(a domain.Role, self bool, target domain.Role) bool { return self || a == domain.RoleSuperadmin },
			&ports.UpdateUserRequest{Password: ptr("brand new one")}},
		{"delete", userWrite{perm: domain.PermUsersDelete},
			func(a domain.Role, _ bool, _ domain.Role) bool { return a == domain.RoleSuperadmin }, nil},
		{"role to admin", userWrite{perm: domain.PermUsersRoleUpdate, newRole: domain.RoleAdmin}, roleTo(domain.RoleAdmin), nil},
		{"role to superadmin", userWrite{perm: domain.PermUsersRoleUpdate, newRole: domain.RoleSuperadmin}, roleTo(domain.RoleSuperadmin), nil},
		// An import row naming a role: the profile rule and, for another
		// role than the stored one, the role rule.
		{"profile with role admin", userWrite{perm: domain.PermUsersUpdate, newRole: domain.RoleAdmin},
			func(a domain.Role, self bool, target domain.Role) bool {
				return profile(a, self, target) && (target == domain.RoleAdmin || roleTo(domain.RoleAdmin)(a, self, target))
			}, nil},
	}
	ctx := context.Background()
	for _, row := range rows {
		for _, actorRole := range domain.Roles() {
			for _, self := range []bool{true, false} {
				targets := domain.Roles()
				if self {
					targets = []domain.Role{actorRole}
				}
				for _, targetRole := range targets {
					name := fmt.Sprintf("%s/%s on %s", row.name, actorRole, targetRole)
					if self {
						name = fmt.Sprintf("%s/%s on self", row.name, actorRole)
					}
					f := newFixture(t)
					f.authz.set(shippedPolicy)
					actorUser := f.seed(t, 1, actorRole, "mine-secret")
					target := actorUser
					if !self {
						target = f.seed(t, 2, targetRole, "theirs-secret")
					}
					actor := actorOf(actorUser)
					want := row.allowed(actorRole, self, targetRole)
					err := authorizeWrite(ctx, f.authz, actor, target, row.write)
					if err != nil && !errors.Is(err, domain.ErrForbidden) {
						t.Fatalf("%s: %v", name, err)
					}
					if got := err == nil; got != want {
						t.Errorf("%s: authorizeWrite allowed=%v, the contract says %v", name, got, want)
					}
					if row.put == nil {
						continue
					}
					req := *row.put
					if self && req.Password != nil {
						req.CurrentPassword = ptr("mine-secret")
					}
					_, err = f.users.UpdateProfile(ctx, actor, target.ID(), req)
					if err != nil && !errors.Is(err, domain.ErrForbidden) {
						t.Fatalf("%s: UpdateProfile: %v", name, err)
					}
					if got := err == nil; got != want {
						t.Errorf("%s: UpdateProfile allowed=%v, authorizeWrite and the contract say %v", name, got, want)
					}
				}
			}
		}
	}
}
