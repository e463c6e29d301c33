/**
 * A small live line chart in SVG: one persistent <path> per curve whose `d` is updated as
 * points arrive (no re-creation, so no flicker), axes and grid redrawn from "nice" ticks.
 * Plain DOM; the geometry comes from chart.ts.
 */

import {
  cssName,
  extent,
  formatTick,
  gridRows,
  linearScale,
  linePath,
  niceTicks,
  stepTicks,
  thinMarks
} from './chart';
import { baseName, IPoint } from './fold';

const SVG = 'http://www.w3.org/2000/svg';
const HEIGHT = 200;
const MARGIN = { left: 52, right: 12, top: 10, bottom: 26 };
const COLORS = 6;

export interface ISeriesSource {
  series(name: string): ReadonlyArray<IPoint>;
  marks: number[];
}

export class SvgChart {
  readonly node: HTMLDivElement;

  constructor(
    readonly kind: string,
    title: string
  ) {
    this.node = document.createElement('div');
    this.node.className = 'mlaas4hep-chart-box';
    const heading = document.createElement('div');
    heading.className = 'mlaas4hep-chart-title';
    heading.textContent = title;
    this._svg = svg('svg', {
      class: 'mlaas4hep-jobview-chart',
      'data-chart': kind,
      height: `${HEIGHT}`,
      role: 'img',
      'aria-label': title
    }) as SVGSVGElement;
    this._grid = svg('g', { class: 'mlaas4hep-chart-grid' });
    this._marks = svg('g', { class: 'mlaas4hep-chart-marks' });
    this._axes = svg('g', { class: 'mlaas4hep-chart-axes' });
    this._lines = svg('g', { class: 'mlaas4hep-chart-lines' });
    this._empty = svg('text', {
      class: 'mlaas4hep-chart-empty',
      'text-anchor': 'middle'
    }) as SVGElement;
    this._empty.textContent = 'waiting for the first epoch…';
    this._svg.append(this._grid, this._marks, this._axes, this._lines, this._empty);
    this._legend = document.createElement('div');
    this._legend.className = 'mlaas4hep-chart-legend';
    this.node.append(heading, this._svg, this._legend);
  }

  /** Show these curves of `source` (creating paths for new names), at the current width. */
  update(source: ISeriesSource, names: string[]): void {
    this._source = source;
    this._names = names;
    this.node.classList.toggle('mlaas4hep-mod-empty', names.length === 0);
    this.draw();
  }

  /** The chart's drawing width in pixels (call when the view is resized). */
  set width(value: number) {
    const width = Math.max(240, Math.floor(value));
    if (width !== this._width) {
      this._width = width;
      this.draw();
    }
  }

  private draw(): void {
    const width = this._width;
    this._svg.setAttribute('width', `${width}`);
    this._svg.setAttribute('viewBox', `0 0 ${width} ${HEIGHT}`);
    const source = this._source;
    const all = source ? this._names.map(name => source.series(name)) : [];
    const box = extent(all);
    this._empty.setAttribute('x', `${width / 2}`);
    this._empty.setAttribute('y', `${HEIGHT / 2}`);
    this._empty.style.display = box ? 'none' : '';
    const x0 = MARGIN.left;
    const x1 = width - MARGIN.right;
    const y0 = HEIGHT - MARGIN.bottom;
    const y1 = MARGIN.top;
    const xt = box ? stepTicks(Math.min(box.xmin, 1), Math.max(box.xmax, 2)) : [1, 2];
    const yt = box ? niceTicks(box.ymin, box.ymax, 4) : [0, 1];
    const sx = linearScale(xt[0], xt[xt.length - 1], x0, x1);
    const sy = linearScale(yt[0], yt[yt.length - 1], y0, y1);
    this.drawAxes(box ? xt : [], box ? yt : [], sx, sy, x0, x1, y0, y1);
    this.drawMarks(source && box ? source.marks : [], sx, y0, y1);
    this.drawLines(sx, sy);
  }

