// First run: create the admin account with the one-time setup token printed by the gateway.

import { ApiError, post, setCsrf } from "../api.js";
import { esc } from "../format.js";
import { t } from "../i18n.js";
import { afterSignIn } from "../main.js";

export async function render(root, { app }) {
  if (!app.me?.setup_required) {
    root.innerHTML = `<h1>${esc(t("setup.title"))}</h1><p>${esc(t("setup.done"))} <a href="#/login">${esc(t("auth.login"))}</a></p>`;
    return;
  }
  root.innerHTML = `
    <h1>${esc(t("setup.title"))}</h1>
    <p class="muted">${esc(t("setup.help"))}</p>
    <form class="form panel" id="setup-form">
      <label for="setup-token">${esc(t("setup.token"))}</label>
      <input id="setup-token" name="token" required autocomplete="off">
      <label for="setup-user">${esc(t("auth.username"))}</label>
      <input id="setup-user" name="username" value="admin" required autocomplete="username">
      <label for="setup-pass">${esc(t("auth.password"))}</label>
      <input id="setup-pass" name="password" type="password" minlength="8" required autocomplete="new-password">
      <label for="setup-pass2">${esc(t("auth.password_again"))}</label>
      <input id="setup-pass2" name="password2" type="password" minlength="8" required autocomplete="new-password">
      <div class="actions"><button type="submit">${esc(t("setup.create"))}</button><span class="error" id="setup-error"></span></div>
    </form>`;
  root.querySelector("#setup-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const f = ev.currentTarget;
    const out = root.querySelector("#setup-error");
    out.textContent = "";
    if (f.password.value !== f.password2.value) {
      out.textContent = t("auth.mismatch");
      return;
    }
    try {
      const me = await post("/setup", { token: f.token.value.trim(), username: f.username.value.trim(), password: f.password.value });
      setCsrf(me.csrf);
      await afterSignIn();
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      out.textContent = e.message;
    }
  };
}
