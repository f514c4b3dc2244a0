// The API client. The tokens live in this module's memory only: never in
// localStorage, sessionStorage or a cookie, so a reload signs out and no
// other page or script can read them from storage.

let session = null; // { access, refresh, id, role, email }
const listeners = new Set();

export function current() { return session; }
export function onSession(fn) { listeners.add(fn); }
function changed() { listeners.forEach((fn) => fn(session)); }

// ApiError carries what people need: the sentence, the fields of a 422,
// and the wait of a 429.
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(body?.detail || body?.error_description || `the service answered ${status}`);
    this.status = status;
    this.code = body?.code || body?.error || '';
    this.fields = Array.isArray(body?.errors) ? body.errors : [];
    this.retryAfter = retryAfter;
    this.body = body;
  }
}

async function send(method, path, { json, form, body, headers = {}, auth = true } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (auth && session) h.Authorization = `Bearer ${session.access}`;
  let payload = body;
  if (json !== undefined) { h['Content-Type'] = 'application/json'; payload = JSON.stringify(json); }
  if (form) { payload = new URLSearchParams(form); }
  const res = await fetch(path, { method, headers: h, body: payload, credentials: 'omit', cache: 'no-store' });
  let data = null;
  const text = await res.text();
  if (text) { try { data = JSON.parse(text); } catch { data = { detail: text.slice(0, 200) }; } }
  if (!res.ok) {
    const ra = res.headers.get('Retry-After');
    throw new ApiError(res.status, data, ra ? Number(ra) : null);
  }
  return { data, res };
}

let refreshing = null;

// api sends one request; a 401 on an expired access token is retried once
// after refreshing the pair.
export async function api(method, path, opts = {}) {
  try {
    return await send(method, path, opts);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401 || !session || opts.auth === false) throw e;
    await refresh();
    return send(method, path, opts);
  }
}

export async function get(path) { return (await api('GET', path)).data; }

export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const { data } = await send('POST', '/api/v1/auth/refresh', { json: { refresh_token: session.refresh }, auth: false });
        session = { ...session, access: data.access_token, refresh: data.refresh_token };
      } catch (e) {
        session = null;
        changed();
        throw e;
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

// subjectOf reads the user id from the access token's claims; a token
// that must change its password may not even read /users/me.
function subjectOf(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return Number(JSON.parse(atob(b64)).sub);
  } catch { return 0; }
}

export async function signIn(email, password) {
  const { data } = await send('POST', '/api/v1/auth/token', {
    form: { grant_type: 'password', username: email, password }, auth: false,
  });
  session = { access: data.access_token, refresh: data.refresh_token, id: subjectOf(data.access_token), email };
  if (data.password_change_required) return { mustChange: true };
  await loadMe();
  return { mustChange: false };
}

export async function loadMe() {
  const me = await get('/api/v1/users/me');
  session = { ...session, id: me.id, role: me.role, email: me.email, me };
  changed();
  return me;
}

export async function signOut() {
  const s = session;
  session = null;
  changed();
  if (s) {
    try { await fetch('/api/v1/auth/logout', { method: 'POST', headers: { Authorization: `Bearer ${s.access}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ refresh_token: s.refresh }) }); } catch { /* signed out here anyway */ }
  }
}

export function token() { return session?.access; }

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== undefined && v !== null) u.set(k, v);
  const s = u.toString();
  return s ? `?${s}` : '';
}
