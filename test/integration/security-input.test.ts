/**
 * Hostile and malformed input (docs/SECURITY.md). First the table of security-input.cases.ts:
 * every df.* function and table given NULLs, empty and huge strings, deeply nested JSON, unknown
 * node types, invalid cron, quotes and injections: a clear error and not one new row. Then the
 * worker: hand-written graphs (cycles, shared children, dangling references, broken configs, too
 * deep, too many nodes, too many bytes), a non-JSON signal payload, and results too large or too
 * deeply nested to store fail their instance or node with a message, and the worker keeps going.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, errorOf, freshDatabase, scalar, url } from '../support/db';
import { connectAs, tableCounts } from '../support/security';
import { startWorker, waitFor, type WorkerHandle } from '../support/worker';
import { BAD_INPUTS, renderBadInputList } from './security-input.cases';

let db: string;
let tenant: string;
let admin: pg.Client;
let user: pg.Client;
let pending: string;
let cancelled: string;

beforeAll(async () => {
  db = await freshDatabase('secinput');
  tenant = await createTenant(db, 'hostile', { http: true });
  admin = await connectAs(url(db));
  user = await connectAs(url(db, tenant));
  pending = await scalar<string>(user, "SELECT df.start(df.wait_for_signal('go') ~> 'SELECT 1')");
  cancelled = await scalar<string>(user, "SELECT df.start('SELECT 1')");
  await user.query('SELECT df.cancel($1)', [cancelled]);
});

afterAll(async () => {
  await user?.end();
  await admin?.end();
});

const ids = (s: string) => s.replace(/:P/g, pending).replace(/:C/g, cancelled);

describe(`bad input: ${BAD_INPUTS.length} cases, each a clear error and no new rows`, () => {
  BAD_INPUTS.forEach((c, i) => {
    it(`#${i + 1} ${c.target}: ${c.input}`, async () => {
      const before = await tableCounts(admin);
      if (c.before) await user.query(c.before);
      let err;
      try {
        err = await errorOf(user, ids(c.sql), c.params ? c.params() : []);
      } finally {
        if (c.before) await user.query('RESET ALL');
      }
      expect(err.message).toContain(ids(c.error));
      expect(await tableCounts(admin)).toEqual(before);
    });
  });

  it('the tenant session still works after all of that', async () => {
    expect(await scalar(user, 'SELECT df.status($1)', [pending])).toBe('pending');
    expect(await scalar(user, "SELECT df.getvar('planted')")).toBeNull();
  });

  it('docs/SECURITY.md lists exactly these cases (UPDATE_SECURITY_DOC=1 rewrites the list)', () => {
    const path = 'docs/SECURITY.md';
    const doc = readFileSync(path, 'utf8');
    const begin = '<!-- bad-input:begin (generated from test/integration/security-input.cases.ts) -->';
    const end = '<!-- bad-input:end -->';
    const i = doc.indexOf(begin);
    const j = doc.indexOf(end);
    expect(i).toBeGreaterThanOrEqual(0);
    expect(j).toBeGreaterThan(i);
    const want = `${begin}\n${renderBadInputList()}\n${end}`;
    if (process.env.UPDATE_SECURITY_DOC === '1') writeFileSync(path, doc.slice(0, i) + want + doc.slice(j + end.length));
    expect(readFileSync(path, 'utf8').slice(i, i + want.length)).toBe(want);
    expect(BAD_INPUTS.length).toBeGreaterThanOrEqual(100);
  });
});

describe('the worker survives bad graphs, payloads and results', () => {
  let worker: WorkerHandle;
  const hex = () => randomBytes(4).toString('hex');

  interface Row {
    id: string;
    type: string;
    query?: string | null;
    left?: string;
    right?: string;
  }

  /** Writes an instance and its node rows by hand, as a tenant may (column grants), in one transaction. */
  async function handGraph(rows: Row[], root = rows[0].id): Promise<string> {
    const id = hex();
    await user.query('BEGIN');
    try {
      await user.query("INSERT INTO df.instances (id, root_node, submitted_by) VALUES ($1, $2, quote_ident(current_user)::regrole)", [id, root]);
      for (const r of rows) {
        await user.query(
          `INSERT INTO df.nodes (id, instance_id, node_type, query, left_node, right_node, submitted_by)
           VALUES ($1, $2, $3, $4, $5, $6, quote_ident(current_user)::regrole)`,
          [r.id, id, r.type, r.query ?? null, r.left ?? null, r.right ?? null],
        );
      }
      await user.query('COMMIT');
    } catch (err) {
      await user.query('ROLLBACK');
      throw err;
    }
    return id;
  }

  const graphs: [string, () => Promise<string>, string][] = [];
  const add = (what: string, make: () => Promise<string>, message: string) => graphs.push([what, make, message]);
  const s = (id: string, query = 'SELECT 1'): Row => ({ id, type: 'SQL', query });
  add('a THEN whose left child is itself', () => handGraph([{ id: 'a0000001', type: 'THEN', left: 'a0000001', right: 'a0000002' }, s('a0000002')]),
    "Invalid node graph: node 'a0000001' is referenced more than once (cycle or shared child)");
  add('a cycle through an ancestor', () => handGraph([{ id: 'b0000001', type: 'THEN', left: 'b0000002', right: 'b0000003' }, { id: 'b0000002', type: 'THEN', left: 'b0000001', right: 'b0000004' }, s('b0000003'), s('b0000004')]),
    "Invalid node graph: node 'b0000001' is referenced more than once (cycle or shared child)");
  add('a child shared by both branches', () => handGraph([{ id: 'c0000001', type: 'JOIN', left: 'c0000002', right: 'c0000002' }, s('c0000002')]),
    "Invalid node graph: node 'c0000002' is referenced more than once (cycle or shared child)");
  add('an IF whose condition is the IF itself', () => handGraph([{ id: 'd0000001', type: 'IF', query: '{"condition_node":"d0000001"}', left: 'd0000002', right: 'd0000003' }, s('d0000002'), s('d0000003')]),
    "Invalid node graph: node 'd0000001' is referenced more than once (cycle or shared child)");
  add('a JOIN extra branch that does not exist', () => handGraph([{ id: 'e0000001', type: 'JOIN', query: '{"extra_nodes":["0000dead"]}', left: 'e0000002', right: 'e0000003' }, s('e0000002'), s('e0000003')]),
    "Invalid node graph: node '0000dead' referenced by 'e0000001' (extra_nodes) not found");
  add('a SIGNAL config that is not JSON', () => handGraph([{ id: 'f0000001', type: 'SIGNAL', query: 'not json' }]),
    'Invalid durable function graph: root: query in SIGNAL must be valid JSON config');
  add('a SLEEP of text', () => handGraph([{ id: 'f0000002', type: 'SLEEP', query: 'soon' }]),
    "Invalid durable function graph: root: SLEEP query must be a non-negative integer number of seconds, got 'soon'");
  add('an HTTP config that is JSON null', () => handGraph([{ id: 'f0000003', type: 'HTTP', query: 'null' }]),
    'Invalid durable function graph: root: query in HTTP must be a JSON config object');
  add('an invalid cron in WAIT_SCHEDULE', () => handGraph([{ id: 'f0000004', type: 'WAIT_SCHEDULE', query: '{"cron_expr":"whenever"}' }]),
    "Invalid cron expression 'whenever'");
  add('a BREAK config that is not JSON', () => handGraph([{ id: 'f0000005', type: 'BREAK', query: 'stop' }]),
    'Invalid durable function graph: root: query in BREAK must be valid JSON config');
  add('an IF with a broken if_rows config', () => handGraph([{ id: 'f0000006', type: 'IF', query: '{"condition_type":', left: 'f0000007', right: 'f0000008' }, s('f0000007'), s('f0000008')]),
    'Invalid durable function graph: root: query in IF must be valid JSON config');
  add('a chain 300 levels deep', async () => {
    const rows: Row[] = [];
    for (let i = 0; i < 300; i++) rows.push({ id: `1${String(i).padStart(7, '0')}`, type: 'THEN', left: `1${String(i + 1).padStart(7, '0')}`, right: `2${String(i).padStart(7, '0')}` }, s(`2${String(i).padStart(7, '0')}`));
    rows.push(s(`1${String(300).padStart(7, '0')}`));
    return handGraph(rows);
  }, 'Graph exceeds maximum nesting depth of 256');
  add('10 001 nodes', async () => {
    const id = await handGraph([s('30000000')]);
    await user.query(
      `INSERT INTO df.nodes (id, instance_id, node_type, query, submitted_by)
       SELECT lpad(to_hex(g), 8, '0'), $1, 'SQL', 'SELECT 1', quote_ident(current_user)::regrole FROM generate_series(1, 10000) g`,
      [id],
    );
    return id;
  }, '10001 nodes exceed the maximum node count of 10000');
  add('17 MB of SQL in one node', () => handGraph([s('40000000', `SELECT '${'x'.repeat(17 * 1024 * 1024)}'`)]), 'more than the 16777216 a worker loads');

  const failed: Record<string, string> = {};

  beforeAll(async () => {
    // Written before the worker starts, so it claims them all at once.
    for (const [what, make] of graphs) failed[what] = await make();
    worker = startWorker(url(db), { extraArgs: ['--max-result-bytes', '1048576'] });
  });

  afterAll(async () => {
    await worker?.stop();
  });

  for (const [what, , message] of graphs) {
    it(`hand-written graph, ${what}: the instance fails with a message and no step runs`, async () => {
      const id = failed[what];
      expect(await waitFor(admin, id)).toBe('failed');
      const output = await scalar<string>(admin, 'SELECT output FROM df._executions WHERE instance_id = $1', [id]);
      expect(output).toContain(`Instance ${id}: invalid graph: `);
      expect(output).toContain(message);
      expect(await scalar(admin, "SELECT count(*)::int FROM df.nodes WHERE instance_id = $1 AND status <> 'pending'", [id])).toBe(0);
    });
  }

  const start = (expr: string) => scalar<string>(user, `SELECT df.start(${expr})`);
  const failureOf = (id: string) => scalar<string>(admin, "SELECT result #>> '{}' FROM df.nodes WHERE instance_id = $1 AND node_type = 'SQL' AND status = 'failed'", [id]);

  it('a non-JSON payload written straight into the inbox is delivered as a JSON string', async () => {
    const id = await start("df.wait_for_signal('go') |=> 'sig' ~> 'SELECT $sig::jsonb->>''data'' AS d, $sig::jsonb->''timed_out'' AS t'");
    await user.query("INSERT INTO df._signals (instance_id, signal_name, payload) VALUES ($1, 'go', 'not JSON at all')", [id]);
    expect(await waitFor(user, id)).toBe('completed');
    expect(await scalar(user, 'SELECT df.result($1)', [id])).toBe('{"rows": [{"d": "not JSON at all", "t": false}], "row_count": 1}');
  });

  it('a result over --max-result-bytes fails the node and rolls the statement back', async () => {
    await user.query('CREATE TABLE public.big_ledger (x text)');
    const one = await start(`'SELECT repeat(''x'', 2000000) AS big'`);
    const many = await start(`'SELECT g, repeat(''y'', 100) AS pad FROM generate_series(1, 50000) g'`);
    const written = await start(`'INSERT INTO public.big_ledger SELECT repeat(''z'', 2000000) RETURNING x'`);
    for (const id of [one, many, written]) expect(await waitFor(user, id)).toBe('failed');
    expect(await failureOf(one)).toBe(
      'Step result too large: 2000035 bytes, the limit is 1048576 bytes (--max-result-bytes / PG_DURABLE_MAX_RESULT_BYTES); the statement was rolled back. Return fewer rows or aggregate in SQL.',
    );
    expect(await failureOf(many)).toContain('Step result too large: more than 2097152 bytes, the limit is 1048576 bytes');
    expect(await failureOf(written)).toContain('the statement was rolled back');
    expect(await scalar(user, 'SELECT count(*)::int FROM public.big_ledger')).toBe(0);
  });

  it('a result nested deeper than the converter can walk fails the node, rolled back', async () => {
    const id = await start(`'SELECT (repeat(''['', 8000) || repeat('']'', 8000))::jsonb AS j'`);
    expect(await waitFor(user, id)).toBe('failed');
    expect(await failureOf(id)).toBe("Failed to decode column 'j' as JSON: Maximum call stack size exceeded");
  });

  it('after all of it the worker is alive, healthy and still runs work', async () => {
    const id = await start(`'SELECT 42 AS answer'`);
    expect(await waitFor(user, id)).toBe('completed');
    expect(worker.proc.exitCode).toBeNull();
    expect(worker.logs.filter((l) => String(l.msg).startsWith('instance run failed unexpectedly'))).toEqual([]);
  });
});
