/**
 * The monitoring surface (API §10, deviations 3, 11, 12) as tenants see it: column lists,
 * list_instances and its keyset pages, instance_info, both instance_nodes overloads with status
 * inference, instance_executions, metrics, explain in every mode, prune_executions, the info
 * helpers, tenant isolation and the terminal commands. No worker runs: instances are started as a
 * tenant with df.start, then the engine rows are written as the worker would
 * (test/support/engine-fixtures.ts).
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseNodeLenient } from '../../src/core/ensure';
import { displayTree, renderMermaid } from '../../src/core/explain';
import { asRole, createTenant, errorOf, freshDatabase, scalar, url, withPg, withTransaction } from '../support/db';
import {
  completeInstance,
  completeNode,
  completeNodes,
  continueAsNew,
  failInstance,
  failNode,
  loadInstance,
  startNode,
} from '../support/engine-fixtures';

let db: string;
let alice: string;
let bob: string;
beforeAll(async () => {
  db = await freshDatabase('monitoring');
  alice = await createTenant(db, 'alice');
  bob = await createTenant(db, 'bob');
});

const FN = 'pg_durable::orchestration::execute-function-graph';
/** The contract writes padding spaces as `·`. */
const dots = (lines: string[]): string => lines.join('\n').replace(/·/g, ' ');

async function start(role: string, dsl: string, label: string | null = null): Promise<string> {
  return asRole(db, role, (c) => scalar<string>(c, `SELECT df.start(${dsl}, $1)`, [label]));
}

async function rows(role: string, sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  return asRole(db, role, async (c) => (await c.query(sql, params)).rows);
}

const TYPES: Record<number, string> = { 20: 'bigint', 25: 'text', 1184: 'timestamptz' };
async function columns(sql: string): Promise<string[]> {
  return withPg(db, async (c) => (await c.query(sql)).fields.map((f) => `${f.name} ${TYPES[f.dataTypeID] ?? f.dataTypeID}`));
}

/** A completed hello world, as in the seeds. */
async function helloWorld(role: string, label: string | null = null): Promise<string> {
  const id = await start(role, "'SELECT ''Hello, durable world!'' AS message'", label);
  const g = await loadInstance(db, id);
  const out = '{"rows":[{"message":"Hello, durable world!"}],"row_count":1}';
  await completeNodes(db, id, g.stamp(), [[g.root, out]]);
  await completeInstance(db, id, out);
  return id;
}

/** API Appendix A: 'SELECT 1 AS a' |=> 'x' ~> 'SELECT $x + 1 AS b', completed. */
async function appendixA(role: string): Promise<string> {
  const id = await start(role, "'SELECT 1 AS a' |=> 'x' ~> 'SELECT $x + 1 AS b'", 'demo');
  const g = await loadInstance(db, id);
  const s = g.stamp();
  await startNode(db, id, g.root, s);
  await completeNodes(db, id, s, [
    [g.byQuery('SELECT 1 AS a'), '{"rows":[{"a":1}],"row_count":1}'],
    [g.byQuery('SELECT $x + 1 AS b'), '{"rows":[{"b":2}],"row_count":1}'],
  ]);
  await completeNode(db, id, g.root, s, '{"rows":[{"b":2}],"row_count":1}');
  await completeInstance(db, id, '{"rows":[{"b":2}],"row_count":1}');
  return id;
}

/** 'SELECT 1/0' ~> 'SELECT 42' after the failure. */
async function failedSequence(role: string): Promise<{ id: string; then: string; second: string }> {
  const id = await start(role, "'SELECT 1/0' ~> 'SELECT 42'");
  const g = await loadInstance(db, id);
  const s = g.stamp();
  await startNode(db, id, g.root, s);
  await startNode(db, id, g.byQuery('SELECT 1/0'), s);
  await failNode(db, id, g.byQuery('SELECT 1/0'), s, 'division by zero');
  await failNode(db, id, g.root, s, 'division by zero');
  await failInstance(db, id, 'division by zero');
  return { id, then: g.root, second: g.byQuery('SELECT 42') };
}

const SAMPLER_QUERY = 'SELECT datname, usename, application_name, wait_event_type, wait_event, state, query FROM pg_stat_activity';
const session = (query: string | null, wait_event: string | null) => ({
  datname: 'postgres', usename: 'franck', application_name: 'psql', wait_event_type: wait_event ? 'Client' : null, wait_event, state: 'active', query,
});
const sample = (...sessions: object[]): string => JSON.stringify({ rows: sessions, row_count: sessions.length });

/**
 * The seeds' sampler: a root loop over (pg_stat_activity ~> wait_for_schedule) with two finished
 * iterations (ContinuedAsNew) and a third one waiting on its schedule.
 */
async function sampler(role: string, label: string, times: string[] = ['2026-06-04T10:00:00Z', '2026-06-04T10:01:00Z', '2026-06-04T10:02:00Z']) {
  const id = await start(role, `@> ('${SAMPLER_QUERY}' ~> df.wait_for_schedule('*/1 * * * *'))`, label);
  const g = await loadInstance(db, id);
  const [loop, then, sql, wait] = [g.root, g.byType('THEN')[0], g.byQuery(SAMPLER_QUERY), g.byType('WAIT_SCHEDULE')[0]];
  const samples = [
    sample(session('SELECT 1', 'ClientRead'), session('SELECT pg_sleep(5)', 'PgSleep'), session(null, null)),
    sample(session('SELECT 1', 'ClientRead'), session('SELECT pg_sleep(5)', 'PgSleep')),
    sample(session('SELECT 1', 'ClientRead')),
  ];
  for (let gen = 1; gen <= 3; gen++) {
    const at = times[gen - 1];
    const s = g.stamp(gen);
    const tick = `{"scheduled_for":"${at}"}`;
    await startNode(db, id, loop, s, { at });
    await startNode(db, id, then, s, { at });
    await completeNodes(db, id, s, [[sql, samples[gen - 1]]], { at });
    await startNode(db, id, wait, s, { at });
    if (gen < 3) {
      await completeNode(db, id, wait, s, tick, { at });
      await completeNode(db, id, then, s, tick, { at });
      await continueAsNew(db, id, tick, { at });
    }
  }
  return { id, loop, then, sql, wait };
}

