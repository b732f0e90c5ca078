// The single-page app: who am I, navigation, hash routing to page modules.

import { api, ApiError, get, setCsrf } from "./api.js";
import { LANGUAGES, lang, setLanguage, t } from "./i18n.js";
import * as live from "./live.js";
import { esc, setTimeZone } from "./format.js";
import { installCardTables, installTheme } from "./ui.js";
import { paintBadge, startBadge, stopBadge } from "./pages/alarms.js";

const PAGES = {
  overview: { module: "./pages/overview.js", nav: true },
  devices: { module: "./pages/devices.js", nav: true },
  circuit: { module: "./pages/circuit.js", nav: false },
  history: { module: "./pages/history.js", nav: true },
  reports: { module: "./pages/reports.js", nav: true, signedIn: true },
  analysis: { module: "./pages/analysis.js", nav: true, signedIn: true },
  alarms: { module: "./pages/alarms.js", nav: true, signedIn: true },
  publish: { module: "./pages/publish.js", nav: true, signedIn: true },
  commissioning: { module: "./pages/commissioning.js", nav: true, signedIn: true },
  display: { module: "./pages/display.js", nav: true },
  config: { module: "./pages/config.js", nav: true, admin: true },
  users: { module: "./pages/users.js", nav: true, admin: true },
  account: { module: "./pages/account.js", nav: false, signedIn: true },
  login: { module: "./pages/login.js", nav: false, open: true },
  setup: { module: "./pages/setup.js", nav: false, open: true },
};

export const app = {
  me: null,
  site: null,
  get isAdmin() {
    return this.me?.role === "admin";
  },
  get signedIn() {
    return !!this.me?.authenticated;
  },
  toast,
  refreshMe,
  navigate: (hash) => {
    location.hash = hash;
  },
};

let cleanup = null;
let renderSeq = 0;

function toast(text, isError = false) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.className = isError ? "toast error" : "toast";
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.hidden = true), isError ? 6000 : 2500);
}

async function refreshMe() {
  app.me = await get("/auth/me");
  if (app.me.csrf) setCsrf(app.me.csrf);
  app.site = null;
  if (app.me.authenticated || app.me.public_live) {
    try {
      app.site = await get("/site");
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
    }
  }
  setTimeZone(app.site?.timezone);
  const language = localStorage.getItem("meterhub.lang") || app.site?.language || app.me.language || "en";
  await setLanguage(language);
  renderChrome();
}

