import { findSource } from '../sources';

describe('findSource', () => {
  const make = () => {
    const sources = new Map<string, string>([['local', 'this server']]);
    return { sources, lookup: (id: string) => sources.get(id) ?? null };
  };

  it('finds this server and registered remotes at once', async () => {
    const { sources, lookup } = make();
    sources.set('remote:cern', 'cern service');
    const never = new Promise<void>(() => undefined);
    await expect(findSource(lookup, 'local', 'local', never)).resolves.toBe('this server');
    await expect(findSource(lookup, 'remote:cern', 'local', never)).resolves.toBe('cern service');
  });

  it('waits for the remote listing before giving a restored view its source', async () => {
    const { sources, lookup } = make();
    let list: () => void = () => undefined;
    const listed = new Promise<void>(resolve => {
      list = () => {
        sources.set('remote:cern', 'cern service');
        resolve();
      };
    });
    const found = findSource(lookup, 'remote:cern', 'local', listed);
    list();
    await expect(found).resolves.toBe('cern service');
  });

  it('never falls back to this server for a remote that is gone', async () => {
    const { lookup } = make();
    await expect(findSource(lookup, 'remote:gone', 'local', Promise.resolve())).rejects.toThrow(
      "the MLaaS4HEP service 'gone' is not configured"
    );
    await expect(
      findSource(lookup, 'remote:gone', 'local', Promise.reject(new Error('down')))
    ).rejects.toThrow("'gone' is not configured");
  });
});
