package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/userservice/userservice/tests/harness"
)

// consoleFlowTimeout bounds one role's walk through the console.
const consoleFlowTimeout = 90 * time.Second

// consoleBrowser drives one tab through the console and fails with a
// screenshot and the page's requests when a step does not happen.
type consoleBrowser struct {
	t        *testing.T
	ctx      context.Context
	base     string
	requests *requestLog
	shots    string
}

func (b *consoleBrowser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, consoleFlowTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		failWithScreenshot(b.t, b.ctx, b.requests, "%s: %v", what, err)
	}
}

// eval runs a JavaScript expression and returns its value as a string.
func (b *consoleBrowser) eval(what, js string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		failWithScreenshot(b.t, b.ctx, b.requests, "%s: %v", what, err)
	}
	return out
}

// waitFor polls a JavaScript condition until it is true, within limit.
func (b *consoleBrowser) waitFor(what, js string, limit time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, limit+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(limit), chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		failWithScreenshot(b.t, b.ctx, b.requests, "%s (waited %s for %s): %v", what, limit, js, err)
	}
}

// signIn opens the console afresh (the token lives in the page's memory,
// so a new load signs out) and signs in.
func (b *consoleBrowser) signIn(email, password string) {
	b.t.Helper()
	b.run("open the console",
		chromedp.Navigate("about:blank"),
		chromedp.Navigate(b.base+"/console"),
		chromedp.WaitVisible(chromedp.CSS("#signin input[name=username]")),
		chromedp.SendKeys(chromedp.CSS("#signin input[name=username]"), email),
		chromedp.SendKeys(chromedp.CSS("#signin input[name=password]"), password),
		chromedp.Click(chromedp.CSS("#signin button[type=submit]")),
	)
}

// nav is the navigation's labels.
func (b *consoleBrowser) nav() []string {
	b.t.Helper()
	b.waitFor("the navigation", `document.querySelectorAll('#nav a').length > 0`, 10*time.Second)
	s := b.eval("read the navigation", `[...document.querySelectorAll('#nav a')].map(a => a.textContent).join('|')`)
	return strings.Split(s, "|")
}

// offered is what the user page offers, from its list of actions.
func (b *consoleBrowser) offered(id int64) []string {
	b.t.Helper()
	b.run("open a user's page", chromedp.Navigate(fmt.Sprintf("%s/console#/users/%d", b.base, id)))
	b.waitFor("the user's page", `!!document.querySelector('#offered li')`, 10*time.Second)
	s := b.eval("read the offered actions", `[...document.querySelectorAll('#offered li[data-action]')].map(l => l.dataset.action).join('|')`)
	if s == "" {
		return nil
	}
	return strings.Split(s, "|")
}

