import { estimateEta, JobFold, LogTail, orderSeries, splitCharts } from '../fold';
import { IEventsPage, IJobEvent, JobStatus } from '../types';
import { RUN } from './events.fixture';

function page(events: IJobEvent[], status: JobStatus, lastSeq?: number): IEventsPage {
  return {
    events,
    status,
    last_seq: lastSeq ?? (events.length ? events[events.length - 1].seq : 0)
  };
}

describe('JobFold on a whole run', () => {
  const fold = new JobFold();
  fold.foldEvents(RUN);

  it('draws one point per epoch event for each curve, x = step', () => {
    expect(fold.series('loss').map(p => p.x)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(fold.series('loss')[0].y).toBeCloseTo(0.69908, 5);
    expect(fold.series('val_loss')[7].y).toBeCloseTo(0.6375, 5);
    expect(fold.series('val_accuracy')).toHaveLength(8);
  });

  it('orders the curves loss, val_loss, then the metrics, and splits them into two charts', () => {
    expect(fold.seriesNames).toEqual(['loss', 'val_loss', 'accuracy', 'val_accuracy']);
    expect(splitCharts(fold.seriesNames)).toEqual({
      loss: ['loss', 'val_loss'],
      metrics: ['accuracy', 'val_accuracy']
    });
  });

  it('marks where each new chunk starts training', () => {
    expect(fold.marks).toEqual([2.5, 4.5, 6.5]);
  });

  it('ends succeeded, all events done, ETA 0, with the test metrics and the last epoch', () => {
    expect(fold.status).toBe('succeeded');
    expect(fold.name).toBe('run');
    expect(fold.mode).toBe('chunk');
    expect(fold.epochs).toBe(2);
    expect([fold.done, fold.total]).toEqual([4000, 4000]);
    expect(fold.eta).toBe(0);
    expect(fold.seconds).toBeCloseTo(3.202);
    expect(fold.testMetrics).toEqual({
      loss: 0.6429810154890369,
      accuracy: 0.6591478696741855,
      auc: 0.7993108305246743,
      events: 399
    });
    expect(fold.lastEpoch.val_accuracy).toBeCloseTo(0.67172, 5);
    expect(Object.keys(fold.lastEpoch).sort()).toEqual([
      'accuracy',
      'loss',
      'val_accuracy',
      'val_loss'
    ]);
    expect(fold.artifact).toBe('run/artifact');
  });
});

describe('JobFold while a run goes on', () => {
  it('takes progress, rate and ETA from progress events, and the total from specs_done first', () => {
    const fold = new JobFold();
    fold.foldEvents(RUN.slice(0, 2));
    expect([fold.done, fold.total, fold.status]).toEqual([0, 4000, 'running']);
    fold.foldEvents(RUN.slice(2, 7));
    expect([fold.done, fold.total]).toEqual([1000, 4000]);
    expect(fold.rate).toBeCloseTo(3796.2);
    expect(fold.eta).toBe(0.8); // the server's estimate
    expect([fold.chunk, fold.epoch]).toEqual([0, 2]);
  });

  it('estimates the ETA from the rate when an event gives none', () => {
    const fold = new JobFold();
    fold.foldEvents(RUN.slice(0, 12)); // the last one: chunk_done of chunk 1, no eta
    expect(fold.done).toBe(2000);
    expect(fold.eta).toBeCloseTo(2000 / 3941.3, 6);
  });

  it('counts every pass in standard mode: used events times epochs', () => {
    const fold = new JobFold();
    fold.foldEvents([
      { event: 'job_start', seq: 1, time: 0, mode: 'standard', params: { epochs: 3 } },
      { event: 'specs_done', seq: 2, time: 0, used: 500 }
    ]);
    expect(fold.total).toBe(1500);
  });
});

describe('since-tracking: pages folded incrementally', () => {
  it('advances since by each page and ignores events it has already folded', () => {
    const fold = new JobFold();
    let result = fold.foldPage(page(RUN.slice(0, 5), 'running'));
    expect([result.added, fold.since, result.done]).toEqual([5, 5, false]);
    expect(result.series.sort()).toEqual(['accuracy', 'loss', 'val_accuracy', 'val_loss']);

    // a page that overlaps the last one (a retried request): only the new events count
    result = fold.foldPage(page(RUN.slice(3, 10), 'running'));
    expect([result.added, fold.since]).toEqual([5, 10]);
    expect(fold.series('loss')).toHaveLength(3);

    // an empty page (the long-poll timed out) keeps since, and the job is not done
    result = fold.foldPage(page([], 'running', 10));
    expect([result.added, fold.since, result.done]).toEqual([0, 10, false]);

    result = fold.foldPage(page(RUN.slice(10), 'succeeded'));
    expect([fold.since, fold.status, result.done]).toEqual([26, 'succeeded', false]);
    // done only once the server says finished AND has nothing more
    result = fold.foldPage(page([], 'succeeded', 26));
    expect(result.done).toBe(true);
    expect(fold.series('loss')).toHaveLength(8);
  });

  it('follows the server when it is ahead of the events it returned', () => {
    const fold = new JobFold();
    fold.foldPage(page(RUN.slice(0, 2), 'running', 7));
    expect(fold.since).toBe(7);
  });

  it('replaying from 0 after a reload gives the same state as following live', () => {
    const live = new JobFold();
    for (let i = 0; i < RUN.length; i += 3) {
      live.foldPage(page(RUN.slice(i, i + 3), 'running'));
    }
    const replay = new JobFold();
    replay.foldPage(page(RUN, 'succeeded'));
    expect(replay.series('val_loss')).toEqual(live.series('val_loss'));
    expect(replay.marks).toEqual(live.marks);
    expect(replay.testMetrics).toEqual(live.testMetrics);
  });
});

describe('status', () => {
  it('a failed event of type Cancelled or Timeout means cancelled, others failed', () => {
    const cancelled = new JobFold();
    cancelled.foldEvents([
      { event: 'failed', seq: 1, time: 0, error: 'cancelled', type: 'Cancelled' }
    ]);
    expect(cancelled.status).toBe('cancelled');
    const timeout = new JobFold();
    timeout.foldEvents([
      { event: 'failed', seq: 1, time: 0, error: 'timed out after 5 s', type: 'Timeout' }
    ]);
    expect([timeout.status, timeout.error]).toEqual(['cancelled', 'timed out after 5 s']);
    const failed = new JobFold();
    failed.foldEvents([
      { event: 'failed', seq: 1, time: 0, error: 'model.py, line 3: boom', type: 'MLaaS4HEPError' }
    ]);
    expect([failed.status, failed.error]).toEqual(['failed', 'model.py, line 3: boom']);
  });

  it('the server moves the status forward, never back', () => {
    const fold = new JobFold();
    fold.serverStatus('queued');
    expect(fold.status).toBe('queued');
    fold.serverStatus('running');
    expect(fold.status).toBe('running');
    fold.serverStatus('queued'); // a stale answer
    expect(fold.status).toBe('running');
    fold.serverStatus('cancelled');
    expect(fold.status).toBe('cancelled');
  });

  it('keeps the last three log events as notes', () => {
    const fold = new JobFold();
    fold.foldEvents(
      [1, 2, 3, 4].map(i => ({ event: 'log', seq: i, time: 0, level: 'warning', message: `m${i}` }))
    );
    expect(fold.notes).toEqual(['warning: m2', 'warning: m3', 'warning: m4']);
  });
});

describe('curves', () => {
  it('turns null and non-finite values into gaps, and leaves out non-numbers', () => {
    const fold = new JobFold();
    fold.foldEvents([
      {
        event: 'epoch',
        seq: 1,
        time: 0,
        epoch: 1,
        chunk: null,
        step: 1,
        loss: 0.5,
        val_loss: null,
        note: 'x',
        ok: true
      },
      { event: 'epoch', seq: 2, time: 0, epoch: 2, chunk: null, step: 2, loss: NaN, val_loss: 0.4 }
    ]);
    expect(fold.seriesNames).toEqual(['loss', 'val_loss']);
    expect(fold.series('loss')).toEqual([
      { x: 1, y: 0.5 },
      { x: 2, y: null }
    ]);
    expect(fold.series('val_loss')).toEqual([
      { x: 1, y: null },
      { x: 2, y: 0.4 }
    ]);
    expect(fold.marks).toEqual([]); // standard mode: no chunk boundaries
  });

  it('orders other metrics as first seen, each before its val_ twin', () => {
    expect(
      orderSeries(['val_auc', 'auc', 'val_loss', 'accuracy', 'loss'], ['loss', 'auc', 'accuracy'])
    ).toEqual(['loss', 'val_loss', 'auc', 'val_auc', 'accuracy']);
  });
});

describe('estimateEta', () => {
  it("prefers the server's estimate, else the rest at the current rate, else unknown", () => {
    expect(estimateEta(100, 1000, 50, 12)).toBe(12);
    expect(estimateEta(100, 1000, 50)).toBe(18);
    expect(estimateEta(100, 1000, 0)).toBeNull();
    expect(estimateEta(1200, 1000, 10)).toBe(0);
  });
});

describe('LogTail', () => {
  it('joins pieces cut in the middle of a line and keeps the offset', () => {
    const tail = new LogTail(3);
    expect(tail.add('mlaas4hep job 1\nspecs: 4000 ev', 30)).toBe(true);
    expect(tail.lines).toEqual(['mlaas4hep job 1', 'specs: 4000 ev']);
    tail.add('ents\nchunk 0\n', 52);
    expect(tail.lines).toEqual(['mlaas4hep job 1', 'specs: 4000 events', 'chunk 0']);
    expect(tail.offset).toBe(52);
    expect(tail.add('', 52)).toBe(false);
  });

  it('keeps only the last lines', () => {
    const tail = new LogTail(3);
    tail.add('a\nb\nc\nd\ne\n', 10);
    expect(tail.text).toBe('c\nd\ne');
  });
});

describe('progress within a chunk (chunk mode reports events only when a chunk is done)', () => {
  it('counts the epochs done in the open chunk as its share of events, and measures the rate', () => {
    const fold = new JobFold();
    fold.foldEvents(RUN.slice(0, 3)); // job_start, specs_done, chunk_start of chunk 0 (1000 events)
    expect(fold.progress()).toEqual({ done: 0, total: 4000, rate: 0, eta: null, estimated: false });
    fold.foldEvents(RUN.slice(3, 4)); // epoch 1 of 2
    const p = fold.progress();
    expect(p.estimated).toBe(true);
    expect(p.done).toBe(500);
    // 500 events in 0.071 s (chunk_start at .083, the epoch at .154)
    expect(p.rate).toBeCloseTo(500 / (1795559638.154 - 1795559638.083), 3);
    expect(p.eta).toBeCloseTo(3500 / p.rate, 6);
  });

  it("uses the server's numbers once the chunk is done, and the server's rate after that", () => {
    const fold = new JobFold();
    fold.foldEvents(RUN.slice(0, 6)); // ... chunk_done of chunk 0
    expect(fold.progress()).toMatchObject({ done: 1000, estimated: false });
    fold.foldEvents(RUN.slice(6, 10)); // progress, checkpoint, chunk_start 1, epoch 1 of chunk 1
    expect(fold.progress()).toMatchObject({ done: 1500, rate: 3796.2, estimated: true });
    expect(fold.progress().eta).toBeCloseTo(2500 / 3796.2, 6);
  });

  it('is the plain report once the run has finished, and in standard mode', () => {
    const fold = new JobFold();
    fold.foldEvents(RUN);
    expect(fold.progress()).toEqual({
      done: 4000,
      total: 4000,
      rate: 7153.0,
      eta: 0,
      estimated: false
    });
    const standard = new JobFold();
    standard.foldEvents([
      { event: 'job_start', seq: 1, time: 0, mode: 'standard', params: { epochs: 2 } },
      { event: 'specs_done', seq: 2, time: 0, used: 100 },
      { event: 'chunk_start', seq: 3, time: 1, chunk: 0, epoch: 1, events: 100 },
      { event: 'epoch', seq: 4, time: 2, epoch: 1, chunk: null, step: 1, loss: 0.5 }
    ]);
    expect(standard.progress().estimated).toBe(false);
  });
});

describe('progress reported by the engine within a chunk', () => {
  it('is taken as it is, never estimated on top (one definition everywhere)', () => {
    const fold = new JobFold();
    fold.foldEvents([
      { event: 'job_start', seq: 1, time: 0, mode: 'chunk', params: { epochs: 4 } },
      { event: 'specs_done', seq: 2, time: 0, used: 2000 },
      { event: 'chunk_start', seq: 3, time: 1, chunk: 0, epoch: 1, events: 1000 },
      { event: 'epoch', seq: 4, time: 2, epoch: 1, chunk: 0, step: 1, loss: 0.5 },
      {
        event: 'progress',
        seq: 5,
        time: 2,
        chunk: 0,
        epoch: 1,
        events_processed: 250,
        events_total: 2000,
        rate: 250,
        eta: 7
      },
      { event: 'epoch', seq: 6, time: 3, epoch: 2, chunk: 0, step: 2, loss: 0.4 }
    ]);
    expect(fold.progress()).toEqual({
      done: 250,
      total: 2000,
      rate: 250,
      eta: 7,
      estimated: false
    });
  });

  it("shows the engine's final rate once the job has finished", () => {
    const fold = new JobFold();
    fold.foldEvents([
      { event: 'job_start', seq: 1, time: 0, mode: 'chunk', params: { epochs: 1 } },
      { event: 'progress', seq: 2, time: 1, events_processed: 10, events_total: 20, rate: 100 },
      {
        event: 'finished',
        seq: 3,
        time: 2,
        metrics: {},
        seconds: 9,
        events_processed: 20,
        rate: 123.4
      }
    ]);
    expect(fold.rate).toBe(123.4);
  });
});
