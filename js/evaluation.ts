/**
 * The evaluation of a finished job (its `evaluation` event, the artifact's evaluation.json):
 * ROC curve (background rejection linear or on a log scale), score distributions of train and
 * held-out test events per class with their KS p-values, the confusion matrix, and a plain
 * overtraining flag. The geometry functions are pure (jest); `EvaluationPanel` draws SVG.
 */

import { escape, formatTick, gridRows, linearScale, niceTicks, r1 } from './chart';

export interface IRocCurve {
  class: number;
  name: string;
  signal_efficiency: number[];
  background_efficiency: number[];
  auc: number | null;
}

export interface IClassHistogram {
  class: number;
  name: string;
  score_of: string;
  train: number[] | null;
  test: number[];
  n_train: number;
  n_test: number;
}

export interface IKsRow {
  class: number;
  name: string;
  statistic: number | null;
  p_value: number | null;
  n_train: number;
  n_test: number;
}

/**
 * Which class is which (mlaas4hep.classes, carried by the evaluation): the name the views give
 * it ("label 1" or the class name), its role, its colour (the same in Explore's plots) and what
 * it is in words.
 */
export interface IClassInfo {
  class: number;
  name: string;
  role: string;
  colour: string;
  description: string;
}

export interface IEvaluation {
  n_classes: number;
  classes: string[];
  /** absent in evaluations written before it was added: those are drawn in theme colours */
  class_info?: IClassInfo[];
  score_meaning?: string;
  events: { test: number; train_sample: number };
  roc: IRocCurve[];
  auc: { value: number | null; std: number | null; interval68?: number[] | null };
  score_histograms: { edges: number[]; classes: IClassHistogram[] };
  ks: IKsRow[];
  confusion: { threshold: number | null; rule: string; classes: string[]; matrix: number[][] };
  overtraining: { flag: boolean; reasons: string[]; ks_alpha: number };
}

/** The evaluation carried by an `evaluation` event, or null when it is not one. */
export function asEvaluation(event: { [key: string]: unknown }): IEvaluation | null {
  const roc = event.roc;
  const hist = event.score_histograms as { edges?: unknown } | undefined;
  if (!Array.isArray(roc) || !hist || !Array.isArray(hist.edges) || !event.overtraining) {
    return null;
  }
  return event as unknown as IEvaluation;
}

export interface IXY {
  x: number;
  y: number;
}

/**
 * ROC points as (signal efficiency, background rejection): rejection is 1 - background
 * efficiency (linear), or 1 / background efficiency (log: points where no background passes
 * are left out, their rejection being infinite).
 */
export function rocPoints(curve: IRocCurve, log: boolean): IXY[] {
  const out: IXY[] = [];
  curve.signal_efficiency.forEach((x, i) => {
    const b = curve.background_efficiency[i];
    if (x === null || b === null || !isFinite(x) || !isFinite(b)) {
      return;
    }
    if (log) {
      if (b > 0) {
        out.push({ x, y: 1 / b });
      }
    } else {
      out.push({ x, y: 1 - b });
    }
  });
  return out;
}

/**
 * The y ticks and scale of a ROC chart whose largest rejection is `top`: 1 - efficiency on
 * [0, 1], or 1 / efficiency on decades from 1 (log). Plot area from y0 (bottom) to y1 (top).
 */
export function rocAxis(
  top: number,
  log: boolean,
  y0: number,
  y1: number
): { ticks: number[]; scale: (v: number) => number } {
  if (!log) {
    return { ticks: niceTicks(0, 1, 5), scale: linearScale(0, 1, y0, y1) };
  }
  const ticks = decadeTicks(Math.max(top, 10));
  const s = linearScale(0, Math.log10(ticks[ticks.length - 1]), y0, y1);
  return { ticks, scale: v => s(Math.log10(Math.max(v, 1))) };
}

/**
 * How a class is painted: `style` with its own colour when the evaluation says which class is
 * which (the colour Explore gives it too), else a theme colour class by index.
 */
export function classPaint(
  ev: IEvaluation,
  cls: number
): { css: string; colour: string | null; info: IClassInfo | null } {
  const info = ev.class_info?.find(c => c.class === cls) ?? null;
  if (info && /^#[0-9a-fA-F]{3,8}$/.test(info.colour)) {
    return { css: 'mlaas4hep-mod-class-colour', colour: info.colour, info };
  }
  return { css: `mlaas4hep-color-${cls % 6}`, colour: null, info };
}