// shoot saves the page at a desktop and a phone size, and fails when the
// page is wider than the window (a layout that overflows).
func (b *consoleBrowser) shoot(name string) {
	b.t.Helper()
	for _, size := range []struct {
		w, h int64
		tag  string
	}{{1400, 900, "desktop"}, {390, 844, "phone"}} {
		opts := []chromedp.EmulateViewportOption{}
		if size.tag == "phone" {
			opts = append(opts, chromedp.EmulateMobile)
		}
		b.run("resize for "+name, chromedp.EmulateViewport(size.w, size.h, opts...))
		b.waitFor("layout at "+size.tag, `document.readyState === 'complete'`, 5*time.Second)
		overflow := b.eval("measure "+name, `String(document.documentElement.scrollWidth - window.innerWidth)`)
		if overflow != "0" {
			b.t.Errorf("%s at %dx%d: the page is %s px wider than the window", name, size.w, size.h, overflow)
		}
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			b.t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(b.shots, fmt.Sprintf("%s-%s.png", name, size.tag))
		if err := os.WriteFile(path, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.run("back to the desktop size", chromedp.EmulateViewport(1400, 900))
}

// startConsoleTest finds the browser and starts the service on SQLite with
// a superadmin, or skips in -short mode.
func startConsoleTest(t *testing.T) (chrome string, s *harness.Service, root *harness.Account) {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: skipped in -short mode")
	}
	chrome = chromiumPath(t)
	s = harness.Start(t, harness.SQLite, harness.Options{Quiet: true})
	return chrome, s, s.SeedSuperadmin(t)
}

// TestConsole signs in to /console as each role and checks what each page
// offers, that the users table follows changes made through the REST API
// within a second, that an import runs as a dry run and then for real with
// its progress and report, that an imported user must choose a password,
// and that the console keeps to its own origin, its CSP and memory-only
// tokens. Screenshots of every page at 1400x900 and 390x844 are written to
// a temporary folder named in the log.
func TestConsole(t *testing.T) {
	t.Parallel()
	chrome, s, root := startConsoleTest(t)
	admin := s.Create(t, root, "admin")
	plain := s.Create(t, root, "user")
	other := s.Create(t, root, "user")

	shots, err := os.MkdirTemp("", "console-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("console screenshots: %s", shots)

	requests := &requestLog{}
	ctx := newBrowser(t, chrome, requests)
	refused := watchCSP(ctx)
	b := &consoleBrowser{t: t, ctx: ctx, base: s.Base, requests: requests, shots: shots}
	b.run("desktop size", chromedp.EmulateViewport(1400, 900))

	// A wrong password is said next to the form.
	b.signIn(root.Email, "not-the-password")
	b.waitFor("the refusal", `document.querySelector('#signin .form-error')?.textContent.includes('Incorrect email or password')`, 10*time.Second)
	// The first load fetched each asset once (the modules preloaded
	// together, not discovered import by import).
	seen := map[string]int{}
	for _, u := range requests.all() {
		if strings.Contains(u, "/console/assets/") {
			seen[u]++
		}
	}
	if len(seen) < 9 {
		t.Errorf("the first load fetched %d assets: %v", len(seen), seen)
	}
	for u, n := range seen {
		if n != 1 {
			t.Errorf("the first load fetched %s %d times", u, n)
		}
	}
	b.shoot("signin")

	// Superadmin: every page.
	b.signIn(root.Email, root.Password)
	if got, want := b.nav(), []string{"Overview", "Users", "My profile", "Import", "Policy"}; !slices.Equal(got, want) {
		t.Errorf("superadmin's navigation = %v, want %v", got, want)
	}
	b.waitFor("the overview's counts", `document.querySelector('#counts')?.textContent.includes('Superadmins')`, 10*time.Second)
	b.waitFor("the chart", `document.querySelectorAll('#activity svg rect').length >= 60`, 10*time.Second)
	b.shoot("overview")

	b.run("open the users table", chromedp.Navigate(s.Base+"/console#/users"))
	b.waitFor("the table's rows", fmt.Sprintf(`!!document.querySelector('tr[data-id="%d"]')`, plain.ID), 10*time.Second)
	b.waitFor("the live connection", `document.querySelector('#live')?.textContent === 'Live'`, 10*time.Second)
	// The table subscribes before it reads the page; give the filters a
	// search too, to check every filter reaches the query.
	b.run("filter by role user",
		chromedp.SetValue(chromedp.CSS(`#filters select[name=role]`), "user"),
		chromedp.Click(chromedp.CSS(`#filters button[type=submit]`)),
	)
	b.waitFor("the filtered table", fmt.Sprintf(`!!document.querySelector('tr[data-id="%d"]') && !document.querySelector('tr[data-id="%d"]')`, plain.ID, admin.ID), 10*time.Second)
	b.waitFor("the subscription for the filter", `document.querySelector('#live')?.textContent === 'Live'`, 10*time.Second)

	// Changes made through the REST API show within a second, marked.
	s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(plain.ID), root.Access, map[string]any{"first_name": "Livechanged"})
	b.waitFor("the changed row", fmt.Sprintf(`!!document.querySelector('tr[data-id="%d"].mark-changed') && document.querySelector('tr[data-id="%d"]').textContent.includes('Livechanged')`, plain.ID, plain.ID), time.Second)
	created := s.Create(t, root, "user")
	b.waitFor("the new row", fmt.Sprintf(`!!document.querySelector('tr[data-id="%d"].mark-new')`, created.ID), time.Second)
	s.Expect(t, http.StatusNoContent, http.MethodDelete, harness.UserPath(created.ID), root.Access, nil)
	b.waitFor("the deleted row", fmt.Sprintf(`!!document.querySelector('tr[data-id="%d"].mark-deleted')`, created.ID), time.Second)
	b.shoot("users")

	if got, want := b.offered(plain.ID), []string{"edit", "role", "password", "delete", "history"}; !slices.Equal(got, want) {
		t.Errorf("superadmin on a user's page is offered %v, want %v", got, want)
	}
	b.waitFor("the history", `document.querySelectorAll('#history tbody tr').length >= 2`, 10*time.Second)
	b.shoot("user")
	// A 422's field errors show next to their fields.
	b.run("save an invalid email",
		chromedp.SetValue(chromedp.CSS(`#edit input[name=email]`), "not-an-email"),
		chromedp.Click(chromedp.CSS(`#edit button[type=submit]`)),
	)
	b.waitFor("the email's error beside it", `document.querySelector('#edit [data-field=email] .error')?.textContent.length > 0`, 10*time.Second)
	if got := b.offered(root.ID); !slices.Equal(got, []string{"edit", "password", "history"}) {
		t.Errorf("superadmin on their own page is offered %v, want edit, password, history (never their own role, nor deleting the last superadmin)", got)
	}

	b.run("open the policy", chromedp.Navigate(s.Base+"/console#/policy"))
	b.waitFor("the policy matrix", `!!document.querySelector('#policy tbody th') && [...document.querySelectorAll('#policy tbody th')].some(th => th.textContent === 'policy.read')`, 10*time.Second)
	b.shoot("policy")

	// Import: the dry run first, then the real import.
	fixture, err := filepath.Abs(filepath.Join("..", "fixtures", "users.csv"))
	if err != nil {
		t.Fatal(err)
	}
	b.run("open the import", chromedp.Navigate(s.Base+"/console#/import"))
	b.waitFor("the import form", `!!document.querySelector('#import input[type=file]')`, 10*time.Second)
	if b.eval("the Import button", `String(document.querySelector('#run-import').disabled)`) != "true" {
		t.Error("Import is offered before a dry run")
	}
	b.run("choose the sample file and run a dry run",
		chromedp.SetUploadFiles(chromedp.CSS(`#import input[type=file]`), []string{fixture}),
		chromedp.Click(chromedp.CSS("#dry-run")),
	)
	b.waitFor("the progress indicator", `!!document.querySelector('#progress:not([hidden]) progress')`, 10*time.Second)
	b.waitFor("the dry run's report", `document.querySelector('#report h2')?.textContent.startsWith('Dry run report')`, 30*time.Second)
	if got := b.eval("the dry run's progress", `document.querySelector('#progress-text').textContent`); !strings.HasPrefix(got, "Done: 1000 rows read") {
		t.Errorf("dry run progress says %q", got)
	}
	b.waitFor("Import offered after the dry run", `document.querySelector('#run-import').disabled === false`, 5*time.Second)
	b.run("run the import", chromedp.Click(chromedp.CSS("#run-import")))
	b.waitFor("the import's report", `document.querySelector('#report h2')?.textContent === 'Import report'`, 60*time.Second)
	if got := b.eval("the import's counts", `document.querySelector('#report .counts').textContent`); !strings.Contains(got, "Imported1000") {
		t.Errorf("the import's report says %q, want 1000 imported", got)
	}
	b.shoot("import")

	// Cursor paging through the imported users, sorted by email descending.
	b.run("open the users table sorted",
		chromedp.Navigate(s.Base+"/console#/users"),
		chromedp.WaitVisible(chromedp.CSS(`#filters select[name=sort]`)),
		chromedp.SetValue(chromedp.CSS(`#filters select[name=sort]`), "-email"),
		chromedp.SetValue(chromedp.CSS(`#filters input[name=email]`), "@gmail.com"),
		chromedp.Click(chromedp.CSS(`#filters button[type=submit]`)),
	)
	// The table answers the new query once every row is a Gmail user.
	b.waitFor("page 1", `document.querySelector('#summary').textContent.startsWith('Page 1 of ') && document.querySelectorAll('#users tbody tr').length === 20 && [...document.querySelectorAll('#users tbody tr')].every(r => r.cells[3].textContent.endsWith('@gmail.com'))`, 10*time.Second)
	first := b.eval("page 1's emails", `[...document.querySelectorAll('#users tbody tr')].map(r => r.cells[3].textContent).join(' ')`)
	b.run("next page", chromedp.Click(chromedp.CSS("#next")))
	b.waitFor("page 2", `document.querySelector('#summary').textContent.startsWith('Page 2 of ')`, 10*time.Second)
	second := b.eval("page 2's emails", `[...document.querySelectorAll('#users tbody tr')].map(r => r.cells[3].textContent).join(' ')`)
	f, sec := strings.Fields(first), strings.Fields(second)
	if len(sec) != 20 || sec[0] >= f[len(f)-1] || !slices.IsSortedFunc(append(f, sec...), func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("pages 1 and 2 are not the next 20 by email descending:\n%s\n%s", first, second)
	}
	for _, e := range append(f, sec...) {
		if !strings.Contains(e, "@gmail.com") {
			t.Errorf("the email filter let %s through", e)
		}
	}
	b.run("previous page", chromedp.Click(chromedp.CSS("#prev")))
	b.waitFor("page 1 again", `document.querySelector('#summary').textContent.startsWith('Page 1 of ')`, 10*time.Second)
	b.run("back to the import", chromedp.Navigate(s.Base+"/console#/import"))
	b.waitFor("the import form", `!!document.querySelector('#import input[type=file]')`, 10*time.Second)

	// A file with bad rows: the report lists them, and the rejected rows
	// download as CSV cut from the file itself, problems in a last column.
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads}); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.csv")
	badCSV := "first_name,last_name,email,gender,ip_address\n" +
		"Good,Row," + harness.Email("good") + ",Female,\n" +
		"\"Multi\nLine\",Row,not-an-email,Female,\n" +
		"Third,Row," + harness.Email("third") + ",Unknown,10.0.0.1\n"
	if err := os.WriteFile(bad, []byte(badCSV), 0o644); err != nil {
		t.Fatal(err)
	}
	b.run("dry-run a file with bad rows",
		chromedp.SetUploadFiles(chromedp.CSS(`#import input[type=file]`), []string{bad}),
		chromedp.Click(chromedp.CSS("#dry-run")),
	)
	b.waitFor("the rejected rows offered", `!!document.querySelector('#download-rejected')`, 30*time.Second)
	if got := b.eval("the report's errors", `[...document.querySelectorAll('#report-errors tbody tr')].map(r => r.cells[0].textContent + ':' + r.cells[1].textContent).join(' ')`); got != "3:first_name 3:email 5:gender" {
		t.Errorf("the report lists %q, want 3:first_name 3:email 5:gender", got)
	}
	b.shoot("import-rejected")
	b.run("download the rejected rows", chromedp.Click(chromedp.CSS("#download-rejected")))
	var rejected []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		if rejected, err = os.ReadFile(filepath.Join(downloads, "bad-rejected.csv")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bad-rejected.csv downloaded: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := "first_name,last_name,email,gender,ip_address,problems\r\n" +
		"\"Multi\nLine\",Row,not-an-email,Female,,\"first_name: "
	if !strings.HasPrefix(string(rejected), want) || !strings.Contains(string(rejected), "\r\nThird,Row,") || strings.Contains(string(rejected), "Good,Row") {
		t.Errorf("the rejected rows downloaded as:\n%s", rejected)
	}

	// Admin: no import, no policy; may manage plain users, not superadmins.
	b.signIn(admin.Email, admin.Password)
	if got, want := b.nav(), []string{"Overview", "Users", "My profile"}; !slices.Equal(got, want) {
		t.Errorf("admin's navigation = %v, want %v", got, want)
	}
	// Not the password: setting another account's is users.password.update,
	// a superadmin's in the shipped policy.
	if got, want := b.offered(other.ID), []string{"edit", "role"}; !slices.Equal(got, want) {
		t.Errorf("admin on a user's page is offered %v, want %v", got, want)
	}
	if got := b.eval("the role choices", `[...document.querySelectorAll('#role option')].map(o => o.value).join(',')`); got != "user,admin" {
		t.Errorf("admin may give roles %q, want user,admin", got)
	}
	if got := b.offered(root.ID); len(got) != 0 {
		t.Errorf("admin on a superadmin's page is offered %v, want nothing", got)
	}

	// User: a list, their own profile.
	b.signIn(plain.Email, plain.Password)
	if got, want := b.nav(), []string{"Users", "My profile"}; !slices.Equal(got, want) {
		t.Errorf("user's navigation = %v, want %v", got, want)
	}
	b.waitFor("the list", fmt.Sprintf(`!!document.querySelector('tr[data-id="%d"]')`, other.ID), 10*time.Second)
	if b.eval("the search filters", `String(!!document.querySelector('#filters input[name=email]'))`) != "false" {
		t.Error("a user, who may not search, is offered the search filters")
	}
	if got, want := b.offered(plain.ID), []string{"edit", "password"}; !slices.Equal(got, want) {
		t.Errorf("user on their own page is offered %v, want %v", got, want)
	}
	if got := b.offered(other.ID); len(got) != 0 {
		t.Errorf("user on another user's page is offered %v, want nothing", got)
	}

	// An imported user with the import's default password must choose one.
	const initial = "import-default-password-1"
	email := harness.Email("forced")
	csv := "first_name,last_name,email,gender,ip_address\nForced,Change," + email + ",Female,\n"
	s.Expect(t, http.StatusOK, http.MethodPost, "/api/v1/users/import?"+url.Values{"default_password": {initial}}.Encode(),
		root.Access, harness.RawBody{ContentType: "text/csv", Data: csv})
	b.signIn(email, initial)
	b.waitFor("the forced password change", `!!document.querySelector('#change-password')`, 10*time.Second)
	b.shoot("password-change")
	newPassword := s.Password()
	b.run("choose a new password",
		chromedp.SendKeys(chromedp.CSS(`#change-password input[name=password]`), newPassword),
		chromedp.SendKeys(chromedp.CSS(`#change-password input[name=confirm]`), newPassword),
		chromedp.Click(chromedp.CSS(`#change-password button[type=submit]`)),
	)
	if got, want := b.nav(), []string{"Users", "My profile"}; !slices.Equal(got, want) {
		t.Errorf("after the forced change, navigation = %v, want %v", got, want)
	}
	s.Login(t, &harness.Account{Email: email, Password: newPassword})

	// Nothing kept in storage, nothing fetched elsewhere, nothing refused.
	if got := b.eval("storage", `JSON.stringify([localStorage.length, sessionStorage.length, document.cookie])`); got != `[0,0,""]` {
		t.Errorf("the console stored something (localStorage, sessionStorage, cookies): %s", got)
	}
	if off := requests.offHost(); len(off) > 0 {
		t.Errorf("the console fetched from outside 127.0.0.1: %s", strings.Join(off, ", "))
	}
	if r := refused.all(); len(r) > 0 {
		t.Errorf("the Content-Security-Policy of /console refused:\n  %s", strings.Join(r, "\n  "))
	}
	if !slices.ContainsFunc(requests.all(), func(u string) bool { return strings.Contains(u, "/console/assets/") && strings.HasSuffix(u, "/app.js") }) {
		t.Errorf("the request log saw no console module, so it cannot vouch for the page: %v", requests.all())
	}
}

