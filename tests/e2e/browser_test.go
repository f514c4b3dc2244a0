// Package e2e drives the whole service from the outside, as its users do:
// here through a real browser on the Swagger UI page.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/userservice/userservice/bootstrap"
)

const (
	// browserFlowTimeout bounds the whole click-through; a healthy run takes
	// a few seconds, so reaching it means something hangs.
	browserFlowTimeout = 60 * time.Second
	// browserLifetime leaves room after browserFlowTimeout for the failure
	// screenshot and for closing Chromium.
	browserLifetime = browserFlowTimeout + 30*time.Second
)

// TestSwaggerUIAuthorizesAndCallsUsersMe is the "Done when" of the docs: a
// person opens /docs, logs in through "Authorize" with email and password
// (the OAuth2 password flow of openapi.yaml), runs GET /users/me and sees
// their own profile, with every asset served by the service itself.
func TestSwaggerUIAuthorizesAndCallsUsersMe(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("browser test: skipped in -short mode")
	}
	chrome := chromiumPath(t)

	const email, password = "root@example.com", "correct-horse-battery-staple-42"
	base := startBrowserTestService(t, email, password)

	requests := &requestLog{}
	ctx := newBrowser(t, chrome, requests)
	refused := watchCSP(ctx)
	flow, cancel := context.WithTimeout(ctx, browserFlowTimeout)
	defer cancel()

	// step runs actions and, when one fails, saves what the page showed
	// before failing the test, so a red CI run can be looked at.
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(flow, actions...); err != nil {
			failWithScreenshot(t, ctx, requests, "%s: %v", what, err)
		}
	}
	text := func(what, sel string) string {
		t.Helper()
		s, err := chromedp.Run(flow, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			failWithScreenshot(t, ctx, requests, "%s: %v", what, err)
		}
		return strings.TrimSpace(s)
	}

	// Swagger UI names each operation's block operations-<tag>-<operationId>.
	const me = "#operations-users-getMe"
	// The dialog lists both schemes; only the OAuth2 one has these fields.
	const oauth = `.auth-container:has(#oauth_username)`

	step("open /docs and wait for the operations to render",
		chromedp.Navigate(base+"/docs"),
		chromedp.WaitVisible(chromedp.CSS(me+" .opblock-summary")),
	)
	step("open the Authorize dialog",
		chromedp.Click(chromedp.CSS(".auth-wrapper button.authorize")),
		chromedp.WaitVisible(chromedp.CSS("#oauth_username")),
	)
	// A wrong password first: the token endpoint answers RFC 6749's
	// invalid_grant with an error_description, and Swagger UI shows that
	// sentence (it showed only "Unauthorized" before).
	const wrong = "not-the-password-1"
	step("try a wrong password",
		chromedp.SendKeys(chromedp.CSS("#oauth_username"), email),
		chromedp.SendKeys(chromedp.CSS("#oauth_password"), wrong),
		chromedp.Click(chromedp.CSS(oauth+" .auth-btn-wrapper button.authorize")),
	)
	refusal, err := chromedp.Run(flow, chromedp.Poll[string](`(() => {
		const e = document.querySelector('.auth-container .errors');
		return e ? e.innerText : "";
	})()`, chromedp.WithPollingMutation()))
	if err != nil {
		failWithScreenshot(t, ctx, requests, "waiting for the wrong password's error: %v", err)
	}
	if !strings.Contains(refusal, "Incorrect email or password") || !strings.Contains(refusal, "invalid_grant") {
		failWithScreenshot(t, ctx, requests, "Swagger UI shows %q for a wrong password, want the server's invalid_grant and its description", refusal)
	}
	step("log in with the OAuth2 password flow",
		chromedp.SendKeys(chromedp.CSS("#oauth_password"), strings.Repeat(kb.Backspace, len(wrong))+password),
		chromedp.Click(chromedp.CSS(oauth+" .auth-btn-wrapper button.authorize")),
	)
	// Once the token is in, the scheme offers "Logout"; a refused login
	// shows Swagger UI's error box instead, which fails at once with its
	// text (the wrong password's box is cleared by the new attempt).
	login, err := chromedp.Run(flow, chromedp.Poll[string](`(() => {
		if (document.querySelector('.auth-container button[aria-label="Remove authorization"]')) return "authorized";
		const e = document.querySelector('.auth-container .errors');
		return e && e.innerText !== `+strconv.Quote(refusal)+` ? e.innerText : "";
	})()`, chromedp.WithPollingMutation()))
	if err != nil {
		failWithScreenshot(t, ctx, requests, "waiting for the login to finish: %v", err)
	}
	if login != "authorized" {
		failWithScreenshot(t, ctx, requests, "Authorize refused the login: %s", login)
	}
	step("close the dialog",
		chromedp.Click(chromedp.CSS("button.close-modal")),
		chromedp.WaitNotPresent(chromedp.CSS(".modal-ux")),
	)
	step("expand GET /users/me and try it out",
		chromedp.Click(chromedp.CSS(me+" .opblock-summary-control")),
		chromedp.WaitVisible(chromedp.CSS(me+" button.try-out__btn")),
		chromedp.Click(chromedp.CSS(me+" button.try-out__btn")),
		chromedp.WaitVisible(chromedp.CSS(me+" button.execute")),
		chromedp.Click(chromedp.CSS(me+" button.execute")),
		chromedp.WaitVisible(chromedp.CSS(me+" .live-responses-table tbody .response-col_status")),
	)

	status := text("read the response status", me+" .live-responses-table tbody .response-col_status")
	body := text("read the response body", me+" .live-responses-table tbody .response-col_description")
	if status != "200" {
		failWithScreenshot(t, ctx, requests, "GET /users/me answered %q in Swagger UI, want 200; body: %s", status, body)
	}
	if !strings.Contains(body, `"email": "`+email+`"`) {
		failWithScreenshot(t, ctx, requests, "the response body does not show the user's email %s: %s", email, body)
	}
	if off := requests.offHost(); len(off) > 0 {
		failWithScreenshot(t, ctx, requests, "the page fetched from outside 127.0.0.1 (Swagger UI must work offline): %s", strings.Join(off, ", "))
	}
	// The page worked under its Content-Security-Policy; anything it had to
	// be refused means the policy is wrong for Swagger UI, or the page
	// tries something it should not.
	if r := refused.all(); len(r) > 0 {
		failWithScreenshot(t, ctx, requests, "the Content-Security-Policy of /docs refused:\n  %s", strings.Join(r, "\n  "))
	}
	if !slices.ContainsFunc(requests.all(), func(u string) bool { return strings.HasSuffix(u, "/docs/swagger-ui-bundle.js") }) {
		t.Errorf("the request log saw no /docs/swagger-ui-bundle.js, so it cannot vouch that the page stayed local: %v", requests.all())
	}
}

