// LiveChart: live training curves as SVG. A plain ES module for anywidget (no build, no imports).
// The SVG is created once in render(); every change only updates the existing elements
// (path "d" attributes, tick positions and labels, legend entries), so nothing flickers.

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 260;
const PAD = { left: 56, right: 14, top: 10, bottom: 36 };
// readable on light and dark backgrounds; "val_x" gets the colour of "x", dashed
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];

function make(tag, attrs, parent, ns = SVG) {
  const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

// keep exactly n children of `tag` in `group` (reusing the existing ones) and return them
function pool(group, tag, n, attrs) {
  while (group.childNodes.length > n) group.removeChild(group.lastChild);
  while (group.childNodes.length < n) make(tag, attrs, group);
  return Array.from(group.childNodes);
}

function niceStep(span, count) {
  const raw = span / Math.max(count, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

function linearTicks(lo, hi, count, integer = false) {
  const step = integer ? Math.max(1, niceStep(hi - lo, count)) : niceStep(hi - lo, count);
  const out = [];
  for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + step * 1e-9; i++) out.push(Number((i * step).toPrecision(12)));
  return out;
}

function logTicks(lo, hi) { // lo, hi: log10 of the range
  const out = [];
  const decades = Math.floor(hi) - Math.ceil(lo);
  const per = decades >= 3 ? [1] : decades >= 1 ? [1, 2, 5] : decades >= 0 ? [1, 2, 3, 5, 7] : [1, 2, 3, 4, 5, 6, 7, 8, 9];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
    for (const m of per) {
      const v = Math.log10(m) + e;
      if (v >= lo - 1e-9 && v <= hi + 1e-9) out.push(v);
    }
  }
  return out;
}

function fmt(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(0).replace("e+", "e");
  return String(Number(v.toPrecision(4)));
}

function extent(values, fallback) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (lo > hi) return fallback;
  if (lo === hi) { const d = lo === 0 ? 1 : Math.abs(lo) * 0.1; return [lo - d, hi + d]; }
  return [lo, hi];
}