// cuttableProxy stands between the browser and the service so the test can
// cut the console's WebSocket, as a network does, and refuse it for a
// while: every upgraded connection it carries is closed by cut.
type cuttableProxy struct {
	mu      sync.Mutex
	conns   []net.Conn
	refuse  bool
	backend *url.URL
}

func (p *cuttableProxy) handler() http.Handler {
	rp := httputil.NewSingleHostReverseProxy(p.backend)
	rp.Transport = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
		}
		return c, err
	}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse && strings.HasSuffix(r.URL.Path, "/ws") {
			http.Error(w, "cut", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	})
}

// cut closes every connection to the service and refuses WebSockets until
// restore.
func (p *cuttableProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cuttableProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = false
}

// TestConsoleReconnectsAndMissesNothing cuts the console's WebSocket: the
// page says the live updates are lost, and once it reconnects (resuming
// with since_seq) a change made while it was cut off shows in the table.
func TestConsoleReconnectsAndMissesNothing(t *testing.T) {
	t.Parallel()
	chrome, s, root := startConsoleTest(t)
	victim := s.Create(t, root, "user")
	backend, err := url.Parse(s.Base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &cuttableProxy{backend: backend}
	front := httptest.NewServer(proxy.handler())
	t.Cleanup(front.Close)

	requests := &requestLog{}
	ctx := newBrowser(t, chrome, requests)
	refused := watchCSP(ctx)
	b := &consoleBrowser{t: t, ctx: ctx, base: front.URL, requests: requests}
	b.signIn(root.Email, root.Password)
	b.run("open the users table", chromedp.Navigate(front.URL+"/console#/users"))
	b.waitFor("the victim's row", fmt.Sprintf(`!!document.querySelector('tr[data-id="%d"]')`, victim.ID), 10*time.Second)
	b.waitFor("the live connection", `document.querySelector('#live')?.textContent === 'Live'`, 10*time.Second)

	proxy.cut()
	b.waitFor("the loss shown", `document.querySelector('#live')?.textContent.startsWith('Live updates lost')`, 10*time.Second)
	// Made while the console cannot hear of it.
	s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(victim.ID), root.Access, map[string]any{"last_name": "Whilecut"})
	if b.eval("the row while cut off", fmt.Sprintf(`String(document.querySelector('tr[data-id="%d"]').textContent.includes('Whilecut'))`, victim.ID)) != "false" {
		t.Fatal("the row changed while the WebSocket was cut")
	}
	proxy.restore()
	b.waitFor("the reconnection", `document.querySelector('#live')?.textContent === 'Live'`, 15*time.Second)
	b.waitFor("the missed change replayed", fmt.Sprintf(`!!document.querySelector('tr[data-id="%d"].mark-changed') && document.querySelector('tr[data-id="%d"]').textContent.includes('Whilecut')`, victim.ID, victim.ID), 5*time.Second)
	if r := refused.all(); len(r) > 0 {
		t.Errorf("the Content-Security-Policy of /console refused:\n  %s", strings.Join(r, "\n  "))
	}
}

