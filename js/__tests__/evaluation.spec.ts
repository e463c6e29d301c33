import {
  asEvaluation,
  classPaint,
  decadeTicks,
  density,
  formatP,
  IEvaluation,
  IRocCurve,
  rocAxis,
  rocPoints
} from '../evaluation';
import { JobFold } from '../fold';

const curve: IRocCurve = {
  class: 1,
  name: 'signal',
  signal_efficiency: [0, 0.5, 0.9, 1],
  background_efficiency: [0, 0.01, 0.2, 1],
  auc: 0.9
};

describe('rocPoints', () => {
  it('gives background rejection 1 - eff on a linear scale', () => {
    expect(rocPoints(curve, false)).toEqual([
      { x: 0, y: 1 },
      { x: 0.5, y: 0.99 },
      { x: 0.9, y: 0.8 },
      { x: 1, y: 0 }
    ]);
  });
  it('gives 1 / eff on a log scale and leaves out infinite rejection', () => {
    expect(rocPoints(curve, true)).toEqual([
      { x: 0.5, y: 100 },
      { x: 0.9, y: 5 },
      { x: 1, y: 1 }
    ]);
  });
});

describe('helpers', () => {
  it('covers the largest rejection with decades', () => {
    expect(decadeTicks(100)).toEqual([1, 10, 100]);
    expect(decadeTicks(101)).toEqual([1, 10, 100, 1000]);
    expect(decadeTicks(3)).toEqual([1, 10]);
  });
  it('turns counts into a density of area one', () => {
    const d = density([1, 3], [0, 0.5, 1]);
    expect(d).toEqual([0.5, 1.5]);
    expect(d[0] * 0.5 + d[1] * 0.5).toBeCloseTo(1);
    expect(density([0, 0], [0, 1, 2])).toEqual([0, 0]);
  });
  it('writes p-values for people', () => {
    expect(formatP(0.4312)).toBe('p = 0.43');
    expect(formatP(3.21e-5)).toBe('p = 3.2e-5');
    expect(formatP(null)).toBe('p = –');
  });
});

describe('JobFold', () => {
  it('keeps the evaluation and the early stop of a job', () => {
    const fold = new JobFold();
    const evaluation = {
      event: 'evaluation',
      seq: 2,
      time: 2,
      roc: [curve],
      score_histograms: { edges: [0, 1], classes: [] },
      overtraining: { flag: true, reasons: ['x'], ks_alpha: 0.05 }
    };
    fold.foldPage({
      events: [
        { event: 'job_start', seq: 1, time: 1, mode: 'standard', params: { epochs: 9 } },
        evaluation,
        {
          event: 'early_stop',
          seq: 3,
          time: 3,
          epoch: 6,
          best_epoch: 3,
          monitor: 'val_loss',
          best: 0.3
        }
      ],
      last_seq: 3,
      status: 'running'
    });
    expect(fold.evaluation).toBe(asEvaluation(evaluation));
    expect(fold.evaluation?.overtraining.flag).toBe(true);
    expect(fold.earlyStop).toEqual({ epoch: 6, best_epoch: 3, monitor: 'val_loss', best: 0.3 });
    expect(asEvaluation({ event: 'log' })).toBeNull();
  });
});

describe('rocAxis', () => {
  it('spans decades from 1 on the log scale, [0, 1] on the linear one', () => {
    const log = rocAxis(250, true, 200, 10);
    expect(log.ticks).toEqual([1, 10, 100, 1000]);
    expect(log.scale(1)).toBeCloseTo(200);
    expect(log.scale(1000)).toBeCloseTo(10);
    expect(log.scale(0.5)).toBeCloseTo(200); // below 1 sits on the axis
    expect(rocAxis(3, true, 200, 10).ticks).toEqual([1, 10]); // at least one decade
    const linear = rocAxis(250, false, 200, 10);
    expect(linear.ticks[0]).toBe(0);
    expect(linear.ticks[linear.ticks.length - 1]).toBe(1);
    expect(linear.scale(0.5)).toBeCloseTo(105);
  });
});

describe('classPaint', () => {
  const base = {
    class_info: [
      {
        class: 0,
        name: 'label 0',
        role: 'background',
        colour: '#3f90da',
        description: 'background, label 0'
      },
      {
        class: 1,
        name: 'label 1',
        role: 'signal',
        colour: '#e42536',
        description: 'signal, label 1'
      },
      { class: 2, name: 'odd', role: 'class', colour: 'red" onload="x', description: '' }
    ]
  } as unknown as IEvaluation;

  it("paints a class in the colour the evaluation gives it (Explore's too)", () => {
    expect(classPaint(base, 1)).toMatchObject({
      colour: '#e42536',
      css: 'mlaas4hep-mod-class-colour'
    });
    expect(classPaint(base, 0).info?.role).toBe('background');
  });

  it('falls back to theme colours by index without a usable colour', () => {
    expect(classPaint(base, 2)).toMatchObject({ colour: null, css: 'mlaas4hep-color-2' });
    expect(classPaint({} as IEvaluation, 1)).toMatchObject({
      colour: null,
      css: 'mlaas4hep-color-1',
      info: null
    });
  });
});
