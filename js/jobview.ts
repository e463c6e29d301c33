/**
 * A job's view in the main area: header, live curves, progress with events/s and ETA, metrics
 * table, log tail; Cancel, Delete and Download artifact in its toolbar.
 *
 * It follows the job with a `Poll` whose every tick is one long-poll of
 * `GET jobs/{id}/events?since=N` (the server holds it until an event comes), folds the page
 * into a `JobFold`, and redraws what changed. The log is read every few seconds while the job
 * runs, and once more at its end. The poll stops when the job has finished and no event is left.
 */

import { Dialog, MainAreaWidget, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { deleteIcon, downloadIcon, stopIcon, ToolbarButton } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { errorStatus, IJobSource, saveBlob } from './api';
import { escape } from './chart';
import { baseName, JobFold, LogTail, splitCharts } from './fold';
import {
  canCancel,
  canDelete,
  formatCount,
  formatDuration,
  formatRate,
  formatTimestamp,
  formatValue,
  isFinished,
  percent,
  statusClass
} from './format';
import { EvaluationPanel } from './evaluation';
import { mlaas4hepIcon } from './icons';
import { message } from './jobsmodel';
import { SvgChart } from './svgchart';
import { IJobInfo, JobStatus } from './types';

/** seconds the server may hold one events request */
const LONG_POLL = 10;
/** milliseconds between log reads while the job runs */
const LOG_INTERVAL = 2000;

export class JobView extends Widget {
  constructor(options: JobView.IOptions) {
    super();
    this.jobId = options.jobId;
    this.source = options.source;
    this._onChanged = options.onChanged ?? (() => undefined);
    this.addClass('mlaas4hep-jobview-content');
    this.node.dataset.jobId = this.jobId;
    this.node.dataset.source = this.source.id;
    this.node.innerHTML =
      '<header class="mlaas4hep-jobview-header">' +
      '<div class="mlaas4hep-jobview-title">' +
      '<h2 class="mlaas4hep-jobview-name"></h2>' +
      '<span class="mlaas4hep-job-status"></span>' +
      '</div>' +
      '<dl class="mlaas4hep-jobview-facts"></dl>' +
      '</header>' +
      '<div class="mlaas4hep-jobview-message" hidden></div>' +
      '<section class="mlaas4hep-jobview-progress">' +
      '<div class="mlaas4hep-progress-bar"><div class="mlaas4hep-progress-fill"></div></div>' +
      '<div class="mlaas4hep-jobview-progress-text"></div>' +
      '</section>' +
      '<section class="mlaas4hep-jobview-charts"></section>' +
      '<section class="mlaas4hep-jobview-metrics"></section>' +
      '<div class="mlaas4hep-jobview-evaluation"></div>' +
      '<details class="mlaas4hep-jobview-inputs" hidden>' +
      '<summary>Params and preproc this job ran with</summary>' +
      '<div class="mlaas4hep-jobview-inputs-body"></div>' +
      '</details>' +
      '<details class="mlaas4hep-jobview-log" open>' +
      '<summary>Log</summary>' +
      '<pre class="mlaas4hep-log"></pre>' +
      '</details>';
    this._lossChart = new SvgChart('loss', 'Loss');
    this._metricChart = new SvgChart('metrics', 'Metrics');
    this.part('.mlaas4hep-jobview-charts').append(this._lossChart.node, this._metricChart.node);
    this._metricChart.node.hidden = true;
    this.part('.mlaas4hep-jobview-evaluation').append(this._evaluation.node);
    this.render();
    this._poll = new Poll({
      factory: () => this.step(),
      frequency: { interval: 250, backoff: true, max: 30_000 },
      standby: 'when-hidden',
      name: `mlaas4hep:job:${this.jobId}`
    });
  }

  readonly jobId: string;
  readonly source: IJobSource;
  readonly fold = new JobFold();
  readonly log = new LogTail(200);

  /** The job as `GET jobs/{id}` last said (null until it answered). */
  get info(): IJobInfo | null {
    return this._info;
  }

  /** The status to show: the events' word, else the server's. */
  get status(): JobStatus | '' {
    return this.fold.status || this._info?.status || '';
  }

  get canCancel(): boolean {
    const status = this.status;
    return !this._gone && !!status && canCancel({ status });
  }

  get canDelete(): boolean {
    const status = this.status;
    return !this._gone && !!status && canDelete({ status });
  }

  get canDownload(): boolean {
    return !this._gone && !!this._info?.artifact;
  }

  /** Emitted when the status, the artifact or the job's existence changed (the toolbar follows). */
  get stateChanged(): ISignal<this, void> {
    return this._stateChanged;
  }

  /** Stop the job after asking (the server sends SIGTERM, then SIGKILL). */
  async cancel(): Promise<void> {
    const name = this._info?.name || this.fold.name || 'this job';
    if (!(await confirmCancel(name, this.jobId))) {
      return;
    }
    try {
      // the running long-poll gets the cancellation's event at once: no refresh needed
      this.setInfo(await this.source.cancel(this.jobId));
      this._onChanged();
    } catch (err) {
      await showErrorMessage('Cannot cancel the job', message(err));
    }
  }

  /** Delete the finished job after asking; resolves true when it was deleted. */
  async remove(): Promise<boolean> {
    const name = this._info?.name || this.fold.name || 'this job';
    const answer = await showDialog({
      title: 'Delete the job?',
      body: `"${name}" (${this.jobId}): its folder, events, log and artifact are removed for good.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return false;
    }
    try {
      await this.source.remove(this.jobId);
    } catch (err) {
      await showErrorMessage('Cannot delete the job', message(err));
      return false;
    }
    this._onChanged();
    return true;
  }

  /** Fetch the artifact (tar.gz) and save it through the browser. */
  async download(): Promise<void> {
    try {
      const { blob, filename } = await this.source.artifact(this.jobId);
      saveBlob(blob, filename);
    } catch (err) {
      await showErrorMessage('Cannot download the artifact', message(err));
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._abort.abort();
    this._poll.dispose();
    Signal.clearData(this);
    super.dispose();
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this.fitCharts();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.fitCharts();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this.fitCharts();
  }

  /** One tick of the poll: a page of events (long-poll), the info when needed, the log now and then. */
  private async step(): Promise<void> {
    if (this._gone) {
      return;
    }
    try {
      if (!this._info) {
        this.setInfo(await this.source.job(this.jobId));
      }
      const before = this.status;
      const page = await this.source.events(
        this.jobId,
        this.fold.since,
        LONG_POLL,
        this._abort.signal
      );
      if (this.isDisposed) {
        return;
      }
      const result = this.fold.foldPage(page);
      if (result.added || this.status !== before) {
        this.render();
      }
      const finished = result.done;
      if (
        finished ||
        this.status !== before ||
        (result.added && !this._info?.artifact && isFinished(this.status))
      ) {
        this.setInfo(await this.source.job(this.jobId));
      }
      if (finished || Date.now() >= this._nextLog) {
        this._nextLog = Date.now() + LOG_INTERVAL;
        await this.readLog();
      }
      if (finished) {
        this._onChanged();
        this._poll.dispose(); // nothing more will come
      }
    } catch (err) {
      if (this.isDisposed) {
        return;
      }
      if (errorStatus(err) === 404) {
        this._gone = true;
        this.render();
        this.showMessage(
          'This job does not exist (any more): it was deleted, or belongs to another server.',
          true
        );
        this._poll.dispose();
        return;
      }
      this.showMessage(`Cannot reach the server: ${message(err)}; retrying…`, true);
      throw err; // the poll backs off
    }
  }

  private async readLog(): Promise<void> {
    if (this._readingLog) {
      return; // one reader at a time, or a piece would be added twice
    }
    this._readingLog = true;
    let changed = false;
    try {
      for (let i = 0; i < 16; i++) {
        const page = await this.source.logs(this.jobId, this.log.offset, this._abort.signal);
        changed = this.log.add(page.text, page.offset) || changed;
        if (!page.text || page.offset >= page.size) {
          break;
        }
      }
    } finally {
      this._readingLog = false;
    }
    if (changed) {
      const pre = this.part('.mlaas4hep-log');
      const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = this.log.text;
      if (stick) {
        pre.scrollTop = pre.scrollHeight;
      }
    }
  }

  private setInfo(info: IJobInfo): void {
    this._info = info;
    this.fold.serverStatus(info.status);
    if (info.error && !this.fold.error && isFinished(info.status)) {
      this.fold.error = info.error;
    }
    this.render();
  }

  private render(): void {
    if (this.isDisposed) {
      return;
    }
    const state = [this.status, this.canCancel, this.canDelete, this.canDownload].join();
    if (state !== this._state) {
      this._state = state;
      this._stateChanged.emit();
    }
    this.renderHeader();
    this.renderProgress();
    this.renderCharts();
    this.renderMetrics();
    this._evaluation.update(this.fold.evaluation);
    this.renderInputs();
    if (!this._gone) {
      const fold = this.fold;
      const problem = this.status === 'failed' || this.status === 'cancelled';
      const text = problem
        ? `${this.status}${fold.error && fold.error !== 'cancelled' ? `: ${fold.error}` : ''}`
        : this.status === 'running' && fold.notes.length
          ? fold.notes[fold.notes.length - 1]
          : '';
      this.showMessage(text, this.status === 'failed');
    }
  }

  private renderHeader(): void {
    const info = this._info;
    const fold = this.fold;
    const name = info?.name || fold.name || 'job';
    setText(this.part('.mlaas4hep-jobview-name'), name);
    this.title.label = name;
    const status = this.part('.mlaas4hep-job-status');
    status.className = `mlaas4hep-job-status ${statusClass(this.status)}`;
    setText(status, this.status || '…');
    this.node.dataset.status = this.status;
    const where: string[] = [];
    if (fold.mode) {
      where.push(`${fold.mode} mode`);
    }
    if (this.status === 'running') {
      if (fold.chunk !== null) {
        where.push(`chunk ${fold.chunk}`);
      }
      if (fold.epoch !== null) {
        where.push(`epoch ${fold.epoch}${fold.epochs ? `/${fold.epochs}` : ''}`);
      }
    }
    const facts: [string, string][] = [
      ['id', this.jobId],
      ['kernel', info?.kernel || '–'],
      ['created', formatTimestamp(info?.created)],
      ['started', formatTimestamp(info?.started)],
      ['finished', formatTimestamp(info?.finished)]
    ];
    if (where.length) {
      facts.push(['run', where.join(', ')]);
    }
    if (fold.seconds !== null) {
      facts.push(['took', formatDuration(fold.seconds)]);
    }
    if (fold.earlyStop) {
      const es = fold.earlyStop;
      facts.push([
        'early stop',
        `after epoch ${es.epoch}; best ${es.monitor} in epoch ${es.best_epoch}` +
          (es.best !== null ? ` (${formatValue(es.best)})` : '')
      ]);
    }
    const dl = this.part('.mlaas4hep-jobview-facts');
    const html = facts
      .map(([k, v]) => `<div data-fact="${k}"><dt>${k}</dt><dd>${escape(v)}</dd></div>`)
      .join('');
    if (dl.innerHTML !== html) {
      dl.innerHTML = html;
    }
    this.title.caption = `MLaaS4HEP job ${this.jobId} (${this.status || 'loading'})`;
  }

  private renderProgress(): void {
    const fold = this.fold;
    const server = this._info?.progress;
    const estimate = fold.progress();
    const done = estimate.done || server?.events_processed || 0;
    const total = estimate.total || server?.events_total || 0;
    const share = percent(done, total, this.status);
    const fill = this.part('.mlaas4hep-progress-fill');
    fill.style.width = `${share.toFixed(1)}%`;
    fill.className = `mlaas4hep-progress-fill ${statusClass(this.status)}`;
    const parts: string[] = [];
    if (total > 0 || done > 0) {
      const about = estimate.estimated ? '≈ ' : '';
      parts.push(
        `${about}${formatCount(done)} / ${formatCount(total)} events`,
        `${Math.floor(share)}%`
      );
    }
    if (this.status === 'running') {
      const rate = estimate.rate || server?.rate || 0;
      if (rate > 0) {
        parts.push(`${formatRate(rate)} events/s`);
      }
      if (estimate.eta !== null) {
        parts.push(`ETA ${formatDuration(estimate.eta)}`);
      }
    } else if (this.status === 'succeeded' && fold.rate > 0) {
      // the engine's training rate, the same number the sidebar, the Train tab and the magic show
      parts.push(`${formatRate(fold.rate)} events/s`);
    } else if (this.status === 'queued') {
      parts.push('waiting in the queue');
    }
    const text = this.part('.mlaas4hep-jobview-progress-text');
    setText(text, parts.join(' · '));
  }

  private renderCharts(): void {
    const { loss, metrics } = splitCharts(this.fold.seriesNames);
    // a job that ended before its first epoch has no curves to wait for
    this.part('.mlaas4hep-jobview-charts').hidden =
      loss.length + metrics.length === 0 && isFinished(this.status);
    const layout = this._metricChart.node.hidden !== (metrics.length === 0);
    this._metricChart.node.hidden = metrics.length === 0;
    if (layout) {
      this.fitCharts();
    }
    this._lossChart.update(this.fold, loss);
    this._metricChart.update(this.fold, metrics);
  }

  private renderMetrics(): void {
    const last = this.fold.lastEpoch;
    const test = this.fold.testMetrics;
    const bases: string[] = [];
    for (const name of this.fold.seriesNames) {
      const base = baseName(name);
      if (!bases.includes(base)) {
        bases.push(base);
      }
    }
    for (const name of Object.keys(test)) {
      if (name !== 'events' && !bases.includes(name)) {
        bases.push(name);
      }
    }
    const box = this.part('.mlaas4hep-jobview-metrics');
    if (!bases.length) {
      box.innerHTML = '';
      return;
    }
    const where =
      this.fold.epoch !== null
        ? ` (epoch ${this.fold.epoch}${this.fold.chunk !== null ? `, chunk ${this.fold.chunk}` : ''})`
        : '';
    const hasTest = Object.keys(test).length > 0;
    const rows = bases
      .map(
        base =>
          `<tr data-metric="${escape(base)}"><th scope="row">${escape(base)}</th>` +
          `<td>${formatValue(last[base])}</td><td>${formatValue(last[`val_${base}`])}</td>` +
          `<td class="mlaas4hep-metric-test">${hasTest ? formatValue(test[base]) : '–'}</td></tr>`
      )
      .join('');
    const events =
      typeof test.events === 'number'
        ? `<caption>test: ${formatCount(test.events)} held-out events</caption>`
        : '';
    const html =
      `<table class="mlaas4hep-metrics-table">${events}<thead><tr><th>metric</th>` +
      `<th>train, last epoch${escape(where)}</th><th>validation</th><th>test</th></tr></thead>` +
      `<tbody>${rows}</tbody></table>`;
    if (box.innerHTML !== html) {
      box.innerHTML = html;
    }
  }

  /** The params (all of them) and the preproc of the job's `job_start` event. */
  private renderInputs(): void {
    const params = this.fold.params;
    const box = this.part('.mlaas4hep-jobview-inputs');
    box.hidden = !params;
    if (!params || this._inputsShown === params) {
      return;
    }
    this._inputsShown = params;
    const rows = Object.entries(params)
      .map(
        ([k, v]) =>
          `<tr data-param="${escape(k)}"><th scope="row">${escape(k)}</th><td>${escape(
            v === null || v === '' ? '–' : typeof v === 'object' ? JSON.stringify(v) : String(v)
          )}</td></tr>`
      )
      .join('');
    const preproc = this.fold.preproc;
    this.part('.mlaas4hep-jobview-inputs-body').innerHTML =
      `<table class="mlaas4hep-metrics-table mlaas4hep-params-table"><caption>params.json</caption><tbody>${rows}</tbody></table>` +
      `<div class="mlaas4hep-preproc-box"><div class="mlaas4hep-preproc-caption">preproc.json</div>` +
      `<pre class="mlaas4hep-preproc">${escape(preproc ? JSON.stringify(preproc, null, 2) : 'none (every event, no new branches)')}</pre></div>`;
  }

  private showMessage(text: string, error: boolean): void {
    const node = this.part('.mlaas4hep-jobview-message');
    setText(node, text);
    node.hidden = !text;
    node.classList.toggle('mlaas4hep-mod-error', error);
  }

  private fitCharts(): void {
    const width = this.part('.mlaas4hep-jobview-charts').clientWidth;
    if (width > 0) {
      // two charts side by side when there is room for both, else one under the other
      const both = !this._metricChart.node.hidden && width >= 760;
      const each = both ? (width - 16) / 2 : width;
      this._lossChart.width = each - 2;
      this._metricChart.width = each - 2;
    }
  }

  private part(selector: string): HTMLElement {
    return this.node.querySelector(selector) as HTMLElement;
  }

  private _poll: Poll;
  private _abort = new AbortController();
  private _info: IJobInfo | null = null;
  private _gone = false;
  private _state = '';
  private _readingLog = false;
  private _nextLog = 0;
  private _lossChart: SvgChart;
  private _evaluation = new EvaluationPanel();
  private _inputsShown: object | null = null;
  private _metricChart: SvgChart;
  private _onChanged: () => void;
  private _stateChanged = new Signal<this, void>(this);
}

export namespace JobView {
  export interface IOptions {
    jobId: string;
    source: IJobSource;
    /** called after the job changed through this view or finished (the sidebar refreshes) */
    onChanged?: () => void;
  }
}

/** A job view in a main-area widget, its toolbar holding Cancel, Delete and Download artifact. */
export function createJobPanel(options: JobView.IOptions): MainAreaWidget<JobView> {
  const content = new JobView(options);
  const panel = new MainAreaWidget({ content });
  panel.id = `mlaas4hep-job-${options.source.id}-${options.jobId}`;
  // the whole panel (toolbar included) is `.mlaas4hep-jobview`: one root for a job's view
  panel.addClass('mlaas4hep-jobview');
  panel.addClass('mlaas4hep-jobpanel');
  panel.node.dataset.jobId = options.jobId;
  panel.node.dataset.source = options.source.id;
  panel.title.icon = mlaas4hepIcon;
  panel.title.closable = true;
  const cancel = new ToolbarButton({
    icon: stopIcon,
    label: 'Cancel',
    className: 'mlaas4hep-cancel',
    tooltip: 'Stop the job (SIGTERM, then SIGKILL)',
    enabled: false,
    onClick: () => void content.cancel()
  });
  const remove = new ToolbarButton({
    icon: deleteIcon,
    label: 'Delete',
    className: 'mlaas4hep-delete',
    tooltip: 'Delete the finished job: its folder, log and artifact',
    enabled: false,
    onClick: async () => {
      if (await content.remove()) {
        panel.dispose();
      }
    }
  });
  const download = new ToolbarButton({
    icon: downloadIcon,
    label: 'Download artifact',
    className: 'mlaas4hep-download',
    tooltip: 'The trained model and its feature contract, as .tar.gz',
    enabled: false,
    onClick: () => void content.download()
  });
  panel.toolbar.addItem('cancel', cancel);
  panel.toolbar.addItem('delete', remove);
  panel.toolbar.addItem('download', download);
  const follow = () => {
    panel.node.dataset.status = content.status;
    cancel.enabled = content.canCancel;
    remove.enabled = content.canDelete;
    download.enabled = content.canDownload;
  };
  content.stateChanged.connect(follow);
  follow();
  return panel;
}

/** Ask before stopping a job, as Delete does; true when the user said stop. */
export async function confirmCancel(name: string, id: string): Promise<boolean> {
  const answer = await showDialog({
    title: 'Stop the job?',
    body: `"${name}" (${id}) is stopped now; what it trained since its last checkpoint is lost.`,
    buttons: [
      Dialog.cancelButton({ label: 'Keep running' }),
      Dialog.warnButton({ label: 'Stop job' })
    ]
  });
  return answer.button.accept;
}

function setText(node: Element, text: string): void {
  if (node.textContent !== text) {
    node.textContent = text;
  }
}