// TestConsoleShowsTheWaitOfA429: under the shipped limits (5 logins a
// minute per email), the sign-in form says how long to wait and keeps its
// button disabled meanwhile.
func TestConsoleShowsTheWaitOfA429(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("browser test: skipped in -short mode")
	}
	chrome := chromiumPath(t)
	s := harness.Start(t, harness.SQLite, harness.Options{Quiet: true, ShippedLimits: true})
	requests := &requestLog{}
	ctx := newBrowser(t, chrome, requests)
	b := &consoleBrowser{t: t, ctx: ctx, base: s.Base, requests: requests}
	b.run("open the console",
		chromedp.Navigate(s.Base+"/console"),
		chromedp.WaitVisible(chromedp.CSS("#signin input[name=username]")),
		chromedp.SendKeys(chromedp.CSS("#signin input[name=username]"), "nobody@example.com"),
		chromedp.SendKeys(chromedp.CSS("#signin input[name=password]"), "wrong-password"),
	)
	for i := 0; ; i++ {
		if i == 10 {
			t.Fatal("ten refused logins and no 429 shown")
		}
		b.waitFor("the button", `document.querySelector('#signin button').disabled === false`, 10*time.Second)
		b.run("submit", chromedp.Click(chromedp.CSS("#signin button[type=submit]")))
		b.waitFor("an answer", `document.querySelector('#signin .form-error').textContent !== ''`, 10*time.Second)
		msg := b.eval("the message", `document.querySelector('#signin .form-error').textContent`)
		if strings.HasPrefix(msg, "Too many attempts: try again in ") {
			if b.eval("the button", `String(document.querySelector('#signin button').disabled)`) != "true" {
				t.Error("the button stays enabled during the wait")
			}
			return
		}
		if !strings.Contains(msg, "Incorrect email or password") {
			t.Fatalf("login refused with %q", msg)
		}
		// Cleared, so the next answer is seen as new.
		b.eval("clear the message", `document.querySelector('#signin .form-error').textContent = ''`)
	}
}