/** Decade ticks 1, 10, 100, ... covering [1, max]. */
export function decadeTicks(max: number): number[] {
  const top = Math.max(1, Math.ceil(Math.log10(Math.max(max, 10))));
  return Array.from({ length: top + 1 }, (_, i) => Math.pow(10, i));
}

/** Counts to a density (each histogram's area is 1), so train and test compare by shape. */
export function density(counts: ReadonlyArray<number>, edges: ReadonlyArray<number>): number[] {
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((c, i) => (total > 0 ? c / total / (edges[i + 1] - edges[i]) : 0));
}

/** A KS p-value for people: "p = 0.43", "p = 3.2e-5". */
export function formatP(p: number | null | undefined): string {
  if (p === null || p === undefined || !isFinite(p)) {
    return 'p = –';
  }
  return `p = ${p >= 0.001 ? p.toPrecision(2) : p.toExponential(1)}`;
}

const W = 340;
const H = 230;
const M = { left: 48, right: 10, top: 10, bottom: 34 };

export class EvaluationPanel {
  readonly node: HTMLElement;

  constructor() {
    this.node = document.createElement('section');
    this.node.className = 'mlaas4hep-evaluation';
    this.node.hidden = true;
    this.node.innerHTML =
      '<h3 class="mlaas4hep-evaluation-title">Evaluation <span class="mlaas4hep-eval-auc"></span></h3>' +
      '<div class="mlaas4hep-overtraining" role="status"></div>' +
      '<div class="mlaas4hep-eval-classes mlaas4hep-chart-legend"></div>' +
      '<div class="mlaas4hep-eval-grid">' +
      '<div class="mlaas4hep-chart-box mlaas4hep-eval-roc"><div class="mlaas4hep-chart-title">ROC ' +
      '<label class="mlaas4hep-eval-log"><input type="checkbox" class="mlaas4hep-roc-log"> log background rejection</label>' +
      '</div><div class="mlaas4hep-eval-svg"></div></div>' +
      '<div class="mlaas4hep-chart-box mlaas4hep-eval-scores"><div class="mlaas4hep-chart-title">' +
      'Score distributions: train (points) vs test (filled)</div><div class="mlaas4hep-eval-svg"></div>' +
      '<div class="mlaas4hep-chart-legend mlaas4hep-eval-ks"></div></div>' +
      '<div class="mlaas4hep-eval-confusion"></div>' +
      '</div>';
    this.logBox.addEventListener('change', () => this.draw());
  }

  /** Show this evaluation (null hides the panel). */
  update(evaluation: IEvaluation | null): void {
    if (evaluation === this._evaluation) {
      return;
    }
    this._evaluation = evaluation;
    this.node.hidden = !evaluation;
    this.draw();
  }

  get logBox(): HTMLInputElement {
    return this.node.querySelector('.mlaas4hep-roc-log') as HTMLInputElement;
  }

  private draw(): void {
    const ev = this._evaluation;
    if (!ev) {
      return;
    }
    const auc = ev.auc;
    this.part('.mlaas4hep-eval-auc').textContent =
      auc.value === null
        ? ''
        : `AUC ${auc.value.toFixed(4)}${auc.std !== null && auc.std !== undefined ? ` ± ${auc.std.toFixed(4)}` : ''}` +
          ` · ${ev.events.test.toLocaleString('en-US')} test events`;
    const flag = this.part('.mlaas4hep-overtraining');
    this.node.dataset.overtraining = ev.overtraining.flag ? 'yes' : 'no';
    flag.classList.toggle('mlaas4hep-mod-warn', ev.overtraining.flag);
    flag.innerHTML = ev.overtraining.flag
      ? `<strong>⚠ Overtrained</strong><ul>${ev.overtraining.reasons.map(r => `<li>${escape(r)}</li>`).join('')}</ul>`
      : `<strong>✓ No sign of overtraining</strong>: train and test scores agree (KS p ≥ ${ev.overtraining.ks_alpha}` +
        ` for every class) and val_loss is not rising while loss falls.`;
    this.part('.mlaas4hep-eval-roc .mlaas4hep-eval-svg').innerHTML = this.rocSvg(
      ev,
      this.logBox.checked
    );
    this.part('.mlaas4hep-eval-scores .mlaas4hep-eval-svg').innerHTML = this.scoresSvg(ev);
    this.part('.mlaas4hep-eval-classes').innerHTML = classesLine(ev);
    this.part('.mlaas4hep-eval-ks').innerHTML = ev.score_histograms.classes
      .map(h => {
        const ks = ev.ks.find(k => k.class === h.class);
        const low = ks && ks.p_value !== null && ks.p_value < ev.overtraining.ks_alpha;
        const paint = classPaint(ev, h.class);
        return (
          `<span class="mlaas4hep-legend-item mlaas4hep-eval-ks-item${low ? ' mlaas4hep-mod-warn' : ''}" ` +
          `data-class="${h.class}">${swatch(paint)}` +
          `${escape(paint.info?.name ?? h.name)}: KS ${ks ? formatP(ks.p_value) : 'p = – (no train sample)'}</span>`
        );
      })
      .join('');
    this.part('.mlaas4hep-eval-confusion').innerHTML = confusionTable(ev);
  }

