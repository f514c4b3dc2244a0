package deploy_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// TestReplicas runs three instances on one PostgreSQL and one Redis, sharing one
// policy volume, and checks that they behave as one service: a change made through
// any instance reaches subscribers on all, a token revoked through one is refused
// by all, the rate-limit budget is one, and a policy edit reaches all.
func TestReplicas(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{redis: true})

	// A named volume over the image's policy directory: Docker fills it from the
	// image when the first instance mounts it; the others share it, as they would
	// a config map.
	cli := docker(t)
	volume := "usdeploy-policies-" + randomHex(4)
	// testcontainers' labels, as on its containers and networks: they name the
	// session, by which CI removes what a killed test binary leaves behind.
	labels := testcontainers.GenericLabels()
	if _, err := cli.VolumeCreate(context.Background(), client.VolumeCreateOptions{Name: volume, Labels: labels}); err != nil {
		t.Fatalf("docker volume create: %v", err)
	}
	// Registered before the instances start, so it runs after they are removed.
	t.Cleanup(func() {
		if _, err := cli.VolumeRemove(context.Background(), volume, client.VolumeRemoveOptions{Force: true}); err != nil {
			t.Errorf("docker volume rm %s: %v", volume, err)
		}
	})
	shared := appOptions{mounts: testcontainers.ContainerMounts{testcontainers.VolumeMount(volume, policyDir)}}
	a := s.app(t, "app-a", shared)
	b := s.app(t, "app-b", shared)
	c := s.app(t, "app-c", shared)
	all := []*app{a, b, c}

	root := a.superadmin(t)
	u := a.newUser(t, root, "user")

	t.Run("a change through one instance reaches subscribers on all", func(t *testing.T) {
		var subs []*wsClient
		var ids []string
		for _, in := range all {
			ws := in.dialWS(t, root.token)
			ids = append(ids, ws.subscribe(t, map[string]any{"action": "subscribe_id", "user_id": u.id}))
			subs = append(subs, ws)
		}
		b.expect(t, http.StatusOK, http.MethodPut, userPath(u.id), root.token, map[string]any{"last_name": "Byron"})
		var seq int64
		for i, ws := range subs {
			ev := ws.event(t, "updated", ids[i])
			if got := ev.user(t); got.ID != u.id || got.LastName != "Byron" {
				t.Errorf("%s: event %v", all[i].name, ev)
			}
			// seq is the change log's position: the same on every instance.
			if i == 0 {
				seq = ev.num("seq")
			} else if ev.num("seq") != seq {
				t.Errorf("%s: seq %d, %s said %d", all[i].name, ev.num("seq"), all[0].name, seq)
			}
		}
	})

	t.Run("a policy edit on the shared volume reaches all", func(t *testing.T) {
		// Plain users may not search; the edit lets them, on every instance.
		for _, in := range all {
			in.expect(t, http.StatusForbidden, http.MethodGet, "/api/v1/users/search?last_name=Byron", u.token, nil)
		}
		policy := readFile(t, a.ctr, policyDir+"/policy.csv")
		policy += "\n# Added by tests/deploy.\np, user, users.search, *, *, *\n"
		if err := a.ctr.CopyToContainer(context.Background(), []byte(policy), policyDir+"/policy.csv", 0o644); err != nil {
			t.Fatalf("editing the policy: %v", err)
		}
		for _, in := range all {
			poll(t, waitFor, in.name+" to reload the edited policy", func() bool {
				return in.do(t, http.MethodGet, "/api/v1/users/search?last_name=Byron", u.token, nil).status == http.StatusOK
			})
		}
	})

	t.Run("the rate-limit budget is shared", func(t *testing.T) {
		// DELETE is limited to 10 a minute per client address: requests spread over
		// the three instances draw on that one budget (a missing user is fine,
		// the request counts all the same).
		const budget = 10
		path := userPath(999999)
		for i := range budget {
			in := all[i%len(all)]
			r := in.do(t, http.MethodDelete, path, root.token, nil)
			if r.status == http.StatusTooManyRequests {
				t.Fatalf("request %d of %d through %s refused: %s", i+1, budget, in.name, r)
			}
			if got, want := r.header.Get("X-RateLimit-Remaining"), strconv.Itoa(budget-1-i); got != want {
				t.Errorf("request %d through %s: X-RateLimit-Remaining %q, want %s", i+1, in.name, got, want)
			}
		}
		for _, in := range all {
			r := in.do(t, http.MethodDelete, path, root.token, nil)
			if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
				t.Errorf("%s after the shared budget is spent: %s (Retry-After %q), want 429", in.name, r, r.header.Get("Retry-After"))
			}
		}
	})

	t.Run("a token revoked through one instance is refused by all", func(t *testing.T) {
		// The user watches themself on the third instance.
		ws := c.dialWS(t, u.token)
		ws.subscribe(t, map[string]any{"action": "subscribe_id", "user_id": u.id})
		for _, in := range all {
			in.expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", u.token, nil)
		}
		a.expect(t, http.StatusOK, http.MethodPatch, userPath(u.id)+"/role", root.token, map[string]any{"role": "admin"})
		for _, in := range all {
			refused(t, in.api, u.token)
		}
		if code := ws.closed(t, revocationWindow); code != 4401 {
			t.Errorf("the revoked user's WebSocket on %s closed with %d, want 4401", c.name, code)
		}
	})
}

// readFile reads one file out of a container.
func readFile(t *testing.T, ctr *testcontainers.DockerContainer, path string) string {
	t.Helper()
	r, err := ctr.CopyFileFromContainer(context.Background(), path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	defer r.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, r); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return b.String()
}
