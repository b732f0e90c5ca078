// Publish: the site file's publish instances (MQTT brokers, HTTP upload) — state light, last message,
// outbox backlog and oldest pending message, dropped messages — refreshed every 2 s; admins can send a
// test message through an instance's outbox (POST /api/v1/publish/{id}/test).

import { ApiError, get, post } from "../api.js";
import { esc, time } from "../format.js";
import { t } from "../i18n.js";

// state → badge colour (the badge classes of the devices page)
const TONE = { connected: "online", connecting: "data-warning", down: "offline", disabled: "data-ok" };

function age(seconds) {
  if (seconds < 120) return t("publish.age_s", { n: Math.round(seconds) });
  if (seconds < 7200) return t("publish.age_min", { n: Math.round(seconds / 60) });
  if (seconds < 172800) return t("publish.age_h", { n: Math.round(seconds / 3600) });
  return t("publish.age_d", { n: Math.round(seconds / 86400) });
}

function stateBadge(i) {
  return `<span class="badge ${TONE[i.state] || "data-ok"}" data-state="${esc(i.state)}">${esc(t(`publish.state_${i.state}`))}</span>`;
}

function cells(i) {
  return {
    state: stateBadge(i),
    last: esc(i.last_sent ? time(i.last_sent) : t("common.never")),
    backlog: esc(String(i.backlog)),
    oldest: esc(i.oldest ? `${time(i.oldest)} (${age(i.oldest_age_s)})` : "–"),
    dropped: esc(String(i.dropped)),
    sent: esc(String(i.sent_total)),
    message: esc(i.message),
  };
}

function row(i, admin) {
  const c = cells(i);
  const test = admin
    ? `<button class="secondary" data-test="${esc(i.id)}" ${i.enabled ? "" : "disabled"}>${esc(t("publish.test"))}</button>`
    : "";
  return `<tr data-instance="${esc(i.id)}">
    <td class="l"><strong>${esc(i.name)}</strong><br><span class="muted">${esc(i.id)} · ${esc(i.transport)} · ${esc(i.endpoint)}</span><br><span class="muted">${esc(i.formats.join(", "))}</span></td>
    <td class="l" data-cell="state">${c.state}</td>
    <td class="l" data-cell="last">${c.last}</td>
    <td data-cell="backlog">${c.backlog}</td>
    <td class="l" data-cell="oldest">${c.oldest}</td>
    <td data-cell="dropped">${c.dropped}</td>
    <td data-cell="sent">${c.sent}</td>
    <td class="l" style="white-space:normal;min-width:22em;max-width:36em"><span data-cell="message" class="muted">${c.message}</span>${admin ? `<br>${test}<div class="publish-test-msg" data-result="${esc(i.id)}"></div>` : ""}</td>
  </tr>`;
}

function paint(root, list) {
  for (const i of list) {
    const tr = root.querySelector(`tr[data-instance="${CSS.escape(i.id)}"]`);
    if (!tr) continue;
    const c = cells(i);
    for (const [name, html] of Object.entries(c)) {
      const el = tr.querySelector(`[data-cell="${name}"]`);
      if (el && el.innerHTML !== html) el.innerHTML = html;
    }
  }
}

export async function render(root, { app }) {
  const { instances } = await get("/publish");
  const admin = app.isAdmin;
  root.innerHTML = `<h1>${esc(t("nav.publish"))}</h1>
    <p class="muted">${esc(t("publish.intro"))}</p>
    ${
      instances.length
        ? `<div class="panel table-wrap"><table id="publish-table"><thead><tr>
        <th class="l">${esc(t("publish.instance"))}</th><th class="l">${esc(t("common.status"))}</th>
        <th class="l">${esc(t("publish.last_sent"))}</th><th>${esc(t("publish.backlog"))}</th>
        <th class="l">${esc(t("publish.oldest"))}</th><th>${esc(t("publish.dropped"))}</th>
        <th>${esc(t("publish.sent"))}</th><th class="l">${esc(t("publish.message"))}</th></tr></thead>
        <tbody>${instances.map((i) => row(i, admin)).join("")}</tbody></table></div>`
        : `<p class="panel" id="publish-none">${esc(t("publish.none"))}</p>`
    }`;

  const onClick = async (ev) => {
    const b = ev.target.closest("button[data-test]");
    if (!b) return;
    const id = b.dataset.test;
    const out = root.querySelector(`[data-result="${CSS.escape(id)}"]`);
    b.disabled = true;
    b.setAttribute("aria-busy", "true");
    out.className = "publish-test-msg muted";
    out.textContent = t("publish.testing");
    try {
      const res = await post(`/publish/${encodeURIComponent(id)}/test`);
      out.className = `publish-test-msg ${res.acknowledged ? "ok" : "error"}`;
      out.dataset.ack = String(res.acknowledged);
      out.textContent = res.acknowledged
        ? t("publish.test_ok", { id: res.message_id, target: res.target, s: res.seconds.toFixed(2) })
        : `${t("publish.test_failed", { id: res.message_id })} ${res.message}`;
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      out.className = "publish-test-msg error";
      out.dataset.ack = "false";
      out.textContent = e.message;
    } finally {
      b.disabled = false;
      b.removeAttribute("aria-busy");
    }
  };
  root.addEventListener("click", onClick);
  const timer = setInterval(async () => {
    try {
      paint(root, (await get("/publish")).instances);
    } catch {
      // keep the last known state; the next tick retries
    }
  }, 2000);
  return () => {
    clearInterval(timer);
    root.removeEventListener("click", onClick);
  };
}
