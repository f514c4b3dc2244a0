// The policy in force, read-only: permissions down, roles across, and in
// each cell the cases the policy allows, as GET /api/v1/policy answers them.
import { get } from './api.js';
import { h } from './dom.js';

export async function policyPage(main) {
  const m = await get('/api/v1/policy');
  // Questions per role: no target, self, and another user of each role,
  // each with no new role or one of each role.
  const roleCount = m.roles.length;
  const perTarget = roleCount + 1;
  const all = (1 + 1 + roleCount) * perTarget;
  const cell = (role, perm) => {
    const gs = m.grants.filter((g) => g.role === role && g.permission === perm);
    if (!gs.length) return h('td', { class: 'no', dataset: { label: role } }, h('span', { 'aria-label': 'no' }, '—'));
    if (gs.length === all) return h('td', { class: 'yes', dataset: { label: role } }, 'always');
    const items = [];
    const group = (rel, target) => gs.filter((g) => g.relation === rel && (target === undefined || g.target_role === target));
    const describe = (list, what) => {
      if (!list.length) return;
      if (list.length === perTarget) { items.push(what); return; }
      const given = list.map((g) => g.new_role).filter(Boolean);
      items.push(given.length ? `${what} → ${given.join(', ')}` : what);
    };
    describe(group('none'), 'yes');
    describe(group('self'), 'own account');
    const others = group('other');
    if (others.length === roleCount * perTarget) items.push('any other user');
    else for (const r of m.roles) describe(group('other', r), `others with role ${r}`);
    return h('td', { class: 'yes', dataset: { label: role } }, h('ul', {}, items.map((i) => h('li', {}, i))));
  };
  main.append(h('h1', {}, 'Policy in force'),
    h('p', { class: 'muted' }, 'Read-only. The service reloads policies/policy.csv when it changes; this page shows what is in force now, inheritance included. Rules no policy can break (nobody changes their own role, the last superadmin stays) apply on top.'),
    h('div', { class: 'scroll' }, h('table', { class: 'policy', id: 'policy' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Permission'), m.roles.map((r) => h('th', { scope: 'col' }, r)))),
      h('tbody', {}, m.permissions.map((p) => h('tr', {}, h('th', { scope: 'row' }, p), m.roles.map((r) => cell(r, p))))))));
}
