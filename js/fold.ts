/**
 * Folding a job's events into what its view shows: curves, progress, ETA, status, metrics; and
 * the log tail. The same rules as the notebook's TrainingMonitor (mlaas4hep_lab/widgets/monitor.py).
 *
 * Pure (no DOM, no JupyterLab): the job view feeds pages of events in, jest feeds lists.
 */

import { asEvaluation, IEvaluation } from './evaluation';
import { IEventsPage, IJobEvent, JobStatus } from './types';
import { isFinished } from './format';

/** Fields of an `epoch` event that are not curves. */
const META_KEYS = new Set(['event', 'seq', 'time', 'epoch', 'chunk', 'step']);
/** `failed` events of these types mean the job was stopped, not broken. */
const CANCEL_TYPES = new Set(['Cancelled', 'Timeout']);

/** One point of a curve; y is null where the model reported no value (a gap). */
export interface IPoint {
  x: number;
  y: number | null;
}

/** Progress as the view shows it; `estimated` when it is interpolated between server reports. */
export interface IProgressEstimate {
  done: number;
  total: number;
  /** events/s */
  rate: number;
  /** seconds left, null when unknown */
  eta: number | null;
  estimated: boolean;
}

/** What a page of events changed, so the view redraws only that. */
export interface IFoldResult {
  /** events that were new (not seen before) */
  added: number;
  /** curves that got points */
  series: string[];
  /** the job has finished and the server has no more events: stop following */
  done: boolean;
}

export class JobFold {
  /** the highest `seq` folded in; events at or below it are ignored */
  lastSeq = 0;
  /** what to pass as `since` for the next page */
  since = 0;
  name = '';
  mode = '';
  epochs: number | null = null;
  status: JobStatus | '' = '';
  error = '';
  done = 0;
  total = 0;
  rate = 0;
  eta: number | null = null;
  /** the run's length in seconds, from `finished` */
  seconds: number | null = null;
  chunk: number | null = null;
  epoch: number | null = null;
  artifact = '';
  /** the last `epoch` event's curve values */
  lastEpoch: { [name: string]: number | null } = {};
  /** test metrics of the `finished` event (loss, accuracy, auc, events) */
  testMetrics: { [name: string]: unknown } = {};
  /** x positions where a new chunk starts training (chunk mode) */
  marks: number[] = [];
  /** the latest `log` events, "level: message" */
  notes: string[] = [];
  /** the `evaluation` event (ROC, AUC, score histograms, KS, confusion, overtraining) */
  evaluation: IEvaluation | null = null;
  /** the params and preproc the job ran with (its `job_start` event) */
  params: { [key: string]: unknown } | null = null;
  preproc: { [key: string]: unknown } | null = null;
  /** the `early_stop` event, when training stopped early */
  earlyStop: { epoch: number; best_epoch: number; monitor: string; best: number | null } | null =
    null;

  private _series = new Map<string, IPoint[]>();
  private _bases: string[] = [];
  // where the chunk in training stands (chunk mode reports progress only when a chunk is done)
  private _chunkEvents = 0;
  private _chunkEpochs = 0;
  private _chunkOpen = false;
  // the engine reports progress within a chunk itself (after each epoch): nothing to estimate
  private _reportsWithinChunk = false;
  private _firstStart: number | null = null;
  private _lastTime: number | null = null;

  /**
   * Progress with the chunk in training counted in: in chunk mode the server reports events only
   * when a chunk is done, so within a chunk the epochs done so far stand for its share of events,
   * and until the first report the rate is measured from the events' own times.
   */
  progress(): IProgressEstimate {
    const reported: IProgressEstimate = {
      done: this.done,
      total: this.total,
      rate: this.rate,
      eta: this.eta,
      estimated: false
    };
    const epochs = this.epochs ?? 0;
    if (
      this.status !== 'running' ||
      this.mode !== 'chunk' ||
      this._reportsWithinChunk ||
      !this._chunkOpen ||
      epochs <= 0 ||
      this._chunkEpochs <= 0
    ) {
      return reported;
    }
    const share = Math.min(1, this._chunkEpochs / epochs);
    const done = Math.min(this.total || Infinity, this.done + this._chunkEvents * share);
    let rate = this.rate;
    if (
      !(rate > 0) &&
      this._firstStart !== null &&
      this._lastTime !== null &&
      this._lastTime > this._firstStart
    ) {
      rate = done / (this._lastTime - this._firstStart);
    }
    const eta = rate > 0 && this.total > 0 ? Math.max(this.total - done, 0) / rate : this.eta;
    return { done, total: this.total, rate, eta, estimated: true };
  }

