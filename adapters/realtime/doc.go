// Package realtime is the WebSocket adapter of real-time subscriptions
// (docs/websocket.md), on github.com/olahol/melody, at GET /api/v1/users/ws.
//
// It speaks the protocol and leaves every decision to ports.RealtimeService:
// authentication (a token in the handshake, or a first {"action":"auth"}
// message within AuthTimeout), authorization, matching, replay and
// revocation. Each connection is the service's EventSink and only ever
// queues bytes for its melody writer (Session.Write, never melody's hub
// broadcast: the service decides who gets what), so the fan-out never waits
// for a client; an event is encoded once per subscription id, and the same
// bytes go to every connection it reaches.
//
// Close codes: 4401 when authentication fails, times out or stops holding
// (token expired or revoked); 1008 for a client that lets SendBuffer
// messages pile up unread (melody would otherwise drop messages silently);
// 1009 for a frame over 4 KiB (sent by the WebSocket library, which cannot
// skip an oversized frame and read on); 1001 at shutdown. Bad JSON, an
// unknown action or field, a bad filter and a refusal are answered with
// {"type":"error","detail":...} and the connection stays open.
package realtime
