// The users table: search filters, sort and cursor paging, kept live by a
// search subscription for the filters on screen. A change shows in place,
// marked; a new user is added at the top, marked; a deleted one stays,
// struck through, so the reader keeps their place.
import { ApiError, get, qs } from './api.js';
import { GENDERS, ROLES, clear, field, fmtTime, formError, h, select, showErrors } from './dom.js';

const FILTERS = ['first_name', 'last_name', 'email', 'gender', 'role', 'ip_address'];
const SORTS = [['id', 'id ↑'], ['-id', 'id ↓'], ['email', 'email ↑'], ['-email', 'email ↓'],
  ['last_name', 'last name ↑'], ['-last_name', 'last name ↓'], ['created_at', 'created ↑'], ['-created_at', 'created ↓']];

export async function usersPage(main, ctx) {
  const search = ctx.caps.search;
  const state = { filters: {}, sort: 'id', size: '20', cursors: [''], rows: new Map(), sub: null, page: null };
  const form = h('form', { class: 'filters card', id: 'filters', role: 'search', novalidate: true },
    ...(search ? [
      field('First name', 'first_name', { type: 'search' }),
      field('Last name', 'last_name', { type: 'search' }),
      field('Email', 'email', { type: 'search' }),
      field('Gender', 'gender', select('gender', [['', 'any'], ...GENDERS])),
      field('Role', 'role', select('role', [['', 'any'], ...ROLES])),
      field('IP address or CIDR', 'ip_address', { type: 'search', placeholder: '10.0.0.0/8' }),
      field('Sort', 'sort', select('sort', SORTS, 'id')),
    ] : []),
    field('Per page', 'size', select('size', ['20', '50', '100'], '20')),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, search ? 'Search' : 'Show')),
    formError());
  const summary = h('p', { class: 'summary', id: 'summary', role: 'status' });
  const tbody = h('tbody');
  const table = h('table', { class: 'users', id: 'users' },
    h('caption', { class: 'sr-only' }, 'Users'),
    h('thead', {}, h('tr', {}, ['', 'Id', 'Name', 'Email', 'Gender', 'Role', 'IP address', 'Created'].map((t) => h('th', { scope: 'col' }, t)))),
    tbody);
  const prev = h('button', { type: 'button', class: 'quiet', id: 'prev' }, '← Previous');
  const next = h('button', { type: 'button', class: 'quiet', id: 'next' }, 'Next →');
  main.append(h('h1', {}, 'Users'));
  if (!search) main.append(h('p', { class: 'muted' }, 'Your role may list users but not search them, so the list is not live.'));
  main.append(form, summary, h('div', { class: 'scroll' }, table), h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, next));

  const row = (u, mark) => {
    const tr = h('tr', { dataset: { id: u.id } });
    fill(tr, u, mark);
    return tr;
  };

  async function load() {
    const i = state.cursors.length - 1;
    const params = { ...state.filters, size: state.size, cursor: state.cursors[i] || undefined };
    if (search) params.sort = state.sort;
    const path = search ? `/api/v1/users/search${qs(params)}` : `/api/v1/users/list${qs({ size: state.size, cursor: state.cursors[i] || undefined })}`;
    try {
      const page = await get(path);
      state.page = page;
      state.rows.clear();
      clear(tbody);
      for (const u of page.items) {
        const tr = row(u, '');
        state.rows.set(u.id, tr);
        tbody.append(tr);
      }
      if (!page.items.length) tbody.append(h('tr', {}, h('td', { colSpan: 8, class: 'muted' }, 'No users match.')));
      summary.textContent = `Page ${i + 1} of ${Math.max(page.pages, 1)} · ${page.total}${page.total_exact === false ? '+' : ''} users`;
      prev.disabled = i === 0;
      next.disabled = !page.next_cursor;
    } catch (e) {
      showErrors(form, e instanceof ApiError ? e : { message: e.message });
    }
  }

  function onEvent(type, u) {
    const tr = state.rows.get(u.id);
    if (type === 'created' && !tr) {
      const fresh = row(u, 'new');
      state.rows.set(u.id, fresh);
      tbody.prepend(fresh);
      tbody.querySelector('td.muted[colspan]')?.parentElement.remove();
    } else if (tr) {
      fill(tr, u, type === 'deleted' ? 'deleted' : type === 'created' ? 'new' : 'changed');
    }
  }

  async function apply() {
    const fd = new FormData(form);
    state.filters = {};
    if (search) for (const k of FILTERS) { const v = String(fd.get(k) || '').trim(); if (v) state.filters[k] = v; }
    state.sort = fd.get('sort') || 'id';
    state.size = fd.get('size') || '20';
    state.cursors = [''];
    form.querySelector('.form-error').textContent = '';
    if (search && ctx.caps.subscribe_search) {
      state.sub?.close();
      // Subscribe first and read the page after: a change committed in
      // between is then both on the page and an event, never neither.
      state.sub = ctx.live.subscribe({ action: 'subscribe_search', ...state.filters }, onEvent, load);
      try { await state.sub.ready; } catch (e) { showErrors(form, { message: `Live updates refused: ${e.message}` }); }
    }
    await load();
  }

  form.addEventListener('submit', (ev) => { ev.preventDefault(); apply(); });
  next.addEventListener('click', () => { state.cursors.push(state.page.next_cursor); load(); });
  prev.addEventListener('click', () => { state.cursors.pop(); load(); });
  ctx.cleanup.push(() => state.sub?.close());
  await apply();
}

const MARKS = { new: 'new', changed: 'changed', deleted: 'deleted' };

function fill(tr, u, mark) {
  clear(tr);
  tr.className = mark ? `mark-${mark}` : '';
  const cells = [
    ['', mark ? h('span', { class: `badge ${mark}` }, MARKS[mark]) : ''],
    ['Id', String(u.id)],
    ['Name', mark === 'deleted' ? `${u.first_name} ${u.last_name}` : h('a', { href: `#/users/${u.id}` }, `${u.first_name} ${u.last_name}`)],
    ['Email', u.email],
    ['Gender', u.gender],
    ['Role', u.role],
    ['IP address', u.ip_address || '—'],
    ['Created', fmtTime(u.created_at)],
  ];
  for (const [label, v] of cells) tr.append(h('td', { dataset: { label } }, v));
}