  /** Curve names in display order: loss first, then metrics as first seen, each before its val_. */
  get seriesNames(): string[] {
    return orderSeries(Array.from(this._series.keys()), this._bases);
  }

  series(name: string): ReadonlyArray<IPoint> {
    return this._series.get(name) ?? [];
  }

  /** Fold one page of `GET jobs/{id}/events`, advancing `since`. */
  foldPage(page: IEventsPage): IFoldResult {
    const result = this.foldEvents(page.events);
    this.since = Math.max(this.since, page.last_seq, this.lastSeq);
    this.serverStatus(page.status);
    result.done = isFinished(page.status) && page.events.length === 0;
    return result;
  }

  /** Fold events in order; those already folded (by `seq`) are skipped. */
  foldEvents(events: ReadonlyArray<IJobEvent>): IFoldResult {
    const touched = new Set<string>();
    let added = 0;
    for (const event of events) {
      if (typeof event.seq === 'number') {
        if (event.seq <= this.lastSeq) {
          continue;
        }
        this.lastSeq = event.seq;
      }
      added += 1;
      this.fold(event, touched);
    }
    this.since = Math.max(this.since, this.lastSeq);
    return { added, series: Array.from(touched), done: false };
  }

  /** The server's word on the status; the events may already have said more (e.g. the error). */
  serverStatus(status: JobStatus): void {
    if (isFinished(status)) {
      this.status = status;
    } else if (status === 'running' && (this.status === '' || this.status === 'queued')) {
      this.status = 'running';
    } else if (status === 'queued' && this.status === '') {
      this.status = 'queued';
    }
  }

  private fold(event: IJobEvent, touched: Set<string>): void {
    if (typeof event.time === 'number' && isFinite(event.time)) {
      this._lastTime = Math.max(this._lastTime ?? event.time, event.time);
    }
    switch (event.event) {
      case 'job_start': {
        this.name = this.name || str(event.name);
        this.mode = str(event.mode);
        const params = (event.params ?? {}) as { [key: string]: unknown };
        this.epochs = num(params.epochs);
        this.params = params;
        this.preproc = (event.preproc as { [key: string]: unknown } | null) ?? null;
        this.status = 'running';
        break;
      }
      case 'specs_done': {
        const used = num(event.used) ?? 0;
        this.total = this.mode === 'standard' ? used * (this.epochs ?? 1) : used;
        break;
      }
      case 'chunk_start':
        this.chunk = num(event.chunk);
        this.epoch = num(event.epoch);
        this._chunkEvents = num(event.events) ?? 0;
        this._chunkEpochs = 0;
        this._chunkOpen = true;
        if (this._firstStart === null && typeof event.time === 'number') {
          this._firstStart = event.time;
        }
        if (this.status === '' || this.status === 'queued') {
          this.status = 'running';
        }
        break;
      case 'epoch':
        this.foldEpoch(event, touched);
        break;
      case 'chunk_done':
      case 'progress': {
        if (event.event === 'chunk_done') {
          this._chunkOpen = false;
        } else if (this._chunkOpen) {
          this._reportsWithinChunk = true;
        }
        this.done = num(event.events_processed) || this.done;
        this.total = num(event.events_total) || this.total;
        this.rate = num(event.rate) ?? 0;
        const eta = estimateEta(this.done, this.total, this.rate, num(event.eta));
        if (eta !== null) {
          this.eta = eta;
        }
        if ('chunk' in event) {
          this.chunk = num(event.chunk);
        }
        if ('epoch' in event) {
          this.epoch = num(event.epoch);
        }
        break;
      }
      case 'artifact':
        this.artifact = str(event.path);
        break;
      case 'evaluation':
        this.evaluation = asEvaluation(event);
        break;
      case 'early_stop':
        this.earlyStop = {
          epoch: num(event.epoch) ?? 0,
          best_epoch: num(event.best_epoch) ?? 0,
          monitor: str(event.monitor),
          best: num(event.best)
        };
        break;
      case 'finished':
        this.testMetrics = { ...((event.metrics ?? {}) as object) };
        this.seconds = num(event.seconds);
        this.rate = num(event.rate) ?? this.rate;
        this.status = 'succeeded';
        if (this.total) {
          this.done = this.total;
        }
        this.eta = 0;
        break;
      case 'failed':
        this.error = str(event.error) || 'failed';
        this.status = CANCEL_TYPES.has(str(event.type)) ? 'cancelled' : 'failed';
        break;
      case 'log':
        this.notes = this.notes
          .concat(`${str(event.level) || 'info'}: ${str(event.message)}`)
          .slice(-3);
        break;
    }
  }

