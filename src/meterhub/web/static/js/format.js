// Number formatting with SI prefixes and the UI language.

import { lang } from "./i18n.js";

const PREFIXED = new Set(["W", "var", "VA", "Wh", "varh", "VAh"]);
let siteZone; // the site's IANA time zone (interface option); undefined = the browser's

export function setTimeZone(tz) {
  siteZone = tz || undefined;
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
