/**
 * Which job source a command means: this server ('local') or a remote MLaaS4HEP service
 * ('remote:NAME'). A pure module (no JupyterLab imports), tested by jest.
 */

/**
 * The source named `wanted`. Remote sources are registered once this server has listed them
 * (`listed`); a job view restored after a page reload can ask before that, so a remote name not
 * found yet is looked up again after the listing. Never another source in its place: a remote
 * job looked up on this server would be "not found", or worse, another job.
 */
export async function findSource<T>(
  lookup: (id: string) => T | null,
  wanted: string,
  localId: string,
  listed: Promise<unknown>
): Promise<T> {
  let source = lookup(wanted);
  if (!source && wanted !== localId) {
    await listed.catch(() => undefined); // a failed listing is reported where it happens
    source = lookup(wanted);
  }
  if (!source) {
    throw new Error(
      `the MLaaS4HEP service '${wanted.replace(/^remote:/, '')}' is not configured on this ` +
        'Jupyter server (any more)'
    );
  }
  return source;
}
