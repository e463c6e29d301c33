/**
 * What the comparison of jobs shows, from their events: a summary per job and the table rows
 * with their differences marked. Pure (no DOM, no JupyterLab), tested by jest; compare.ts draws.
 */

import { asEvaluation, IEvaluation } from './evaluation';
import { IJobEvent } from './types';

/** Params about where and how a run reads, not what it learns: not compared. */
const QUIET = new Set([
  'verbose',
  'hist',
  'cache_dir',
  'specs_cache',
  'read_threads',
  'retries',
  'retry_wait',
  'timeout',
  'redirector'
]);

export interface IRun {
  id: string;
  name: string;
  params: { [key: string]: unknown };
  preproc: { [key: string]: unknown } | null;
  features: number | null;
  events: number | null;
  seconds: number | null;
  metrics: { [key: string]: unknown };
  evaluation: IEvaluation | null;
  /** (step, loss, val_loss) per epoch event */
  history: { step: number; loss: number | null; val_loss: number | null }[];
  status: string;
}

/** What the comparison shows of one job, from its events. */
export function summarize(id: string, events: ReadonlyArray<IJobEvent>, status = ''): IRun {
  const run: IRun = {
    id,
    name: id,
    params: {},
    preproc: null,
    features: null,
    events: null,
    seconds: null,
    metrics: {},
    evaluation: null,
    history: [],
    status
  };
  for (const e of events) {
    switch (e.event) {
      case 'job_start':
        run.name = typeof e.name === 'string' && e.name ? e.name : id;
        run.params = { ...((e.params ?? {}) as object) };
        run.preproc = (e.preproc as IRun['preproc']) ?? null;
        break;
      case 'specs_done':
        run.features = num(e.features);
        run.events = num(e.used);
        break;
      case 'epoch':
        run.history.push({
          step: num(e.step) ?? run.history.length + 1,
          loss: num(e.loss),
          val_loss: num(e.val_loss)
        });
        break;
      case 'evaluation':
        run.evaluation = asEvaluation(e);
        break;
      case 'finished':
        run.metrics = { ...((e.metrics ?? {}) as object) };
        run.seconds = num(e.seconds);
        run.status = run.status || 'succeeded';
        break;
    }
  }
  return run;
}

/** "new leadJetPt = max(jetPt); cuts: leadJetPt > 50, any(partonPt > 150)", or "none". */
export function preprocSummary(preproc: IRun['preproc']): string {
  if (!preproc || !Object.keys(preproc).length) {
    return 'none';
  }
  const added: string[] = [];
  const cuts: string[] = [];
  const cutText = (cut: unknown): string =>
    Array.isArray(cut) && cut.length === 2 ? `${cut[1]}(${cut[0]})` : String(cut);
  for (const [name, spec] of Object.entries((preproc.new_branch ?? {}) as { [k: string]: any })) {
    added.push(`${name} = ${spec?.def}`);
    if (spec?.cut) {
      cuts.push(cutText(spec.cut));
    }
  }
  for (const section of ['flat_cut', 'jagged_cut']) {
    for (const spec of Object.values((preproc[section] ?? {}) as { [k: string]: any })) {
      if (spec?.cut) {
        cuts.push(cutText(spec.cut));
      }
    }
  }
  const parts = added.length ? [`new ${added.join('; ')}`] : [];
  parts.push(`cuts: ${cuts.length ? cuts.join(', ') : 'none'}`);
  return parts.join('; ');
}

export interface ICompareRow {
  section: string;
  label: string;
  cells: string[];
  differs: boolean;
}

/** The table: one row per param, preproc, data and test value; `differs` when cells differ. */
export function compareRows(runs: ReadonlyArray<IRun>): ICompareRow[] {
  const rows: ICompareRow[] = [];
  const add = (section: string, label: string, cells: string[]) =>
    rows.push({ section, label, cells, differs: new Set(cells).size > 1 });
  add(
    'run',
    'status',
    runs.map(r => r.status || '–')
  );
  const keys: string[] = [];
  for (const r of runs) {
    for (const k of Object.keys(r.params)) {
      if (!keys.includes(k) && !QUIET.has(k)) {
        keys.push(k);
      }
    }
  }
  for (const k of keys) {
    add(
      'params',
      k,
      runs.map(r => value(r.params[k]))
    );
  }
  add(
    'preproc',
    'preproc',
    runs.map(r => preprocSummary(r.preproc))
  );
  add(
    'data',
    'features',
    runs.map(r => value(r.features))
  );
  add(
    'data',
    'events',
    runs.map(r => value(r.events))
  );
  add(
    'data',
    'steps trained',
    runs.map(r => value(r.history.length))
  );
  add(
    'data',
    'time',
    runs.map(r => (r.seconds === null ? '–' : `${r.seconds.toFixed(1)} s`))
  );
  const metricKeys: string[] = [];
  for (const r of runs) {
    for (const k of Object.keys(r.metrics)) {
      if (!metricKeys.includes(k)) {
        metricKeys.push(k);
      }
    }
  }
  for (const k of metricKeys) {
    add(
      'test',
      `test ${k}`,
      runs.map(r => value(r.metrics[k]))
    );
  }
  add(
    'test',
    'AUC ± bootstrap',
    runs.map(r => {
      const auc = r.evaluation?.auc;
      return auc && auc.value !== null && auc.std !== null && auc.std !== undefined
        ? `${auc.value.toFixed(4)} ± ${auc.std.toFixed(4)}`
        : '–';
    })
  );
  add(
    'test',
    'overtraining',
    runs.map(r => (r.evaluation ? (r.evaluation.overtraining.flag ? 'yes' : 'no') : '–'))
  );
  return rows;
}

/** A cell as the Python table writes it (4 decimals, thousands separators). */
export function value(v: unknown): string {
  if (v === null || v === undefined) {
    return '–';
  }
  if (typeof v === 'boolean') {
    return v ? 'true' : 'false';
  }
  if (typeof v === 'number') {
    if (!isFinite(v)) {
      return '–';
    }
    if (Number.isInteger(v)) {
      return v.toLocaleString('en-US');
    }
    return Math.abs(v) < 1e4 ? v.toFixed(4) : Math.round(v).toLocaleString('en-US');
  }
  if (Array.isArray(v)) {
    return v.length ? v.join(', ') : '–';
  }
  if (typeof v === 'object') {
    return JSON.stringify(v);
  }
  return String(v);
}

function num(v: unknown): number | null {
  return typeof v === 'number' && isFinite(v) ? v : null;
}
