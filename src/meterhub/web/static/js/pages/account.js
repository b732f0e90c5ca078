// The signed-in user's own account: password, signed-in sessions and API tokens.

import { ApiError, del, get, patch, post } from "../api.js";
import { esc, time } from "../format.js";
import { t } from "../i18n.js";

export async function render(root, { app }) {
  const tokens = (await get("/tokens")).filter((k) => k.username === app.me.username);
  const sessions = await get("/auth/sessions");
  root.innerHTML = `<h1>${esc(t("nav.account"))}: ${esc(app.me.username)} <span class="muted">(${esc(t(`role.${app.me.role}`))})</span></h1>
    <form class="panel form" id="pw-form"><h2>${esc(t("users.set_password"))}</h2>
      <label for="pw0">${esc(t("auth.current_password"))}</label><input id="pw0" type="password" required autocomplete="current-password">
      <label for="pw1">${esc(t("auth.password"))}</label><input id="pw1" type="password" minlength="8" required autocomplete="new-password">
      <label for="pw2">${esc(t("auth.password_again"))}</label><input id="pw2" type="password" minlength="8" required autocomplete="new-password">
      <div class="actions"><button type="submit">${esc(t("common.save"))}</button><span id="pw-msg"></span></div></form>
    <div class="panel" id="sessions"><h2>${esc(t("account.sessions"))}</h2>
      <table><thead><tr><th>${esc(t("account.signed_in"))}</th><th class="l">${esc(t("account.last_seen"))}</th><th class="l">${esc(t("account.expires"))}</th><th></th></tr></thead>
      <tbody>${sessions.map((s) => `<tr${s.current ? " data-current" : ""}><td>${esc(time(s.created))}</td><td class="l">${esc(time(s.last_seen))}</td><td class="l">${esc(time(s.expires))}</td><td class="l">${s.current ? `<span class="badge">${esc(t("account.this_browser"))}</span>` : ""}</td></tr>`).join("")}</tbody></table>
      <div class="actions"><button class="secondary" id="logout-all">${esc(t("account.logout_all"))}</button></div></div>
    <div class="panel"><h2>${esc(t("users.tokens"))}</h2>
      <table><tbody>${tokens.map((k) => `<tr><td>${esc(k.name)}</td><td class="l">${esc(t(`role.${k.role}`))}</td><td class="l">${esc(time(k.created))}</td><td><button class="secondary" data-revoke="${esc(k.id)}">${esc(t("users.revoke"))}</button></td></tr>`).join("")}</tbody></table>
      <form class="toolbar" id="tok-form"><div><label for="tok-name">${esc(t("common.name"))}</label><input id="tok-name" required></div>
        <div><button type="submit">${esc(t("users.new_token"))}</button></div></form>
      <p id="tok-out"></p></div>`;
  const $ = (s) => root.querySelector(s);
  $("#pw-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const out = $("#pw-msg");
    if ($("#pw1").value !== $("#pw2").value) {
      out.className = "error";
      out.textContent = t("auth.mismatch");
      return;
    }
    try {
      await patch(`/users/${encodeURIComponent(app.me.username)}`, { password: $("#pw1").value, current_password: $("#pw0").value });
      out.className = "";
      out.textContent = t("common.saved");
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      out.className = "error";
      out.textContent = e.message;
    }
  };
  $("#logout-all").onclick = async () => {
    await post("/auth/logout-all");
    location.hash = "#/login";
    location.reload(); // a fresh start: no session, no CSRF token
  };
  $("#tok-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const made = await post("/tokens", { name: $("#tok-name").value.trim() });
    await render(root, { app });
    root.querySelector("#tok-out").innerHTML = `${esc(t("users.token_once"))}<br><code id="new-token">${esc(made.token)}</code>`;
  };
  root.querySelectorAll("[data-revoke]").forEach(
    (b) =>
      (b.onclick = async () => {
        await del(`/tokens/${encodeURIComponent(b.dataset.revoke)}`);
        await render(root, { app });
      }),
  );
}
