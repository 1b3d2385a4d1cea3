import { describe, expect, it } from 'vitest';
import { UsageError, formatRecord, formatTable, parseArgs, positiveNumber } from '../../src/cli/monitor-util';

describe('formatTable (psql aligned format)', () => {
  it('centres headers, left-aligns text, right-aligns numbers and counts rows', () => {
    const rows = [
      { execution_id: '1', status: 'Completed', output: '{"rows":[],"row_count":0}' },
      { execution_id: '12', status: 'Failed', output: null },
    ];
    expect(formatTable(['execution_id', 'status', 'output'], rows, ['execution_id'])).toBe(
      [
        ' execution_id |  status   |          output',
        '--------------+-----------+---------------------------',
        '            1 | Completed | {"rows":[],"row_count":0}',
        '           12 | Failed    |',
        '(2 rows)',
      ].join('\n'),
    );
    expect(formatTable(['a'], [])).toBe(' a\n---\n(0 rows)');
    expect(formatTable(['a'], [{ a: 'é' }])).toBe(' a\n---\n é\n(1 row)');
  });

  it('formatRecord prints an expanded record', () => {
    expect(formatRecord(['instance_id', 'label'], { instance_id: 'c0ffee42', label: null })).toBe('instance_id | c0ffee42\nlabel       |');
  });
});

describe('parseArgs', () => {
  it('reads values, flags, positionals and --help', () => {
    const p = parseArgs(['abc', '--format', 'dot', '--limit=3', '--database-url', 'postgres://x', '-h'], { values: ['format', 'limit'] });
    expect(p).toEqual({ positional: ['abc'], options: { format: 'dot', limit: '3', 'database-url': 'postgres://x' }, flags: new Set(), help: true });
    expect(parseArgs(['--', '--not-an-option'], { values: [] }).positional).toEqual(['--not-an-option']);
  });

  it('rejects unknown options and missing values', () => {
    expect(() => parseArgs(['--nope'], { values: [] })).toThrow(UsageError);
    expect(() => parseArgs(['--format'], { values: ['format'] })).toThrow('option --format needs a value');
  });

  it('positiveNumber', () => {
    expect(positiveNumber('limit', undefined, true)).toBeUndefined();
    expect(positiveNumber('interval', '0.5', false)).toBe(0.5);
    expect(() => positiveNumber('limit', '1.5', true)).toThrow('--limit must be a positive integer');
    expect(() => positiveNumber('limit', '0', true)).toThrow(UsageError);
    expect(() => positiveNumber('interval', 'x', false)).toThrow('--interval must be a positive number');
  });
});