// watchCSP records, from now on, every console message of the tab that
// reports a Content-Security-Policy refusal.
func watchCSP(ctx context.Context) *messageLog {
	refused := &messageLog{}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if strings.Contains(m.Text, "Content Security Policy") {
				refused.add(m.String())
			}
		}
	}()
	return refused
}

// messageLog is a list of messages safe for concurrent use.
type messageLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *messageLog) add(m string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, m)
}

func (l *messageLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs)
}

// chromiumPath finds the browser: CHROME_PATH, then the names Debian and
// others install it under. Without one the test skips, unless
// TEST_REQUIRE_BROWSER=1 (CI) makes that a failure, so CI cannot go green
// by never opening a browser.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no Chromium: set CHROME_PATH or install it (apt-get install chromium)"
	if os.Getenv("TEST_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg + "; TEST_REQUIRE_BROWSER=1 forbids skipping")
	}
	t.Skip(msg)
	return ""
}

// startBrowserTestService boots the real service in-process on a fresh
// SQLite file with the shipped policy, creates a superadmin with the CLI's
// own command, and returns the base URL.
func startBrowserTestService(t *testing.T, email, password string) string {
	t.Helper()
	policyDir, err := filepath.Abs(filepath.Join("..", "..", "policies"))
	if err != nil {
		t.Fatal(err)
	}
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "userservice.db")
	cfg := bootstrap.Config{
		DatabaseURL: dbURL,
		HTTPAddr:    "127.0.0.1:0",
		// Signed as a SQLite deployment with nothing configured signs:
		// with the key made beside the database.
		JWTKeyFile:  strings.TrimPrefix(dbURL, "sqlite:") + bootstrap.KeyFileSuffix,
		JWTIssuer:   "userservice",
		JWTAudience: "userservice",
		AccessTTL:   15 * time.Minute,
		RefreshTTL:  time.Hour,
		PolicyDir:   policyDir,
		LogLevel:    slog.LevelWarn,
		LogFormat:   "text",
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: cfg.LogLevel}))
	app, err := bootstrap.New(t.Context(), cfg, log)
	if err != nil {
		t.Fatalf("bootstrap.New: %v", err)
	}

	// New has migrated the schema, so the administration command finds it.
	env := map[string]string{"DATABASE_URL": dbURL, "POLICY_DIR": policyDir, "LOG_LEVEL": "warn"}
	var out bytes.Buffer
	code := bootstrap.Main(t.Context(), []string{"superadmin", "--email", email, "--password-stdin"}, bootstrap.Env{
		Getenv: func(k string) string { return env[k] },
		Stdin:  strings.NewReader(password + "\n"),
		Stdout: &out,
		Stderr: &out,
	})
	if code != bootstrap.ExitOK {
		app.Close()
		t.Fatalf("superadmin command exited %d: %s", code, out.String())
	}

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("app.Run: %v", err)
		}
		app.Close()
	})
	// The listener is bound in New, so connections wait in its backlog
	// until Serve picks them up: nothing to poll for.
	return "http://" + app.Addr()
}

