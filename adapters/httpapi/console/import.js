// CSV import as a background job: a dry run first, then the real import,
// each with a progress indicator fed by the WebSocket (import_progress) and
// by reading the job, and the report at the end, whose rejected rows can be
// downloaded as CSV, cut from the chosen file by line.
import { ApiError, api, get, qs } from './api.js';
import { clear, clearErrors, field, formError, h, select, showErrors } from './dom.js';
import { waitThenEnable } from './signin.js';

export function importPage(main, ctx) {
  let checked = null; // the file and options a dry run last passed over
  const run = h('button', { type: 'submit', id: 'run-import', disabled: true }, 'Import');
  const dry = h('button', { type: 'submit', id: 'dry-run', class: 'secondary' }, 'Dry run');
  const form = h('form', { class: 'card', id: 'import', novalidate: true },
    h('h1', {}, 'Import users from CSV'),
    h('p', { class: 'muted' }, 'Columns first_name, last_name, email, gender, ip_address; optional id, role, password_hash. Run a dry run first: it checks every row and writes nothing.'),
    h('div', { class: 'grid' },
      field('CSV file', 'file', { type: 'file', accept: '.csv,text/csv', required: true }),
      field('A row whose email is already stored', 'on_conflict', select('on_conflict', [['skip', 'skip it'], ['update', 'update the stored user'], ['fail', 'import nothing at all']])),
      field('Default password (optional)', 'default_password', { type: 'password', autocomplete: 'new-password' }, 'for new users without password_hash; they must change it at first sign-in')),
    formError(), h('div', { class: 'actions' }, dry, run));
  const progress = h('section', { class: 'card', id: 'progress', hidden: true });
  const report = h('section', { class: 'card', id: 'report', hidden: true });
  main.append(form, progress, report);

  const key = () => {
    const f = form.file.files[0];
    return f ? [f.name, f.size, f.lastModified, form.on_conflict.value, form.default_password.value].join('|') : '';
  };
  const resetCheck = () => { run.disabled = !checked || checked !== key(); };
  form.addEventListener('change', resetCheck);
  form.addEventListener('input', resetCheck);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const dryRun = ev.submitter !== run;
    const file = form.file.files[0];
    if (!file) { showErrors(form, { fields: [{ field: 'file', message: 'choose a CSV file' }] }); return; }
    const body = new FormData();
    if (form.default_password.value) body.append('default_password', form.default_password.value);
    body.append('file', file, file.name);
    const buttons = [dry, run];
    buttons.forEach((b) => { b.disabled = true; });
    const k = key();
    let limited = false;
    try {
      const { data: job } = await api('POST', `/api/v1/users/imports${qs({ on_conflict: form.on_conflict.value, dry_run: dryRun ? 'true' : 'false' })}`, { body });
      const done = await follow(ctx, job, progress);
      showReport(report, done, file);
      if (dryRun && done.status === 'succeeded') checked = k;
      if (!dryRun) checked = null;
    } catch (e) {
      if (e instanceof ApiError && e.status === 429 && e.retryAfter) {
        limited = true;
        waitThenEnable(form, dry, e.retryAfter);
      } else showErrors(form, e instanceof ApiError ? e : { message: e.message });
    } finally {
      if (!limited) dry.disabled = false;
      resetCheck();
    }
  });
}

// follow shows a job's progress until it ends, from the WebSocket's
// import_progress messages and, in case none arrive, by reading the job.
function follow(ctx, job, box) {
  clear(box);
  box.hidden = false;
  const bar = h('progress', { id: 'import-progress', max: 1 });
  const text = h('p', { role: 'status', id: 'progress-text' });
  box.append(h('h2', {}, job.dry_run ? 'Dry run' : 'Import'), h('label', { for: 'import-progress' }, 'Progress'), bar, text);
  const show = (j) => {
    text.textContent = `${j.status === 'running' ? 'Running' : j.status === 'succeeded' ? 'Done' : 'Failed'}: ${j.rows_read} rows read · ${j.imported} imported · ${j.updated} updated · ${j.skipped} skipped · ${j.failed} failed`;
    if (j.status !== 'running') bar.value = 1; else bar.removeAttribute('value');
  };
  show(job);
  return new Promise((resolve, reject) => {
    let finished = false;
    const finish = async () => {
      if (finished) return;
      finished = true;
      stop();
      clearInterval(timer);
      try { const j = await get(`/api/v1/users/imports/${job.id}`); show(j); resolve(j); } catch (e) { reject(e); }
    };
    const stop = ctx.live.onProgress((m) => {
      if (m.job_id !== job.id) return;
      show(m);
      if (m.status !== 'running') finish();
    });
    const timer = setInterval(async () => {
      try {
        const j = await get(`/api/v1/users/imports/${job.id}`);
        if (finished) return;
        show(j);
        if (j.status !== 'running') finish();
      } catch (e) { finished = true; stop(); clearInterval(timer); reject(e); }
    }, 1000);
  });
}

