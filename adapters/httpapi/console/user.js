// One user's page: the profile, and the actions the caller's role allows on
// this user as GET /users/{id}/permissions answers (edit, role, password,
// delete), and the user's history for those who may read the audit log.
import { ApiError, api, current, get, loadMe, qs } from './api.js';
import { GENDERS, clear, clearErrors, field, fmtTime, formError, h, select, showErrors, toast } from './dom.js';
import { waitThenEnable } from './signin.js';

export async function userPage(main, ctx, id) {
  const [{ data: user, res }, perms] = await Promise.all([api('GET', `/api/v1/users/${id}`), get(`/api/v1/users/${id}/permissions`)]);
  let etag = res.headers.get('ETag');
  const self = current().id === id;
  const profile = h('dl', { class: 'profile', id: 'profile' });
  const notice = h('p', { class: 'notice', role: 'status', id: 'user-notice' });
  const show = (u) => {
    clear(profile);
    for (const [k, v] of [['Id', u.id], ['First name', u.first_name], ['Last name', u.last_name], ['Email', u.email],
      ['Gender', u.gender], ['Role', u.role], ['IP address', u.ip_address || '—'], ['Created', fmtTime(u.created_at)], ['Updated', fmtTime(u.updated_at)]]) {
      profile.append(h('dt', {}, k), h('dd', {}, String(v)));
    }
  };
  show(user);
  main.append(h('h1', {}, `${user.first_name} ${user.last_name}`, self ? ' (you)' : ''),
    notice, h('section', { class: 'card' }, h('h2', {}, 'Profile'), profile));

  const offered = h('ul', { class: 'offered', id: 'offered', 'aria-label': 'What you may do here' });
  main.append(offered);
  const offer = (name) => offered.append(h('li', { dataset: { action: name } }, name));

  const submitting = (form, fn) => form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const button = form.querySelector('button[type=submit]');
    try {
      await fn();
    } catch (e) {
      if (e instanceof ApiError && e.status === 429 && e.retryAfter) { waitThenEnable(form, button, e.retryAfter); return; }
      if (e instanceof ApiError && e.status === 412) e.message = 'Someone changed this user meanwhile: the page shows the new values; try again.';
      showErrors(form, e instanceof ApiError ? e : { message: e.message });
    }
  });
  const refresh = async () => {
    const r = await api('GET', `/api/v1/users/${id}`);
    etag = r.res.headers.get('ETag');
    show(r.data);
    return r.data;
  };

  if (perms.update) {
    offer('edit');
    const form = h('form', { class: 'card', id: 'edit', novalidate: true }, h('h2', {}, 'Edit profile'),
      h('div', { class: 'grid' },
        field('First name', 'first_name', { value: user.first_name, required: true, autocomplete: 'off' }),
        field('Last name', 'last_name', { value: user.last_name, required: true, autocomplete: 'off' }),
        field('Email', 'email', { type: 'email', value: user.email, required: true, autocomplete: 'off' }),
        field('Gender', 'gender', select('gender', GENDERS, user.gender)),
        field('IP address', 'ip_address', { value: user.ip_address || '', autocomplete: 'off' }),
        self ? field('Current password (to change your email)', 'current_password', { type: 'password', autocomplete: 'current-password' }) : null),
      formError(), h('button', { type: 'submit' }, 'Save'));
    submitting(form, async () => {
      const body = {};
      for (const k of ['first_name', 'last_name', 'email', 'gender']) body[k] = form[k].value.trim();
      const ip = form.ip_address.value.trim();
      if (ip) body.ip_address = ip;
      if (self && form.current_password.value) body.current_password = form.current_password.value;
      try {
        const r = await api('PUT', `/api/v1/users/${id}`, { json: body, headers: etag ? { 'If-Match': etag } : {} });
        etag = r.res.headers.get('ETag');
        show(r.data);
        toast('Saved.', 'ok');
        if (self) await loadMe();
      } catch (e) {
        if (e instanceof ApiError && e.status === 412) await refresh();
        throw e;
      }
    });
    main.append(form);
  }

  if (perms.role.length) {
    offer('role');
    const form = h('form', { class: 'card', id: 'role', novalidate: true }, h('h2', {}, 'Role'),
      field('Role', 'role', select('role', perms.role, user.role)), formError(), h('button', { type: 'submit' }, 'Change role'));
    submitting(form, async () => {
      const r = await api('PATCH', `/api/v1/users/${id}/role`, { json: { role: form.role.value } });
      show(r.data);
      toast(`Role is now ${r.data.role}.`, 'ok');
    });
    main.append(form);
  }

  if (perms.password) {
    offer('password');
    const form = h('form', { class: 'card', id: 'password', novalidate: true }, h('h2', {}, self ? 'Change your password' : 'Set password'),
      h('div', { class: 'grid' },
        self ? field('Current password', 'current_password', { type: 'password', autocomplete: 'current-password', required: true }) : null,
        field('New password', 'password', { type: 'password', autocomplete: 'new-password', required: true }, '8 to 128 characters; signs the user out everywhere')),
      formError(), h('button', { type: 'submit' }, 'Set password'));
    submitting(form, async () => {
      const body = { password: form.password.value };
      if (self) body.current_password = form.current_password.value;
      await api('PUT', `/api/v1/users/${id}`, { json: body });
      form.reset();
      toast('Password set.', 'ok');
    });
    main.append(form);
  }

  if (perms.delete) {
    offer('delete');
    const confirmBox = h('div', { class: 'confirm', hidden: true },
      h('p', {}, `Delete ${user.email}? This cannot be undone.`),
      h('button', { type: 'button', class: 'danger', id: 'confirm-delete', onclick: async () => {
        try {
          await api('DELETE', `/api/v1/users/${id}`);
          toast('Deleted.', 'ok');
          location.hash = '#/users';
        } catch (e) { toast(e.message, 'bad'); }
      } }, 'Delete for good'),
      h('button', { type: 'button', class: 'quiet', onclick: () => { confirmBox.hidden = true; } }, 'Cancel'));
    main.append(h('section', { class: 'card', id: 'delete' }, h('h2', {}, 'Delete'),
      h('button', { type: 'button', class: 'danger', onclick: () => { confirmBox.hidden = false; confirmBox.querySelector('button').focus(); } }, 'Delete user…'),
      confirmBox));
  }
  if (!offered.children.length) offered.append(h('li', { class: 'muted' }, 'Your role may only read this user.'));

  if (perms.audit) {
    offer('history');
    const tbody = h('tbody');
    main.append(h('section', { class: 'card', id: 'history' }, h('h2', {}, 'History'),
      h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, ['Seq', 'When', 'Action', 'By', 'Changed'].map((t) => h('th', { scope: 'col' }, t)))), tbody))));
    const page = await get(`/api/v1/audit${qs({ target_id: id, size: 100 })}`);
    for (const e of page.items.slice().reverse()) {
      tbody.append(h('tr', {}, h('td', { dataset: { label: 'Seq' } }, String(e.seq)), h('td', { dataset: { label: 'When' } }, fmtTime(e.at)),
        h('td', { dataset: { label: 'Action' } }, e.action), h('td', { dataset: { label: 'By' } }, e.actor_id ? h('a', { href: `#/users/${e.actor_id}` }, `#${e.actor_id}`) : 'operator'),
        h('td', { dataset: { label: 'Changed' } }, changedKeys(e))));
    }
    if (!page.items.length) tbody.append(h('tr', {}, h('td', { colSpan: 5, class: 'muted' }, 'No history kept.')));
  }

  // This user, live: a change made anywhere shows here.
  const sub = ctx.live.subscribe({ action: 'subscribe_id', user_id: id }, async (type, u) => {
    if (type === 'deleted') { notice.textContent = 'This user has just been deleted.'; return; }
    notice.textContent = `Changed ${fmtTime(u.updated_at)} — the profile shows the new values.`;
    await refresh();
  });
  ctx.cleanup.push(() => sub.close());
}

function changedKeys(e) {
  if (!e.before || !e.after) return e.action === 'created' ? 'created' : e.action === 'deleted' ? 'deleted' : '';
  const keys = Object.keys(e.after).filter((k) => k !== 'updated_at' && JSON.stringify(e.before[k]) !== JSON.stringify(e.after[k]));
  return keys.length ? keys.join(', ') : e.action === 'password_changed' ? 'password' : '—';
}
