package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/userservice/userservice/tests/testdb"
)

// Environment read here besides testdb's TEST_POSTGRES_IMAGE, TEST_REDIS_IMAGE and
// TEST_REQUIRE_DB: the base images of the Dockerfile's two stages (unset: its public
// defaults) and the load balancer of docker-compose.yml's replicas profile.
const (
	envGoImage      = "TEST_GO_IMAGE"
	envRuntimeImage = "TEST_RUNTIME_IMAGE"
	envLBImage      = "TEST_LB_IMAGE"
)

const (
	// appImage is the tag of the image built from the Dockerfile. It is kept after
	// the tests: the next build reuses its layers.
	appImage = "userservice-deploy-test:latest"
	// buildVersion and buildCommit are stamped into the binary; docker-compose.yml
	// gets the same build arguments, so its build reuses this one's layers, and
	// .ci/run builds the image with them beforehand for the same reason.
	buildVersion = "0.0.0-deploy-test"
	buildCommit  = "deploy-test"

	// dockerPingTimeout bounds the check for a Docker engine.
	dockerPingTimeout = 5 * time.Second
	// buildTimeout bounds building the image: downloading modules and compiling
	// everything on a cold cache takes minutes on two busy cores.
	buildTimeout = 20 * time.Minute
	// startTimeout bounds starting one container until it is ready.
	startTimeout = 2 * time.Minute
	// waitFor bounds every wait of the suite for something the service does.
	waitFor = 15 * time.Second
	// appPort is the port the image listens on (its EXPOSE).
	appPort = "8000/tcp"
	// policyDir is where the image ships its policy (its POLICY_DIR).
	policyDir = "/etc/userservice/policies"
)

// deployment is the one piece of package-level mutable state, on purpose: the image
// is built once per test binary (a build costs minutes when nothing is cached) and
// every test runs containers of it; testing.M offers no other place to keep it. It
// is built at most once, under sync.Once, on first use.
var deployment = &suite{}

type suite struct {
	once sync.Once
	// unavailable says why the tests cannot run here and how to make them run; they
	// skip with it, or fail under TEST_REQUIRE_DB=1.
	unavailable string
	// err is a failure that must fail every test (the build failed).
	err error
}

// need skips or fails t unless Docker answers and the image is built, and returns
// the image.
func need(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("tests/deploy: skipped in -short mode (builds and runs containers)")
	}
	deployment.once.Do(deployment.prepare)
	switch {
	case deployment.err != nil:
		t.Fatal(deployment.err)
	case deployment.unavailable != "":
		unavailable(t, deployment.unavailable)
	}
	return appImage
}

// unavailable skips t with reason, or fails it when TEST_REQUIRE_DB=1.
func unavailable(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv(testdb.EnvRequire) == "1" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

func (s *suite) prepare() {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	if reason := dockerUnavailable(ctx); reason != "" {
		s.unavailable = fmt.Sprintf("tests/deploy: no Docker engine (%s); run one, or set %s=1 to make this a failure",
			oneLine(reason), testdb.EnvRequire)
		return
	}
	root, err := repoRoot()
	if err != nil {
		s.err = err
		return
	}
	if log, err := buildImage(ctx, root); err != nil {
		if unpullable(err) {
			s.unavailable = fmt.Sprintf("tests/deploy: a base image of the Dockerfile cannot be pulled "+
				"(no registry?); build local ones with tests/images/bases/build.sh and set %s=userservice-base-go:1.26 "+
				"%s=userservice-base-static:nonroot (%s=1 makes this a failure): %s",
				envGoImage, envRuntimeImage, testdb.EnvRequire, oneLine(err.Error()))
			return
		}
		s.err = fmt.Errorf("%w\n%s", err, log)
	}
}

// unpullable reports whether a build failed for want of a base image, which
// means no registry here rather than a broken Dockerfile or tree.
func unpullable(err error) bool {
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"registry", "pull access denied", "manifest unknown", "not found: manifest"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// dockerUnavailable returns why no Docker engine answers, or "" when one does.
func dockerUnavailable(ctx context.Context) (reason string) {
	ctx, cancel := context.WithTimeout(ctx, dockerPingTimeout)
	defer cancel()
	// testcontainers goes on to the default socket when DOCKER_HOST does not
	// answer; but whoever sets DOCKER_HOST means that engine (or, set to a dead
	// address, none), so it alone is asked then.
	if host := os.Getenv("DOCKER_HOST"); host != "" {
		cli, err := client.New(client.FromEnv)
		if err != nil {
			return fmt.Sprintf("DOCKER_HOST=%s: %v", host, err)
		}
		defer cli.Close()
		if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
			return fmt.Sprintf("DOCKER_HOST=%s: %v", host, err)
		}
	}
	// testcontainers panics on some environment problems (its Must* look-ups of the
	// Docker host); that means "no usable Docker" just as an error does.
	defer func() {
		if r := recover(); r != nil {
			reason = fmt.Sprint(r)
		}
	}()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return err.Error()
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		return err.Error()
	}
	return ""
}

