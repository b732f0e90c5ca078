// Number formatting with SI prefixes and the UI language.

import { lang } from "./i18n.js";

const PREFIXED = new Set(["W", "var", "VA", "Wh", "varh", "VAh"]);
let siteZone; // the site's IANA time zone (interface option); undefined = the browser's

export function setTimeZone(tz) {
  siteZone = tz || undefined;
  offsets.clear();
}

/** The site's IANA time zone, or undefined (the browser's). */
export function timeZone() {
  return siteZone;
}

// -- the site's wall clock ------------------------------------------------------------------------
// Charts (ECharts) and <input type="datetime-local"> only know UTC and the browser's zone. Every time
// shown is the site's (IANA zone from GET /api/v1/site), so a browser in New York looking at a site in
// Berlin sees Berlin time: a chart gets "wall-clock ms" (UTC ms + the site's offset at that instant,
// looked up per instant, so DST changes fall where they do on site) and draws them with useUTC.
const offsets = new Map(); // 15-min slot → offset [ms]; zones change offset on a quarter hour at most

/** Offset of the site's zone from UTC at instant `ms` [ms] (e.g. +3 600 000 for CET, +7 200 000 for CEST). */
export function siteOffset(ms) {
  if (!siteZone) return -new Date(ms).getTimezoneOffset() * 60000;
  const slot = Math.floor(ms / 900000);
  let off = offsets.get(slot);
  if (off === undefined) {
    const parts = Object.fromEntries(
      zoneParts.get(siteZone).formatToParts(new Date(slot * 900000)).map((p) => [p.type, p.value]),
    );
    const wall = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour % 24, +parts.minute, +parts.second);
    off = wall - slot * 900000;
    if (offsets.size > 20000) offsets.clear();
    offsets.set(slot, off);
  }
  return off;
}

const zoneParts = {
  cache: new Map(),
  get(tz) {
    if (!this.cache.has(tz)) {
      this.cache.set(
        tz,
        new Intl.DateTimeFormat("en-US", {
          timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
          hour: "2-digit", minute: "2-digit", second: "2-digit",
        }),
      );
    }
    return this.cache.get(tz);
  },
};

/** UTC ms → the site's wall clock as if it were UTC (what charts with useUTC draw). */
export function toWall(ms) {
  return ms + siteOffset(ms);
}

/** The site's wall clock (as UTC ms) → the UTC instant [ms]; in the repeated hour of a DST change the
 * second (standard-time) instant, in the skipped hour the instant one hour later (after the change). */
export function fromWall(wall) {
  let ms = wall - siteOffset(wall);
  ms = wall - siteOffset(ms);
  return ms;
}

/** "2026-03-29T02:30" for an <input type="datetime-local">, in the site's time. */
export function toSiteInput(ms) {
  return new Date(toWall(ms)).toISOString().slice(0, 16);
}

/** The instant [ms] an <input type="datetime-local"> value means in the site's time, or NaN. */
export function fromSiteInput(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(value || "");
  if (!m) return NaN;
  return fromWall(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0)));
}

/** Local midnight of today at the site [UTC ms]. */
export function siteMidnight(ms = Date.now()) {
  const wall = toWall(ms);
  return fromWall(wall - (((wall % 86400000) + 86400000) % 86400000));
}

/** Clock time "14:05:09" in the site's zone. */
export function clock(ms = Date.now()) {
  return new Date(ms).toLocaleTimeString(lang(), siteZone ? { timeZone: siteZone } : {});
}

export function num(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  let x = Number(Number(v).toFixed(digits));
  if (x === 0) x = 0; // no "-0" for a small negative value
  return x.toLocaleString(lang(), { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** "12.3 kW" from (12345, "W"); energies in kWh/MWh; other units as given. */
export function withUnit(v, unit, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (PREFIXED.has(unit)) {
    const a = Math.abs(v);
    if (a >= 1e6) return `${num(v / 1e6, digits ?? 2)} M${unit}`;
    if (a >= 1e3) return `${num(v / 1e3, digits ?? 2)} k${unit}`;
    return `${num(v, digits ?? 0)} ${unit}`;
  }
  if (unit === "") return num(v, digits ?? 3);
  if (unit === "Hz") return `${num(v, digits ?? 2)} Hz`;
  if (unit === "%" || unit === "°") return `${num(v, digits ?? 1)} ${unit}`;
  return `${num(v, digits ?? 1)} ${unit}`;
}

export function kw(w, digits = 2) {
  return w === null || w === undefined ? "–" : `${num(w / 1000, digits)} kW`;
}

/** "12.34 EUR" (two decimals, the UI language's separators), or "–". */
export function money(v, currency) {
  return v === null || v === undefined ? "–" : `${num(v, 2)} ${currency}`;
}

export function kwh(wh, digits = 2) {
  return wh === null || wh === undefined ? "–" : `${num(wh / 1000, digits)} kWh`;
}

/** A time in the site's time zone, e.g. "22.11.2026, 05:55:09" (German). */
export function time(iso, tz = siteZone) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString(lang(), tz ? { timeZone: tz } : {});
}

export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
