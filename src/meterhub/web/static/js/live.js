// Live values: one WebSocket to /api/v1/stream, a map of the latest reading per series,
// and listeners told which series changed. Reconnects with backoff.

const latest = new Map(); // "circuit/quantity/phase" -> reading
const listeners = new Set();
let ws = null;
let backoff = 500;
let wanted = true;
let connectedCb = null;
let readyResolve;
const readyPromise = new Promise((resolve) => (readyResolve = resolve));

/** Resolves after the first snapshot arrived, or after `timeoutMs` (whichever comes first). */
export function ready(timeoutMs = 2000) {
  return Promise.race([readyPromise, new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
}

export function key(circuit, quantity, phase) {
  return `${circuit}/${quantity}/${phase ?? "-"}`;
}

export function value(circuit, quantity, phase = "total") {
  const r = latest.get(key(circuit, quantity, phase));
  return r ? r.value : null;
}

export function reading(circuit, quantity, phase = "total") {
  return latest.get(key(circuit, quantity, phase)) || null;
}

export function all() {
  return latest.values();
}

/** Call fn(changedKeys:Set, readings:Array) after each message; returns an unsubscribe function. */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function ingest(readings) {
  const changed = new Set();
  for (const r of readings) {
    const k = key(r.circuit, r.quantity, r.phase);
    latest.set(k, r);
    changed.add(k);
  }
  for (const fn of listeners) {
    try {
      fn(changed, readings);
    } catch (e) {
      console.warn("live listener failed", e);
    }
  }
}

export function onConnection(cb) {
  connectedCb = cb;
}

export function start() {
  wanted = true;
  if (ws) return;
  const proto = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${proto}://${location.host}/api/v1/stream`);
  ws.onopen = () => {
    backoff = 500;
    connectedCb?.(true);
  };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "snapshot" || msg.type === "readings") ingest(msg.readings);
    if (msg.type === "snapshot") readyResolve();
  };
  ws.onclose = () => {
    ws = null;
    connectedCb?.(false);
    if (wanted) {
      setTimeout(start, backoff);
      backoff = Math.min(backoff * 2, 10000);
    }
  };
  ws.onerror = () => {}; // onclose follows and reconnects
}

export function stop() {
  wanted = false;
  if (ws) ws.close();
  ws = null;
}

/** Seed the cache from GET /api/v1/live (used before the socket delivers its snapshot). */
export function seed(readings) {
  ingest(readings);
}
