// Sign-in, and the forced password change of imported users: their token
// allows nothing but setting a new password, after which they sign in again.
import { ApiError, api, current, signIn } from './api.js';
import { clear, clearErrors, field, formError, h, showErrors } from './dom.js';

export function signInPage(main, ctx, started) {
  clear(main);
  const form = h('form', { class: 'card narrow', id: 'signin', novalidate: true },
    h('h1', {}, 'Sign in'),
    field('Email', 'username', { type: 'email', autocomplete: 'username', required: true }),
    field('Password', 'password', { type: 'password', autocomplete: 'current-password', required: true }),
    formError(),
    h('button', { type: 'submit' }, 'Sign in'));
  main.append(form);
  form.querySelector('input').focus();
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const email = form.username.value.trim();
    const password = form.password.value;
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      const r = await signIn(email, password);
      if (r.mustChange) {
        changePasswordPage(main, email, password, started);
        return;
      }
      await started();
    } catch (e) {
      if (e instanceof ApiError && e.status === 429 && e.retryAfter) {
        waitThenEnable(form, button, e.retryAfter);
        return;
      }
      showErrors(form, e instanceof ApiError ? e : { message: e.message });
    }
    button.disabled = false;
  });
}

// waitThenEnable shows a 429's wait as a countdown and keeps the button
// disabled until it is over.
export function waitThenEnable(form, button, seconds) {
  const msg = form.querySelector('.form-error');
  let left = Math.ceil(seconds);
  const tick = () => {
    if (left <= 0) {
      msg.textContent = 'You may try again now.';
      button.disabled = false;
      return;
    }
    msg.textContent = `Too many attempts: try again in ${left} s.`;
    left -= 1;
    setTimeout(tick, 1000);
  };
  button.disabled = true;
  tick();
}

function changePasswordPage(main, email, oldPassword, started) {
  clear(main);
  const form = h('form', { class: 'card narrow', id: 'change-password', novalidate: true },
    h('h1', {}, 'Choose a new password'),
    h('p', {}, 'Your account was given a password by an administrator. Choose your own to continue.'),
    field('New password', 'password', { type: 'password', autocomplete: 'new-password', required: true, minLength: 8, maxLength: 128 }, '8 to 128 characters'),
    field('New password again', 'confirm', { type: 'password', autocomplete: 'new-password', required: true }),
    formError(),
    h('button', { type: 'submit' }, 'Set password'));
  main.append(form);
  form.password.focus();
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    if (form.password.value !== form.confirm.value) {
      showErrors(form, { fields: [{ field: 'confirm', message: 'does not match the new password' }] });
      return;
    }
    try {
      await api('PUT', `/api/v1/users/${current().id}`, { json: { password: form.password.value, current_password: oldPassword } });
      // The change ended every token of the account: sign in with the new one.
      await signIn(email, form.password.value);
      await started();
    } catch (e) {
      showErrors(form, e instanceof ApiError ? e : { message: e.message });
    }
  });
}