describe('column lists (API §2, §10)', () => {
  const cases: [string, string[]][] = [
    ['SELECT * FROM df.list_instances()', ['instance_id text', 'label text', 'function_name text', 'status text', 'execution_count bigint', 'output text']],
    [
      'SELECT * FROM df.list_instances(NULL, 10, NULL)',
      ['instance_id text', 'label text', 'function_name text', 'status text', 'execution_count bigint', 'output text', 'created_at timestamptz', 'completed_at timestamptz', 'next_cursor text'],
    ],
    [
      "SELECT * FROM df.instance_info('00000000')",
      ['instance_id text', 'label text', 'function_name text', 'function_version text', 'current_execution_id bigint', 'status text', 'output text'],
    ],
    [
      "SELECT * FROM df.instance_nodes('00000000')",
      [
        'node_id text', 'node_type text', 'query text', 'result_name text', 'left_node text', 'right_node text', 'status text', 'result text',
        'status_details text', 'inferred_status text', 'inferred_status_from_ancestor_id text', 'updated_at timestamptz',
      ],
    ],
    [
      "SELECT * FROM df.instance_nodes('00000000', 5)",
      ['execution_id bigint', 'node_id text', 'node_type text', 'query text', 'result_name text', 'left_node text', 'right_node text', 'status text', 'result text', 'updated_at timestamptz'],
    ],
    ["SELECT * FROM df.instance_executions('00000000')", ['execution_id bigint', 'status text', 'event_count bigint', 'duration_ms bigint', 'output text']],
    ['SELECT * FROM df.metrics()', ['total_instances bigint', 'running_instances bigint', 'completed_instances bigint', 'failed_instances bigint', 'total_executions bigint', 'total_events bigint']],
    ["SELECT * FROM df.prune_executions('00000000', now())", ['instances_processed bigint', 'executions_deleted bigint', 'events_deleted bigint']],
    ["SELECT df.explain('SELECT 1'), df.version(), df.target_database()", ['explain text', 'version text', 'target_database text']],
  ];
  for (const [sql, expected] of cases) {
    it(sql, async () => {
      expect(await columns(sql)).toEqual(expected);
    });
  }

  it('declares strictness, volatility and privileges as documented', async () => {
    await withPg(db, async (c) => {
      const procs = (
        await c.query(`SELECT p.oid::regprocedure::text AS sig, p.proisstrict AS strict, p.provolatile AS vol, p.prosecdef AS definer,
                              has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec
                         FROM pg_proc p WHERE p.pronamespace = 'df'::regnamespace
                          AND p.proname IN ('list_instances','instance_info','instance_nodes','instance_executions','explain','metrics','version','target_database','prune_executions')`)
      ).rows;
      const by = Object.fromEntries(procs.map((p) => [p.sig, p]));
      expect(Object.keys(by).sort()).toEqual(
        [
          'df.explain(text)', 'df.instance_executions(text,integer)', 'df.instance_info(text)', 'df.instance_nodes(text)', 'df.instance_nodes(text,integer)',
          'df.list_instances(text,integer)', 'df.list_instances(text,integer,text,text)', 'df.metrics()', 'df.prune_executions(text,timestamp with time zone)',
          'df.target_database()', 'df.version()',
        ].sort(),
      );
      for (const sig of ['df.explain(text)', 'df.instance_executions(text,integer)', 'df.instance_info(text)', 'df.instance_nodes(text)', 'df.instance_nodes(text,integer)']) {
        expect([sig, by[sig].strict]).toEqual([sig, true]);
      }
      expect(by['df.list_instances(text,integer)'].strict).toBe(false);
      expect(by['df.metrics()']).toMatchObject({ definer: true, public_exec: false });
      expect(by['df.target_database()'].vol).toBe('s');
      for (const p of procs) if (p.sig !== 'df.metrics()') expect([p.sig, p.definer, p.public_exec]).toEqual([p.sig, false, true]);
    });
  });
});

describe('df.list_instances and df.instance_info', () => {
  it("shows a completed hello world with the engine columns from our tables (seed 000)", async () => {
    const carol = await createTenant(db, 'carol');
    const id = await helloWorld(carol);
    const out = '{"rows":[{"message":"Hello, durable world!"}],"row_count":1}';
    expect(await rows(carol, 'SELECT * FROM df.list_instances()')).toEqual([
      { instance_id: id, label: null, function_name: FN, status: 'completed', execution_count: '1', output: out },
    ]);
    expect(await rows(carol, 'SELECT * FROM df.instance_info($1)', [id])).toEqual([
      { instance_id: id, label: null, function_name: FN, function_version: '1.0.0', current_execution_id: '1', status: 'completed', output: out },
    ]);
    const paged = await rows(carol, 'SELECT *, created_at = (SELECT created_at FROM df.instances WHERE id = instance_id) AS same_created FROM df.list_instances(NULL, 10, NULL)');
    expect(paged).toHaveLength(1);
    expect(paged[0]).toMatchObject({ instance_id: id, function_name: FN, status: 'completed', execution_count: '1', output: out, next_cursor: null, same_created: true });
    expect(paged[0].completed_at).toBeInstanceOf(Date);
  });

  it('Appendix A: list_instances and instance_info agree', async () => {
    const carol = await createTenant(db, 'carol');
    const id = await appendixA(carol);
    const failed = (await failedSequence(carol)).id;
    const pending = await start(carol, "'SELECT 1'");
    const list = await rows(carol, 'SELECT * FROM df.list_instances()');
    expect(list).toEqual([
      { instance_id: pending, label: null, function_name: FN, status: 'pending', execution_count: '1', output: null },
      { instance_id: failed, label: null, function_name: FN, status: 'failed', execution_count: '1', output: 'division by zero' },
      { instance_id: id, label: 'demo', function_name: FN, status: 'completed', execution_count: '1', output: '{"rows":[{"b":2}],"row_count":1}' },
    ]);
    expect(await rows(carol, "SELECT instance_id FROM df.list_instances('failed')")).toEqual([{ instance_id: failed }]);
    expect(await rows(carol, "SELECT instance_id FROM df.list_instances('Failed')")).toEqual([]);
    expect(await rows(carol, 'SELECT instance_id FROM df.list_instances(NULL, 1)')).toEqual([{ instance_id: pending }]);
    const info = (await rows(carol, 'SELECT * FROM df.instance_info($1)', [id]))[0];
    expect(info).toEqual({ instance_id: id, label: 'demo', function_name: FN, function_version: '1.0.0', current_execution_id: '1', status: 'completed', output: '{"rows":[{"b":2}],"row_count":1}' });
    const paged = (await rows(carol, "SELECT * FROM df.list_instances(NULL, 10, 'demo')"))[0];
    expect(paged).toMatchObject({ instance_id: id, execution_count: '1', next_cursor: null });
    expect(paged.completed_at).toBeInstanceOf(Date);
    expect((await rows(carol, 'SELECT completed_at FROM df.list_instances(NULL, 10, NULL) WHERE status = $1', ['failed']))[0].completed_at).toBeNull();
  });

  it('rejects limits below 1 and above the cap, for both overloads', async () => {
    await asRole(db, alice, async (c) => {
      for (const sql of ['SELECT * FROM df.list_instances(NULL, 0)', 'SELECT * FROM df.list_instances(NULL, 0, NULL)']) {
        expect((await errorOf(c, sql)).message).toBe('limit_count must be at least 1');
      }
      for (const sql of ['SELECT * FROM df.list_instances(NULL, 1001)', 'SELECT * FROM df.list_instances(NULL, 1001, NULL, NULL)']) {
        expect((await errorOf(c, sql)).message).toBe(
          'df.list_instances: limit_count (1001) exceeds pg_durable.list_instances_max_limit (1000); request fewer rows, or use the paginated df.list_instances overload (after_cursor/next_cursor) for large result sets',
        );
      }
      await c.query('SELECT * FROM df.list_instances(NULL, 1000)');
      expect((await errorOf(c, 'SELECT * FROM df.list_instances(NULL, NULL)')).message).toBe('df.list_instances: limit_count cannot be NULL');
    });
  });

  it('honours pg_durable.list_instances_max_limit set with ALTER DATABASE or a superuser SET', async () => {
    await withPg(db, (c) => c.query(`ALTER DATABASE ${pg.escapeIdentifier(db)} SET pg_durable.list_instances_max_limit = 3`));
    try {
      await asRole(db, alice, async (c) => {
        expect((await errorOf(c, 'SELECT * FROM df.list_instances(NULL, 4)')).message).toContain('limit_count (4) exceeds pg_durable.list_instances_max_limit (3)');
        expect((await errorOf(c, 'SELECT * FROM df.list_instances(NULL, 4, NULL)')).message).toContain('list_instances_max_limit (3)');
        await c.query('SELECT * FROM df.list_instances(NULL, 3)');
      });
    } finally {
      await withPg(db, (c) => c.query(`ALTER DATABASE ${pg.escapeIdentifier(db)} RESET pg_durable.list_instances_max_limit`));
    }
    await withPg(db, async (c) => {
      await c.query('SET pg_durable.list_instances_max_limit = 2');
      expect((await errorOf(c, 'SELECT * FROM df.list_instances(NULL, 3)')).message).toContain('limit_count (3) exceeds pg_durable.list_instances_max_limit (2)');
    });
  });
});