function renderChrome() {
  const title = app.site?.title || app.site?.name || app.me?.title || "meterhub";
  document.getElementById("site-title").textContent = title;
  document.title = title;
  const logo = document.getElementById("logo");
  logo.src = app.site?.logo || "/static/favicon.svg";
  const page = currentPage().name;
  const nav = document.getElementById("nav");
  nav.innerHTML = Object.entries(PAGES)
    .filter(([name, p]) => p.nav && allowed(name))
    .map(([name]) => `<a href="#/${name}" data-page="${name}" class="${name === page ? "active" : ""}">${esc(t(`nav.${name}`))}</a>`)
    .join("");
  paintBadge(); // the count of unacknowledged alarms on the Alarms link
  const who = document.getElementById("who");
  const picker = `<select id="lang-pick" aria-label="Language">${Object.entries(LANGUAGES)
    .map(([code, name]) => `<option value="${code}" ${code === lang() ? "selected" : ""}>${esc(name)}</option>`)
    .join("")}</select>`;
  if (app.signedIn) {
    who.innerHTML = `${picker} <a href="#/account" style="color:inherit">${esc(app.me.username)}</a> <span class="muted">(${esc(t(`role.${app.me.role}`))})</span>
      <button class="secondary" id="logout">${esc(t("auth.logout"))}</button>`;
    document.getElementById("logout").onclick = async () => {
      await api("POST", "/auth/logout");
      setCsrf(null);
      stopBadge();
      await refreshMe();
      app.navigate("#/login");
    };
  } else {
    who.innerHTML = `${picker} ${
      app.me?.setup_required
        ? `<a href="#/setup" style="color:#fde68a">${esc(t("auth.setup"))}</a>`
        : `<a href="#/login" style="color:#fff">${esc(t("auth.login"))}</a>`
    }`;
  }
  document.getElementById("lang-pick").onchange = async (ev) => {
    localStorage.setItem("meterhub.lang", ev.target.value); // this browser's choice; the site default is an interface option
    await setLanguage(ev.target.value);
    await route();
  };
  installTheme(); // dark/light scheme and its toggle (labels in the current language)
  const banner = document.getElementById("banner");
  if (app.me?.setup_required && page !== "setup") {
    banner.innerHTML = `${esc(t("setup.banner"))} <a href="#/setup">${esc(t("auth.setup"))}</a>`;
    banner.hidden = false;
  } else if (app.site?.demo && !app.signedIn) {
    banner.textContent = t("demo.banner");
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
}

function allowed(name) {
  const p = PAGES[name];
  if (p.open) return true;
  if (p.admin) return app.isAdmin;
  if (p.signedIn) return app.signedIn;
  return app.signedIn || app.me?.public_live;
}

function currentPage() {
  if (location.pathname === "/display") return { name: "display", args: [] };
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const name = parts[0] && PAGES[parts[0]] ? parts[0] : "overview";
  return { name, args: parts.slice(1) };
}

async function route() {
  const seq = ++renderSeq;
  if (cleanup) {
    try {
      cleanup();
    } catch (e) {
      console.warn(e);
    }
    cleanup = null;
  }
  let { name, args } = currentPage();
  if (!allowed(name)) {
    if (!app.signedIn) {
      name = app.me?.setup_required ? "setup" : "login";
      args = [];
    } else {
      name = "overview";
      toast(t("auth.forbidden"), true);
    }
  }
  document.body.classList.toggle("display-mode", name === "display");
  document.getElementById("nav").classList.remove("open");
  renderChrome();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  const view = document.getElementById("view");
  view.innerHTML = `<p class="muted">${esc(t("common.loading"))}</p>`;
  view.dataset.page = name;
  try {
    const mod = await import(PAGES[name].module);
    if (seq !== renderSeq) return;
    // Each page renders into a box of its own: a page still awaiting its data when the next route
    // starts then fills its detached box, never the next page's view.
    const box = document.createElement("div");
    view.replaceChildren(box);
    const done = (await mod.render(box, { app, args, live })) || null;
    if (seq !== renderSeq) {
      // another route started while this page was rendering: stop this page's timers now, or they
      // would run on the next page's elements (and never be cleaned up)
      if (done) done();
      return;
    }
    cleanup = done;
  } catch (e) {
    if (seq !== renderSeq) return;
    if (e instanceof ApiError && e.status === 401) {
      await refreshMe();
      app.navigate(app.me.setup_required ? "#/setup" : "#/login");
      return;
    }
    view.innerHTML = `<p class="error">${esc(e.message || e)}</p>`;
    console.warn(e);
  }
}

async function boot() {
  installCardTables(document.getElementById("view")); // tables become labelled cards on a phone
  document.getElementById("menu-toggle").onclick = (ev) => {
    const nav = document.getElementById("nav");
    nav.classList.toggle("open");
    ev.currentTarget.setAttribute("aria-expanded", nav.classList.contains("open"));
  };
  await refreshMe();
  if (app.signedIn || app.me.public_live) {
    live.start();
    await live.ready();
  }
  if (app.signedIn) startBadge();
  window.addEventListener("hashchange", route);
  await route();
}

export async function afterSignIn() {
  await refreshMe();
  live.stop();
  live.start();
  await live.ready();
  startBadge();
  const page = currentPage().name;
  if (page === "login" || page === "setup") app.navigate("#/overview");
  else await route();
}

boot();
