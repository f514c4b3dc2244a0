package bench

// The catch-up row: a WebSocket subscribe_id with since_seq over the change
// log of the million users (one entry per user, its creation), from the
// subscribe to its replayed event, beside GET /users/{id} in the same run.
// A catch-up must cost what it returns, whatever the size of the log: the
// target is a p50 at most twice the GET's.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
)

// catchUpConns is the concurrency of both sides of the comparison: a
// connection runs one catch-up at a time, so each worker has its own.
const catchUpConns = 4

// catchUpTimeout bounds the wait for the service's reader to pass the
// million new change-log entries, and any one message.
const catchUpTimeout = 10 * time.Minute

// wsMessage is what the benchmark reads of a server message.
type wsMessage struct {
	Type           string `json:"type"`
	SubscriptionID string `json:"subscription_id"`
	Detail         string `json:"detail"`
	Seq            int64  `json:"seq"`
}

// BenchmarkCatchUp compares a subscribe_id catch-up from since_seq 0 of a
// random user over the whole change log with GET /users/{id} of a random
// user.
func BenchmarkCatchUp(b *testing.B) {
	e := setup(b)
	ctx := b.Context()
	n := e.cfg.users
	if err := e.fillChangeLog(ctx); err != nil {
		b.Fatal(err)
	}
	wsURL := "ws" + strings.TrimPrefix(e.base, "http") + "/users/ws"
	pool := make(chan *websocket.Conn, catchUpConns)
	for range catchUpConns {
		conn, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL, http.Header{"Authorization": {"Bearer " + e.token}})
		if err != nil {
			b.Fatalf("dialing the WebSocket: %v", err)
		}
		defer conn.Close()
		pool <- conn
	}
	conn := <-pool
	if err := e.awaitReader(ctx, conn); err != nil {
		b.Fatal(err)
	}
	pool <- conn
	c := httpClient(catchUpConns)
	ms, err := compare(e.cfg.duration,
		func(d time.Duration) (Measurement, error) {
			return load(ctx, "subscribe_id since_seq 0 (catch-up)", catchUpConns, d, func(ctx context.Context, rng *rand.Rand) error {
				conn := <-pool
				defer func() { pool <- conn }()
				return catchUp(conn, 1+rng.IntN(n))
			})
		},
		func(d time.Duration) (Measurement, error) {
			return load(ctx, "GET /users/{id}", catchUpConns, d, func(ctx context.Context, rng *rand.Rand) error {
				_, err := call(ctx, c, http.MethodGet, e.base+"/users/"+strconv.Itoa(1+rng.IntN(n)), e.token, "", "", http.StatusOK)
				return err
			})
		})
	if err != nil {
		b.Fatal(err)
	}
	up, get := ms[0], ms[1]
	record(Row{Scenario: up, Baseline: &get, Metric: ByP50, Target: 2,
		Note: fmt.Sprintf("a change log of %d entries, one per user; the catch-up reads the user's own (change_log_target_seq), "+
			"from the subscribe to its replayed event, over %d connections", n, catchUpConns)})
	b.ReportMetric(float64(up.P50)/float64(get.P50), "p50-ratio")
}

// fillChangeLog gives every loaded user its creation entry, as if each had
// been created through the service: a change log of the million users.
func (e *env) fillChangeLog(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	start := time.Now()
	tag, err := conn.Exec(ctx, `INSERT INTO change_log (at, actor_id, action, target_id, before, after)
		SELECT now(), 0, 'created', id, NULL, jsonb_build_object(
			'id', id, 'first_name', first_name, 'last_name', last_name, 'email', email, 'gender', gender,
			'ip_address', ip_address, 'role', role, 'created_at', created_at, 'updated_at', updated_at)
		FROM users ORDER BY id`)
	if err != nil {
		return fmt.Errorf("filling the change log: %w", err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE change_log"); err != nil {
		return err
	}
	fact("change log: %d creation entries added in %.1f s", tag.RowsAffected(), time.Since(start).Seconds())
	return nil
}

// awaitReader waits until the service's change-log reader has fanned out
// the entries just added (news to it, which nobody watches), so that the
// measured catch-ups do not share the cores with it: it changes the admin
// and waits for that change, which comes after them, on conn.
func (e *env) awaitReader(ctx context.Context, conn *websocket.Conn) error {
	start := time.Now()
	raw, err := call(ctx, httpClient(1), http.MethodGet, e.base+"/users/me", e.token, "", "", http.StatusOK)
	if err != nil {
		return err
	}
	var me struct{ ID int64 }
	if err := json.Unmarshal(raw, &me); err != nil {
		return err
	}
	if err := conn.WriteJSON(map[string]any{"action": "subscribe_id", "user_id": me.ID}); err != nil {
		return err
	}
	sub, err := readUntil(conn, func(m wsMessage) bool { return m.Type == "subscribed" })
	if err != nil {
		return err
	}
	if _, err := call(ctx, httpClient(1), http.MethodPut, e.base+"/users/"+strconv.FormatInt(me.ID, 10), e.token,
		"application/json", `{"first_name":"Caughtup"}`, http.StatusOK); err != nil {
		return err
	}
	if _, err := readUntil(conn, func(m wsMessage) bool { return m.SubscriptionID == sub.SubscriptionID && m.Type == "updated" }); err != nil {
		return fmt.Errorf("waiting for the reader to pass the new entries: %w", err)
	}
	if err := conn.WriteJSON(map[string]any{"action": "unsubscribe", "subscription_id": sub.SubscriptionID}); err != nil {
		return err
	}
	fact("the service's reader passed the new entries %.1f s after the fill", time.Since(start).Seconds())
	return nil
}

// catchUp subscribes to user id from since_seq 0 and waits for its
// replayed creation, then unsubscribes without waiting (a connection holds
// at most 100 subscriptions); the answer is skipped by the next catch-up.
func catchUp(conn *websocket.Conn, id int) error {
	if err := conn.WriteJSON(map[string]any{"action": "subscribe_id", "user_id": id, "since_seq": 0}); err != nil {
		return err
	}
	sub, err := readUntil(conn, func(m wsMessage) bool { return m.Type == "subscribed" })
	if err != nil {
		return err
	}
	if _, err := readUntil(conn, func(m wsMessage) bool { return m.SubscriptionID == sub.SubscriptionID && m.Type == "created" }); err != nil {
		return err
	}
	return conn.WriteJSON(map[string]any{"action": "unsubscribe", "subscription_id": sub.SubscriptionID})
}

// readUntil reads messages until one satisfies ok, skipping the others
// (answers to unsubscribes, later events of ended subscriptions); an error
// message fails.
func readUntil(conn *websocket.Conn, ok func(wsMessage) bool) (wsMessage, error) {
	if err := conn.SetReadDeadline(time.Now().Add(catchUpTimeout)); err != nil {
		return wsMessage{}, err
	}
	for {
		var m wsMessage
		if err := conn.ReadJSON(&m); err != nil {
			return m, err
		}
		if m.Type == "error" {
			return m, errors.New("the service answered: " + m.Detail)
		}
		if ok(m) {
			return m, nil
		}
	}
}