describe('df.list_instances pagination (API §10.2)', () => {
  let dave: string;
  let ordered: string[];
  const ids: string[] = [];
  beforeAll(async () => {
    dave = await createTenant(db, 'dave');
    for (let i = 0; i < 6; i++) ids.push(await start(dave, `'SELECT ${i}'`, i % 2 === 0 ? 'even' : 'odd'));
    // Distinct times, plus a tie (ids 2 and 3) that the id breaks.
    const times = ['2026-01-01 10:00:00.000001+00', '2026-01-01 10:00:01+00', '2026-01-01 10:00:02.5+00', '2026-01-01 10:00:02.5+00', '2026-01-01 10:00:03+00', '2026-01-01 10:00:04+00'];
    await withPg(db, async (c) => {
      for (let i = 0; i < 6; i++) await c.query('UPDATE df.instances SET created_at = $2 WHERE id = $1', [ids[i], times[i]]);
      ordered = (await c.query('SELECT id FROM df.instances WHERE id = ANY($1) ORDER BY created_at DESC, id ASC', [ids])).rows.map((r) => r.id);
    });
  });

  it('walks three pages of two with a keyset cursor', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    const cursors: (string | null)[] = [];
    for (let page = 0; page < 3; page++) {
      const r = await rows(dave, 'SELECT instance_id, next_cursor FROM df.list_instances(NULL, 2, NULL, $1)', [cursor]);
      expect(r).toHaveLength(2);
      expect(r[0].next_cursor).toBe(r[1].next_cursor);
      seen.push(...r.map((x) => x.instance_id as string));
      cursor = r[0].next_cursor as string | null;
      cursors.push(cursor);
    }
    expect(seen).toEqual(ordered);
    expect(cursors[2]).toBeNull();
    // The cursor is the hex of v1|<created_at as to_char(...USOF)>|<id> of the page's last row.
    const expected = await asRole(db, dave, (c) =>
      scalar<string>(
        c,
        `SELECT encode(convert_to('v1|' || to_char(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.USOF') || '|' || id, 'UTF8'), 'hex') FROM df.instances WHERE id = $1`,
        [ordered[1]],
      ),
    );
    expect(cursors[0]).toBe(expected);
    expect(Buffer.from(cursors[0] as string, 'hex').toString()).toMatch(/^v1\|2026-01-01T\d{2}:\d{2}:03\.000000[+-]\d{2}(:\d{2})?\|[0-9a-f]{8}$/);
  });

  it('re-applies the filters on every page', async () => {
    const first = await rows(dave, "SELECT instance_id, label, next_cursor FROM df.list_instances(NULL, 2, 'even')");
    const second = await rows(dave, "SELECT instance_id, label, next_cursor FROM df.list_instances(NULL, 2, 'even', $1)", [first[0].next_cursor]);
    const even = ids.filter((_, i) => i % 2 === 0);
    expect([...first, ...second].map((r) => r.instance_id)).toEqual(ordered.filter((id) => even.includes(id)));
    expect([...first, ...second].every((r) => r.label === 'even')).toBe(true);
    expect(second).toHaveLength(1);
    expect(second[0].next_cursor).toBeNull();
    expect(await rows(dave, "SELECT instance_id FROM df.list_instances('completed', 10, NULL)")).toEqual([]);
  });

  const hex = (s: string): string => Buffer.from(s, 'utf8').toString('hex');
  const invalid: [string, string][] = [
    ['empty', ''],
    ['longer than 512 characters', 'ab'.repeat(257)],
    ['odd length', 'abc'],
    ['not hex', 'zz'],
    ['not UTF-8', 'ff' + hex('v1|2026-01-01T10:00:00.000000+00|abcdef01')],
    ['version v2', hex('v2|2026-01-01T10:00:00.000000+00|abcdef01')],
    ['empty timestamp', hex('v1||abcdef01')],
    ['empty id', hex('v1|2026-01-01T10:00:00.000000+00|')],
    ['missing component', hex('v1|2026-01-01T10:00:00.000000+00')],
    ['timestamp without microseconds', hex('v1|2026-01-01T10:00:00+00|abcdef01')],
    ['timestamp with a space', hex('v1|2026-01-01 10:00:00.000000+00|abcdef01')],
    ['impossible timestamp', hex('v1|2026-13-01T10:00:00.000000+00|abcdef01')],
  ];
  for (const [what, cursor] of invalid) {
    it(`rejects a malformed cursor: ${what}`, async () => {
      const err = await asRole(db, dave, (c) => errorOf(c, 'SELECT * FROM df.list_instances(NULL, 2, NULL, $1)', [cursor]));
      expect(err.message).toBe('df.list_instances: invalid after_cursor');
    });
  }

  it('accepts a cursor with a +hh:mm offset', async () => {
    const r = await rows(dave, 'SELECT instance_id FROM df.list_instances(NULL, 10, NULL, $1)', [hex(`v1|2026-01-01T15:30:02.000000+05:30|${'0'.repeat(8)}`)]);
    expect(r.map((x) => x.instance_id)).toEqual(ordered.slice(-2));
  });
});

