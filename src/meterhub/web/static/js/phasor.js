// Phasor diagram as SVG: voltage phasors (solid) and current phasors (dashed), angles in degrees
// counter-clockwise from U L1 (IEC convention: U L2 at −120°, U L3 at +120° for a positive sequence).

const COLORS = { L1: "#a16207", L2: "#111827", L3: "#6b7280" };
const NS = "http://www.w3.org/2000/svg";

function el(name, attrs) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

export function phasorDiagram(container) {
  const svg = el("svg", { viewBox: "-110 -110 220 220", width: "100%", height: "260", role: "img" });
  svg.appendChild(el("circle", { cx: 0, cy: 0, r: 100, fill: "none", stroke: "#d9e0e6" }));
  svg.appendChild(el("circle", { cx: 0, cy: 0, r: 50, fill: "none", stroke: "#eef2f5" }));
  svg.appendChild(el("line", { x1: -100, y1: 0, x2: 100, y2: 0, stroke: "#eef2f5" }));
  svg.appendChild(el("line", { x1: 0, y1: -100, x2: 0, y2: 100, stroke: "#eef2f5" }));
  const defs = el("defs", {});
  for (const [ph, c] of Object.entries(COLORS)) {
    const m = el("marker", { id: `arrow-${ph}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" });
    m.appendChild(el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: c }));
    defs.appendChild(m);
  }
  svg.appendChild(defs);
  const layer = el("g", {});
  svg.appendChild(layer);
  container.innerHTML = "";
  container.appendChild(svg);

  /** phasors: [{phase, kind: "U"|"I", magnitude (0…1 of the largest), angle [°]}] */
  return {
    set(phasors) {
      layer.replaceChildren();
      for (const p of phasors) {
        const r = 95 * Math.max(0, Math.min(1, p.magnitude));
        const a = (p.angle * Math.PI) / 180;
        const x = r * Math.cos(a);
        const y = -r * Math.sin(a);
        const line = el("line", {
          x1: 0, y1: 0, x2: x.toFixed(2), y2: y.toFixed(2), stroke: COLORS[p.phase] || "#2563eb",
          "stroke-width": p.kind === "U" ? 3 : 2, "stroke-dasharray": p.kind === "U" ? "" : "5 3",
          "marker-end": `url(#arrow-${p.phase})`, "data-phasor": `${p.kind}${p.phase}`,
        });
        layer.appendChild(line);
        const label = el("text", { x: (x * 1.08).toFixed(1), y: (y * 1.08 + 4).toFixed(1), "font-size": 9, "text-anchor": "middle", fill: COLORS[p.phase] });
        label.textContent = `${p.kind}${p.phase.slice(1)}`;
        layer.appendChild(label);
      }
    },
  };
}