function showReport(box, job, file) {
  clear(box);
  box.hidden = false;
  const r = job.report;
  box.append(h('h2', {}, job.dry_run ? 'Dry run report (nothing written)' : 'Import report'));
  if (job.reason) box.append(h('p', { class: 'form-error', role: 'alert' }, job.reason));
  if (!r) return;
  const dl = h('dl', { class: 'counts' });
  for (const [k, v] of [['Rows', r.total_rows], ['Imported', r.imported], ['Updated', r.updated], ['Skipped', r.skipped], ['Failed', r.failed]]) dl.append(h('div', {}, h('dt', {}, k), h('dd', {}, String(v))));
  box.append(dl);
  if (!r.errors.length) { box.append(h('p', {}, 'Every row was good.')); return; }
  const lines = new Set(r.errors.filter((e) => e.line > 1).map((e) => e.line));
  if (lines.size) {
    box.append(h('p', {}, h('button', { type: 'button', id: 'download-rejected', onclick: () => downloadRejected(file, r.errors) }, `Download the ${lines.size} rejected rows (CSV)`)));
  }
  const tbody = h('tbody');
  for (const e of r.errors.slice(0, 500)) tbody.append(h('tr', {}, h('td', { dataset: { label: 'Line' } }, String(e.line)), h('td', { dataset: { label: 'Field' } }, e.field), h('td', { dataset: { label: 'Problem' } }, e.message)));
  box.append(h('div', { class: 'scroll' }, h('table', { id: 'report-errors' }, h('thead', {}, h('tr', {}, ['Line', 'Field', 'Problem'].map((t) => h('th', { scope: 'col' }, t)))), tbody)));
  if (r.errors.length > 500) box.append(h('p', { class: 'muted' }, `…and ${r.errors.length - 500} more in the download.`));
}

// downloadRejected cuts the rejected rows out of the chosen file by the
// line each starts on, adds the problems as a last column, and saves the
// result: fix it and import it again.
async function downloadRejected(file, errors) {
  const text = await file.text();
  const records = parseCSV(text.replace(/^\uFEFF/, ''));
  const problems = new Map();
  for (const e of errors) {
    if (e.line <= 1) continue;
    problems.set(e.line, [...(problems.get(e.line) || []), `${e.field}: ${e.message}`]);
  }
  const out = [];
  if (records.length) out.push([...records[0].cells, 'problems']);
  for (const rec of records.slice(1)) if (problems.has(rec.line)) out.push([...rec.cells, problems.get(rec.line).join('; ')]);
  const csv = out.map((cells) => cells.map(quote).join(',')).join('\r\n') + '\r\n';
  const url = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
  const a = h('a', { href: url, download: file.name.replace(/\.csv$/i, '') + '-rejected.csv' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function quote(s) {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// parseCSV reads RFC 4180 records with the line each starts on.
export function parseCSV(text) {
  const records = [];
  let cells = [];
  let cell = '';
  let line = 1;
  let start = 1;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (c === '"') quoted = false;
      else { if (c === '\n') line++; cell += c; }
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === ',') { cells.push(cell); cell = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      cells.push(cell);
      records.push({ line: start, cells });
      cells = []; cell = ''; line++; start = line;
    } else cell += c;
  }
  if (cell || cells.length) { cells.push(cell); records.push({ line: start, cells }); }
  return records;
}