describe('df.instance_nodes(id): inferred statuses (API §10.4)', () => {
  async function nodes(role: string, id: string): Promise<Record<string, Record<string, unknown>>> {
    const r = await rows(role, 'SELECT * FROM df.instance_nodes($1)', [id]);
    return Object.fromEntries(r.map((x) => [x.node_id as string, x]));
  }
  const brief = (n: Record<string, unknown>) => [n.status, n.inferred_status, n.inferred_status_from_ancestor_id];

  it('Appendix A: all completed, no ancestor, stamps in status_details', async () => {
    const id = await appendixA(alice);
    const r = await rows(alice, 'SELECT * FROM df.instance_nodes($1)', [id]);
    expect(r).toHaveLength(3);
    for (const n of r) {
      expect(brief(n)).toEqual(['completed', 'completed', null]);
      expect(n.status_details).toBe(`{"execution_id": "${id}::1"}`);
      expect(n.updated_at).toBeInstanceOf(Date);
    }
    const root = r.find((n) => n.node_type === 'THEN')!;
    expect(root).toMatchObject({ query: null, result: '{"rows": [{"b": 2}], "row_count": 1}' });
    expect(r.find((n) => n.query === 'SELECT 1 AS a')).toMatchObject({ result_name: 'x', result: '{"rows": [{"a": 1}], "row_count": 1}' });
  });

  it('the untaken IF arm is skipped, from the IF', async () => {
    const id = await start(alice, "df.if('SELECT true', 'SELECT 2', 'SELECT 3')");
    const g = await loadInstance(db, id);
    const s = g.stamp();
    await startNode(db, id, g.root, s);
    await completeNodes(db, id, s, [
      [g.byQuery('SELECT true'), '{"rows":[{"bool":true}],"row_count":1}'],
      [g.byQuery('SELECT 2'), '{"rows":[{"?column?":2}],"row_count":1}'],
    ]);
    await completeNode(db, id, g.root, s, '{"rows":[{"?column?":2}],"row_count":1}');
    await completeInstance(db, id, '{"rows":[{"?column?":2}],"row_count":1}');
    const n = await nodes(alice, id);
    expect(brief(n[g.byQuery('SELECT 3')])).toEqual(['pending', 'skipped', g.root]);
    expect(Object.values(n).filter((x) => x.inferred_status === 'skipped')).toHaveLength(1);
    expect(brief(n[g.byQuery('SELECT 2')])).toEqual(['completed', 'completed', null]);
    expect(n[g.root].query).toMatch(/^\{"condition_node":"[0-9a-f]{8}"\}$/);
  });

  it('the right side of a failed THEN is skipped; the failure is a JSON string', async () => {
    const { id, then, second } = await failedSequence(alice);
    const n = await nodes(alice, id);
    expect(brief(n[second])).toEqual(['pending', 'skipped', then]);
    expect(brief(n[then])).toEqual(['failed', 'failed', null]);
    expect(n[then].result).toBe('"division by zero"');
  });

  it('a RACE loser still running is skipped, from the RACE', async () => {
    const id = await start(alice, "df.race('SELECT ''winner''', df.sleep(30))");
    const g = await loadInstance(db, id);
    const [winner, loser] = [g.byQuery("SELECT 'winner'"), g.byType('SLEEP')[0]];
    await startNode(db, id, g.root, g.stamp());
    await startNode(db, id, loser, `${id}::1::${loser}::1`);
    await completeNodes(db, id, `${id}::1::${winner}::1`, [[winner, '{"rows":[{"?column?":"winner"}],"row_count":1}']]);
    await completeNode(db, id, g.root, g.stamp(), '{"rows":[{"?column?":"winner"}],"row_count":1}');
    await completeInstance(db, id, '{"rows":[{"?column?":"winner"}],"row_count":1}');
    const n = await nodes(alice, id);
    expect(brief(n[loser])).toEqual(['running', 'skipped', g.root]);
    expect(brief(n[winner])).toEqual(['completed', 'completed', null]);
    expect(n[loser].status_details).toBe(`{"execution_id": "${id}::1::${loser}::1"}`);
  });

  it('superseded iterations of a nested loop read pending, from the loop', async () => {
    const id = await start(alice, "'SELECT 0' ~> df.loop('SELECT 1', 'SELECT 2')");
    const g = await loadInstance(db, id);
    const [loop, body, cond] = [g.byType('LOOP')[0], g.byQuery('SELECT 1'), g.byQuery('SELECT 2')];
    const s = g.stamp();
    await startNode(db, id, g.root, s);
    await completeNodes(db, id, s, [[g.byQuery('SELECT 0'), '{"rows":[{"?column?":0}],"row_count":1}']]);
    await startNode(db, id, loop, s);
    await completeNodes(db, id, `${id}::1::${loop}::1`, [
      [body, '{"rows":[{"?column?":1}],"row_count":1}'],
      [cond, '{"rows":[{"?column?":2}],"row_count":1}'],
    ]);
    await startNode(db, id, body, `${id}::1::${loop}::2`);
    const n = await nodes(alice, id);
    expect(brief(n[cond])).toEqual(['completed', 'pending', loop]);
    expect(brief(n[body])).toEqual(['running', 'running', null]);
    expect(brief(n[loop])).toEqual(['running', 'running', null]);
    expect(brief(n[g.root])).toEqual(['running', 'running', null]);
  });

  it('a new root-loop execution supersedes the previous iteration', async () => {
    const { id, loop, then, sql, wait } = await sampler(alice, 'superseded');
    await completeNode(db, id, wait, `${id}::3`, '{"scheduled_for":"x"}');
    await completeNode(db, id, then, `${id}::3`, '{"scheduled_for":"x"}');
    await continueAsNew(db, id, '{"scheduled_for":"x"}');
    await startNode(db, id, loop, `${id}::4`);
    const n = await nodes(alice, id);
    expect(brief(n[loop])).toEqual(['running', 'running', null]);
    for (const x of [then, sql, wait]) expect(brief(n[x])).toEqual(['completed', 'pending', loop]);
  });
});

describe('df.instance_nodes(id, n): loop history (deviation 12)', () => {
  it('returns one row per node for each of the last n executions, newest first', async () => {
    const { id, loop, then, sql, wait } = await sampler(alice, 'history');
    const all = await rows(alice, 'SELECT * FROM df.instance_nodes($1, 30)', [id]);
    expect(all).toHaveLength(12);
    expect(all.map((r) => r.execution_id)).toEqual(['3', '3', '3', '3', '2', '2', '2', '2', '1', '1', '1', '1']);
    const at = (e: string, node: string) => all.find((r) => r.execution_id === e && r.node_id === node)!;
    expect(at('3', sql)).toMatchObject({ node_type: 'SQL', query: SAMPLER_QUERY, status: 'completed' });
    expect(at('3', wait)).toMatchObject({ status: 'running', result: null });
    expect(at('3', loop)).toMatchObject({ node_type: 'LOOP', status: 'running', result: null });
    expect(at('2', then)).toMatchObject({ status: 'completed', result: '{"scheduled_for": "2026-06-04T10:01:00Z"}' });
    expect(at('1', sql).result).toBe(
      '{"rows": [{"query": "SELECT 1", "state": "active", "datname": "postgres", "usename": "franck", "wait_event": "ClientRead", "wait_event_type": "Client", "application_name": "psql"}, ' +
        '{"query": "SELECT pg_sleep(5)", "state": "active", "datname": "postgres", "usename": "franck", "wait_event": "PgSleep", "wait_event_type": "Client", "application_name": "psql"}, ' +
        '{"query": null, "state": "active", "datname": "postgres", "usename": "franck", "wait_event": null, "wait_event_type": null, "application_name": "psql"}], "row_count": 3}',
    );
    expect((at('1', sql).updated_at as Date).toISOString()).toBe('2026-06-04T10:00:00.000Z');
    const two = await rows(alice, 'SELECT DISTINCT execution_id FROM df.instance_nodes($1, 2) ORDER BY 1', [id]);
    expect(two).toEqual([{ execution_id: '2' }, { execution_id: '3' }]);
  });

  it('a node that did not run in an execution reads pending; non-JSON results become JSON strings', async () => {
    const id = await start(alice, "'SELECT 1' ~> 'SELECT 2'");
    const g = await loadInstance(db, id);
    await startNode(db, id, g.root, g.stamp());
    await completeNodes(db, id, g.stamp(), [[g.byQuery('SELECT 1'), 'not json']]);
    const r = await rows(alice, 'SELECT node_id, status, result, updated_at FROM df.instance_nodes($1, 5)', [id]);
    expect(r.find((x) => x.node_id === g.byQuery('SELECT 1'))).toMatchObject({ status: 'completed', result: '"not json"' });
    expect(r.find((x) => x.node_id === g.byQuery('SELECT 2'))).toEqual({ node_id: g.byQuery('SELECT 2'), status: 'pending', result: null, updated_at: null });
    expect((await asRole(db, alice, (c) => errorOf(c, 'SELECT * FROM df.instance_nodes($1, 0)', [id]))).message).toBe('_last_n_executions must be at least 1');
  });

  it("runs the seeds' sampler query", async () => {
    const { id } = await sampler(alice, 'pg-stat-activity-sampler');
    const r = await rows(
      alice,
      `SELECT count(*) AS sessions, r.query, r.wait_event, COUNT(DISTINCT updated_at) AS samples
         FROM df.instance_nodes($1,30) n
        CROSS JOIN LATERAL jsonb_to_recordset(n.result::jsonb -> 'rows') AS r ( datname text, usename text, application_name text, wait_event_type text, wait_event text, state text, query text)
        WHERE n.node_type = 'SQL' AND r.query IS NOT NULL
        GROUP BY r.query, r.wait_event
        ORDER BY samples DESC, r.query, r.wait_event`,
      [id],
    );
    expect(r).toEqual([
      { sessions: '3', query: 'SELECT 1', wait_event: 'ClientRead', samples: '3' },
      { sessions: '2', query: 'SELECT pg_sleep(5)', wait_event: 'PgSleep', samples: '2' },
    ]);
  });
});

