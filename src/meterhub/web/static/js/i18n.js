// Tiny i18n: dictionaries in /static/i18n/<lang>.json, t("key", {var}) with English fallback.

let current = "en";
let dict = {};
let fallback = {};

export const LANGUAGES = { en: "English", de: "Deutsch" };

async function load(code) {
  const res = await fetch(`/static/i18n/${code}.json`);
  return res.ok ? res.json() : {};
}

export async function setLanguage(code) {
  if (!(code in LANGUAGES)) code = "en";
  if (!Object.keys(fallback).length) fallback = await load("en");
  dict = code === "en" ? fallback : await load(code);
  current = code;
  document.documentElement.lang = code;
}

export function lang() {
  return current;
}

export function t(keyName, vars = {}) {
  let s = dict[keyName] ?? fallback[keyName] ?? keyName;
  for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, v);
  return s;
}

/** Whether the catalogue (or the English fallback) has `keyName`. */
export function has(keyName) {
  return keyName in dict || keyName in fallback;
}
