package deploy_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/userservice/userservice/tests/testdb"
)

// composeTimeout bounds one docker-compose command; `up --build` builds three
// services (from the cache the suite's own build filled) and waits for their
// health checks.
const composeTimeout = 10 * time.Minute

// TestCompose brings docker-compose.yml up with its replicas profile (PostgreSQL,
// Redis, three instances and the nginx load balancer) as a user does, with
// `up --build` and nothing but the variables .env.example documents, then runs
// the quick start through the load balancer: the operator's superadmin command
// with docker-compose exec, a CSV import over HTTP, the curl session, and a change
// watched on a WebSocket that nginx passes through.
func TestCompose(t *testing.T) {
	t.Parallel()
	need(t)
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	c := newCompose(t, root)
	c.run(t, "up", "-d", "--build")

	for _, svc := range []string{"postgres", "redis", "app", "app-2", "app-3"} {
		if h := c.health(t, svc); h != "healthy" {
			t.Errorf("service %s is %q, want healthy", svc, h)
		}
	}
	lb := newAPI("http://" + c.address(t, "lb", "8080"))

	rootAcc := &account{email: "root@example.com", password: "a-long-secret-password"}
	out := c.run(t, "exec", "-T", "-e", "USERSERVICE_SUPERADMIN_PASSWORD="+rootAcc.password,
		"app", "userservice", "superadmin", "--email", rootAcc.email)
	if !strings.Contains(out, "superadmin created") {
		t.Fatalf("superadmin: %s", out)
	}
	lb.login(t, rootAcc)

	csv, err := os.ReadFile(filepath.Join(root, "tests", "fixtures", "users.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var report struct {
		Imported int `json:"imported"`
		Failed   int `json:"failed"`
	}
	lb.expect(t, http.StatusOK, http.MethodPost, "/api/v1/users/import?default_password="+defaultPassword, rootAcc.token,
		rawBody{contentType: "text/csv", data: csv}).decode(t, &report)
	if report.Imported != sampleUsers || report.Failed != 0 {
		t.Errorf("import over HTTP: %+v, want %d imported", report, sampleUsers)
	}
	checkImportedUser(t, lb, csv)

	quickStart(t, lb, rootAcc)
}

// compose runs docker-compose (v1) or `docker compose` (v2) on the repository's
// file, as project of its own.
type compose struct {
	cmd  []string
	dir  string
	env  []string
	args []string
}

func newCompose(t *testing.T, root string) *compose {
	t.Helper()
	c := &compose{dir: root}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		c.cmd = []string{p}
	} else if exec.Command("docker", "compose", "version").Run() == nil {
		c.cmd = []string{"docker", "compose"}
	} else {
		unavailable(t, "tests/deploy: neither docker-compose nor `docker compose` is installed (apt-get install docker-compose); "+
			testdb.EnvRequire+"=1 makes this a failure")
	}
	// An empty env file: a developer's own .env must not change the test.
	empty := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Named after the testcontainers session when CI sets one, so that CI can
	// remove what a test binary killed before its clean-ups leaves behind.
	project := "usdeploy-" + randomHex(4)
	if sid := os.Getenv("TESTCONTAINERS_SESSION_ID"); sid != "" {
		project = strings.ToLower(sid) + "-" + randomHex(4)
	}
	c.args = []string{"-f", filepath.Join(root, "docker-compose.yml"), "--env-file", empty, "-p", project}
	c.env = append(os.Environ(),
		"COMPOSE_PROFILES=replicas",
		"POSTGRES_PASSWORD="+randomHex(16),
		"JWT_SECRET="+randomHex(24),
		"REDIS_URL=redis://redis:6379/0",
		// Ports chosen by Docker, so that parallel runs do not collide.
		"APP_PORT=0",
		"LB_PORT=0",
		"APP_IMAGE="+appImage,
		"POSTGRES_IMAGE="+envOr(testdb.EnvPostgresImage, "postgres:15"),
		"REDIS_IMAGE="+envOr(testdb.EnvRedisImage, "redis:7"),
		"LB_IMAGE="+envOr(envLBImage, "nginx:1.27-alpine"),
		// The classic builder, as the suite's own build: BuildKit may consult a
		// registry even for a local base image.
		"DOCKER_BUILDKIT=0",
		"COMPOSE_DOCKER_CLI_BUILD=0",
	)
	for k, v := range buildArgs() {
		c.env = append(c.env, k+"="+v)
	}
	t.Cleanup(func() {
		// The project's containers, network and volumes; the image stays.
		if out, err := c.exec("down", "-v", "--remove-orphans", "--timeout", "10"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	return c
}

func (c *compose) exec(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), composeTimeout)
	defer cancel()
	all := append(append(append([]string{}, c.cmd[1:]...), c.args...), args...)
	cmd := exec.CommandContext(ctx, c.cmd[0], all...)
	cmd.Dir, cmd.Env = c.dir, c.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// run runs one docker-compose command and fails t (with the services' last log
// lines) if it fails.
func (c *compose) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.exec(args...)
	if err != nil {
		logs, _ := c.exec("logs", "--no-color", "--tail", "30")
		t.Fatalf("docker-compose %s: %v\n%s\nservice logs:\n%s", strings.Join(args, " "), err, lastLines(out, 40), logs)
	}
	return out
}

// address is where the test reaches a published port of a service.
func (c *compose) address(t *testing.T, service, port string) string {
	t.Helper()
	out := strings.TrimSpace(c.run(t, "port", service, port))
	_, p, err := net.SplitHostPort(lastLines(out, 1))
	if err != nil {
		t.Fatalf("docker-compose port %s %s: %q: %v", service, port, out, err)
	}
	host := "localhost"
	if provider, err := testcontainers.NewDockerProvider(); err == nil {
		defer provider.Close()
		if h, err := provider.DaemonHost(context.Background()); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, p)
}

// health is the health status Docker reports for a service's container.
func (c *compose) health(t *testing.T, service string) string {
	t.Helper()
	id := strings.TrimSpace(c.run(t, "ps", "-q", service))
	if id == "" {
		t.Fatalf("service %s has no container", service)
	}
	res, err := docker(t).ContainerInspect(context.Background(), lastLines(id, 1), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("docker inspect %s: %v", service, err)
	}
	if st := res.Container.State; st != nil && st.Health != nil {
		return string(st.Health.Status)
	}
	return "no health check"
}
