import { compareRows, preprocSummary, summarize, value } from '../comparison';
import { IJobEvent } from '../types';

function run(id: string, epochs: number, preproc: object | null, auc: number): IJobEvent[] {
  const events: IJobEvent[] = [
    {
      event: 'job_start',
      seq: 1,
      time: 1,
      name: `job ${id}`,
      params: { epochs, chunk_size: 1000, cache_dir: `/tmp/${id}` },
      preproc
    },
    { event: 'specs_done', seq: 2, time: 2, features: 12, used: preproc ? 3000 : 4000 }
  ];
  for (let e = 1; e <= epochs; e++) {
    events.push({ event: 'epoch', seq: 2 + e, time: 3, step: e, loss: 1 / e, val_loss: 1.1 / e });
  }
  events.push({
    event: 'finished',
    seq: 10,
    time: 10,
    metrics: { loss: 0.3, auc, events: 400 },
    seconds: 12.34
  });
  return events;
}

describe('compare', () => {
  const cut = {
    flat_cut: { nJets: { cut: 'nJets >= 4' } },
    jagged_cut: { pt: { cut: ['pt > 1', 'any'] } }
  };
  const a = summarize('a', run('a', 2, null, 0.91));
  const b = summarize('b', run('b', 3, cut, 0.93));

  it('summarizes a job from its events', () => {
    expect(a.name).toBe('job a');
    expect(a.history.map(h => h.step)).toEqual([1, 2]);
    expect(b.events).toBe(3000);
    expect(b.seconds).toBeCloseTo(12.34);
    expect(b.status).toBe('succeeded');
  });

  it('writes the preproc in one line', () => {
    expect(preprocSummary(null)).toBe('none');
    expect(preprocSummary(cut)).toBe('cuts: nJets >= 4, any(pt > 1)');
    expect(preprocSummary({ new_branch: { ht: { def: 'sum(pt)', cut: 'ht > 5' } } })).toBe(
      'new ht = sum(pt); cuts: ht > 5'
    );
  });

  it('marks the rows where the jobs differ, and leaves where they read from out', () => {
    const rows = new Map(compareRows([a, b]).map(r => [r.label, r]));
    expect(rows.get('epochs')).toMatchObject({ cells: ['2', '3'], differs: true });
    expect(rows.get('chunk_size')).toMatchObject({ cells: ['1,000', '1,000'], differs: false });
    expect(rows.get('preproc')?.differs).toBe(true);
    expect(rows.get('test auc')).toMatchObject({ cells: ['0.9100', '0.9300'], differs: true });
    expect(rows.get('test loss')?.differs).toBe(false);
    expect(rows.get('time')?.cells).toEqual(['12.3 s', '12.3 s']);
    expect(rows.has('cache_dir')).toBe(false);
  });

  it('formats cells like the Python table', () => {
    expect(value(0.5)).toBe('0.5000');
    expect(value(12000)).toBe('12,000');
    expect(value(null)).toBe('–');
    expect(value(['run', 'event'])).toBe('run, event');
    expect(value(true)).toBe('true');
  });
});
