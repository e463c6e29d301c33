/**
 * How jobs read in the sidebar and the job view: ages, durations, rates, status classes.
 * Pure functions (no DOM, no JupyterLab), tested by jest.
 */

import { ACTIVE, FINISHED, IJobInfo, IProgress, JobStatus } from './types';

/** "just now", "42 s ago", "3 min ago", "5 h ago", "2 d ago" (then, now: Unix seconds). */
export function formatAge(then: number, now: number): string {
  const seconds = Math.max(0, Math.floor(now - then));
  if (seconds < 5) {
    return 'just now';
  }
  if (seconds < 60) {
    return `${seconds} s ago`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min ago`;
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 48) {
    return `${hours} h ago`;
  }
  return `${Math.floor(hours / 24)} d ago`;
}

/** "45 s", "3 min 05 s", "2 h 04 min"; "?" for what is not a finite number. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '?';
  }
  const total = Math.max(0, Math.round(seconds));
  if (total < 60) {
    return `${total} s`;
  }
  const minutes = Math.floor(total / 60);
  if (minutes < 60) {
    return `${minutes} min ${pad2(total % 60)} s`;
  }
  return `${Math.floor(minutes / 60)} h ${pad2(minutes % 60)} min`;
}

/** Events per second: "850", "12.3k", "1.25M" (no unit). */
export function formatRate(perSecond: number): string {
  if (!isFinite(perSecond) || perSecond <= 0) {
    return '0';
  }
  if (perSecond >= 1e6) {
    return `${trim(perSecond / 1e6, 2)}M`;
  }
  if (perSecond >= 1e3) {
    return `${trim(perSecond / 1e3, 1)}k`;
  }
  return `${Math.round(perSecond)}`;
}

/** 1234567 -> "1,234,567". */
export function formatCount(n: number): string {
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** A metric value for a table: integers as counts, floats with 4 decimals, others as text. */
export function formatValue(value: unknown): string {
  if (typeof value === 'number') {
    if (!isFinite(value)) {
      return 'n/a';
    }
    return Number.isInteger(value) ? formatCount(value) : value.toFixed(4);
  }
  if (value === null || value === undefined) {
    return '–';
  }
  return String(value);
}

/** The first 8 characters of a job id: enough to tell jobs apart in a list. */
export function shortId(id: string): string {
  return id.slice(0, 8);
}

/** The CSS class of a status badge: `mlaas4hep-status-running`, ...; unknown -> `-unknown`. */
export function statusClass(status: string): string {
  const known = (ACTIVE as string[]).concat(FINISHED as string[]);
  return `mlaas4hep-status-${known.includes(status) ? status : 'unknown'}`;
}

export function isActive(status: string): boolean {
  return (ACTIVE as string[]).includes(status);
}

export function isFinished(status: string): boolean {
  return (FINISHED as string[]).includes(status);
}

/** Cancel is offered while a job is queued or running. */
export function canCancel(job: { status: JobStatus }): boolean {
  return isActive(job.status);
}

/** Delete is offered once a job has finished (the server refuses it before). */
export function canDelete(job: { status: JobStatus }): boolean {
  return isFinished(job.status);
}

/** Share done, 0..100; a succeeded job is 100 even when it never said its total. */
export function percent(done: number, total: number, status?: string): number {
  if (status === 'succeeded') {
    return 100;
  }
  if (!(total > 0) || !(done > 0)) {
    return 0;
  }
  return Math.min(100, (100 * done) / total);
}

/** What a sidebar row shows about a job's progress. */
export interface IProgressSummary {
  percent: number;
  /** "45%" */
  label: string;
  /** "12.3k ev/s" while running, "" otherwise */
  rate: string;
}

export function summarizeProgress(progress: IProgress, status: JobStatus): IProgressSummary {
  const share = percent(progress.events_processed, progress.events_total, status);
  return {
    percent: share,
    label: `${Math.floor(share)}%`,
    rate: status === 'running' && progress.rate > 0 ? `${formatRate(progress.rate)} ev/s` : ''
  };
}

/** The time a job's age counts from: when it was created. */
export function jobAge(job: IJobInfo, now: number): string {
  return formatAge(job.created, now);
}

/** A Unix time as the user's local date and time ("2024-05-01 14:03:12"); "–" for none. */
export function formatTimestamp(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '–';
  }
  const d = new Date(seconds * 1000);
  return (
    `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`
  );
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

function trim(value: number, digits: number): string {
  return value.toFixed(digits).replace(/\.?0+$/, '');
}
