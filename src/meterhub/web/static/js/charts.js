// ECharts helpers. ECharts comes from npm (served at /vendor/echarts.min.js); without it the pages
// still work and show a note instead of charts.

export function chartsAvailable() {
  return typeof window.echarts !== "undefined";
}

import { toWall } from "./format.js";
import { theme } from "./ui.js";

// Time axes are drawn with useUTC on the site's wall clock (format.toWall): the labels show the
// site's time whatever the browser's zone, DST-correct.
function init(el, { dark = false } = {}) {
  const chosen = () => (dark || theme() === "dark" ? "dark" : null);
  const chart = window.echarts.init(el, chosen(), { renderer: "canvas", useUTC: true });
  chart.setOption({ backgroundColor: "transparent", useUTC: true });
  const ro = new ResizeObserver(() => chart.resize());
  ro.observe(el);
  // a change of scheme re-renders the page (js/ui.js), which makes its charts anew in the new theme
  return {
    chart,
    dispose() {
      ro.disconnect();
      chart.dispose();
    },
  };
}

/** [[utcMs, value], …] → the same on the site's wall clock, for a time axis drawn with useUTC. */
export function wallPoints(points) {
  return points.map(([ts, v]) => [toWall(ts), v]);
}

const COLORS = ["#ea580c", "#16a34a", "#2563eb", "#7c3aed", "#0891b2", "#be123c", "#65a30d", "#a16207"];

/**
 * A rolling live line chart; push(tsMs, [values]) appends one point per series, keeps `keep` seconds;
 * backfill([[[tsMs, value], …] per series]) puts stored history (GET …/history) in front, so the chart
 * is not empty when the page opens. Times are UTC ms; the axis shows the site's time.
 */
export function lineChart(el, names, unit, { keep = 300, dark = false } = {}) {
  const { chart, dispose } = init(el, { dark });
  const data = names.map(() => []);
  const draw = (ts) => {
    // the axis shows at least the last minute, so the first points do not stretch over days
    const last = toWall(ts);
    const first = data.reduce((m, d) => (d.length ? Math.min(m, d[0][0]) : m), last);
    chart.setOption({ xAxis: { min: Math.min(first, last - 60000), max: last }, series: data.map((d) => ({ data: d })) });
  };
  chart.setOption({
    color: COLORS,
    animation: false,
    useUTC: true,
    grid: { left: 50, right: 16, top: 48, bottom: 30 },
    tooltip: { trigger: "axis" },
    xAxis: { type: "time", splitNumber: 4, axisLabel: { hideOverlap: true, ...(dark ? { color: "#9fb9c4" } : {}) } },
    yAxis: {
      type: "value",
      name: unit,
      scale: true,
      axisLabel: dark ? { color: "#9fb9c4" } : {},
      splitLine: dark ? { lineStyle: { color: "#1f4a59" } } : {},
    },
    textStyle: dark ? { color: "#e8f1f5" } : {},
    legend: { top: 0, type: "scroll", textStyle: dark ? { color: "#e8f1f5" } : {} },
    series: names.map((name, i) => ({ name, type: "line", symbolSize: 3, data: data[i] })),
  });
  return {
    push(ts, values) {
      const wall = toWall(ts);
      values.forEach((v, i) => {
        data[i].push([wall, v]);
        while (data[i].length && data[i][0][0] < wall - keep * 1000) data[i].shift();
      });
      draw(ts);
    },
    backfill(series) {
      const now = Date.now();
      series.forEach((points, i) => {
        if (!data[i] || !points?.length) return;
        const oldest = data[i].length ? data[i][0][0] : Infinity;
        const older = wallPoints(points.filter(([ts]) => ts >= now - keep * 1000)).filter(([w]) => w < oldest);
        data[i].unshift(...older);
      });
      draw(now);
    },
    /** The points drawn per series, [[siteWallMs, value], …] (for tests and exports). */
    data: () => data,
    dispose,
    chart,
  };
}

