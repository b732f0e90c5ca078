// Page-wide presentation: the colour scheme (the system's, or the one chosen with the toggle, kept in
// this browser) and tables that become cards on a phone (each cell labelled with its column header).

import { t } from "./i18n.js";

const THEME_KEY = "meterhub.theme";
const dark = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

/** "dark" or "light": the choice made with the toggle, else the system's colour scheme. */
export function theme() {
  const chosen = localStorage.getItem(THEME_KEY);
  if (chosen === "dark" || chosen === "light") return chosen;
  return dark?.matches ? "dark" : "light";
}

document.documentElement.dataset.theme = theme(); // before the first paint: no light flash

function apply() {
  const th = theme();
  const changed = document.documentElement.dataset.theme !== th;
  document.documentElement.dataset.theme = th;
  const btn = document.getElementById("theme-toggle");
  if (btn) {
    btn.setAttribute("aria-pressed", String(th === "dark"));
    btn.textContent = th === "dark" ? "☀" : "☾";
  }
  // the page is drawn again, so its charts (canvas, coloured when made) take the new scheme
  if (changed) window.dispatchEvent(new HashChangeEvent("hashchange"));
}

/** Applies the scheme now, follows system changes, and wires the toggle button (#theme-toggle). */
export function installTheme() {
  const label = t("ui.dark_mode");
  let btn = document.getElementById("theme-toggle");
  const bar = document.getElementById("topbar");
  if (!btn && bar) {
    btn = document.createElement("button");
    btn.id = "theme-toggle";
    btn.type = "button";
    btn.className = "theme-toggle";
    bar.insertBefore(btn, document.getElementById("who"));
  }
  if (!document.getElementById("skip-link") && bar) {
    // keyboard users jump over the navigation to the page
    const skip = document.createElement("a");
    skip.id = "skip-link";
    skip.className = "skip-link";
    skip.href = "#view";
    skip.onclick = (ev) => {
      ev.preventDefault();
      const view = document.getElementById("view");
      view.tabIndex = -1;
      view.focus();
    };
    document.body.insertBefore(skip, document.body.firstChild);
  }
  document.getElementById("skip-link").textContent = t("ui.skip");
  apply();
  if (!installTheme.done) dark?.addEventListener?.("change", apply);
  installTheme.done = true;
  if (btn) {
    btn.setAttribute("aria-label", label);
    btn.title = label;
    btn.onclick = () => {
      const next = theme() === "dark" ? "light" : "dark";
      // the same as the system's scheme: forget the choice, so the page follows the system again
      if ((dark?.matches ? "dark" : "light") === next) localStorage.removeItem(THEME_KEY);
      else localStorage.setItem(THEME_KEY, next);
      apply();
    };
  }
}

/** Labels every cell of the tables under `root` with its column header (data-label), which the card
 * layout shows in front of the value, and turns a table into cards (table.card-rows) on a phone and
 * wherever its columns do not fit its box (a desktop window 641–900 px wide, a narrow panel) — no table
 * scrolls sideways. Keeps doing so as pages render new tables and rows and as boxes change size. */
export function installCardTables(root) {
  const phone = matchMedia("(max-width: 640px)");
  const fit = (table) => {
    const box = table.parentElement;
    if (!box) return;
    let cards = phone.matches;
    if (!cards) {
      const was = table.classList.contains("card-rows");
      table.classList.remove("card-rows"); // measure the table laid out as a table
      const css = getComputedStyle(box);
      const room = box.clientWidth - parseFloat(css.paddingLeft) - parseFloat(css.paddingRight);
      // back to a table only with some room to spare: a page scroll bar appearing with the taller
      // table must not make it flip back and forth
      cards = table.offsetWidth > room - (was ? 24 : 0) + 1;
    }
    table.classList.toggle("card-rows", cards);
  };
  const fitAll = () => {
    for (const table of root.querySelectorAll("table")) fit(table);
  };
  // box or table size changes (window resized, values widen a column): refit on the next frame
  let refit = false;
  const sizes = new ResizeObserver(() => {
    if (refit) return;
    refit = true;
    requestAnimationFrame(() => {
      refit = false;
      fitAll();
    });
  });
  const label = () => {
    sizes.disconnect();
    for (const table of root.querySelectorAll("table")) {
      const head = table.tHead?.rows[0];
      const names = head ? [...head.cells].map((c) => c.textContent.trim()) : [];
      table.classList.toggle("has-head", names.some(Boolean));
      for (const body of table.tBodies) {
        for (const tr of body.rows) {
          if (tr.dataset.labelled === String(names.length)) continue;
          let col = 0;
          for (const td of tr.cells) {
            const name = names[col] ?? "";
            if (name) td.dataset.label = name;
            col += td.colSpan || 1;
          }
          tr.dataset.labelled = String(names.length);
        }
      }
      fit(table);
      sizes.observe(table);
      if (table.parentElement) sizes.observe(table.parentElement);
    }
  };
  const obs = new MutationObserver((records) => {
    // text updates of live values change nothing here; only new elements need labels. Labelled and
    // fitted at once (the observer runs right after the script that drew the table, before anything
    // else can lay the page out), so a new table never shows, or measures, wider than its box.
    if (!records.some((r) => [...r.addedNodes].some((n) => n.nodeType === 1))) return;
    label();
  });
  obs.observe(root, { childList: true, subtree: true });
  label();
  return () => {
    obs.disconnect();
    sizes.disconnect();
  };
}
