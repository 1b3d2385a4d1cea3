import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { instanceDiagram } from '../../src/cli/explain';
import { UsageError, formatRecord, formatTable, parseArgs, positiveNumber } from '../../src/cli/monitor-util';
import { renderDot, renderMermaid, renderTree } from '../../src/core/explain';

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

describe('explain --format mermaid|dot for an instance (instanceDiagram)', () => {
  /** Answers instanceDiagram's two queries with df.instances / df.instance_nodes rows. */
  const fakeClient = (rootNode: string, nodes: Record<string, unknown>[]): pg.Client =>
    ({
      query: async (sql: string) => ({ rows: sql.includes('df.instance_nodes') ? nodes : [{ root_node: rootNode }] }),
    }) as unknown as pg.Client;

  it('draws a saga step from df.instance_nodes: the undo hangs dashed under its step, coloured by inferred status', async () => {
    const row = (id: string, node_type: string, query: string | null, left: string | null, right: string | null, inferred_status: string) => ({
      id, node_type, query, result_name: null, left_node: left, right_node: right, inferred_status,
    });
    const { tree, marker } = await instanceDiagram(
      fakeClient('aaaa0001', [
        row('aaaa0001', 'THEN', null, 'aaaa0002', 'aaaa0005', 'failed'),
        row('aaaa0002', 'UNDO', null, 'aaaa0003', 'aaaa0004', 'completed'),
        row('aaaa0003', 'SQL', 'INSERT INTO orders DEFAULT VALUES', null, null, 'completed'),
        row('aaaa0004', 'SQL', 'DELETE FROM orders', null, null, 'completed'),
        row('aaaa0005', 'SQL', 'SELECT 1/0', null, null, 'failed'),
      ]),
      'c0ffee42',
    );
    expect(renderMermaid(tree, marker).split('\n').filter((l) => !l.includes('classDef'))).toEqual([
      'flowchart TD',
      '    n_aaaa0003["SQL: INSERT INTO orders DEFAULT VALUES"]',
      '    n_aaaa0004["SQL: DELETE FROM orders"]',
      '    n_aaaa0005["SQL: SELECT 1/0"]',
      '    n_aaaa0003 -.->|undo| n_aaaa0004',
      '    n_aaaa0003 --> n_aaaa0005',
      '    class n_aaaa0003 completed',
      '    class n_aaaa0004 completed',
      '    class n_aaaa0005 failed',
    ]);
    expect(renderDot(tree, marker)).toContain('n_aaaa0003 -> n_aaaa0004 [label="undo", style=dashed];');
    // The text tree (what df.explain, and so `explain` and `watch`, print) from the same rows.
    expect(renderTree(tree, marker).split('\n').map((l) => l.trimEnd())).toEqual([
      'SQL: INSERT INTO orders DEFAULT VALUES ✓',
      '    ↶ undo:',
      '      └─SQL: DELETE FROM orders ✓',
      '→ SQL: SELECT 1/0 ✗',
    ]);
  });
});