  private drawAxes(
    xt: number[],
    yt: number[],
    sx: (v: number) => number,
    sy: (v: number) => number,
    x0: number,
    x1: number,
    y0: number,
    y1: number
  ): void {
    const grid: Element[] = [];
    const axes: Element[] = [];
    for (const { y, text } of gridRows(yt, sy)) {
      grid.push(svg('line', { x1: `${x0}`, x2: `${x1}`, y1: `${y}`, y2: `${y}` }));
      const label = svg('text', { x: `${x0 - 6}`, y: `${y + 4}`, 'text-anchor': 'end' });
      label.textContent = text;
      axes.push(label);
    }
    const every = Math.max(1, Math.ceil(xt.length / Math.max(2, Math.floor((x1 - x0) / 48))));
    xt.forEach((t, i) => {
      if (i % every !== 0) {
        return;
      }
      const x = Math.round(sx(t)) + 0.5;
      axes.push(svg('line', { x1: `${x}`, x2: `${x}`, y1: `${y0}`, y2: `${y0 + 4}` }));
      const label = svg('text', { x: `${x}`, y: `${y0 + 16}`, 'text-anchor': 'middle' });
      label.textContent = formatTick(t);
      axes.push(label);
    });
    axes.push(
      svg('line', {
        class: 'mlaas4hep-chart-axis',
        x1: `${x0}`,
        x2: `${x1}`,
        y1: `${y0 + 0.5}`,
        y2: `${y0 + 0.5}`
      })
    );
    axes.push(
      svg('line', {
        class: 'mlaas4hep-chart-axis',
        x1: `${x0 - 0.5}`,
        x2: `${x0 - 0.5}`,
        y1: `${y1}`,
        y2: `${y0}`
      })
    );
    if (xt.length) {
      // under the y labels, left of the first x label
      const caption = svg('text', {
        x: `${x0 - 6}`,
        y: `${y0 + 16}`,
        'text-anchor': 'end',
        class: 'mlaas4hep-chart-caption'
      });
      caption.textContent = 'step';
      axes.push(caption);
    }
    this._grid.replaceChildren(...grid);
    this._axes.replaceChildren(...axes);
  }

  private drawMarks(marks: number[], sx: (v: number) => number, y0: number, y1: number): void {
    const lines = thinMarks(marks).map(m => {
      const x = Math.round(sx(m)) + 0.5;
      return svg('line', { x1: `${x}`, x2: `${x}`, y1: `${y1}`, y2: `${y0}` });
    });
    this._marks.replaceChildren(...lines);
  }

  private drawLines(sx: (v: number) => number, sy: (v: number) => number): void {
    const source = this._source;
    const bases: string[] = [];
    for (const name of this._names) {
      const base = baseName(name);
      if (!bases.includes(base)) {
        bases.push(base);
      }
      let path = this._paths.get(name);
      if (!path) {
        const color = `mlaas4hep-color-${bases.indexOf(base) % COLORS}`;
        const val = name.startsWith('val_') ? ' mlaas4hep-mod-val' : '';
        path = svg('path', {
          class: `mlaas4hep-series mlaas4hep-series-${cssName(name)} ${color}${val}`,
          'data-series': name
        }) as SVGPathElement;
        this._lines.appendChild(path);
        this._paths.set(name, path);
        this._legend.appendChild(legendItem(name, `${color}${val}`));
      }
      const d = source ? linePath(source.series(name), sx, sy) : '';
      if (path.getAttribute('d') !== d) {
        path.setAttribute('d', d);
      }
    }
  }

  private _svg: SVGSVGElement;
  private _grid: Element;
  private _marks: Element;
  private _axes: Element;
  private _lines: Element;
  private _empty: SVGElement;
  private _legend: HTMLDivElement;
  private _paths = new Map<string, SVGPathElement>();
  private _names: string[] = [];
  private _source: ISeriesSource | null = null;
  private _width = 480;
}

function svg(tag: string, attrs: { [name: string]: string }): Element {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    node.setAttribute(name, value);
  }
  return node;
}

function legendItem(name: string, classes: string): HTMLElement {
  const item = document.createElement('span');
  item.className = 'mlaas4hep-legend-item';
  item.dataset.series = name;
  const swatch = svg('svg', { width: '22', height: '8', class: 'mlaas4hep-legend-swatch' });
  swatch.appendChild(svg('path', { d: 'M1,4L21,4', class: `mlaas4hep-series ${classes}` }));
  const label = document.createElement('span');
  label.textContent = name;
  item.append(swatch, label);
  return item;
}
