/**
 * The comparison of several jobs (selected in the sidebar): loss / val_loss curves overlaid,
 * ROC curves overlaid (log background rejection option), and a table of their params, preproc,
 * events, time and test metrics with the rows where they differ highlighted. Everything comes
 * from each job's events, read once when the view opens (Refresh reads them again).
 * The summaries and the table rows come from comparison.ts; `CompareView` draws them.
 */

import { MainAreaWidget, ToolbarButton } from '@jupyterlab/apputils';
import { refreshIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { IJobSource } from './api';
import { escape, linearScale, niceTicks, r1, stepTicks } from './chart';
import { compareRows, IRun, summarize } from './comparison';
import { frame, largestY, rocAxis, rocPoints } from './evaluation';
import { mlaas4hepIcon } from './icons';
import { message } from './jobsmodel';
import { IJobEvent } from './types';

const W = 440;
const H = 240;
const M = { left: 48, right: 10, top: 10, bottom: 34 };

export class CompareView extends Widget {
  constructor(options: CompareView.IOptions) {
    super();
    this.ids = options.ids;
    this.source = options.source;
    this.addClass('mlaas4hep-compare-content');
    this.node.innerHTML =
      '<h2 class="mlaas4hep-compare-title"></h2>' +
      '<div class="mlaas4hep-jobview-message" hidden></div>' +
      '<div class="mlaas4hep-compare-legend mlaas4hep-chart-legend"></div>' +
      '<div class="mlaas4hep-eval-grid">' +
      '<div class="mlaas4hep-chart-box mlaas4hep-compare-loss"><div class="mlaas4hep-chart-title">' +
      'loss (solid) and val_loss (dashed)</div><div class="mlaas4hep-eval-svg"></div></div>' +
      '<div class="mlaas4hep-chart-box mlaas4hep-compare-roc"><div class="mlaas4hep-chart-title">ROC ' +
      '<label class="mlaas4hep-eval-log"><input type="checkbox" class="mlaas4hep-roc-log"> log background rejection</label>' +
      '</div><div class="mlaas4hep-eval-svg"></div></div>' +
      '</div>' +
      '<div class="mlaas4hep-compare-table-box"></div>';
    (this.node.querySelector('.mlaas4hep-roc-log') as HTMLInputElement).addEventListener(
      'change',
      () => this.draw()
    );
    this.title.label = `Compare ${this.ids.length} jobs`;
    void this.load();
  }

  readonly ids: string[];
  readonly source: IJobSource;
  runs: IRun[] = [];

  /** Read every job's events again and redraw. */
  async load(): Promise<void> {
    try {
      this.runs = await Promise.all(this.ids.map(id => this.readRun(id)));
      this.showMessage('');
    } catch (err) {
      this.showMessage(`Cannot read the jobs: ${message(err)}`);
    }
    this.node.dataset.loaded = 'true';
    this.draw();
  }

  private async readRun(id: string): Promise<IRun> {
    const events: IJobEvent[] = [];
    let since = 0;
    let status = '';
    for (let i = 0; i < 1000; i++) {
      const page = await this.source.events(id, since, 0);
      status = page.status;
      events.push(...page.events);
      if (!page.events.length || page.last_seq <= since) {
        break;
      }
      since = page.last_seq;
    }
    return summarize(id, events, status);
  }

  private draw(): void {
    const runs = this.runs;
    (this.node.querySelector('.mlaas4hep-compare-title') as HTMLElement).textContent =
      `Comparison of ${this.ids.length} jobs`;
    this.node.dataset.runs = String(runs.length);
    (this.node.querySelector('.mlaas4hep-compare-legend') as HTMLElement).innerHTML = runs
      .map(
        (r, i) =>
          `<span class="mlaas4hep-legend-item" data-run="${escape(r.id)}"><span class="mlaas4hep-swatch mlaas4hep-color-${
            i % 6
          }"></span><b>${escape(r.name)}</b> <code>${escape(r.id)}</code></span>`
      )
      .join('');
    const log = (this.node.querySelector('.mlaas4hep-roc-log') as HTMLInputElement).checked;
    (
      this.node.querySelector('.mlaas4hep-compare-loss .mlaas4hep-eval-svg') as HTMLElement
    ).innerHTML = lossSvg(runs);
    (
      this.node.querySelector('.mlaas4hep-compare-roc .mlaas4hep-eval-svg') as HTMLElement
    ).innerHTML = rocSvg(runs, log);
    const head = runs
      .map(
        (r, i) =>
          `<th scope="col" class="mlaas4hep-compare-col mlaas4hep-color-${i % 6}">${escape(r.name)}</th>`
      )
      .join('');
    const body = compareRows(runs)
      .map(
        row =>
          `<tr class="mlaas4hep-compare-row${row.differs ? ' mlaas4hep-mod-diff' : ''}" data-section="${
            row.section
          }" data-row="${escape(row.label)}" data-differs="${row.differs ? 'yes' : 'no'}">` +
          `<th scope="row">${escape(row.label)}</th>${row.cells.map(c => `<td>${escape(c)}</td>`).join('')}</tr>`
      )
      .join('');
    (this.node.querySelector('.mlaas4hep-compare-table-box') as HTMLElement).innerHTML =
      `<table class="mlaas4hep-metrics-table mlaas4hep-compare-table"><caption>highlighted: rows where the jobs differ</caption>` +
      `<thead><tr><th></th>${head}</tr></thead><tbody>${body}</tbody></table>`;
  }

  private showMessage(text: string): void {
    const node = this.node.querySelector('.mlaas4hep-jobview-message') as HTMLElement;
    node.textContent = text;
    node.hidden = !text;
    node.classList.toggle('mlaas4hep-mod-error', !!text);
  }
}

export namespace CompareView {
  export interface IOptions {
    ids: string[];
    source: IJobSource;
  }
}

/** The comparison in a main-area panel, with a Refresh button. */
export function createComparePanel(options: CompareView.IOptions): MainAreaWidget<CompareView> {
  const content = new CompareView(options);
  const panel = new MainAreaWidget({ content });
  panel.id = `mlaas4hep-compare-${options.source.id}-${options.ids.join('-')}`;
  panel.addClass('mlaas4hep-compareview');
  panel.title.icon = mlaas4hepIcon;
  panel.title.closable = true;
  panel.toolbar.addItem(
    'refresh',
    new ToolbarButton({
      icon: refreshIcon,
      label: 'Refresh',
      tooltip: "Read the jobs' events again",
      onClick: () => void content.load()
    })
  );
  return panel;
}

function lossSvg(runs: ReadonlyArray<IRun>): string {
  let xmin = Infinity;
  let xmax = -Infinity;
  let ymin = 0;
  let ymax = -Infinity;
  for (const r of runs) {
    for (const h of r.history) {
      for (const y of [h.loss, h.val_loss]) {
        if (y !== null && isFinite(y)) {
          xmin = Math.min(xmin, h.step);
          xmax = Math.max(xmax, h.step);
          ymin = Math.min(ymin, y);
          ymax = Math.max(ymax, y);
        }
      }
    }
  }
  if (!(xmax >= xmin)) {
    return '<div class="mlaas4hep-chart-empty">no loss curves yet</div>';
  }
  const x0 = M.left;
  const x1 = W - M.right;
  const y0 = H - M.bottom;
  const y1 = M.top;
  const xt = stepTicks(Math.min(xmin, 1), Math.max(xmax, 2));
  const yt = niceTicks(ymin, ymax, 4);
  const sx = linearScale(xt[0], xt[xt.length - 1], x0, x1);
  const sy = linearScale(yt[0], yt[yt.length - 1], y0, y1);
  const parts = [frame(xt, yt, sx, sy, x0, x1, y0, y1)];
  parts.push(
    `<text class="mlaas4hep-chart-caption" x="${(x0 + x1) / 2}" y="${H - 4}" text-anchor="middle">step (epochs over the run)</text>`
  );
  runs.forEach((r, i) => {
    for (const key of ['loss', 'val_loss'] as const) {
      const d = r.history
        .filter(h => h[key] !== null && isFinite(h[key] as number))
        .map((h, j) => `${j ? 'L' : 'M'}${r1(sx(h.step))},${r1(sy(h[key] as number))}`)
        .join('');
      parts.push(
        `<path class="mlaas4hep-series mlaas4hep-compare-curve mlaas4hep-color-${i % 6}${
          key === 'val_loss' ? ' mlaas4hep-mod-val' : ''
        }" data-run="${escape(r.id)}" data-series="${key}" d="${d}"/>`
      );
    }
  });
  return svgBox('compare-loss', parts.join(''));
}

function rocSvg(runs: ReadonlyArray<IRun>, log: boolean): string {
  const curves = runs
    .map((r, i) => ({
      r,
      i,
      points: r.evaluation?.roc?.length ? rocPoints(r.evaluation.roc[0], log) : []
    }))
    .filter(c => c.points.length);
  if (!curves.length) {
    return '<div class="mlaas4hep-chart-empty">no evaluation yet (it comes at the end of a job)</div>';
  }
  const x0 = M.left;
  const x1 = W - M.right;
  const y0 = H - M.bottom;
  const y1 = M.top;
  const sx = linearScale(0, 1, x0, x1);
  const { ticks: yt, scale: sy } = rocAxis(largestY(curves.map(c => c.points)), log, y0, y1);
  const parts = [frame(niceTicks(0, 1, 5), yt, sx, sy, x0, x1, y0, y1)];
  parts.push(
    `<text class="mlaas4hep-chart-caption" x="${(x0 + x1) / 2}" y="${H - 4}" text-anchor="middle">signal efficiency</text>`,
    `<text class="mlaas4hep-chart-caption" transform="translate(11,${(y0 + y1) / 2}) rotate(-90)" text-anchor="middle">${
      log ? '1 / background efficiency' : 'background rejection (1 − ε_B)'
    }</text>`
  );
  for (const { r, i, points } of curves) {
    const d = points.map((p, j) => `${j ? 'L' : 'M'}${r1(sx(p.x))},${r1(sy(p.y))}`).join('');
    parts.push(
      `<path class="mlaas4hep-series mlaas4hep-compare-roc mlaas4hep-color-${i % 6}" data-run="${escape(r.id)}" d="${d}"/>`
    );
  }
  return svgBox('compare-roc', parts.join(''), `data-scale="${log ? 'log' : 'linear'}"`);
}

function svgBox(kind: string, body: string, extra = ''): string {
  return `<svg class="mlaas4hep-eval-chart" data-chart="${kind}" ${extra} width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img">${body}</svg>`;
}
