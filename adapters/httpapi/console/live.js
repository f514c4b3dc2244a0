// The live connection: one WebSocket per signed-in tab. Subscriptions
// remember the last seq they saw; when the connection is lost the status
// says so, and on reconnecting each subscription is made again with
// since_seq, so the changes missed meanwhile are replayed, none skipped.
import { token, refresh, current } from './api.js';

const statusEl = () => document.getElementById('live');

export class Live {
  constructor() {
    this.subs = new Set();       // every subscription the page wants
    this.byId = new Map();       // subscription_id -> sub
    this.queue = [];             // subs waiting to be (re)subscribed, one at a time
    this.waiting = null;         // the sub whose reply is awaited
    this.progress = new Set();   // import_progress listeners
    this.ws = null;
    this.delay = 500;
    this.closed = false;
    this.connect();
  }

  status(text, kind) {
    const el = statusEl();
    if (!el) return;
    el.textContent = text;
    el.className = `live ${kind}`;
  }

  connect() {
    if (this.closed || !current()) return;
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/users/ws`;
    const ws = new WebSocket(url);
    this.ws = ws;
    this.authed = false;
    this.status('Connecting…', 'pending');
    ws.onopen = () => ws.send(JSON.stringify({ action: 'auth', token: token() }));
    ws.onmessage = (m) => this.receive(JSON.parse(m.data));
    ws.onclose = (ev) => this.lost(ev);
  }

  async lost(ev) {
    if (this.closed) return;
    this.byId.clear();
    this.waiting = null;
    this.queue = [];
    const wait = this.delay;
    this.delay = Math.min(this.delay * 2, 5000);
    this.status(`Live updates lost — reconnecting in ${Math.ceil(wait / 1000)} s`, 'lost');
    if (ev.code === 4401) {
      // The access token expired or was revoked: a fresh one, or sign-out.
      try { await refresh(); } catch { return; }
    }
    setTimeout(() => this.connect(), wait);
  }

  receive(msg) {
    switch (msg.type) {
      case 'authenticated':
        this.authed = true;
        this.delay = 500;
        this.status('Live', 'ok');
        this.queue = [...this.subs];
        this.next();
        break;
      case 'subscribed': {
        const sub = this.waiting;
        this.waiting = null;
        if (sub && this.subs.has(sub)) {
          sub.id = msg.subscription_id;
          this.byId.set(sub.id, sub);
          if (sub.seq === null) sub.seq = msg.seq;
          sub.resolve(msg.seq);
        } else if (sub) {
          this.send({ action: 'unsubscribe', subscription_id: msg.subscription_id });
        }
        this.next();
        break;
      }
      case 'error':
        if (this.waiting) {
          const sub = this.waiting;
          this.waiting = null;
          if (msg.detail === 'resume_too_old') {
            // Too much was missed to replay: start afresh from now.
            sub.seq = null;
            sub.onReset?.();
            this.queue.unshift(sub);
          } else {
            this.subs.delete(sub);
            sub.reject(new Error(msg.detail));
          }
          this.next();
        }
        break;
      case 'created': case 'updated': case 'deleted': {
        const sub = this.byId.get(msg.subscription_id);
        if (!sub) break;
        if (sub.seq !== null && msg.seq <= sub.seq) break; // seen already
        sub.seq = msg.seq;
        sub.onEvent(msg.type, msg.user, msg.seq);
        break;
      }
      case 'unsubscribed':
        this.byId.delete(msg.subscription_id);
        break;
      case 'import_progress':
        this.progress.forEach((fn) => fn(msg));
        break;
      default:
    }
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  next() {
    if (this.waiting || !this.authed) return;
    const sub = this.queue.shift();
    if (!sub) return;
    if (!this.subs.has(sub)) { this.next(); return; }
    this.waiting = sub;
    const msg = { ...sub.request };
    if (sub.seq !== null) msg.since_seq = sub.seq;
    this.send(msg);
  }

  // subscribe asks for the changes matching request ({action, ...filters});
  // ready resolves with the seq the subscription starts at.
  subscribe(request, onEvent, onReset) {
    const sub = { request, onEvent, onReset, seq: null, id: null };
    sub.ready = new Promise((resolve, reject) => { sub.resolve = resolve; sub.reject = reject; });
    sub.ready.catch(() => {});
    this.subs.add(sub);
    this.queue.push(sub);
    this.next();
    sub.close = () => {
      this.subs.delete(sub);
      if (sub.id) {
        this.byId.delete(sub.id);
        this.send({ action: 'unsubscribe', subscription_id: sub.id });
      }
    };
    return sub;
  }

  onProgress(fn) { this.progress.add(fn); return () => this.progress.delete(fn); }

  close() {
    this.closed = true;
    this.subs.clear();
    this.ws?.close(1000);
    this.status('', '');
  }
}
