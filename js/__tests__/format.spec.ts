import {
  canCancel,
  canDelete,
  formatAge,
  formatCount,
  formatDuration,
  formatRate,
  formatTimestamp,
  formatValue,
  percent,
  shortId,
  statusClass,
  summarizeProgress
} from '../format';
import { JobStatus } from '../types';

describe('formatAge', () => {
  const now = 1_700_000_000;
  it.each([
    [0, 'just now'],
    [4, 'just now'],
    [5, '5 s ago'],
    [59, '59 s ago'],
    [60, '1 min ago'],
    [3 * 60 + 20, '3 min ago'],
    [59 * 60 + 59, '59 min ago'],
    [3600, '1 h ago'],
    [47 * 3600, '47 h ago'],
    [48 * 3600, '2 d ago'],
    [10 * 86400, '10 d ago']
  ])('%d seconds -> %s', (seconds, text) => {
    expect(formatAge(now - seconds, now)).toBe(text);
  });

  it('a clock slightly ahead on the server is "just now", not negative', () => {
    expect(formatAge(now + 3, now)).toBe('just now');
  });
});

describe('durations, rates, counts', () => {
  it('formats durations', () => {
    expect(formatDuration(0.4)).toBe('0 s');
    expect(formatDuration(42)).toBe('42 s');
    expect(formatDuration(65)).toBe('1 min 05 s');
    expect(formatDuration(2 * 3600 + 4 * 60 + 30)).toBe('2 h 04 min');
    expect(formatDuration(null)).toBe('?');
    expect(formatDuration(Infinity)).toBe('?');
  });

  it('formats rates', () => {
    expect(formatRate(0)).toBe('0');
    expect(formatRate(850.4)).toBe('850');
    expect(formatRate(12_345)).toBe('12.3k');
    expect(formatRate(2_000)).toBe('2k');
    expect(formatRate(1_250_000)).toBe('1.25M');
  });

  it('formats counts and metric values', () => {
    expect(formatCount(1234567)).toBe('1,234,567');
    expect(formatCount(999)).toBe('999');
    expect(formatValue(0.123456)).toBe('0.1235');
    expect(formatValue(399)).toBe('399');
    expect(formatValue(null)).toBe('–');
    expect(formatValue(NaN)).toBe('n/a');
  });

  it('formats timestamps in local time', () => {
    const t = new Date(2024, 4, 1, 14, 3, 12).getTime() / 1000;
    expect(formatTimestamp(t)).toBe('2024-05-01 14:03:12');
    expect(formatTimestamp(null)).toBe('–');
  });
});

describe('status', () => {
  it.each([
    ['queued', 'mlaas4hep-status-queued', true, false],
    ['running', 'mlaas4hep-status-running', true, false],
    ['succeeded', 'mlaas4hep-status-succeeded', false, true],
    ['failed', 'mlaas4hep-status-failed', false, true],
    ['cancelled', 'mlaas4hep-status-cancelled', false, true]
  ])('%s -> %s, cancel %s, delete %s', (status, cls, cancel, remove) => {
    expect(statusClass(status)).toBe(cls);
    expect(canCancel({ status: status as JobStatus })).toBe(cancel);
    expect(canDelete({ status: status as JobStatus })).toBe(remove);
  });

  it('an unknown status gets a class of its own, not one made from its text', () => {
    expect(statusClass('"><script>')).toBe('mlaas4hep-status-unknown');
    expect(statusClass('')).toBe('mlaas4hep-status-unknown');
  });

  it('shortens ids to 8 characters', () => {
    expect(shortId('0123456789abcdef')).toBe('01234567');
  });
});

describe('progress', () => {
  it('is a share of the total, capped at 100, 100 for a succeeded job', () => {
    expect(percent(250, 1000)).toBe(25);
    expect(percent(1200, 1000)).toBe(100);
    expect(percent(10, 0)).toBe(0);
    expect(percent(0, 0, 'succeeded')).toBe(100);
  });

  it('summarizes a row: percent label and events/s only while running', () => {
    const progress = { events_processed: 1500, events_total: 4000, rate: 12345 };
    expect(summarizeProgress(progress, 'running')).toEqual({
      percent: 37.5,
      label: '37%',
      rate: '12.3k ev/s'
    });
    expect(summarizeProgress(progress, 'cancelled').rate).toBe('');
    expect(
      summarizeProgress({ events_processed: 0, events_total: 0, rate: 0 }, 'queued').label
    ).toBe('0%');
  });
});