describe('df.instance_executions', () => {
  it('lists the executions of a root loop, newest first, with transitions, durations and outputs', async () => {
    const { id } = await sampler(alice, 'executions');
    const r = await rows(alice, 'SELECT * FROM df.instance_executions($1)', [id]);
    expect(r).toEqual([
      { execution_id: '3', status: 'Running', event_count: '5', duration_ms: '0', output: null },
      { execution_id: '2', status: 'ContinuedAsNew', event_count: '7', duration_ms: r[1].duration_ms, output: '{"scheduled_for":"2026-06-04T10:01:00Z"}' },
      { execution_id: '1', status: 'ContinuedAsNew', event_count: '7', duration_ms: r[2].duration_ms, output: '{"scheduled_for":"2026-06-04T10:00:00Z"}' },
    ]);
    expect(await rows(alice, 'SELECT execution_id FROM df.instance_executions($1, 1)', [id])).toEqual([{ execution_id: '3' }]);
    expect((await asRole(db, alice, (c) => errorOf(c, 'SELECT * FROM df.instance_executions($1, 0)', [id]))).message).toBe('limit_count must be at least 1');
    expect(await rows(alice, 'SELECT * FROM df.instance_executions($1, 1000000)', [id])).toHaveLength(3);
  });

  it('a completed instance has one Completed execution; duration is completed - started in ms', async () => {
    const id = await helloWorld(alice);
    await withPg(db, (c) => c.query("UPDATE df._executions SET started_at = '2026-06-04 16:36:37.902+00', completed_at = '2026-06-04 16:36:38.594906+00' WHERE instance_id = $1", [id]));
    expect(await rows(alice, 'SELECT * FROM df.instance_executions($1)', [id])).toEqual([
      { execution_id: '1', status: 'Completed', event_count: '2', duration_ms: '692', output: '{"rows":[{"message":"Hello, durable world!"}],"row_count":1}' },
    ]);
  });

  it('a cancelled instance shows its execution Failed', async () => {
    const id = await start(alice, 'df.sleep(60)');
    await asRole(db, alice, (c) => c.query('SELECT df.cancel($1)', [id]));
    expect(await rows(alice, 'SELECT status, output FROM df.instance_executions($1)', [id])).toEqual([{ status: 'Failed', output: 'Cancelled' }]);
  });
});

describe('df.metrics', () => {
  it('returns engine-wide counts to the superuser', async () => {
    await helloWorld(bob);
    await withPg(db, async (c) => {
      const m = (await c.query('SELECT * FROM df.metrics()')).rows;
      const expected = (
        await c.query(`SELECT (SELECT count(*) FROM df.instances) AS total_instances,
            (SELECT count(*) FROM df.instances WHERE status IN ('pending','running')) AS running_instances,
            (SELECT count(*) FROM df.instances WHERE status = 'completed') AS completed_instances,
            (SELECT count(*) FROM df.instances WHERE status IN ('failed','cancelled')) AS failed_instances,
            (SELECT count(*) FROM df._execution_log) AS total_executions,
            (SELECT count(*) + count(finished_at) FROM df._node_runs) AS total_events`)
      ).rows;
      expect(m).toEqual(expected);
      // Every instance has an execution, with a row or not (df._execution_log).
      expect(Number(m[0].total_executions)).toBeGreaterThanOrEqual(Number(m[0].total_instances));
      expect(Number(m[0].completed_instances)).toBeGreaterThan(0);
      expect(Number(m[0].total_events)).toBeGreaterThan(0);
    });
  });

  it('is denied to an ungranted tenant and counts every tenant for a granted one', async () => {
    const err = await asRole(db, alice, (c) => errorOf(c, 'SELECT * FROM df.metrics()'));
    expect(err).toEqual({ message: 'permission denied for function metrics', code: '42501' });
    const admin = await createTenant(db, 'admin');
    await withPg(db, (c) => c.query('SELECT df.grant_usage($1, with_grant => true)', [admin]));
    const mine = await rows(admin, 'SELECT total_instances FROM df.metrics()');
    const all = await withPg(db, (c) => scalar<string>(c, 'SELECT count(*) FROM df.instances'));
    expect(mine).toEqual([{ total_instances: all }]);
  });
});

