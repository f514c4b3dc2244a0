// Package walkthrough runs the README's quick start as written, against the built
// binary on SQLite: the operator's commands and the curl session in bash, the
// WebSocket step with a WebSocket client, each output checked against the
// `# -> ...` line the README shows under its command. A README edit that breaks
// the walk-through, or a change of the service that makes the README wrong,
// fails here.
//
// The README's conventions this reads: its ```sh blocks under "## Quick start"
// (but the one of `make run` and `make test`), "### A session with curl" and
// "### Watching changes on a WebSocket"; `# -> PATTERN` after a command is its
// output, `...` matching anything; in the WebSocket block, a line that starts
// with `{` is a message sent, `# -> PATTERN` the next message received, and
// `# in another terminal: COMMAND` a shell command run meanwhile.
package walkthrough

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/userservice/userservice/tests/testutil"
)

const repoRoot = "../.."

// step is one command of a shell block and what it must print.
type step struct {
	command string
	want    []string // patterns, one per `# -> ` line under the command
}

func TestREADMEWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README's walk-through needs %s (Debian: apt-get install %s)", tool, tool)
		}
	}
	blocks := readmeBlocks(t)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "userservice")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"DATABASE_URL=sqlite:" + filepath.Join(dir, "userservice.db"),
		"HTTP_ADDR=" + addr, "POLICY_DIR=" + filepath.Join(root, "policies"),
	}
	serve(t, bin, root, env, addr)

	// The shell blocks run as one script, so $API and $TOKEN carry over.
	rewrite := strings.NewReplacer("bin/userservice", bin, "localhost:8000", addr)
	var steps []step
	for _, b := range blocks.shell {
		steps = append(steps, parseShell(t, rewrite.Replace(b))...)
	}
	outputs, vars := runScript(t, root, env, steps)
	for i, s := range steps {
		for _, want := range s.want {
			if !matches(want, outputs[i]) {
				t.Errorf("README: %s\nprinted:\n%s\nthe README shows:\n%s", s.command, outputs[i], want)
			}
		}
	}
	if t.Failed() {
		return
	}
	webSocketStep(t, rewrite.Replace(blocks.ws), root, append(env, "API="+vars["API"], "TOKEN="+vars["TOKEN"]), addr, vars["TOKEN"])
}

// blocks are the README's walk-through blocks.
type blocks struct {
	shell []string
	ws    string
}

// readmeBlocks finds the ```sh blocks of the walk-through in the README.
func readmeBlocks(t *testing.T) blocks {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var b blocks
	section, in, cur := "", false, []string{}
	for line := range strings.Lines(string(readme)) {
		line = strings.TrimRight(line, "\n")
		switch {
		case !in && strings.HasPrefix(line, "#"):
			section = strings.TrimSpace(strings.TrimLeft(line, "#"))
		case !in && line == "```sh":
			in, cur = true, nil
		case in && line == "```":
			in = false
			text := strings.Join(cur, "\n")
			switch {
			case section == "Quick start" && !strings.Contains(text, "make run"),
				section == "A session with curl":
				b.shell = append(b.shell, text)
			case section == "Watching changes on a WebSocket" && b.ws == "":
				b.ws = text
			}
		case in:
			cur = append(cur, line)
		}
	}
	if len(b.shell) != 2 || b.ws == "" {
		t.Fatalf("README.md: found %d shell blocks and a WebSocket block %v; want the operator's block, the curl session and the WebSocket block", len(b.shell), b.ws != "")
	}
	return b
}

// parseShell splits a block into commands (continuation lines joined) with the
// `# -> ` lines under each.
func parseShell(t *testing.T, block string) []step {
	t.Helper()
	var steps []step
	var pending string
	for line := range strings.Lines(block) {
		line = strings.TrimRight(line, "\n")
		trimmed := strings.TrimSpace(line)
		switch {
		case pending != "":
			pending += "\n" + line
		case strings.HasPrefix(trimmed, "# -> "):
			if len(steps) == 0 {
				t.Fatalf("README: %q comes before any command", line)
			}
			steps[len(steps)-1].want = append(steps[len(steps)-1].want, strings.TrimPrefix(trimmed, "# -> "))
			continue
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			continue
		default:
			pending = line
		}
		if strings.HasSuffix(pending, "\\") {
			continue
		}
		steps = append(steps, step{command: pending})
		pending = ""
	}
	return steps
}

// runScript runs the steps in one bash, each output after a marker line, and
// returns each step's output and the variables API and TOKEN at the end.
func runScript(t *testing.T, dir string, env []string, steps []step) ([]string, map[string]string) {
	t.Helper()
	const marker = "@@walkthrough-step@@"
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for _, s := range steps {
		fmt.Fprintf(&script, "echo %s\n%s\n", marker, s.command)
	}
	fmt.Fprintf(&script, "echo %s\necho \"API=$API\"\necho \"TOKEN=$TOKEN\"\n", marker)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	chunks := strings.Split(string(out), marker+"\n")
	if err != nil || len(chunks) != len(steps)+2 {
		t.Fatalf("the README's commands: %v after %d of %d steps\nstdout:\n%s\nstderr:\n%s", err, len(chunks)-1, len(steps), out, stderr)
	}
	vars := map[string]string{}
	for line := range strings.Lines(chunks[len(chunks)-1]) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			vars[k] = v
		}
	}
	if vars["TOKEN"] == "" || vars["TOKEN"] == "null" {
		t.Fatalf("the README's session left no token: %v", vars)
	}
	return chunks[1 : len(chunks)-1], vars
}

// matches reports whether out (trimmed) is pattern, `...` matching anything.
func matches(pattern, out string) bool {
	parts := strings.Split(pattern, "...")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	re := regexp.MustCompile(`(?s)^` + strings.Join(parts, ".*?") + `$`)
	return re.MatchString(strings.TrimSpace(out))
}

// webSocketStep plays the README's WebSocket block: messages sent, commands run
// "in another terminal", and each `# -> ` the next message received.
func webSocketStep(t *testing.T, block, dir string, env []string, addr, token string) {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + token}}
	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/api/v1/users/ws", h)
	if err != nil {
		t.Fatalf("connecting to the WebSocket as the README does: %v (%v)", err, resp)
	}
	defer conn.Close()
	const other = "# in another terminal: "
	for line := range strings.Lines(block) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "{"):
			if err := conn.WriteMessage(websocket.TextMessage, []byte(line)); err != nil {
				t.Fatalf("sending %s: %v", line, err)
			}
		case strings.HasPrefix(line, other):
			command := strings.TrimPrefix(line, other)
			cmd := exec.Command("bash", "-euo", "pipefail", "-c", command)
			cmd.Dir, cmd.Env = dir, env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("README: %s: %v\n%s", command, err, out)
			}
		case strings.HasPrefix(line, "# -> "):
			want := strings.TrimPrefix(line, "# -> ")
			if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			_, msg, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("README: waiting for %s: %v", want, err)
			}
			if !matches(want, string(msg)) {
				t.Errorf("README's WebSocket step: received\n%s\nthe README shows:\n%s", msg, want)
			}
		}
	}
}

// serve starts the binary's serve and waits until it answers /healthz; it is
// stopped (SIGTERM, as a container runtime would) when the test ends.
func serve(t *testing.T, bin, dir string, env []string, addr string) {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Dir, cmd.Env = dir, env
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		if err := cmd.Wait(); err != nil {
			t.Errorf("serve: %v\n%s", err, log.String())
		}
	})
	testutil.Poll(t, "the service to answer /healthz", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// freeAddr is a loopback address no one listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