// repoRoot is the directory holding go.mod and the Dockerfile: tests run in their
// package's directory, two levels down.
func repoRoot() (string, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", fmt.Errorf("tests/deploy: %w", err)
	}
	for _, f := range []string{"go.mod", "Dockerfile"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			return "", fmt.Errorf("tests/deploy: the repository root %s has no %s: %w", root, f, err)
		}
	}
	return root, nil
}

// buildArgs are the Dockerfile's build arguments for this machine.
func buildArgs() map[string]string {
	args := map[string]string{"VERSION": buildVersion, "COMMIT": buildCommit}
	if v := os.Getenv(envGoImage); v != "" {
		args["GO_IMAGE"] = v
	}
	if v := os.Getenv(envRuntimeImage); v != "" {
		args["RUNTIME_IMAGE"] = v
	}
	return args
}

// buildImage builds appImage from the repository's Dockerfile with the legacy
// builder (the Docker API's default), as `DOCKER_BUILDKIT=0 docker build` and
// docker-compose do, and removes the image the tag named before, if any. On
// failure it returns the end of the build's output too.
func buildImage(ctx context.Context, root string) (string, error) {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return "", fmt.Errorf("tests/deploy: docker client: %w", err)
	}
	defer cli.Close()
	previous := ""
	if res, err := cli.ImageInspect(ctx, appImage); err == nil {
		previous = res.ID
	}

	args := map[string]*string{}
	for k, v := range buildArgs() {
		args[k] = &v
	}
	repo, tag, _ := strings.Cut(appImage, ":")
	var log bytes.Buffer
	req := testcontainers.ContainerRequest{FromDockerfile: testcontainers.FromDockerfile{
		Context:        root,
		Dockerfile:     "Dockerfile",
		Repo:           repo,
		Tag:            tag,
		BuildArgs:      args,
		KeepImage:      true,
		BuildLogWriter: &log,
	}}
	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		return "", fmt.Errorf("tests/deploy: docker provider: %w", err)
	}
	defer provider.Close()
	started := time.Now()
	if _, err := provider.BuildImage(ctx, &req); err != nil {
		return lastLines(log.String(), 30), fmt.Errorf("tests/deploy: building %s from %s/Dockerfile: %w", appImage, root, err)
	}
	fmt.Fprintf(os.Stderr, "tests/deploy: built %s in %s\n", appImage, time.Since(started).Round(time.Second))
	if res, err := cli.ImageInspect(ctx, appImage); err == nil && previous != "" && res.ID != previous {
		// Still used by a container, or a parent of another image: then it stays.
		_, _ = cli.ImageRemove(ctx, previous, client.ImageRemoveOptions{PruneChildren: true})
	}
	return "", nil
}