describe('df.explain (API §10.8)', () => {
  const explain = async (sql: string, params: unknown[] = [], role = alice): Promise<string> => asRole(db, role, (c) => scalar<string>(c, sql, params));

  const graphs: [string, string[]][] = [
    ["'SELECT 1' ~> 'SELECT 2'", ['SQL:·SELECT·1······', '→·SQL:·SELECT·2····']],
    [
      "'SELECT ''winner''' | df.sleep(30)",
      ['RACE····························', '····║·branch·1:·················', "······├─SQL:·SELECT·'winner'····", '····║·branch·2:·················', '······└─SLEEP·30s···············'],
    ],
    [
      "'SELECT 1' |=> 'a' ~> 'SELECT 2' |=> 'b' ~> df.if('SELECT $a > 0','SELECT ''yes''','SELECT ''no''')",
      [
        "SQL:·SELECT·1·|=>·'a'·········", '→·SQL:·SELECT·2···············', '→·IF··························', '····?·condition:··············',
        '······└─SQL:·SELECT·$a·>·0····', '····✓·then:···················', "······└─SQL:·SELECT·'yes'·····", '····✗·else:···················', "······└─SQL:·SELECT·'no'······",
      ],
    ],
    [
      "'SELECT 1' ~> df.loop('SELECT 2' ~> df.sleep(1), 'SELECT false')",
      ['SQL:·SELECT·1················', '→·LOOP·(while)···············', '····↻·body:··················', '······└─SQL:·SELECT·2········', '······→·SLEEP·1s·············', '····?·while:·················', '······└─SQL:·SELECT·false····'],
    ],
    [
      "'SELECT 0' ~> df.join3('SELECT 1', 'SELECT 2' ~> 'SELECT 2b', df.race('SELECT 3', df.sleep(1)))",
      [
        'SQL:·SELECT·0··················', '→·JOIN·(3)·····················', '····║·branch·1:················', '······├─SQL:·SELECT·1··········', '····║·branch·2:················',
        '······├─SQL:·SELECT·2··········', '······→·SQL:·SELECT·2b·········', '····║·branch·3:················', '······└─RACE···················', '··········║·branch·1:··········',
        '············├─SQL:·SELECT·3····', '··········║·branch·2:··········', '············└─SLEEP·1s·········',
      ],
    ],
  ];
  for (const [dsl, expected] of graphs) {
    it(`graph mode: df.explain(${dsl})`, async () => {
      expect(await explain(`SELECT df.explain(${dsl})`)).toBe(dots(expected));
    });
    it(`DSL mode: df.explain($$ ${dsl} $$)`, async () => {
      expect(await explain('SELECT df.explain($1)', [` ${dsl} `])).toBe(dots(expected));
    });
  }

  it('SQL mode, the cannot-explain text and validation errors are returned as text', async () => {
    expect(await explain("SELECT df.explain('SELECT 1')")).toBe('SQL: SELECT 1    ');
    expect(await explain("SELECT df.explain('  select now()  ')")).toBe('SQL: select now()    ');
    expect(await explain("SELECT df.explain('hello world')")).toBe(
      'Cannot explain input: not a valid Durofut JSON, instance ID, SQL statement, or DSL expression.\nHint: DSL expressions use df.*() functions and operators like ~>, |=>, &, |.',
    );
    expect(await explain(`SELECT df.explain('{"node_type":"NOT_A_NODE"}')`)).toBe(
      "Invalid durable function graph: root: Unknown node_type 'NOT_A_NODE'. Valid types: SQL, THEN, IF, JOIN, LOOP, BREAK, RACE, SLEEP, WAIT_SCHEDULE, HTTP, HTTP_MULTIPART, SIGNAL, RETRY, TIMEOUT, UNDO",
    );
    expect(await explain('SELECT df.explain($1)', ['{"node_type":"THEN","left_node":{"node_type":"SQL","query":"SELECT 1"},"right_node":{"node_type":"NOPE"}}'])).toBe(
      "Invalid durable function graph: root.right: Unknown node_type 'NOPE'. Valid types: SQL, THEN, IF, JOIN, LOOP, BREAK, RACE, SLEEP, WAIT_SCHEDULE, HTTP, HTTP_MULTIPART, SIGNAL, RETRY, TIMEOUT, UNDO",
    );
  });

  it('DSL mode outcomes: NULL, evaluation error, unparsable result', async () => {
    expect(await explain('SELECT df.explain($1)', ["df.seq(NULL, 'SELECT 1') ~> 'SELECT 2'"])).toBe('Expression returned NULL');
    expect(await explain('SELECT df.explain($1)', ["'SELECT 1' ~> no_such_column"])).toBe('Failed to evaluate expression: column "no_such_column" does not exist');
    expect(await explain('SELECT df.explain($1)', ["'not json ~> at all'"])).toMatch(/^Failed to parse Durofut JSON: /);
    // One statement only: a second command cannot ride along.
    expect(await explain('SELECT df.explain($1)', ["'SELECT 1' ~> 'SELECT 2'); DROP TABLE df.vars; SELECT ('x'"])).toMatch(/^Failed to evaluate expression: /);
    expect(await withPg(db, (c) => scalar(c, "SELECT to_regclass('df.vars') IS NOT NULL"))).toBe(true);
  });

  it('instance mode, Appendix A: header, Output line and the padded tree with markers', async () => {
    const id = await appendixA(alice);
    expect(await explain('SELECT df.explain($1)', [id])).toBe(
      `Instance: ${id} (demo)\nStatus:   ✓ Completed\nOutput:   {"rows":[{"b":2}],"row_count":1}\n\n` +
        dots(["SQL:·SELECT·1·AS·a·|=>·'x'·✓····", '→·SQL:·SELECT·$x·+·1·AS·b·✓·····']),
    );
    expect(await explain('SELECT df.explain($1)', [`  ${id.toUpperCase()}  `])).toContain(`Instance: ${id} (demo)`);
  });

  it('instance mode, a failed sequence: ✗ and ⊘', async () => {
    const { id } = await failedSequence(alice);
    expect(await explain('SELECT df.explain($1)', [id])).toBe(
      `Instance: ${id}\nStatus:   ✗ Failed\nOutput:   division by zero\n\n` + dots(['SQL:·SELECT·1/0·✗·····', '→·SQL:·SELECT·42·⊘····']),
    );
  });

  it('instance mode: hello world (seed 000), a running loop, a pending instance, a cancelled one, a long output', async () => {
    const hello = await helloWorld(alice);
    expect(await explain('SELECT df.explain($1)', [hello])).toBe(
      `Instance: ${hello}\nStatus:   ✓ Completed\nOutput:   {"rows":[{"message":"Hello, durable world!"}],"row_count":1}\n\nSQL: SELECT 'Hello, durable world!' AS message ✓    `,
    );
    const { id } = await sampler(alice, 'explain-loop');
    const text = await explain('SELECT df.explain($1)', [id]);
    expect(text.split('\n').slice(0, 3)).toEqual([`Instance: ${id} (explain-loop)`, 'Status:   ⏳ Running', '']);
    expect(text).toContain('LOOP (infinite) ⏳');
    expect(text).toContain("WAIT '*/1 * * * *' ⏳");
    const pending = await start(alice, "'SELECT 1'");
    expect(await explain('SELECT df.explain($1)', [pending])).toBe(`Instance: ${pending}\nStatus:   ⏳ Running\n\nSQL: SELECT 1 ○    `);
    await asRole(db, alice, (c) => c.query('SELECT df.cancel($1)', [pending]));
    expect(await explain('SELECT df.explain($1)', [pending])).toBe(`Instance: ${pending}\nStatus:   ✗ Failed\nOutput:   Cancelled\n\nSQL: SELECT 1 ○    `);
    const long = await start(alice, "'SELECT 1'");
    const g = await loadInstance(db, long);
    const big = `{"rows":[{"x":"${'é'.repeat(40)}"}],"row_count":1}`;
    await completeNodes(db, long, g.stamp(), [[g.root, big]]);
    await completeInstance(db, long, big);
    expect((await explain('SELECT df.explain($1)', [long])).split('\n')[2]).toBe(`Output:   {"rows":[{"x":"${'é'.repeat(21)}...`);
  });

  it("instance mode: not found, and no nodes", async () => {
    expect(await explain("SELECT df.explain('deadbeef')")).toBe("Instance 'deadbeef' not found");
    const id = await start(alice, "'SELECT 1'");
    await withPg(db, (c) =>
      withTransaction(
        c,
        async () => {
          await c.query('DELETE FROM df.nodes WHERE instance_id = $1', [id]);
          expect(await scalar(c, 'SELECT df.explain($1)', [id])).toBe(`No nodes found for instance '${id}'`);
        },
        { rollback: true },
      ),
    );
  });
});