function render({ model, el }) {
  const root = make("div", { class: "mlaas4hep-chart" }, el, null);
  const title = make("div", { class: "mlaas4hep-chart-title" }, root, null);
  const svg = make("svg", { height: HEIGHT, width: "100%" }, root);
  const grid = make("g", { class: "grid" }, svg);
  const marks = make("g", { class: "marks" }, svg);
  const frame = make("rect", { class: "frame", fill: "none" }, svg);
  const xticks = make("g", { class: "xticks" }, svg);
  const yticks = make("g", { class: "yticks" }, svg);
  const lines = make("g", { class: "lines", fill: "none" }, svg);
  const xlabel = make("text", { class: "label", "text-anchor": "middle" }, svg);
  const ylabel = make("text", { class: "label", "text-anchor": "middle" }, svg);
  const empty = make("text", { class: "empty", "text-anchor": "middle" }, svg);
  empty.textContent = "waiting for data…";
  const legend = make("div", { class: "mlaas4hep-chart-legend" }, root, null);
  const paths = new Map(); // series name -> {path, item}

  function seriesEntry(name, index) {
    let entry = paths.get(name);
    if (!entry) {
      const path = make("path", { "stroke-width": 2, "stroke-linejoin": "round", "stroke-linecap": "round" }, lines);
      const item = make("span", { class: "item" }, legend, null);
      const swatch = make("svg", { width: 22, height: 10 }, item);
      const sample = make("line", { x1: 1, y1: 5, x2: 21, y2: 5, "stroke-width": 2 }, swatch);
      make("span", {}, item, null).textContent = name;
      entry = { path, item, sample };
      paths.set(name, entry);
    }
    return entry;
  }

  function draw() {
    const series = model.get("series") || {};
    const logY = !!model.get("log_y");
    const names = Object.keys(series);
    const width = Math.max(root.clientWidth || svg.clientWidth || 480, 200);
    const w = width - PAD.left - PAD.right, h = HEIGHT - PAD.top - PAD.bottom;
    title.textContent = model.get("title") || "";
    title.style.display = model.get("title") ? "" : "none";

    // the data, cleaned: null / non-finite y break a line; on a log axis y <= 0 too
    const clean = {};
    const xs = [], ys = [];
    for (const name of names) {
      clean[name] = (series[name] || []).map(([x, y]) => {
        const ok = y !== null && y !== undefined && Number.isFinite(y) && Number.isFinite(x) && (!logY || y > 0);
        if (!ok) return null;
        const yy = logY ? Math.log10(y) : y;
        xs.push(x); ys.push(yy);
        return [x, yy];
      });
    }
    const integerX = xs.length > 0 && xs.every(Number.isInteger);
    for (const m of model.get("marks") || []) if (Number.isFinite(m) && ys.length) xs.push(m);
    const [x0, x1] = extent(xs, [0, 1]);
    let [y0, y1] = extent(ys, logY ? [0, 1] : [0, 1]);
    if (!logY) { const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad; }
    const sx = (x) => PAD.left + ((x - x0) / (x1 - x0)) * w;
    const sy = (y) => PAD.top + h - ((y - y0) / (y1 - y0)) * h;

    frame.setAttribute("x", PAD.left); frame.setAttribute("y", PAD.top);
    frame.setAttribute("width", w); frame.setAttribute("height", h);

    // ticks and grid
    const xt = linearTicks(x0, x1, Math.max(2, Math.floor(w / 80)), integerX);
    const yt = logY ? logTicks(y0, y1) : linearTicks(y0, y1, Math.max(2, Math.floor(h / 40)));
    const gridLines = pool(grid, "line", xt.length + yt.length);
    xt.forEach((v, i) => {
      const g = gridLines[i];
      g.setAttribute("x1", sx(v)); g.setAttribute("x2", sx(v)); g.setAttribute("y1", PAD.top); g.setAttribute("y2", PAD.top + h);
    });
    yt.forEach((v, i) => {
      const g = gridLines[xt.length + i];
      g.setAttribute("x1", PAD.left); g.setAttribute("x2", PAD.left + w); g.setAttribute("y1", sy(v)); g.setAttribute("y2", sy(v));
    });
    pool(xticks, "text", xt.length, { "text-anchor": "middle" }).forEach((t, i) => {
      t.setAttribute("x", sx(xt[i])); t.setAttribute("y", PAD.top + h + 14); t.textContent = fmt(xt[i]);
    });
    pool(yticks, "text", yt.length, { "text-anchor": "end", "dominant-baseline": "middle" }).forEach((t, i) => {
      t.setAttribute("x", PAD.left - 6); t.setAttribute("y", sy(yt[i]));
      t.textContent = logY ? fmt(Math.pow(10, yt[i])) : fmt(yt[i]);
    });
    xlabel.setAttribute("x", PAD.left + w / 2); xlabel.setAttribute("y", HEIGHT - 4);
    xlabel.textContent = model.get("x_label") || "";
    ylabel.setAttribute("transform", `translate(12 ${PAD.top + h / 2}) rotate(-90)`);
    ylabel.textContent = (model.get("y_label") || "") + (logY && model.get("y_label") ? " (log)" : "");

    // chunk boundaries
    // at most ~30 chunk marks (every k-th), so that many chunks do not grey the chart over
    const all = ys.length ? (model.get("marks") || []).filter(Number.isFinite) : [];
    const every = Math.ceil(all.length / 30);
    const ms = all.length <= 30 ? all : all.filter((_, i) => i % every === every - 1);
    pool(marks, "line", ms.length).forEach((m, i) => {
      m.setAttribute("x1", sx(ms[i])); m.setAttribute("x2", sx(ms[i])); m.setAttribute("y1", PAD.top); m.setAttribute("y2", PAD.top + h);
    });

    // the curves: one path per series, created once and then only given a new "d"
    const bases = [];
    names.forEach((name, index) => {
      const base = name.replace(/^val_/, "");
      if (!bases.includes(base)) bases.push(base);
      const color = PALETTE[bases.indexOf(base) % PALETTE.length];
      const dash = name.startsWith("val_") ? "5 3" : "";
      const { path, item, sample } = seriesEntry(name, index);
      let d = "", pen = false;
      const pts = clean[name];
      pts.forEach((p, i) => {
        if (!p) { pen = false; return; }
        const lonely = !pen && (i + 1 >= pts.length || !pts[i + 1]);
        d += `${pen ? "L" : "M"}${sx(p[0]).toFixed(1)} ${sy(p[1]).toFixed(1)}${lonely ? "h0" : ""}`;
        pen = true;
      });
      path.setAttribute("d", d);
      path.setAttribute("stroke", color);
      path.setAttribute("stroke-dasharray", dash);
      sample.setAttribute("stroke", color);
      sample.setAttribute("stroke-dasharray", dash);
      item.title = pts.length ? `${name}: last ${fmt(series[name][pts.length - 1][1] ?? NaN)}` : name;
      lines.appendChild(path); // keep the drawing order = the legend order
      legend.appendChild(item);
    });
    for (const [name, entry] of paths) {
      if (!(name in series)) { entry.path.remove(); entry.item.remove(); paths.delete(name); }
    }
    empty.setAttribute("x", PAD.left + w / 2); empty.setAttribute("y", PAD.top + h / 2);
    empty.style.display = ys.length ? "none" : "";
    legend.style.display = names.length ? "" : "none";
  }

  const traits = ["series", "x_label", "y_label", "log_y", "title", "marks"];
  for (const name of traits) model.on(`change:${name}`, draw);
  let observer = null;
  if (typeof ResizeObserver !== "undefined") {
    observer = new ResizeObserver(() => draw());
    observer.observe(root);
  }
  draw();
  return () => {
    for (const name of traits) model.off(`change:${name}`, draw);
    if (observer) observer.disconnect();
  };
}

export default { render };
