// The console's entry: sign-in, the navigation, and a hash router over the
// pages. What the navigation and each page offer comes from the API's own
// answers (GET /permissions, GET /users/{id}/permissions), never from a copy
// of the policy in this code.
import { current, get, onSession, signOut } from './api.js';
import { clear, h } from './dom.js';
import { Live } from './live.js';
import { signInPage } from './signin.js';
import { overviewPage } from './overview.js';
import { usersPage } from './users.js';
import { userPage } from './user.js';
import { importPage } from './import.js';
import { policyPage } from './policy.js';

const main = document.getElementById('main');
const ctx = { caps: null, live: null, cleanup: [] };

function pages() {
  const c = ctx.caps;
  const me = current();
  return [
    c.search && { hash: '#/overview', label: 'Overview', render: overviewPage },
    (c.search || c.list) && { hash: '#/users', label: 'Users', render: usersPage },
    { hash: `#/users/${me.id}`, label: 'My profile' },
    c.import && { hash: '#/import', label: 'Import', render: importPage },
    c.policy && { hash: '#/policy', label: 'Policy', render: policyPage },
  ].filter(Boolean);
}

function renderNav() {
  const nav = clear(document.getElementById('nav'));
  if (!ctx.caps) return;
  const here = location.hash || '';
  const ul = h('ul');
  for (const p of pages()) {
    const active = here === p.hash || (p.hash === '#/users' && /^#\/users\/?$/.test(here));
    ul.append(h('li', {}, h('a', { href: p.hash, 'aria-current': active ? 'page' : null }, p.label)));
  }
  nav.append(ul);
  const me = current();
  document.getElementById('who').textContent = me ? `${me.email} · ${me.role}` : '';
  document.getElementById('signout').hidden = !me;
}

async function route() {
  ctx.cleanup.splice(0).forEach((fn) => fn());
  if (!current() || !ctx.caps) {
    renderNav();
    signInPage(main, ctx, started);
    return;
  }
  const hash = location.hash || '';
  const list = pages();
  let page;
  const m = hash.match(/^#\/users\/(\d+)$/);
  if (m) page = { render: (el, c) => userPage(el, c, Number(m[1])) };
  else page = list.find((p) => p.hash === hash && p.render);
  if (!page) {
    location.replace(list[0].hash);
    return;
  }
  renderNav();
  clear(main);
  try {
    await page.render(main, ctx);
  } catch (e) {
    main.append(h('p', { class: 'form-error', role: 'alert' }, e.message));
  }
  main.focus({ preventScroll: true });
}

// started runs once a session exists (after sign-in, and after a forced
// password change and the sign-in that follows it).
async function started() {
  ctx.caps = await get('/api/v1/permissions');
  ctx.live?.close();
  ctx.live = new Live();
  if (!location.hash || location.hash === '#/signin') location.hash = pages()[0].hash;
  else route();
}

onSession((s) => {
  if (!s) {
    ctx.caps = null;
    ctx.live?.close();
    ctx.live = null;
    route();
  }
});

document.getElementById('signout').addEventListener('click', () => {
  signOut();
  location.hash = '#/signin';
});
window.addEventListener('hashchange', route);
route();
