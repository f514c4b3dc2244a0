// The overview: users by role, and sign-ups and changes per day over the
// last 30 days from the change log, drawn as SVG (no inline style, no
// library), with the same figures as a table for screen readers.
import { get } from './api.js';
import { h, svg } from './dom.js';

export async function overviewPage(main) {
  const s = await get('/api/v1/stats');
  const total = s.by_role.user + s.by_role.admin + s.by_role.superadmin;
  const approx = s.total_exact ? '' : '≈';
  main.append(h('h1', {}, 'Overview'),
    h('div', { class: 'cards', id: 'counts' },
      ...[['All users', total], ['Users', s.by_role.user], ['Admins', s.by_role.admin], ['Superadmins', s.by_role.superadmin]]
        .map(([k, v]) => h('div', { class: 'card stat' }, h('span', { class: 'stat-value' }, approx + v.toLocaleString('en')), h('span', { class: 'stat-label' }, k)))));
  const kept = s.kept_since ? new Date(s.kept_since) : null;
  const section = h('section', { class: 'card', id: 'activity' }, h('h2', {}, 'Last 30 days'),
    h('p', { class: 'legend' }, h('span', { class: 'key created' }), 'users created ', h('span', { class: 'key changes' }), 'all changes'),
    h('div', { class: 'chart-wrap' }, chart(s.days, kept)));
  if (kept && kept > new Date(s.days[0].day)) {
    section.append(h('p', { class: 'muted' }, `The change log keeps entries since ${kept.toISOString().slice(0, 10)} (CHANGE_LOG_RETENTION); earlier days show nothing.`));
  }
  const rows = s.days.map((d) => h('tr', {}, h('td', {}, d.day), h('td', {}, String(d.created)), h('td', {}, String(d.changes))));
  section.append(h('details', {}, h('summary', {}, 'Show as a table'),
    h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Day'), h('th', { scope: 'col' }, 'Created'), h('th', { scope: 'col' }, 'Changes'))), h('tbody', {}, rows)))));
  main.append(section);
}

function chart(days, kept) {
  const W = 1000; const H = 240; const pad = { l: 36, r: 8, t: 8, b: 22 };
  const max = Math.max(1, ...days.map((d) => d.changes));
  const bw = (W - pad.l - pad.r) / days.length;
  const y = (v) => pad.t + (H - pad.t - pad.b) * (1 - v / max);
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': 'Users created and changes per day, last 30 days' });
  for (const v of [0, Math.round(max / 2), max]) {
    g.append(svg('line', { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), class: 'grid' }),
      svg('text', { x: pad.l - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, String(v)));
  }
  days.forEach((d, i) => {
    const x = pad.l + i * bw;
    const dayEnd = new Date(d.day); dayEnd.setUTCDate(dayEnd.getUTCDate() + 1);
    const cls = kept && dayEnd <= kept ? ' unkept' : '';
    g.append(svg('rect', { x: x + 1, y: y(d.changes), width: Math.max(bw - 2, 1), height: H - pad.b - y(d.changes), class: `changes${cls}` },
      svg('title', {}, `${d.day}: ${d.changes} changes, ${d.created} created`)));
    g.append(svg('rect', { x: x + bw * 0.25, y: y(d.created), width: Math.max(bw * 0.5, 1), height: H - pad.b - y(d.created), class: 'created' }));
    if ((days.length - 1 - i) % 7 === 0) {
      const last = i === days.length - 1;
      g.append(svg('text', { x: last ? x + bw : x + bw / 2, y: H - 6, 'text-anchor': last ? 'end' : 'middle', class: 'axis' }, d.day.slice(5)));
    }
  });
  return g;
}