// docker returns a client of the engine, closed when t ends.
func docker(t *testing.T) *testcontainers.DockerClient {
	t.Helper()
	cli, err := testcontainers.NewDockerClientWithOpts(context.Background())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// stack is one deployment: a network of its own, PostgreSQL (and Redis) on it, and
// instances of the service added with app.
type stack struct {
	image    string
	net      *testcontainers.DockerNetwork
	pg       *tcpostgres.PostgresContainer
	dbURL    string
	redisURL string
	secret   string
}

type stackOptions struct {
	redis bool
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	image := need(t)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	nw, err := network.New(ctx)
	if err != nil {
		t.Fatalf("creating a network: %v", err)
	}
	t.Cleanup(func() {
		if err := nw.Remove(context.Background()); err != nil {
			t.Errorf("removing network %s: %v", nw.Name, err)
		}
	})
	s := &stack{image: image, net: nw, secret: randomHex(24)}

	pgImage := envOr(testdb.EnvPostgresImage, "postgres:15")
	password := randomHex(12)
	s.pg, err = tcpostgres.Run(ctx, pgImage,
		tcpostgres.WithDatabase("userservice"),
		tcpostgres.WithUsername("userservice"),
		tcpostgres.WithPassword(password),
		tcpostgres.BasicWaitStrategies(),
		testcontainers.WithEnv(map[string]string{"POSTGRES_INITDB_ARGS": "--no-sync"}),
		network.WithNetwork([]string{"postgres"}, nw),
	)
	testcontainers.CleanupContainer(t, s.pg)
	if err != nil {
		unavailable(t, fmt.Sprintf("tests/deploy: starting PostgreSQL from %s failed (%v); with no registry, build it with "+
			"tests/images/postgres/build.sh and set %s=userservice-test-postgres:15", pgImage, oneLine(err.Error()), testdb.EnvPostgresImage))
	}
	dumpLogsOnFailure(t, "postgres", s.pg)
	s.dbURL = "postgres://userservice:" + password + "@postgres:5432/userservice?sslmode=disable"

	if o.redis {
		redisImage := envOr(testdb.EnvRedisImage, "redis:7")
		rc, err := tcredis.Run(ctx, redisImage, network.WithNetwork([]string{"redis"}, nw))
		testcontainers.CleanupContainer(t, rc)
		if err != nil {
			unavailable(t, fmt.Sprintf("tests/deploy: starting Redis from %s failed (%v); with no registry, build it with "+
				"tests/images/redis/build.sh and set %s=userservice-test-redis:7", redisImage, oneLine(err.Error()), testdb.EnvRedisImage))
		}
		s.redisURL = "redis://redis:6379/0"
	}
	return s
}

// app is one running instance of the service.
type app struct {
	name string
	ctr  *testcontainers.DockerContainer
	*api
}

type appOptions struct {
	// env is added to the instance's environment.
	env map[string]string
	// files are copied into the container before it starts.
	files []testcontainers.ContainerFile
	// mounts are added to the container.
	mounts testcontainers.ContainerMounts
	// health waits for Docker to call the instance healthy, which runs the image's
	// own HEALTHCHECK, instead of polling /readyz from here.
	health bool
}

// app starts an instance named name (also its host name on the network) and waits
// until it is ready.
func (s *stack) app(t *testing.T, name string, o appOptions) *app {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	env := map[string]string{
		"DATABASE_URL": s.dbURL,
		"JWT_SECRET":   s.secret,
		"LOG_LEVEL":    "debug",
	}
	if s.redisURL != "" {
		env["REDIS_URL"] = s.redisURL
	}
	for k, v := range o.env {
		env[k] = v
	}
	var ready wait.Strategy = wait.ForHTTP("/readyz").WithPort(appPort).
		WithPollInterval(200 * time.Millisecond).WithStartupTimeout(startTimeout)
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(appPort),
		testcontainers.WithEnv(env),
		network.WithNetwork([]string{name}, s.net),
		testcontainers.WithFiles(o.files...),
		testcontainers.WithMounts(o.mounts...),
	}
	if o.health {
		// The image's HEALTHCHECK command and retries, checked every half second
		// instead of every ten, so the test need not wait that long.
		opts = append(opts, testcontainers.WithConfigModifier(func(c *container.Config) {
			c.Healthcheck = &container.HealthConfig{Interval: 500 * time.Millisecond}
		}))
		ready = wait.ForHealthCheck().WithPollInterval(200 * time.Millisecond).WithStartupTimeout(startTimeout)
	}
	opts = append(opts, testcontainers.WithWaitStrategy(ready))
	ctr, err := testcontainers.Run(ctx, s.image, opts...)
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		if ctr != nil {
			t.Logf("%s logs:\n%s", name, containerLogs(ctr, 40))
		}
		t.Fatalf("starting %s: %v", name, err)
	}
	dumpLogsOnFailure(t, name, ctr)
	a := &app{name: name, ctr: ctr}
	a.api = a.endpoint(t)
	return a
}

// endpoint is the instance's address as seen from the test; it changes when the
// container is restarted.
func (a *app) endpoint(t *testing.T) *api {
	t.Helper()
	base, err := a.ctr.PortEndpoint(context.Background(), appPort, "http")
	if err != nil {
		t.Fatalf("address of %s: %v", a.name, err)
	}
	return newAPI(base)
}

// exec runs the binary inside the instance, as an operator would with docker exec,
// and returns its exit status and output.
func (a *app) exec(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, out, err := a.ctr.Exec(ctx, append([]string{"/usr/local/bin/userservice"}, args...),
		tcexec.WithEnv(env), tcexec.Multiplexed())
	if err != nil {
		t.Fatalf("docker exec %s userservice %s: %v", a.name, strings.Join(args, " "), err)
	}
	b, err := io.ReadAll(out)
	if err != nil {
		t.Fatalf("reading the output of userservice %s: %v", strings.Join(args, " "), err)
	}
	return code, string(b)
}

// superadmin creates a superadmin with the binary's own command, as the README's
// quick start does, and logs in.
func (a *app) superadmin(t *testing.T) *account {
	t.Helper()
	acc := &account{email: "root-" + randomHex(4) + "@example.com", password: "a-long-secret-password-" + randomHex(4)}
	code, out := a.exec(t, []string{"USERSERVICE_SUPERADMIN_PASSWORD=" + acc.password}, "superadmin", "--email", acc.email)
	if code != 0 || !strings.Contains(out, "superadmin created") {
		t.Fatalf("userservice superadmin: exit %d: %s", code, out)
	}
	a.login(t, acc)
	return acc
}

