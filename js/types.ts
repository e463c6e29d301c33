/**
 * Bodies of the jobs API (pipeline/mlaas4hep/jobs/openapi.json), as the frontend reads them.
 *
 * Kept free of JupyterLab imports so that the pure modules and their jest tests can use them.
 */

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export const FINISHED: ReadonlyArray<JobStatus> = ['succeeded', 'failed', 'cancelled'];
export const ACTIVE: ReadonlyArray<JobStatus> = ['queued', 'running'];

export interface IProgress {
  events_processed: number;
  events_total: number;
  rate: number;
  chunk?: number | null;
  epoch?: number | null;
}

export interface IJobInfo {
  id: string;
  name: string;
  owner: string;
  status: JobStatus;
  /** Unix seconds */
  created: number;
  started?: number | null;
  finished?: number | null;
  kernel?: string | null;
  python?: string | null;
  progress: IProgress;
  /** last epoch metrics, then the test metrics (prefixed `test_`) */
  metrics: { [key: string]: unknown };
  error?: string | null;
  artifact: boolean;
}

export interface IJobList {
  jobs: IJobInfo[];
}

/** One line of events.jsonl: every event has `event`, `seq` and `time`. */
export interface IJobEvent {
  event: string;
  seq: number;
  time: number;
  [key: string]: unknown;
}

export interface IEventsPage {
  events: IJobEvent[];
  last_seq: number;
  status: JobStatus;
}

export interface ILogsPage {
  text: string;
  offset: number;
  size: number;
}