  private rocSvg(ev: IEvaluation, log: boolean): string {
    const curves = ev.roc.map(c => ({ curve: c, points: rocPoints(c, log) }));
    const x0 = M.left;
    const x1 = W - M.right;
    const y0 = H - M.bottom;
    const y1 = M.top;
    const sx = linearScale(0, 1, x0, x1);
    const { ticks: yt, scale: sy } = rocAxis(largestY(curves.map(c => c.points)), log, y0, y1);
    const parts: string[] = [frame(niceTicks(0, 1, 5), yt, sx, sy, x0, x1, y0, y1)];
    parts.push(
      `<text class="mlaas4hep-chart-caption" x="${(x0 + x1) / 2}" y="${H - 4}" text-anchor="middle">signal efficiency</text>`,
      `<text class="mlaas4hep-chart-caption" transform="translate(11,${(y0 + y1) / 2}) rotate(-90)" ` +
        `text-anchor="middle">${log ? '1 / background efficiency' : 'background rejection (1 − ε_B)'}</text>`
    );
    curves.forEach(({ curve, points }) => {
      const d = points.map((p, j) => `${j ? 'L' : 'M'}${r1(sx(p.x))},${r1(sy(p.y))}`).join('');
      // binary: one curve, of the class the score is of (label 1)
      const paint = classPaint(ev, curve.class);
      parts.push(
        `<path class="mlaas4hep-series mlaas4hep-roc-curve ${paint.css}"${paint.colour ? ` style="stroke:${paint.colour}"` : ''} ` +
          `data-class="${curve.class}" data-auc="${curve.auc ?? ''}" d="${d}"><title>${escape(curve.name)}: AUC ${
            curve.auc === null ? '–' : curve.auc.toFixed(4)
          }</title></path>`
      );
    });
    return `<svg class="mlaas4hep-eval-chart" data-chart="roc" data-scale="${log ? 'log' : 'linear'}" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="ROC curve">${parts.join('')}</svg>`;
  }

  private scoresSvg(ev: IEvaluation): string {
    const edges = ev.score_histograms.edges;
    const rows = ev.score_histograms.classes.map(h => ({
      h,
      test: density(h.test, edges),
      train: h.train ? density(h.train, edges) : null
    }));
    let ymax = 1e-9;
    for (const r of rows) {
      for (const v of r.test.concat(r.train ?? [])) {
        ymax = Math.max(ymax, v);
      }
    }
    const x0 = M.left;
    const x1 = W - M.right;
    const y0 = H - M.bottom;
    const y1 = M.top;
    const yt = niceTicks(0, ymax, 4);
    const sx = linearScale(edges[0], edges[edges.length - 1], x0, x1);
    const sy = linearScale(0, yt[yt.length - 1], y0, y1);
    const parts: string[] = [
      frame(niceTicks(edges[0], edges[edges.length - 1], 5), yt, sx, sy, x0, x1, y0, y1)
    ];
    const scoreOf = Array.from(new Set(rows.map(r => r.h.score_of)));
    parts.push(
      `<text class="mlaas4hep-chart-caption" x="${(x0 + x1) / 2}" y="${H - 4}" text-anchor="middle">${
        scoreOf.length === 1
          ? `score (probability of ${escape(scoreOf[0])})`
          : "score (each class's own)"
      }</text>`
    );
    for (const { h, test, train } of rows) {
      const paint = classPaint(ev, h.class);
      const color = paint.css;
      let d = `M${r1(sx(edges[0]))},${r1(sy(0))}`;
      test.forEach((v, i) => {
        d += `L${r1(sx(edges[i]))},${r1(sy(v))}L${r1(sx(edges[i + 1]))},${r1(sy(v))}`;
      });
      d += `L${r1(sx(edges[edges.length - 1]))},${r1(sy(0))}Z`;
      const fill = paint.colour ? ` style="fill:${paint.colour};stroke:${paint.colour}"` : '';
      parts.push(
        `<path class="mlaas4hep-eval-test ${color}"${fill} data-class="${h.class}" d="${d}"/>`
      );
      if (train) {
        const dots = train
          .map((v, i) =>
            h.train![i] > 0
              ? `<circle cx="${r1(sx((edges[i] + edges[i + 1]) / 2))}" cy="${r1(sy(v))}" r="2.2"/>`
              : ''
          )
          .join('');
        const dotFill = paint.colour ? ` style="fill:${paint.colour}"` : '';
        parts.push(
          `<g class="mlaas4hep-eval-train ${color}"${dotFill} data-class="${h.class}">${dots}</g>`
        );
      }
    }
    return `<svg class="mlaas4hep-eval-chart" data-chart="scores" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="score distributions">${parts.join('')}</svg>`;
  }

