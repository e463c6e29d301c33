/**
 * The geometry of the job view's curves: extents, "nice" ticks, scales and SVG path data.
 * Pure (no DOM), tested by jest; svgchart.ts puts the results into SVG elements.
 */

import { IPoint } from './fold';

export interface IExtent {
  xmin: number;
  xmax: number;
  ymin: number;
  ymax: number;
}

/** The box around the points of all curves (nulls and non-finite values left out); null if none. */
export function extent(series: ReadonlyArray<ReadonlyArray<IPoint>>): IExtent | null {
  let xmin = Infinity;
  let xmax = -Infinity;
  let ymin = Infinity;
  let ymax = -Infinity;
  for (const points of series) {
    for (const { x, y } of points) {
      if (y === null || !isFinite(y) || !isFinite(x)) {
        continue;
      }
      xmin = Math.min(xmin, x);
      xmax = Math.max(xmax, x);
      ymin = Math.min(ymin, y);
      ymax = Math.max(ymax, y);
    }
  }
  return xmin <= xmax ? { xmin, xmax, ymin, ymax } : null;
}

/**
 * Ticks at 1, 2 or 5 times a power of ten covering [min, max], about `count` of them; the
 * domain to draw is [ticks[0], ticks[last]]. A flat range is widened so that it has ticks.
 */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!isFinite(min) || !isFinite(max)) {
    return [0, 1];
  }
  if (max < min) {
    [min, max] = [max, min];
  }
  if (max === min) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1;
    min -= pad;
    max += pad;
  }
  const step = niceStep((max - min) / Math.max(1, count));
  const first = Math.floor(min / step + 1e-9) * step;
  const last = Math.ceil(max / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0; first + i * step <= last + step * 1e-9; i++) {
    ticks.push(roundTo(first + i * step, step));
  }
  return ticks;
}

/** Integer ticks for an x axis of steps (1, 2, 3, ...): never fractional steps. */
export function stepTicks(min: number, max: number, count = 6): number[] {
  const ticks = niceTicks(min, max, count);
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
  if (step >= 1) {
    return ticks;
  }
  const lo = Math.floor(min);
  const hi = Math.max(Math.ceil(max), lo + 1);
  const out: number[] = [];
  for (let t = lo; t <= hi; t++) {
    out.push(t);
  }
  return out;
}

/** The 1, 2, 5 x 10^k nearest to `raw` (on a log scale, as d3 does). */
function niceStep(raw: number): number {
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const fraction = raw / power;
  const nice =
    fraction >= Math.sqrt(50)
      ? 10
      : fraction >= Math.sqrt(10)
        ? 5
        : fraction >= Math.sqrt(2)
          ? 2
          : 1;
  return nice * power;
}

function roundTo(value: number, step: number): number {
  const digits = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(value.toFixed(Math.min(digits, 12)));
}

/** A linear map from [d0, d1] to [r0, r1] (a zero-width domain maps to the middle). */
/**
 * At most `max` of the chunk marks, evenly spread (every k-th), so that a run of many chunks
 * does not grey the chart over.
 */
export function thinMarks(marks: ReadonlyArray<number>, max = 30): number[] {
  if (marks.length <= max) {
    return [...marks];
  }
  const every = Math.ceil(marks.length / max);
  return marks.filter((_, i) => i % every === every - 1);
}

export function linearScale(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  if (d1 === d0) {
    const mid = (r0 + r1) / 2;
    return () => mid;
  }
  const k = (r1 - r0) / (d1 - d0);
  return (v: number) => r0 + (v - d0) * k;
}

/**
 * SVG path data through the points: "M x,y L x,y ...". A null y breaks the line (the next
 * point starts a new "M"); a point alone between gaps is drawn as a zero-length segment, which
 * a round line cap shows as a dot. Coordinates are rounded to 0.1 px.
 */
export function linePath(
  points: ReadonlyArray<IPoint>,
  sx: (v: number) => number,
  sy: (v: number) => number
): string {
  const parts: string[] = [];
  let run: string[] = [];
  const flush = () => {
    if (run.length === 1) {
      parts.push(`M${run[0]}L${run[0]}`);
    } else if (run.length > 1) {
      parts.push(`M${run[0]}L${run.slice(1).join('L')}`);
    }
    run = [];
  };
  for (const { x, y } of points) {
    if (y === null || !isFinite(y) || !isFinite(x)) {
      flush();
      continue;
    }
    run.push(`${r1(sx(x))},${r1(sy(y))}`);
  }
  flush();
  return parts.join('');
}

/** A tick label: "0.25", "1.5k", "2e-5". */
export function formatTick(value: number): string {
  if (value === 0) {
    return '0';
  }
  const abs = Math.abs(value);
  if (abs >= 1e4 || abs < 1e-3) {
    return value.toExponential(1).replace(/\.0e/, 'e').replace('e+', 'e');
  }
  return `${Number(value.toPrecision(4))}`;
}

/** The horizontal grid lines of a chart: each tick's pixel row (on the half pixel, for sharp
 * 1 px lines) and its label. */
export function gridRows(
  ticks: ReadonlyArray<number>,
  sy: (v: number) => number
): { y: number; text: string }[] {
  return ticks.map(t => ({ y: Math.round(sy(t)) + 0.5, text: formatTick(t) }));
}

/** A curve name as part of a CSS class: `val_loss` stays, anything odd becomes `-`. */
export function cssName(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, '-');
}

/** A coordinate to one decimal, as SVG paths and attributes take it. */
export function r1(v: number): number {
  return Math.round(v * 10) / 10;
}

/** Text made safe to put inside HTML or SVG markup (element text and quoted attributes). */
export function escape(text: string): string {
  return String(text).replace(
    /[&<>"]/g,
    c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!
  );
}