describe('df.prune_executions (deviation 11)', () => {
  const OLD = '2026-01-01T00:00:00Z';
  let erin: string;
  beforeAll(async () => {
    erin = await createTenant(db, 'erin');
  });
  const counts = (id: string) =>
    withPg(db, async (c) =>
      (
        await c.query(
          `SELECT (SELECT count(*) FROM df.instances WHERE id = $1)::int AS instances, (SELECT count(*) FROM df.nodes WHERE instance_id = $1)::int AS nodes,
                  (SELECT count(*) FROM df._executions WHERE instance_id = $1)::int AS executions, (SELECT count(*) FROM df._node_runs WHERE instance_id = $1)::int AS runs`,
          [id],
        )
      ).rows[0],
    );

  it("deletes a running loop's old iterations by label, never its current execution", async () => {
    const { id } = await sampler(erin, 'pruned-sampler', [OLD, OLD, new Date().toISOString()]);
    expect(await counts(id)).toEqual({ instances: 1, nodes: 4, executions: 3, runs: 12 });
    const r = await rows(erin, "SELECT * FROM df.prune_executions(instance_id => 'pruned-sampler', completed_before => now() - interval '7 days')");
    expect(r).toEqual([{ instances_processed: '1', executions_deleted: '2', events_deleted: '14' }]);
    expect(await counts(id)).toEqual({ instances: 1, nodes: 4, executions: 1, runs: 4 });
    expect(await rows(erin, 'SELECT execution_id, status FROM df.instance_executions($1)', [id])).toEqual([{ execution_id: '3', status: 'Running' }]);
    // Even an everything-is-old cut-off leaves the running execution alone.
    await withPg(db, (c) => c.query("UPDATE df._executions SET started_at = '2020-01-01' WHERE instance_id = $1", [id]));
    expect(await rows(erin, 'SELECT * FROM df.prune_executions($1, now())', [id])).toEqual([{ instances_processed: '1', executions_deleted: '0', events_deleted: '0' }]);
    expect(await counts(id)).toEqual({ instances: 1, nodes: 4, executions: 1, runs: 4 });
  });

  it('deletes ended instances older than the cut-off and keeps recent ones', async () => {
    const old = await helloWorld(erin, 'ended');
    await withPg(db, (c) => c.query('UPDATE df.instances SET completed_at = $2, updated_at = $2 WHERE id = $1', [old, OLD]));
    const oldFailed = (await failedSequence(erin)).id;
    await withPg(db, (c) => c.query("UPDATE df.instances SET label = 'ended', updated_at = $2 WHERE id = $1", [oldFailed, OLD]));
    const recent = await helloWorld(erin, 'ended');
    // A failed instance that is not old keeps its (old, finished) current execution.
    const recentFailed = (await failedSequence(erin)).id;
    await withPg(db, (c) => c.query("UPDATE df.instances SET label = 'ended' WHERE id = $1", [recentFailed]));
    await withPg(db, (c) => c.query('UPDATE df._executions SET completed_at = $2 WHERE instance_id = $1', [recentFailed, OLD]));
    await withPg(db, (c) => c.query("INSERT INTO df._signals (instance_id, signal_name, payload, submitted_by) SELECT id, 'go', '{}', submitted_by FROM df.instances WHERE id = $1", [old]));

    const r = await rows(erin, "SELECT * FROM df.prune_executions('ended', now() - interval '7 days')");
    expect(r).toEqual([{ instances_processed: '4', executions_deleted: '2', events_deleted: String(2 + 4) }]);
    expect(await counts(old)).toEqual({ instances: 0, nodes: 0, executions: 0, runs: 0 });
    expect(await counts(oldFailed)).toEqual({ instances: 0, nodes: 0, executions: 0, runs: 0 });
    expect(await withPg(db, (c) => scalar(c, 'SELECT count(*)::int FROM df._signals WHERE instance_id = $1', [old]))).toBe(0);
    expect(await counts(recent)).toEqual({ instances: 1, nodes: 1, executions: 1, runs: 1 });
    expect(await counts(recentFailed)).toEqual({ instances: 1, nodes: 3, executions: 1, runs: 2 });
  });

  it("refuses another tenant's instances", async () => {
    const old = await helloWorld(erin, 'erins');
    await withPg(db, (c) => c.query('UPDATE df.instances SET completed_at = $2, updated_at = $2 WHERE id = $1', [old, OLD]));
    expect(await rows(bob, 'SELECT * FROM df.prune_executions($1, now())', [old])).toEqual([{ instances_processed: '0', executions_deleted: '0', events_deleted: '0' }]);
    expect(await rows(bob, "SELECT * FROM df.prune_executions('erins', now())")).toEqual([{ instances_processed: '0', executions_deleted: '0', events_deleted: '0' }]);
    // The deleting helper re-checks ownership itself.
    const err = await asRole(db, bob, (c) => errorOf(c, 'SELECT * FROM df._prune_executions(ARRAY[$1], now())', [old]));
    expect(err).toEqual({ message: `df.prune_executions: permission denied for instance ${old}`, code: '42501' });
    expect(await counts(old)).toEqual({ instances: 1, nodes: 1, executions: 1, runs: 1 });
  });

  it('works from a workflow step as the owning role, and rejects NULL arguments', async () => {
    const old = await helloWorld(erin, 'step-pruned');
    await withPg(db, (c) => c.query('UPDATE df.instances SET completed_at = $2, updated_at = $2 WHERE id = $1', [old, OLD]));
    // A step connection authenticates as the submitting role with df.in_workflow = true.
    const r = await asRole(db, erin, async (c) => {
      await c.query("SET df.in_workflow = 'true'");
      return (await c.query(`SELECT * FROM df.prune_executions(instance_id => 'step-pruned', completed_before => NOW() - INTERVAL '7 days')`)).rows;
    });
    expect(r).toEqual([{ instances_processed: '1', executions_deleted: '1', events_deleted: '2' }]);
    expect(await counts(old)).toEqual({ instances: 0, nodes: 0, executions: 0, runs: 0 });
    await asRole(db, erin, async (c) => {
      expect((await errorOf(c, 'SELECT * FROM df.prune_executions(NULL, now())')).message).toBe('df.prune_executions: instance_id cannot be NULL');
      expect((await errorOf(c, "SELECT * FROM df.prune_executions('x', NULL)")).message).toBe('df.prune_executions: completed_before cannot be NULL');
    });
  });
});

describe('info helpers (API §10.9)', () => {
  it('df.version() is the package version and a UTC build time', async () => {
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string };
    const v = await asRole(db, alice, (c) => scalar<string>(c, 'SELECT df.version()'));
    expect(v).toMatch(/^\S+ \(built \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\)$/);
    expect(v.startsWith(`${pkg.version} (built `)).toBe(true);
  });

  it('df.target_database() reads pg_durable.database, else the current database', async () => {
    await asRole(db, alice, async (c) => {
      expect(await scalar(c, 'SELECT df.target_database()')).toBe(db);
      await c.query("SET pg_durable.database = 'analytics'");
      expect(await scalar(c, 'SELECT df.target_database()')).toBe('analytics');
    });
  });
});

