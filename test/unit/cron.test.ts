import { describe, it, expect } from 'vitest';
import { nextTick, validateCron } from '../../src/core/cron';
import { DfError } from '../../src/core/errors';

function cronError(expr: string): string {
  try {
    validateCron(expr);
  } catch (e) {
    expect(e).toBeInstanceOf(DfError);
    return (e as Error).message;
  }
  throw new Error(`expected '${expr}' to be rejected`);
}

/** The first `n` ticks after `from`, as ISO strings. */
function ticks(expr: string, from: string, n: number): string[] {
  const out: string[] = [];
  let at = new Date(from);
  for (let i = 0; i < n; i++) {
    at = nextTick(expr, at);
    out.push(at.toISOString());
  }
  return out;
}

describe('validateCron: standard five-field cron', () => {
  it.each(['* * * * *', '*/5 * * * *', '0 9 * * 1-5', '0 0 * * 0', '0 0 * * 7', '30 2 1,15 * *', '0 0 * JAN-MAR MON-FRI', '0 12 * * sun', ' 0 9 * * 1 '])(
    'accepts %j',
    (expr) => {
      expect(() => validateCron(expr)).not.toThrow();
    },
  );

  it.each([
    ['61 * * * *', "Invalid cron expression '61 * * * *': "],
    ['* 24 * * *', "Invalid cron expression '* 24 * * *': "],
    ['0 0 * * 8', "Invalid cron expression '0 0 * * 8': "],
    ['0 0 0 * *', "Invalid cron expression '0 0 0 * *': "],
    ['a b c d e', "Invalid cron expression 'a b c d e': "],
  ])('rejects the out-of-range or garbled %j', (expr, prefix) => {
    const msg = cronError(expr);
    expect(msg.startsWith(prefix)).toBe(true);
    expect(msg.length).toBeGreaterThan(prefix.length);
  });

  it.each([
    ['* * * *', 4],
    ['0 0 9 * * 1', 6],
    ['0 0 9 * * 1 2024', 7],
    ['@daily', 1],
    ['', 0],
  ])('rejects %j: exactly five fields are required (got %i)', (expr, n) => {
    expect(cronError(expr)).toBe(
      `Invalid cron expression '${expr}': expected 5 fields (minute hour day-of-month month day-of-week), got ${n}`,
    );
  });

  it("rejects cron-parser's random H extension", () => {
    expect(cronError('H * * * *')).toBe("Invalid cron expression 'H * * * *': the H (hash) extension is not supported, got 'H'");
    expect(() => validateCron('0 0 * * THU')).not.toThrow();
  });
});

describe('nextTick (UTC)', () => {
  it('0 9 * * 1-5 fires on weekdays at 09:00 UTC', () => {
    // 2024-01-05 is a Friday.
    expect(ticks('0 9 * * 1-5', '2024-01-05T08:00:00Z', 4)).toEqual([
      '2024-01-05T09:00:00.000Z',
      '2024-01-08T09:00:00.000Z',
      '2024-01-09T09:00:00.000Z',
      '2024-01-10T09:00:00.000Z',
    ]);
    for (const iso of ticks('0 9 * * 1-5', '2024-03-01T00:00:00Z', 30)) {
      const d = new Date(iso);
      expect([1, 2, 3, 4, 5]).toContain(d.getUTCDay());
      expect([d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]).toEqual([9, 0, 0]);
    }
  });

  it.each(['0 0 * * 0', '0 0 * * 7', '0 0 * * SUN'])('%s fires on Sundays at midnight', (expr) => {
    expect(ticks(expr, '2024-01-01T12:00:00Z', 3)).toEqual([
      '2024-01-07T00:00:00.000Z',
      '2024-01-14T00:00:00.000Z',
      '2024-01-21T00:00:00.000Z',
    ]);
  });

  it('is strictly after the given instant, also with sub-second precision', () => {
    expect(nextTick('0 9 * * *', new Date('2024-01-01T09:00:00.000Z')).toISOString()).toBe('2024-01-02T09:00:00.000Z');
    expect(nextTick('0 9 * * *', new Date('2024-01-01T09:00:00.500Z')).toISOString()).toBe('2024-01-02T09:00:00.000Z');
    expect(nextTick('0 9 * * *', new Date('2024-01-01T08:59:59.999Z')).toISOString()).toBe('2024-01-01T09:00:00.000Z');
    expect(nextTick('* * * * *', new Date('2024-01-01T09:00:30.000Z')).toISOString()).toBe('2024-01-01T09:01:00.000Z');
  });

  it('handles */5 and leap days', () => {
    expect(ticks('*/5 * * * *', '2024-01-01T00:03:00Z', 2)).toEqual(['2024-01-01T00:05:00.000Z', '2024-01-01T00:10:00.000Z']);
    expect(ticks('0 0 29 2 *', '2023-01-01T00:00:00Z', 2)).toEqual(['2024-02-29T00:00:00.000Z', '2028-02-29T00:00:00.000Z']);
  });

  it('reports when no tick exists before the end of representable time', () => {
    expect(() => nextTick('0 0 1 1 *', new Date(8.64e15 - 1000))).toThrow(new DfError("No upcoming schedule found for '0 0 1 1 *'"));
  });

  it('rejects invalid expressions with the build-time message', () => {
    expect(() => nextTick('61 * * * *', new Date())).toThrow("Invalid cron expression '61 * * * *': ");
    expect(() => nextTick('* * * *', new Date())).toThrow("Invalid cron expression '* * * *': expected 5 fields");
  });
});
