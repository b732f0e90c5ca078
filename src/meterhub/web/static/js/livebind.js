// Bind DOM elements to live series: <td data-live="circuit/quantity/phase" data-unit="W">
// (data-abs: show the magnitude; data-digits: decimals).
// Only the elements of changed series are touched on each message.

import { get, qs } from "./api.js";
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
      // data-abs: the magnitude (production shown positive whatever sign the meter reads)
      const value = r && el.dataset.abs !== undefined ? Math.abs(r.value) : r?.value;
      const text = r ? withUnit(value, el.dataset.unit ?? r.unit, el.dataset.digits ? Number(el.dataset.digits) : undefined) : "–";
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
    if (c.purpose !== purpose || c.virtual) continue;
    const v = live.value(c.id, "active_power", "total");
    if (v !== null && v !== undefined) sum = (sum ?? 0) + v;
  }
  return sum;
}

/**
 * The site now [W]: grid (import positive), generation (positive while producing, whatever sign the
 * renewable circuit reads), consumption (grid + generation where a grid circuit reports, else Σ of the
 * consumable circuits), metered (Σ consumable circuits) and unmetered = consumption − metered — the
 * site balance of meterhub.energy.virtual and the `unmetered` alarm rule.
 */
export function siteTotals(circuits, live) {
  const grid = sumPower(circuits, live, "grid");
  const gen = sumPower(circuits, live, "renewable");
  const generation = gen === null ? null : Math.abs(gen);
  const metered = sumPower(circuits, live, "consumable");
  const consumption = grid !== null ? grid + (generation ?? 0) : metered;
  const unmetered = grid !== null && metered !== null ? consumption - metered : null;
  return { grid, consumption, generation, metered, unmetered };
}

/**
 * Stored values of one series over the last `seconds` [[utcMs, value], …] (GET …/history, raw), for
 * backfilling a live chart when a page opens; [] when nothing is stored (or history is off).
 */
export async function recent(circuit, quantity, phase = "total", seconds = 300) {
  const end = Date.now();
  const params = { quantity, phase, start: new Date(end - seconds * 1000).toISOString(), end: new Date(end + 5000).toISOString(), resolution: "raw" };
  try {
    const h = await get(`/circuits/${encodeURIComponent(circuit)}/history${qs(params)}`);
    return h.points.map((p) => [Date.parse(p.ts), p.mean]);
  } catch {
    return [];
  }
}

/** Σ of several series' points in `step`-ms buckets [[bucketMs, sum], …], only buckets where every
 * series has a value (a partial sum would draw a false dip). `sign` multiplies the sum. */
export function sumSeries(list, step = 5000, sign = 1) {
  if (!list.length) return [];
  const maps = list.map((points) => {
    const m = new Map();
    for (const [ts, v] of points) {
      const b = Math.floor(ts / step) * step;
      const cur = m.get(b) ?? [0, 0];
      m.set(b, [cur[0] + v, cur[1] + 1]);
    }
    return m;
  });
  const out = [];
  for (const b of maps[0].keys()) {
    if (!maps.every((m) => m.has(b))) continue;
    out.push([b, sign * maps.reduce((a, m) => a + m.get(b)[0] / m.get(b)[1], 0)]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

/** Backfill points of the site totals (same rules as siteTotals) over the last `seconds` [W]. */
export async function recentTotals(circuits, seconds = 300) {
  const of = (purpose) => circuits.filter((c) => c.purpose === purpose && !c.virtual);
  const load = (list) => Promise.all(list.map((c) => recent(c.id, "active_power", "total", seconds)));
  const [grid, ren, cons] = await Promise.all([load(of("grid")), load(of("renewable")), load(of("consumable"))]);
  const g = sumSeries(grid);
  const gen = sumSeries(ren).map(([ts, v]) => [ts, Math.abs(v)]);
  let c = sumSeries(cons);
  if (of("grid").length) {
    const genAt = new Map(gen);
    c = g.map(([ts, v]) => [ts, v + (genAt.get(ts) ?? 0)]);
  }
  return { grid: g, consumption: c, generation: gen };
}