describe('tenant isolation', () => {
  it("bob sees nothing of alice's instances in any monitoring function", async () => {
    const id = await appendixA(alice);
    const loop = (await sampler(alice, 'isolated')).id;
    const mine = await helloWorld(bob, 'bobs');
    const listed = (await rows(bob, 'SELECT instance_id FROM df.list_instances(NULL, 1000)')).map((r) => r.instance_id);
    expect(listed).toContain(mine);
    expect(listed).not.toContain(id);
    expect((await rows(bob, 'SELECT instance_id FROM df.list_instances(NULL, 1000, NULL)')).map((r) => r.instance_id)).not.toContain(loop);
    expect(await rows(bob, "SELECT * FROM df.list_instances(NULL, 10, 'isolated')")).toEqual([]);
    for (const target of [id, loop]) {
      expect(await rows(bob, 'SELECT * FROM df.instance_info($1)', [target])).toEqual([]);
      expect(await rows(bob, 'SELECT * FROM df.instance_nodes($1)', [target])).toEqual([]);
      expect(await rows(bob, 'SELECT * FROM df.instance_nodes($1, 30)', [target])).toEqual([]);
      expect(await rows(bob, 'SELECT * FROM df.instance_executions($1)', [target])).toEqual([]);
      expect(await asRole(db, bob, (c) => scalar(c, 'SELECT df.explain($1)', [target]))).toBe(`Instance '${target}' not found`);
      expect(await rows(bob, "SELECT * FROM df.prune_executions($1, now() + interval '1 day')", [target])).toEqual([
        { instances_processed: '0', executions_deleted: '0', events_deleted: '0' },
      ]);
    }
    expect(await rows(alice, 'SELECT instance_id FROM df.instance_info($1)', [id])).toEqual([{ instance_id: id }]);
  });
});

describe('terminal commands (pg-durable status/list/explain/watch)', () => {
  const cli = (args: string[], role: string): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        [fileURLToPath(new URL('../../dist/cli.js', import.meta.url)), ...args],
        { env: { ...process.env, DATABASE_URL: url(db, role) }, timeout: 30_000 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  it('explain <json> --format mermaid renders the graph', async () => {
    const json = await asRole(db, alice, (c) =>
      scalar<string>(c, "SELECT ('SELECT 1' |=> 'n' ~> (('SELECT 2' & 'SELECT 3') ~> df.loop(df.if('SELECT $n > 0', 'SELECT 4', df.break()), 'SELECT true')))::text"),
    );
    const r = await cli(['explain', json, '--format', 'mermaid'], alice);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(renderMermaid(displayTree(parseNodeLenient(JSON.parse(json)))) + '\n');
    expect(r.stdout).toMatch(/^flowchart TD\n/);
    expect(r.stdout).toContain('-->|then|');
    expect(r.stdout).toContain('-->|body|');
    expect(r.stdout).toContain('-->|branch 2|');
  });

  it('explain <id> renders text, mermaid with statuses and dot; DSL input is evaluated by the database', async () => {
    const id = await appendixA(alice);
    const text = await cli(['explain', id], alice);
    expect(text.code).toBe(0);
    expect(text.stdout).toBe((await asRole(db, alice, (c) => scalar<string>(c, 'SELECT df.explain($1)', [id]))) + '\n');
    const mermaid = await cli(['explain', id, '--format=mermaid'], alice);
    expect(mermaid.stdout).toContain('classDef completed');
    expect(mermaid.stdout).toMatch(/class n_[0-9a-f]{8} completed/);
    const dot = await cli(['explain', "'SELECT 1' ~> 'SELECT 2'", '--format', 'dot'], alice);
    expect(dot.stdout).toMatch(/^digraph workflow \{/);
    expect(dot.stdout).toContain('label="SQL: SELECT 2"');
    const hidden = await cli(['explain', id, '--format', 'mermaid'], bob);
    expect(hidden).toMatchObject({ code: 1, stderr: `Instance '${id}' not found\n` });
    expect((await cli(['explain', 'x', '--format', 'png'], alice)).code).toBe(2);
  });

  it('list prints a psql-like table of the caller\'s instances', async () => {
    const frank = await createTenant(db, 'frank');
    const a = await helloWorld(frank, 'first');
    const b = await start(frank, "'SELECT 1'", 'second');
    const r = await cli(['list'], frank);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ instance_id \|\s+label\s+\|\s+status\s+\| execution_count \|\s+created_at\s+\|\s+completed_at\s+\|\s+output$/);
    expect(lines[1]).toMatch(/^-+\+-+\+/);
    expect(lines[2]).toMatch(new RegExp(`^ ${b}\\s+\\| second \\| pending\\s+\\|\\s+1 \\|`));
    expect(lines[3]).toMatch(new RegExp(`^ ${a}\\s+\\| first\\s+\\| completed \\|\\s+1 \\|.*\\| \\{"rows":\\[\\{"message":"Hello, durable world!"\\}\\],"row_count":1\\}$`));
    expect(lines[4]).toBe('(2 rows)');
    const filtered = await cli(['list', '--status', 'completed'], frank);
    expect(filtered.stdout).toContain(a);
    expect(filtered.stdout).not.toContain(b);
    const paged = await cli(['list', '--limit', '1'], frank);
    expect(paged.stdout).toMatch(/\(1 row\)\nMore instances: pg-durable list --limit 1 --after [0-9a-f]+\n$/);
    const after = paged.stdout.match(/--after ([0-9a-f]+)/)![1];
    expect((await cli(['list', '--limit', '1', '--after', after], frank)).stdout).toContain(a);
    expect((await cli(['list'], bob)).stdout).not.toContain(a);
  });

  it('status and watch', async () => {
    const done = await appendixA(alice);
    const status = await cli(['status', done], alice);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^instance_id\\s+\\| ${done}\\nlabel\\s+\\| demo\\nstatus\\s+\\| completed\\ncurrent_execution_id \\| 1\\n`));
    expect((await cli(['status', 'deadbeef'], alice)).code).toBe(1);
    const watched = await cli(['watch', done, '--interval', '0.1'], alice);
    expect(watched.code).toBe(0);
    expect(watched.stdout).not.toContain('\x1b[');
    expect(watched.stdout).toBe((await asRole(db, alice, (c) => scalar<string>(c, 'SELECT df.explain($1)', [done]))) + '\n');
    const failed = (await failedSequence(alice)).id;
    expect((await cli(['watch', failed], alice)).code).toBe(1);
    // A running instance is redrawn until it ends.
    const running = await start(alice, "'SELECT 1'");
    const g = await loadInstance(db, running);
    const watcher = spawn(process.execPath, [fileURLToPath(new URL('../../dist/cli.js', import.meta.url)), 'watch', running, '--interval', '0.2'], {
      env: { ...process.env, DATABASE_URL: url(db, alice) },
    });
    let out = '';
    watcher.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number>((r) => watcher.on('exit', (code) => r(code ?? 1)));
    // Complete the instance only once the watcher has drawn it running (its start-up time varies with load).
    for (let i = 0; i < 300 && !out.includes('Status:   ⏳ Running'); i++) await new Promise((r) => setTimeout(r, 50));
    await completeNodes(db, running, g.stamp(), [[g.root, '{"rows":[],"row_count":0}']]);
    await completeInstance(db, running, '{"rows":[],"row_count":0}');
    const w = { code: await exited, stdout: out };
    expect(w.code).toBe(0);
    expect(w.stdout).toContain('Status:   ⏳ Running');
    expect(w.stdout).toContain('Status:   ✓ Completed');
  });

  it('--help works for every command', async () => {
    for (const name of ['status', 'list', 'explain', 'watch']) {
      const r = await cli([name, '--help'], alice);
      expect([name, r.code]).toEqual([name, 0]);
      expect(r.stdout).toMatch(new RegExp(`^usage: pg-durable ${name}`));
    }
  });
});
