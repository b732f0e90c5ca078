// Sign-in page.

import { ApiError, post, setCsrf } from "../api.js";
import { esc } from "../format.js";
import { t } from "../i18n.js";
import { afterSignIn } from "../main.js";

export async function render(root, { app }) {
  root.innerHTML = `
    <h1>${esc(t("auth.login"))}</h1>
    <form class="form panel" id="login-form" autocomplete="on">
      <label for="login-user">${esc(t("auth.username"))}</label>
      <input id="login-user" name="username" autocomplete="username" required>
      <label for="login-pass">${esc(t("auth.password"))}</label>
      <input id="login-pass" name="password" type="password" autocomplete="current-password" required>
      <div class="actions"><button type="submit">${esc(t("auth.login"))}</button><span class="error" id="login-error"></span></div>
    </form>`;
  root.querySelector("#login-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const f = ev.currentTarget;
    const out = root.querySelector("#login-error");
    out.textContent = "";
    try {
      const me = await post("/auth/login", { username: f.username.value.trim(), password: f.password.value });
      setCsrf(me.csrf);
      await afterSignIn();
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      out.textContent = e.status === 401 ? t("auth.wrong") : e.message;
    }
  };
  root.querySelector("#login-user").focus();
}
