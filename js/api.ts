/**
 * Where jobs come from: the jobs API of a server (pipeline/mlaas4hep/jobs/openapi.json).
 *
 * The sidebar and the job view talk to an `IJobSource`, never to URLs: `ServerJobSource`, this
 * Jupyter server's extension under `<base_url>/mlaas4hep/api/v1/`, and one `RemoteJobSource` per
 * remote MLaaS4HEP service (`c.MLaaS4HEPLab.remotes` / `MLAAS4HEP_REMOTES`), whose requests go
 * through this server (`<base_url>/mlaas4hep/lab/remotes/<name>/jobs...`), which adds the user's
 * own token: the token never reaches the browser. `JobsModel` lists jobs per source.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IEventsPage, IJobInfo, IJobList, ILogsPage } from './types';

export interface IJobSource {
  /** a stable id: "local" for this server, the endpoint's name for a remote one */
  readonly id: string;
  /** what the sidebar calls it: "This server" */
  readonly label: string;
  listJobs(): Promise<IJobInfo[]>;
  job(id: string): Promise<IJobInfo>;
  /** events after `since`, the server waiting up to `timeout` seconds for one (long-poll) */
  events(id: string, since: number, timeout: number, signal?: AbortSignal): Promise<IEventsPage>;
  logs(id: string, offset: number, signal?: AbortSignal): Promise<ILogsPage>;
  cancel(id: string): Promise<IJobInfo>;
  remove(id: string): Promise<void>;
  /** the artifact as a tar.gz blob, and the file name the server suggests */
  artifact(id: string): Promise<{ blob: Blob; filename: string }>;
}

/** The jobs API of this Jupyter server (the mlaas4hep_lab server extension). */
export class ServerJobSource implements IJobSource {
  readonly id: string = 'local';
  readonly label: string = 'This server';

  constructor(
    readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings(),
    readonly prefix = 'mlaas4hep/api/v1'
  ) {}

  async listJobs(): Promise<IJobInfo[]> {
    return ((await this.json('jobs')) as IJobList).jobs;
  }

  async job(id: string): Promise<IJobInfo> {
    return (await this.json(`jobs/${enc(id)}`)) as IJobInfo;
  }

  async events(
    id: string,
    since: number,
    timeout: number,
    signal?: AbortSignal
  ): Promise<IEventsPage> {
    const query = URLExt.objectToQueryString({ since: `${since}`, timeout: `${timeout}` });
    return (await this.json(`jobs/${enc(id)}/events${query}`, { signal })) as IEventsPage;
  }

  async logs(id: string, offset: number, signal?: AbortSignal): Promise<ILogsPage> {
    const query = URLExt.objectToQueryString({ offset: `${offset}` });
    return (await this.json(`jobs/${enc(id)}/logs${query}`, { signal })) as ILogsPage;
  }

  async cancel(id: string): Promise<IJobInfo> {
    return (await this.json(`jobs/${enc(id)}/cancel`, { method: 'POST', body: '{}' })) as IJobInfo;
  }

  async remove(id: string): Promise<void> {
    await this.request(`jobs/${enc(id)}`, { method: 'DELETE' });
  }

  async artifact(id: string): Promise<{ blob: Blob; filename: string }> {
    const response = await this.request(`jobs/${enc(id)}/artifact`, {});
    const disposition = response.headers.get('Content-Disposition') ?? '';
    const match = /filename="?([^";]+)"?/.exec(disposition);
    return {
      blob: await response.blob(),
      filename: match ? match[1] : `mlaas4hep-${id}-artifact.tar.gz`
    };
  }

  /** The URL of a path under the API. */
  url(path: string): string {
    return URLExt.join(this.settings.baseUrl, this.prefix, path);
  }

  private async json(path: string, init: RequestInit = {}): Promise<unknown> {
    const response = await this.request(path, init);
    return response.json();
  }

  private async request(path: string, init: RequestInit): Promise<Response> {
    const response = await ServerConnection.makeRequest(this.url(path), init, this.settings);
    if (!response.ok) {
      throw await ServerConnection.ResponseError.create(response);
    }
    return response;
  }
}

/**
 * A remote MLaaS4HEP service's jobs API, through this server's forwarding routes: the same API,
 * under `<base_url>/mlaas4hep/lab/remotes/<name>/`.
 */
export class RemoteJobSource extends ServerJobSource {
  readonly id: string;
  readonly label: string;

  constructor(
    readonly name: string,
    readonly remoteUrl: string,
    settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {
    super(settings, `mlaas4hep/lab/remotes/${enc(name)}`);
    this.id = `remote:${name}`;
    this.label = `${name} (remote)`;
  }
}

export interface IRemoteInfo {
  name: string;
  url: string;
}

/** The remote services this server forwards to (`GET <base>/mlaas4hep/lab/remotes`). */
export async function listRemotes(
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IRemoteInfo[]> {
  const url = URLExt.join(settings.baseUrl, 'mlaas4hep/lab/remotes');
  const response = await ServerConnection.makeRequest(url, {}, settings);
  if (!response.ok) {
    throw await ServerConnection.ResponseError.create(response);
  }
  return ((await response.json()) as { remotes: IRemoteInfo[] }).remotes;
}

/**
 * Ask the server for the demo notebook in the user's root folder (`POST <base>/mlaas4hep/lab/demo`,
 * a lab-only route); resolves to its path, relative to the root.
 */
export async function requestDemoNotebook(
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<string> {
  const url = URLExt.join(settings.baseUrl, 'mlaas4hep/lab/demo');
  const response = await ServerConnection.makeRequest(
    url,
    { method: 'POST', body: '{}' },
    settings
  );
  if (!response.ok) {
    throw await ServerConnection.ResponseError.create(response);
  }
  return ((await response.json()) as { path: string }).path;
}

/** The HTTP status of a failed request, 0 when there was no answer (network, abort). */
export function errorStatus(err: unknown): number {
  return err instanceof ServerConnection.ResponseError ? err.response.status : 0;
}

/** Save a blob as a file through the browser's download (an <a download> on an object URL). */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  link.style.display = 'none';
  document.body.appendChild(link);
  link.click();
  link.remove();
  // the download has its own reference by now; give the browser a moment before revoking
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function enc(id: string): string {
  return encodeURIComponent(id);
}