  private part(selector: string): HTMLElement {
    return this.node.querySelector(selector) as HTMLElement;
  }

  private _evaluation: IEvaluation | null = null;
}

function confusionTable(ev: IEvaluation): string {
  const c = ev.confusion;
  const totals = c.matrix.map(row => row.reduce((a, b) => a + b, 0));
  const head = c.classes.map(n => `<th scope="col">${escape(n)}</th>`).join('');
  const body = c.matrix
    .map(
      (row, i) =>
        `<tr><th scope="row">${escape(c.classes[i])}</th>` +
        row
          .map(
            (v, j) =>
              `<td class="${i === j ? 'mlaas4hep-mod-diag' : ''}" data-true="${i}" data-pred="${j}">` +
              `${Math.round(v).toLocaleString('en-US')}<small>${
                totals[i] > 0 ? ` ${((100 * v) / totals[i]).toFixed(1)}%` : ''
              }</small></td>`
          )
          .join('') +
        '</tr>'
    )
    .join('');
  return `<table class="mlaas4hep-metrics-table mlaas4hep-confusion"><caption>Confusion (test events; ${escape(
    c.rule
  )})</caption><thead><tr><th>true \\ predicted</th>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

/** Grid, tick labels and axes of a chart whose plot area is [x0, x1] x [y1, y0]. */
export function frame(
  xt: number[],
  yt: number[],
  sx: (v: number) => number,
  sy: (v: number) => number,
  x0: number,
  x1: number,
  y0: number,
  y1: number
): string {
  const rows = gridRows(yt, sy);
  const out: string[] = ['<g class="mlaas4hep-chart-grid">'];
  for (const { y } of rows) {
    out.push(`<line x1="${x0}" x2="${x1}" y1="${y}" y2="${y}"/>`);
  }
  out.push('</g><g class="mlaas4hep-chart-axes">');
  for (const { y, text } of rows) {
    out.push(`<text x="${x0 - 6}" y="${y + 4}" text-anchor="end">${text}</text>`);
  }
  for (const t of xt) {
    const x = Math.round(sx(t)) + 0.5;
    out.push(
      `<line x1="${x}" x2="${x}" y1="${y0}" y2="${y0 + 4}"/>`,
      `<text x="${x}" y="${y0 + 15}" text-anchor="middle">${formatTick(t)}</text>`
    );
  }
  out.push(
    `<line class="mlaas4hep-chart-axis" x1="${x0}" x2="${x1}" y1="${y0 + 0.5}" y2="${y0 + 0.5}"/>`,
    `<line class="mlaas4hep-chart-axis" x1="${x0 - 0.5}" x2="${x0 - 0.5}" y1="${y1}" y2="${y0}"/>`,
    '</g>'
  );
  return out.join('');
}

/** The largest y of these point lists (0 when none). */
export function largestY(series: ReadonlyArray<ReadonlyArray<IXY>>): number {
  let max = 0;
  for (const points of series) {
    for (const p of points) {
      max = Math.max(max, p.y);
    }
  }
  return max;
}

/** Which class is which, in its colour, and what the score means (nothing for old evaluations). */
function classesLine(ev: IEvaluation): string {
  if (!ev.class_info?.length) {
    return '';
  }
  const items = ev.class_info
    .map(
      c =>
        `<span class="mlaas4hep-legend-item mlaas4hep-eval-class" data-class="${c.class}" data-colour="${escape(c.colour)}">` +
        `${swatch(classPaint(ev, c.class))}<b>${escape(c.name)}</b>: ${escape(c.description)}</span>`
    )
    .join('');
  return (
    items +
    (ev.score_meaning
      ? `<span class="mlaas4hep-eval-meaning">${escape(ev.score_meaning)}</span>`
      : '')
  );
}

function swatch(paint: { css: string; colour: string | null }): string {
  const style = paint.colour ? ` style="background:${paint.colour}"` : '';
  return `<span class="mlaas4hep-swatch ${paint.css}"${style}></span>`;
}
