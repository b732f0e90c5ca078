// Bind DOM elements to live series: <td data-live="circuit/quantity/phase" data-unit="W">.
// Only the elements of changed series are touched on each message.

import { withUnit } from "./format.js";

export function bindLive(root, live, { flash = false } = {}) {
  const index = new Map();
  for (const el of root.querySelectorAll("[data-live]")) {
    const k = el.dataset.live;
    if (!index.has(k)) index.set(k, []);
    index.get(k).push(el);
  }
  const paint = (k) => {
    const els = index.get(k);
    if (!els) return;
    const [c, q, p] = k.split("/");
    const r = live.reading(c, q, p === "-" ? null : p);
    for (const el of els) {
      const text = r ? withUnit(r.value, el.dataset.unit ?? r.unit, el.dataset.digits ? Number(el.dataset.digits) : undefined) : "–";
      if (el.textContent !== text) {
        el.textContent = text;
        if (flash) {
          el.classList.remove("flash");
          void el.offsetWidth;
          el.classList.add("flash");
        }
      }
    }
  };
  for (const k of index.keys()) paint(k);
  return live.subscribe((changed) => {
    for (const k of changed) paint(k);
  });
}

/** Sum of total active power over circuits of one purpose [W], or null when none report. */
export function sumPower(circuits, live, purpose) {
  let sum = null;
  for (const c of circuits) {
    if (c.purpose !== purpose) continue;
    const v = live.value(c.id, "active_power", "total");
    if (v !== null && v !== undefined) sum = (sum ?? 0) + v;
  }
  return sum;
}

/** Grid (import positive), consumption and generation of the site now [W]. */
export function siteTotals(circuits, live) {
  const grid = sumPower(circuits, live, "grid");
  const gen = sumPower(circuits, live, "renewable");
  const generation = gen === null ? null : Math.abs(gen);
  let consumption = sumPower(circuits, live, "consumable");
  if (consumption === null && grid !== null) consumption = grid + (generation ?? 0);
  return { grid, consumption, generation };
}
