// Users (admin): add, change role, reset password, remove; API tokens of everyone.

import { ApiError, del, get, patch, post } from "../api.js";
import { esc, time } from "../format.js";
import { t } from "../i18n.js";

export async function render(root, { app }) {
  const [users, tokens] = await Promise.all([get("/users"), get("/tokens")]);
  root.innerHTML = `<h1>${esc(t("nav.users"))}</h1>
    <div class="panel table-wrap"><table id="users-table"><thead><tr><th>${esc(t("auth.username"))}</th><th class="l">${esc(t("users.role"))}</th><th class="l">${esc(t("users.created"))}</th><th class="l"></th></tr></thead><tbody>
      ${users
        .map(
          (u) => `<tr data-user="${esc(u.username)}"><td>${esc(u.username)}</td>
          <td class="l"><select data-role="${esc(u.username)}">${["admin", "reader"].map((r) => `<option value="${r}" ${r === u.role ? "selected" : ""}>${esc(t(`role.${r}`))}</option>`).join("")}</select></td>
          <td class="l">${esc(time(u.created))}</td>
          <td class="l"><button class="secondary" data-passwd="${esc(u.username)}">${esc(t("users.set_password"))}</button>
            <button class="danger" data-remove="${esc(u.username)}" ${u.username === app.me.username ? "disabled" : ""}>${esc(t("common.delete"))}</button></td></tr>`,
        )
        .join("")}</tbody></table><p id="u-msg"></p></div>
    <form class="panel form" id="add-user"><h2>${esc(t("users.add"))}</h2>
      <label for="nu-name">${esc(t("auth.username"))}</label><input id="nu-name" required autocomplete="off">
      <label for="nu-pass">${esc(t("auth.password"))}</label><input id="nu-pass" type="password" minlength="8" required autocomplete="new-password">
      <label for="nu-role">${esc(t("users.role"))}</label><select id="nu-role"><option value="reader">${esc(t("role.reader"))}</option><option value="admin">${esc(t("role.admin"))}</option></select>
      <div class="actions"><button type="submit">${esc(t("common.add"))}</button><span id="nu-msg"></span></div></form>
    <div class="panel table-wrap"><h2>${esc(t("users.tokens"))}</h2><table><thead><tr><th>${esc(t("common.id"))}</th><th class="l">${esc(t("common.name"))}</th><th class="l">${esc(t("auth.username"))}</th><th class="l">${esc(t("users.role"))}</th><th class="l">${esc(t("users.last_used"))}</th><th></th></tr></thead><tbody>
      ${tokens.map((k) => `<tr><td>${esc(k.id)}</td><td class="l">${esc(k.name)}</td><td class="l">${esc(k.username)}</td><td class="l">${esc(t(`role.${k.role}`))}</td><td class="l">${esc(k.last_used ? time(k.last_used) : "–")}</td><td><button class="secondary" data-revoke="${esc(k.id)}">${esc(t("users.revoke"))}</button></td></tr>`).join("")}
    </tbody></table><p class="muted">${esc(t("users.tokens_help"))} <a href="#/account">${esc(t("nav.account"))}</a></p></div>`;
  const $ = (s) => root.querySelector(s);
  const msg = $("#u-msg");
  const fail = (el, e) => {
    if (!(e instanceof ApiError)) throw e;
    el.className = "error";
    el.textContent = e.message;
  };
  $("#users-table").onchange = async (ev) => {
    const name = ev.target.dataset.role;
    if (!name) return;
    try {
      await patch(`/users/${encodeURIComponent(name)}`, { role: ev.target.value });
      app.toast(t("common.saved"));
    } catch (e) {
      fail(msg, e);
      await render(root, { app });
    }
  };
  $("#users-table").onclick = async (ev) => {
    const b = ev.target.closest("button");
    if (!b) return;
    try {
      if (b.dataset.remove) {
        if (!confirm(t("users.confirm_remove", { name: b.dataset.remove }))) return;
        await del(`/users/${encodeURIComponent(b.dataset.remove)}`);
        await render(root, { app });
      } else if (b.dataset.passwd) {
        const pw = prompt(t("users.new_password", { name: b.dataset.passwd }));
        if (!pw) return;
        await patch(`/users/${encodeURIComponent(b.dataset.passwd)}`, { password: pw });
        app.toast(t("common.saved"));
      }
    } catch (e) {
      fail(msg, e);
    }
  };
  root.querySelectorAll("[data-revoke]").forEach(
    (b) =>
      (b.onclick = async () => {
        await del(`/tokens/${encodeURIComponent(b.dataset.revoke)}`);
        await render(root, { app });
      }),
  );
  $("#add-user").onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      await post("/users", { username: $("#nu-name").value.trim(), password: $("#nu-pass").value, role: $("#nu-role").value });
      await render(root, { app });
      app.toast(t("common.saved"));
    } catch (e) {
      fail($("#nu-msg"), e);
    }
  };
}