// newBrowser starts headless Chromium and returns a tab's context. Every
// request the tab makes is recorded in requests, from the first one on.
func newBrowser(t *testing.T, chrome string, requests *requestLog) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.DisableGPU,
		// The sandbox cannot start as root (CI) nor in containers without
		// user namespaces; the page is our own, so nothing needs confining.
		chromedp.NoSandbox,
		chromedp.WindowSize(1280, 1600),
		chromedp.UserDataDir(t.TempDir()),
	)
	life, cancelLife := context.WithTimeout(context.Background(), browserLifetime)
	alloc, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	ctx, cancelTab := chromedp.NewContext(alloc,
		chromedp.WithListener(requests.listen),
		chromedp.WithErrorf(t.Logf),
	)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelLife()
	})
	// Start the browser now, so a broken install fails here with its own
	// message rather than in the first step.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chrome, err)
	}
	return ctx
}

// failWithScreenshot saves a screenshot of the page into the test's artifact
// directory (kept with go test -artifacts) and fails with the message and
// the requests the page made.
func failWithScreenshot(t *testing.T, ctx context.Context, requests *requestLog, format string, args ...any) {
	t.Helper()
	// The flow's own deadline may be what failed; the browser outlives it.
	shotCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if png, err := chromedp.Run(shotCtx, chromedp.FullScreenshot(100)); err != nil {
		t.Logf("no screenshot: %v", err)
	} else {
		path := filepath.Join(t.ArtifactDir(), "docs-failure.png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Logf("no screenshot: %v", err)
		} else {
			t.Logf("screenshot of the page: %s", path)
		}
	}
	t.Logf("requests made by the page:\n  %s", strings.Join(requests.all(), "\n  "))
	t.Fatalf(format, args...)
}

// requestLog records the URL of every request the tab sends. Its listen
// runs on chromedp's event loop, so it only appends under the lock.
type requestLog struct {
	mu   sync.Mutex
	urls []string
}

func (r *requestLog) listen(ev any) {
	if ev, ok := ev.(*network.EventRequestWillBeSent); ok && ev.Request != nil {
		r.mu.Lock()
		r.urls = append(r.urls, ev.Request.URL)
		r.mu.Unlock()
	}
}

func (r *requestLog) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.urls)
}

// offHost lists the requests that would leave the machine: any network
// scheme to a host other than 127.0.0.1. data: and blob: URLs are the
// page's own bytes.
func (r *requestLog) offHost() []string {
	var off []string
	for _, raw := range r.all() {
		u, err := url.Parse(raw)
		if err != nil {
			off = append(off, fmt.Sprintf("%s (unparsable: %v)", raw, err))
			continue
		}
		switch u.Scheme {
		case "data", "blob", "about":
			continue
		}
		if u.Hostname() != "127.0.0.1" {
			off = append(off, raw)
		}
	}
	return off
}