  private foldEpoch(event: IJobEvent, touched: Set<string>): void {
    const step = num(event.step) ?? this.pointCount() + 1;
    const values: { [name: string]: number | null } = {};
    for (const [key, value] of Object.entries(event)) {
      if (META_KEYS.has(key)) {
        continue;
      }
      if (value === null || typeof value === 'number') {
        values[key] = value !== null && isFinite(value) ? value : null;
      }
    }
    for (const [key, value] of Object.entries(values)) {
      const base = baseName(key);
      if (!this._bases.includes(base)) {
        this._bases.push(base);
      }
      let points = this._series.get(key);
      if (!points) {
        points = [];
        this._series.set(key, points);
      }
      points.push({ x: step, y: value });
      touched.add(key);
    }
    this.lastEpoch = values;
    const chunk = num(event.chunk);
    const epoch = num(event.epoch);
    if (this._chunkOpen && epoch !== null) {
      this._chunkEpochs = epoch;
    }
    if (chunk !== null && chunk > 0 && epoch === 1) {
      this.marks.push(step - 0.5); // a new chunk starts training here
    }
    this.chunk = chunk;
    this.epoch = epoch;
  }

  private pointCount(): number {
    let most = 0;
    this._series.forEach(points => (most = Math.max(most, points.length)));
    return most;
  }
}

/** `val_loss` -> `loss`. */
export function baseName(name: string): string {
  return name.startsWith('val_') ? name.slice(4) : name;
}

/** Loss first, then the other bases in `bases` order (first seen), each before its `val_`. */
export function orderSeries(names: string[], bases: string[] = []): string[] {
  const rank = (name: string): [number, number, number] => {
    const base = baseName(name);
    const index = bases.indexOf(base);
    return [
      base === 'loss' ? 0 : 1,
      index < 0 ? bases.length : index,
      name.startsWith('val_') ? 1 : 0
    ];
  };
  return names.slice().sort((a, b) => {
    const ra = rank(a);
    const rb = rank(b);
    for (let i = 0; i < 3; i++) {
      if (ra[i] !== rb[i]) {
        return ra[i] - rb[i];
      }
    }
    return a < b ? -1 : a > b ? 1 : 0;
  });
}

/** The curves of the loss chart (loss, val_loss) and of the metrics chart (everything else). */
export function splitCharts(names: string[]): { loss: string[]; metrics: string[] } {
  return {
    loss: names.filter(name => baseName(name) === 'loss'),
    metrics: names.filter(name => baseName(name) !== 'loss')
  };
}

/**
 * The last lines of a log read in pieces (`GET jobs/{id}/logs?offset=`): a piece may end in the
 * middle of a line, which the next piece completes.
 */
export class LogTail {
  /** what to pass as `offset` for the next piece */
  offset = 0;

  constructor(readonly size = 200) {}

  get lines(): string[] {
    return this._partial ? this._lines.concat(this._partial) : this._lines.slice();
  }

  get text(): string {
    return this.lines.join('\n');
  }

  /** Add a piece of the log; `offset` is where the next one starts. Returns true when it had text. */
  add(text: string, offset: number): boolean {
    this.offset = Math.max(this.offset, offset);
    if (!text) {
      return false;
    }
    const lines = (this._partial + text).split('\n');
    this._partial = lines.pop() ?? '';
    this._lines = this._lines.concat(lines).slice(-this.size);
    return true;
  }

  private _lines: string[] = [];
  private _partial = '';
}

/**
 * Expected seconds left: the server's estimate when it gave one, else what is left at the
 * current rate; null when neither is known.
 */
export function estimateEta(
  done: number,
  total: number,
  rate: number,
  eta?: number | null
): number | null {
  if (eta !== undefined && eta !== null && isFinite(eta)) {
    return Math.max(0, eta);
  }
  if (rate > 0 && total > 0) {
    return Math.max(total - done, 0) / rate;
  }
  return null;
}

function num(value: unknown): number | null {
  return typeof value === 'number' && isFinite(value) ? value : null;
}

function str(value: unknown): string {
  return typeof value === 'string'
    ? value
    : value === null || value === undefined
      ? ''
      : String(value);
}