// signal sends sig to the instance's process (its PID 1).
func (a *app) signal(t *testing.T, sig string) {
	t.Helper()
	if _, err := docker(t).ContainerKill(context.Background(), a.ctr.GetContainerID(), client.ContainerKillOptions{Signal: sig}); err != nil {
		t.Fatalf("docker kill -s %s %s: %v", sig, a.name, err)
	}
}

// exited waits for the instance to stop and returns its exit status.
func (a *app) exited(t *testing.T, within time.Duration) int {
	t.Helper()
	var code int
	poll(t, within, a.name+" to exit", func() bool {
		st, err := a.ctr.State(context.Background())
		if err != nil {
			t.Fatalf("state of %s: %v", a.name, err)
		}
		code = st.ExitCode
		return !st.Running
	})
	return code
}

// dumpLogsOnFailure logs the end of the container's output if t fails; it is
// registered after the container's clean-up, so it runs before it.
func dumpLogsOnFailure(t *testing.T, name string, ctr testcontainers.Container) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", name, containerLogs(ctr, 60))
		}
	})
}

func containerLogs(ctr testcontainers.Container, n int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := ctr.Logs(ctx)
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return lastLines(string(b), n)
}

// api is the service's HTTP API at one address.
type api struct {
	base string
	http *http.Client
}

// requestTimeout bounds one request of the suite; the service answers long before.
const requestTimeout = 30 * time.Second

func newAPI(base string) *api {
	return &api{base: strings.TrimSuffix(base, "/"), http: &http.Client{Timeout: requestTimeout}}
}

// response is one answer, read whole.
type response struct {
	status  int
	header  http.Header
	body    []byte
	elapsed time.Duration
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body)) }

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r, err)
	}
}

// rawBody is a request body sent as is.
type rawBody struct {
	contentType string
	data        []byte
}

// try sends one request: body is nil, url.Values (a form), rawBody, or anything
// else (JSON).
func (c *api) try(ctx context.Context, method, path, token string, body any) (response, error) {
	var rd io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, contentType = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case rawBody:
		rd, contentType = bytes.NewReader(b.data), b.contentType
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		rd, contentType = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return response{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	started := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return response{elapsed: time.Since(started)}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: b, elapsed: time.Since(started)}
	if err != nil {
		return r, fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	}
	return r, nil
}

// do sends one request and fails t if no answer comes.
func (c *api) do(t *testing.T, method, path, token string, body any) response {
	t.Helper()
	r, err := c.try(context.Background(), method, path, token, body)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, c.base, path, err)
	}
	return r
}

// expect sends one request and fails t unless the status is want.
func (c *api) expect(t *testing.T, want int, method, path, token string, body any) response {
	t.Helper()
	r := c.do(t, method, path, token, body)
	if r.status != want {
		t.Fatalf("%s %s: got %s, want %d", method, path, r, want)
	}
	return r
}

// account is a user the test can act as.
type account struct {
	id       int64
	email    string
	password string
	token    string
}

// user is the API's user object, as far as the tests read it.
type user struct {
	ID        int64  `json:"id"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Email     string `json:"email"`
	Gender    string `json:"gender"`
	IPAddress string `json:"ip_address"`
	Role      string `json:"role"`
}

// login logs acc in (the OAuth2 password form, as the README's curl session does)
// and keeps its access token and id.
func (c *api) login(t *testing.T, acc *account) {
	t.Helper()
	r := c.expect(t, http.StatusOK, http.MethodPost, "/api/v1/auth/token", "",
		url.Values{"username": {acc.email}, "password": {acc.password}})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	r.decode(t, &tok)
	if tok.AccessToken == "" {
		t.Fatalf("login of %s: no access token in %s", acc.email, r)
	}
	acc.token = tok.AccessToken
	var me user
	c.expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", acc.token, nil).decode(t, &me)
	acc.id = me.ID
}

// newUser creates a user with the given role through by (a superadmin) and logs in.
func (c *api) newUser(t *testing.T, by *account, role string) *account {
	t.Helper()
	acc := &account{email: "user-" + randomHex(6) + "@example.com", password: "password-" + randomHex(6)}
	c.expect(t, http.StatusCreated, http.MethodPost, "/api/v1/users/create-admin", by.token, map[string]any{
		"first_name": "Ada", "last_name": "Lovelace", "email": acc.email, "gender": "female",
		"password": acc.password, "role": role,
	})
	c.login(t, acc)
	return acc
}

// userPath is the path of one user.
func userPath(id int64) string { return "/api/v1/users/" + strconv.FormatInt(id, 10) }

// poll calls cond until it holds, failing t after within.
func poll(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
