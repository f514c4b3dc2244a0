package integration

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/userservice/userservice/tests/harness"
)

// revocationBound is what docs/api.md promises: a token revoked on one
// instance is refused by every other within a second.
const revocationBound = time.Second

// listeners counts the LISTEN connections of the database at dbURL (each
// instance holds one, shared by its WebSocket fan-out and its token
// states, named userservice-listen).
func listeners(t *testing.T, db *pgx.Conn) int {
	t.Helper()
	var n int
	if err := db.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'userservice-listen' AND query ILIKE 'LISTEN%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// killListeners terminates every LISTEN connection of the database once
// all want of them are up, so each kill cuts live connections.
func killListeners(t *testing.T, db *pgx.Conn, want int) {
	t.Helper()
	deadline := time.Now().Add(harness.WaitFor)
	for listeners(t, db) < want {
		if time.Now().After(deadline) {
			t.Fatalf("the instances' %d LISTEN connections never came back (%d up)", want, listeners(t, db))
		}
		time.Sleep(10 * time.Millisecond)
	}
	var killed int
	if err := db.QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'userservice-listen' AND query ILIKE 'LISTEN%'`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed < want {
		t.Fatalf("terminated %d LISTEN connections, want %d", killed, want)
	}
}

// TestRevocationAcrossInstances: two instances on one PostgreSQL database.
// After a password change through A, B refuses the old access token within
// a second of A's answer, 20 times over, with its change feed working and
// with its LISTEN connections killed just before the change. B has checked
// the token first, so it holds the account in memory and must learn of the
// change from the feed (or, while that is down, from the row). B's
// WebSocket opened with the old token is closed with 4401 within the same
// second.
func TestRevocationAcrossInstances(t *testing.T) {
	a := harness.Start(t, harness.Postgres, harness.Options{Quiet: true})
	b := harness.Start(t, harness.Postgres, harness.Options{Quiet: true, DBURL: a.DBURL, PolicyDir: a.PolicyDir, JWTSecret: a.JWTSecret, KeysDir: a.KeysDir})
	db, err := pgx.Connect(t.Context(), a.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	root := a.SeedSuperadmin(t)

	// The change through A: a password change (a public change of the user),
	// or a spent refresh token presented again, which ends the user's access
	// tokens as internal bookkeeping that no client sees as a change.
	changes := map[string]func(t *testing.T, u *harness.Account){
		"password change": func(t *testing.T, u *harness.Account) {
			old := u.Password
			u.Password = a.Password()
			a.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(u.ID), u.Access,
				map[string]any{"password": u.Password, "current_password": old})
		},
		"replayed refresh token": func(t *testing.T, u *harness.Account) {
			body := map[string]any{"refresh_token": u.Refresh}
			a.Expect(t, http.StatusOK, http.MethodPost, "/api/v1/auth/refresh", "", body)
			a.Expect(t, http.StatusUnauthorized, http.MethodPost, "/api/v1/auth/refresh", "", body)
		},
	}
	for _, via := range []string{"password change", "replayed refresh token"} {
		for _, kill := range []bool{false, true} {
			name := via + ", feed up"
			if kill {
				name = via + ", LISTEN killed just before"
			}
			t.Run(name, func(t *testing.T) { revokeThroughA(t, a, b, db, root, changes[via], kill) })
		}
	}
}

// revokeThroughA makes change through A 20 times, each to a fresh user whose
// token B holds in memory, and asserts B refuses the old token, REST and
// WebSocket, within revocationBound of A's answer.
func revokeThroughA(t *testing.T, a, b *harness.Service, db *pgx.Conn, root *harness.Account, change func(*testing.T, *harness.Account), kill bool) {
	const instances = 2 // one LISTEN connection each
	var worst, wsWorst time.Duration
	for i := range 20 {
		u := a.CreateAndLogin(t, root, "user")
		// B holds u now: a first check reads the row, later ones memory.
		for range 2 {
			b.Expect(t, http.StatusOK, http.MethodGet, me, u.Access, nil)
		}
		ws := b.ConnectWS(t, u.Access)
		ws.Send(map[string]any{"action": "ping"})
		ws.Expect("pong")
		if kill {
			killListeners(t, db, instances)
		}
		old := *u
		change(t, u)
		changed := time.Now()
		a.Expect(t, http.StatusUnauthorized, http.MethodGet, me, old.Access, nil) // at once on A
		for {
			// Timed as sent: an answer is about the moment B got the request.
			sent := time.Since(changed)
			r := b.Do(t, http.MethodGet, me, old.Access, nil)
			if r.Status == http.StatusUnauthorized {
				worst = max(worst, sent)
				break
			}
			if r.Status != http.StatusOK {
				t.Fatalf("repetition %d: %s", i, r)
			}
			if sent > revocationBound {
				t.Fatalf("repetition %d: B still accepts the old token %v after the change through A", i, sent)
			}
			time.Sleep(5 * time.Millisecond)
		}
		// B's WebSocket of the old token closes with 4401 within the bound too.
		select {
		case <-ws.Done():
			wsWorst = max(wsWorst, time.Since(changed))
		case <-time.After(time.Until(changed.Add(revocationBound))):
			t.Fatalf("repetition %d: B's WebSocket of the old token is still open %v after the change through A", i, time.Since(changed))
		}
		ws.ExpectClose(4401)
		if t.Failed() {
			return
		}
	}
	t.Logf("slowest refusal on B: %v after A answered; slowest WebSocket close: %v", worst, wsWorst)
}
