/**
 * The jobs of every source, refreshed by a `Poll`: the sidebar draws it, the job views and
 * commands ask it to refresh after they changed something.
 */

import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { IJobSource } from './api';
import { IJobInfo } from './types';

export interface ISourceJobs {
  source: IJobSource;
  jobs: IJobInfo[];
  /** why the last refresh of this source failed; "" when it worked */
  error: string;
  /** whether the source has answered at least once */
  loaded: boolean;
}

export class JobsModel {
  constructor(options: JobsModel.IOptions) {
    this._sources = options.sources.map(source => ({ source, jobs: [], error: '', loaded: false }));
    this._poll = new Poll({
      auto: false,
      factory: () => this.fetch(),
      frequency: { interval: options.interval ?? 3000, backoff: true, max: 60_000 },
      // no requests while the browser tab is hidden, nor while nobody looks at the list
      standby: () => (options.standby?.() ? true : 'when-hidden'),
      name: 'mlaas4hep:jobs'
    });
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get sources(): ReadonlyArray<ISourceJobs> {
    return this._sources;
  }

  /** Every source's jobs, in the order the sources gave them (newest first). */
  get jobs(): IJobInfo[] {
    return ([] as IJobInfo[]).concat(...this._sources.map(s => s.jobs));
  }

  find(id: string): { source: IJobSource; job: IJobInfo } | null {
    for (const entry of this._sources) {
      const job = entry.jobs.find(j => j.id === id);
      if (job) {
        return { source: entry.source, job };
      }
    }
    return null;
  }

  /** Add a source (a remote service found after start-up); its jobs come with the next refresh. */
  addSource(source: IJobSource): void {
    if (this.source(source.id)) {
      return;
    }
    this._sources.push({ source, jobs: [], error: '', loaded: false });
    this._changed.emit();
    void this.refresh();
  }

  source(id: string): IJobSource | null {
    return this._sources.find(s => s.source.id === id)?.source ?? null;
  }

  /** Milliseconds between refreshes (the setting `refreshInterval`, in seconds, times 1000). */
  set interval(ms: number) {
    const frequency = this._poll.frequency;
    if (frequency.interval !== ms) {
      this._poll.frequency = { ...frequency, interval: ms };
    }
  }

  /** Start polling (the first refresh at once). */
  start(): void {
    void this._poll.start();
  }

  /** Refresh now (e.g. after a cancel), and when shown again. */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  dispose(): void {
    this._poll.dispose();
    Signal.clearData(this);
  }

  private async fetch(): Promise<void> {
    // a refresh may start while a fetch is still out: only the newest one's answer counts
    const generation = ++this._generation;
    const results = await Promise.allSettled(this._sources.map(s => s.source.listJobs()));
    if (generation !== this._generation || this.isDisposed) {
      return;
    }
    let failed: unknown = null;
    results.forEach((result, i) => {
      const entry = this._sources[i];
      if (result.status === 'fulfilled') {
        entry.jobs = result.value;
        entry.error = '';
        entry.loaded = true;
      } else {
        entry.error = message(result.reason);
        failed = failed ?? result.reason;
      }
    });
    this._changed.emit();
    if (failed !== null) {
      throw failed; // the poll backs off
    }
  }

  private _sources: ISourceJobs[];
  private _poll: Poll;
  private _generation = 0;
  private _changed = new Signal<this, void>(this);
}

export namespace JobsModel {
  export interface IOptions {
    sources: IJobSource[];
    /** milliseconds between refreshes; default 3000 */
    interval?: number;
    /** true while nobody needs the list (e.g. the sidebar is collapsed) */
    standby?: () => boolean;
  }
}

export function message(err: unknown): string {
  if (err instanceof Error) {
    return err.message || err.name;
  }
  return String(err);
}