/** A gauge that rescales to a round maximum above the largest value seen. */
export function gauge(el, name, unit, { max = null, min = 0, digits = 1, dark = false } = {}) {
  const { chart, dispose } = init(el, { dark });
  let top = max ?? 1;
  let bottom = min;
  const fixed = max !== null;
  const nice = (v) => {
    const p = 10 ** Math.floor(Math.log10(Math.max(v, 1e-9)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  };
  const option = (v) => ({
    series: [
      {
        type: "gauge",
        min: bottom,
        max: top,
        progress: { show: true, width: 10 },
        axisLine: { lineStyle: { width: 10 } },
        splitNumber: 5,
        axisTick: { distance: -10, length: 4 },
        splitLine: { distance: -10, length: 10 },
        axisLabel: { distance: 14, fontSize: 10 },
        pointer: { width: 4 },
        detail: { valueAnimation: false, formatter: (x) => `${Number(x).toFixed(digits)} ${unit}`, fontSize: 18, offsetCenter: [0, "75%"] },
        title: { offsetCenter: [0, "100%"], fontSize: 12 },
        data: [{ value: v ?? 0, name }],
      },
    ],
  });
  chart.setOption(option(null));
  return {
    set(v) {
      if (!fixed && v !== null && Math.abs(v) > top) top = nice(Math.abs(v) * 1.2);
      if (!fixed && v !== null && v < bottom) bottom = -top; // e.g. export: the scale becomes symmetric
      if (!fixed && bottom < 0) bottom = -top;
      chart.setOption(option(v === null ? null : Number(v.toFixed(digits + 1))));
    },
    dispose,
    chart,
  };
}

/** A bar chart; set(categories, values). */
export function barChart(el, name, unit, { color = "#2563eb" } = {}) {
  const { chart, dispose } = init(el);
  chart.setOption({
    color: [color],
    animation: false,
    grid: { left: 50, right: 16, top: 30, bottom: 30 },
    tooltip: { trigger: "axis" },
    xAxis: { type: "category", data: [] },
    yAxis: { type: "value", name: unit },
    series: [{ name, type: "bar", data: [] }],
  });
  return {
    set(categories, values) {
      chart.setOption({ xAxis: { data: categories }, series: [{ data: values }] });
    },
    dispose,
    chart,
  };
}

/**
 * Harmonic spectrum bars (GET /api/v1/circuits/{id}/spectrum): orders 0…50 in % of the fundamental.
 * The value axis is scaled to the harmonics, so order 1 (100 %) runs off the top and is labelled; the
 * tooltip gives each order's RMS as well. set(spectrum) draws one answer, set(null) clears.
 */
export function spectrumChart(el, { orderName = "h", color = "#7c3aed", fundamentalColor = "#94a3b8" } = {}) {
  const { chart, dispose } = init(el);
  let current = null;
  const nice = (v) => {
    const p = 10 ** Math.floor(Math.log10(Math.max(v, 1e-9)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  };
  const fmt = (v, d) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
  chart.setOption({
    animation: false,
    grid: { left: 50, right: 16, top: 30, bottom: 40 },
    tooltip: {
      trigger: "axis",
      axisPointer: { type: "shadow" },
      formatter: (params) => {
        const k = params[0]?.dataIndex;
        if (current === null || k === undefined) return "";
        return `${orderName} ${current.orders[k]}<br>${fmt(current.rms[k], 3)} ${current.unit} · ${fmt(current.percent_of_fundamental[k], 2)} %`;
      },
    },
    xAxis: { type: "category", data: [], name: orderName, nameLocation: "middle", nameGap: 26, axisLabel: { interval: 4 } },
    yAxis: { type: "value", name: "%", min: 0 },
    series: [{ name: "%", type: "bar", barCategoryGap: "25%", data: [] }],
  });
  return {
    set(s) {
      current = s;
      if (s === null) {
        chart.setOption({ xAxis: { data: [] }, series: [{ data: [] }] });
        return;
      }
      const pct = s.percent_of_fundamental;
      const others = pct.filter((v, k) => v !== null && s.orders[k] !== 1);
      const top = nice(Math.max(1, ...others) * 1.25);
      chart.setOption({
        xAxis: { data: s.orders.map(String) },
        yAxis: { max: top },
        series: [
          {
            data: pct.map((v, k) =>
              // order 1 is 100 % by definition: drawn to the top of the axis and labelled, not to scale
              s.orders[k] === 1 && v !== null
                ? { value: top, itemStyle: { color: fundamentalColor }, label: { show: true, position: "top", formatter: "100 %", fontSize: 10 } }
                : { value: v, itemStyle: { color } },
            ),
          },
        ],
      });
    },
    dispose,
    chart,
  };
}

export { COLORS, init };
