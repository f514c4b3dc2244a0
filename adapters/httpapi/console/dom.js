// Small DOM helpers: elements are built with properties and text nodes,
// never from HTML strings, so data from the API is never parsed as markup.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const SVG = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

let fieldSeq = 0;

// field builds a labelled input with a place for its error message, tied
// together by aria-describedby so screen readers read the error.
export function field(label, name, input = {}, hint = '') {
  const id = `f-${name}-${++fieldSeq}`;
  const errId = `${id}-err`;
  const control = input instanceof Node ? input : h('input', { name, id, ...input });
  control.id = id;
  control.name = name;
  control.setAttribute('aria-describedby', errId);
  return h('div', { class: 'field', dataset: { field: name } },
    h('label', { for: id }, label),
    control,
    hint ? h('small', { class: 'hint' }, hint) : null,
    h('small', { class: 'error', id: errId, role: 'status' }));
}

export function select(name, options, value = '') {
  const s = h('select', { name });
  for (const o of options) {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    s.append(h('option', { value: v, selected: v === value }, label));
  }
  return s;
}

// showErrors puts a 422's field errors next to their fields and the
// detail in the form's message line; fields the form lacks go there too.
export function showErrors(form, err) {
  clearErrors(form);
  const rest = [];
  for (const fe of err.fields || []) {
    const slot = form.querySelector(`[data-field="${CSS.escape(fe.field)}"] .error`);
    if (slot) {
      slot.textContent = fe.message;
      slot.closest('.field').classList.add('invalid');
      slot.closest('.field').querySelector('input,select')?.setAttribute('aria-invalid', 'true');
    } else rest.push(`${fe.field}: ${fe.message}`);
  }
  const msg = form.querySelector('.form-error');
  if (msg) msg.textContent = [err.message, ...rest].filter(Boolean).join(' — ');
  form.querySelector('[aria-invalid="true"]')?.focus();
}

export function clearErrors(form) {
  form.querySelectorAll('.field.invalid').forEach((f) => f.classList.remove('invalid'));
  form.querySelectorAll('[aria-invalid]').forEach((f) => f.removeAttribute('aria-invalid'));
  form.querySelectorAll('.error, .form-error').forEach((e) => { e.textContent = ''; });
}

export function formError() {
  return h('p', { class: 'form-error', role: 'alert' });
}

export function toast(text, kind = 'info') {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.className = `toast ${kind}`;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

export function fmtTime(s) {
  if (!s) return '';
  const d = new Date(s);
  return d.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

export const GENDERS = ['Male', 'Female', 'Non-binary', 'Agender', 'Bigender', 'Genderqueer', 'Polygender', 'Genderfluid'];
export const ROLES = ['user', 'admin', 'superadmin'];
