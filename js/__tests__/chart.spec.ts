import {
  cssName,
  extent,
  formatTick,
  gridRows,
  linearScale,
  linePath,
  niceTicks,
  stepTicks,
  thinMarks
} from '../chart';

describe('niceTicks', () => {
  it('covers the range with steps of 1, 2 or 5 times a power of ten', () => {
    expect(niceTicks(0.23, 0.71, 5)).toEqual([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]);
    expect(niceTicks(0.637, 0.699, 4)).toEqual([0.62, 0.64, 0.66, 0.68, 0.7]);
    expect(niceTicks(0, 1000, 4)).toEqual([0, 200, 400, 600, 800, 1000]);
  });

  it('widens a flat range so that it has ticks', () => {
    const ticks = niceTicks(0.5, 0.5, 4);
    expect(ticks[0]).toBeLessThan(0.5);
    expect(ticks[ticks.length - 1]).toBeGreaterThan(0.5);
    expect(niceTicks(0, 0)).toEqual([-1, -0.5, 0, 0.5, 1]);
  });

  it('x ticks of steps are integers', () => {
    expect(stepTicks(1, 2)).toEqual([1, 2]);
    expect(stepTicks(1, 8)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(stepTicks(1, 40)).toEqual([0, 5, 10, 15, 20, 25, 30, 35, 40]);
    expect(stepTicks(1, 100).every(Number.isInteger)).toBe(true);
  });
});

describe('extent and scales', () => {
  it('ignores gaps', () => {
    expect(
      extent([
        [
          { x: 1, y: 0.5 },
          { x: 2, y: null }
        ],
        [
          { x: 3, y: NaN },
          { x: 4, y: 0.2 }
        ]
      ])
    ).toEqual({
      xmin: 1,
      xmax: 4,
      ymin: 0.2,
      ymax: 0.5
    });
    expect(extent([[{ x: 1, y: null }]])).toBeNull();
    expect(extent([])).toBeNull();
  });

  it('maps linearly, upside down for y', () => {
    const sy = linearScale(0, 1, 200, 0);
    expect(sy(0)).toBe(200);
    expect(sy(0.25)).toBe(150);
    expect(linearScale(3, 3, 0, 100)(3)).toBe(50);
  });
});

describe('linePath', () => {
  const sx = (x: number) => x * 10;
  const sy = (y: number) => 100 - y * 100;

  it('draws a polyline through the points', () => {
    expect(
      linePath(
        [
          { x: 1, y: 0.5 },
          { x: 2, y: 0.25 },
          { x: 3, y: 0.125 }
        ],
        sx,
        sy
      )
    ).toBe('M10,50L20,75L30,87.5');
  });

  it('breaks the line at gaps, and draws a lone point as a dot', () => {
    const d = linePath(
      [
        { x: 1, y: 0.5 },
        { x: 2, y: 0.4 },
        { x: 3, y: null },
        { x: 4, y: 0.3 },
        { x: 5, y: NaN },
        { x: 6, y: 0.2 },
        { x: 7, y: 0.1 }
      ],
      sx,
      sy
    );
    expect(d).toBe('M10,50L20,60M40,70L40,70M60,80L70,90');
  });

  it('is empty without points, and rounds to 0.1 px', () => {
    expect(linePath([], sx, sy)).toBe('');
    expect(linePath([{ x: 1, y: 1 / 3 }], sx, sy)).toBe('M10,66.7L10,66.7');
  });
});

describe('labels', () => {
  it('formats ticks compactly', () => {
    expect(formatTick(0)).toBe('0');
    expect(formatTick(0.65)).toBe('0.65');
    expect(formatTick(0.1 + 0.2)).toBe('0.3');
    expect(formatTick(25000)).toBe('2.5e4');
    expect(formatTick(0.00002)).toBe('2e-5');
  });

  it('makes series names safe as CSS classes', () => {
    expect(cssName('val_loss')).toBe('val_loss');
    expect(cssName('top-5 acc')).toBe('top-5-acc');
    expect(cssName('a.b"c')).toBe('a-b-c');
  });
});

describe('thinMarks', () => {
  it('keeps every mark when there are few', () => {
    expect(thinMarks([1.5, 3.5, 5.5], 30)).toEqual([1.5, 3.5, 5.5]);
  });
  it('keeps at most max marks, evenly spread', () => {
    const marks = Array.from({ length: 100 }, (_, i) => 3 * (i + 1) + 0.5);
    const thinned = thinMarks(marks, 30);
    expect(thinned.length).toBeLessThanOrEqual(30);
    expect(thinned.length).toBeGreaterThanOrEqual(20);
    const gaps = thinned.slice(1).map((m, i) => m - thinned[i]);
    expect(new Set(gaps).size).toBe(1);
  });
});

describe('gridRows', () => {
  it('puts each tick on a half pixel row with its label', () => {
    const sy = linearScale(0, 1, 200, 10);
    expect(gridRows([0, 0.5, 1], sy)).toEqual([
      { y: 200.5, text: '0' },
      { y: 105.5, text: '0.5' },
      { y: 10.5, text: '1' }
    ]);
  });
});
