/**
 * The worker's hot path (docs/PERFORMANCE.md): a claim writes only the queue and returns what a
 * run needs for instances never claimed before; an instance reads 'running' from its first
 * durable write; a step is two round trips that leave the connection reset (one, chained:
 * worker-chained-steps.test.ts).
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PipelineError, pipelined } from '../../src/worker/pipeline';
import { jsonbCompactText } from '../../src/core/jsonb-text';
import { CLAIM_SQL, Store } from '../../src/worker/store';
import { asRole, createTenant, freshDatabase, scalar, url, withPg } from '../support/db';
import { connectAs } from '../support/security';
import { eventually, metricsAddress, startWorker, waitFor } from '../support/worker';

let db: string;
let alice: string;
let store: Store;
const epoch = '00000000-0000-4000-8000-000000000001';

beforeAll(async () => {
  db = await freshDatabase('hot_path');
  alice = await createTenant(db, 'alice');
  store = new Store(url(db), 2, () => false);
});
afterAll(async () => {
  await store.end();
});

const start = (sql: string) => asRole(db, alice, (c) => scalar<string>(c, 'SELECT df.start($1::text)', [sql]));
const status = (id: string) => withPg(db, (c) => scalar<string>(c, 'SELECT status FROM df.instances WHERE id = $1', [id]));
/** Starts one instance per statement and claims them: their ids and each one's lease. */
async function startClaimed(...sqls: string[]) {
  const ids: string[] = [];
  for (const sql of sqls) ids.push(await start(sql));
  const claims = await store.claim(epoch, 10, 30);
  return { ids, lease: (id: string) => claims.find((x) => x.instanceId === id)! };
}

describe('a claim', () => {
  it('leaves the instance pending and returns its graph, runs and role with the lease', async () => {
    const id = await start('SELECT 1 AS a');
    const claims = await store.claim(epoch, 10, 30);
    const c = claims.find((x) => x.instanceId === id)!;
    expect(c).toBeDefined();
    expect(await status(id)).toBe('pending');
    expect(c.loaded?.instance).toMatchObject({ id, status: 'pending', role: alice, canLogin: true, canUse: true, nodeCount: 1 });
    expect(c.loaded?.nodes).toEqual([expect.objectContaining({ node_type: 'SQL', query: 'SELECT 1 AS a' })]);
    expect(c.loaded?.history).toEqual([]);
    expect(c.loaded?.cancelRequest).toBeNull();
  });

  it('of an instance claimed before (a takeover) loads nothing: an earlier run may still commit', async () => {
    const id = await start('SELECT 3');
    expect((await store.claim(epoch, 10, 30)).find((x) => x.instanceId === id)?.loaded).toBeDefined();
    // The lease is handed back (or expires): the next claim must read after it commits.
    await store.release(epoch, [id]);
    const again = (await store.claim(epoch, 10, 30)).find((x) => x.instanceId === id);
    expect(again).toBeDefined();
    expect(again!.loaded).toBeUndefined();
    expect((await store.loadInstance(id, again!.executionId)).instance?.id).toBe(id);
  });

  it('commits without waiting for its WAL flush: a lease is a fencing token, the checkpoint flushes', async () => {
    const id = await start('SELECT 5');
    const setting = await withPg(db, async (c) => {
      await c.query('BEGIN');
      await c.query('SET LOCAL synchronous_commit = on'); // the worker's server default
      const r = await c.query(CLAIM_SQL, [epoch, 30, 10, 10000, 16777216]);
      const s = await scalar<string>(c, 'SHOW synchronous_commit');
      await c.query('ROLLBACK');
      expect(r.rows.map((x) => x.instance_id)).toContain(id);
      return s;
    });
    expect(setting).toBe('off');
  });

  it('reads by key whatever the tables hold: its generic plan scans neither the queue nor the instances', async () => {
    // The worker runs the claim as a generic plan. The former join shapes let that plan hash-join
    // a sequential scan of df._work and of all of df.instances at every claim.
    const plan = await withPg(db, async (c) => {
      await c.query('SET plan_cache_mode = force_generic_plan');
      await c.query(`PREPARE claim(uuid, int, int, int, bigint) AS ${CLAIM_SQL}`);
      const r = await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) EXECUTE claim('${epoch}', 30, 10, 10000, 16777216)`);
      return r.rows.map((x) => x['QUERY PLAN']).join('\n');
    });
    expect(plan).toContain('_work_pkey');
    expect(plan).not.toMatch(/Seq Scan on (_work|instances|nodes|_node_runs)\b/);
  });

  it('reads a compensate request by key however many signals were consumed', async () => {
    // The request is read whether consumed or not, which the pending-signals index cannot serve:
    // the claim scanned every signal of the database for each instance it claimed.
    const id = await start('SELECT 6');
    const plan = await withPg(db, async (c) => {
      await c.query('BEGIN');
      await c.query("SET LOCAL session_replication_role = 'replica'"); // no wake-up trigger per row
      await c.query(`INSERT INTO df._signals (instance_id, signal_name, payload, consumed_by)
                     SELECT $1, 'tick', '{}', 'consumed' FROM generate_series(1, 20000)`, [id]);
      await c.query('ANALYZE df._signals');
      await c.query('SET LOCAL plan_cache_mode = force_generic_plan');
      await c.query(`PREPARE claim_signals(uuid, int, int, int, bigint) AS ${CLAIM_SQL}`);
      const r = await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) EXECUTE claim_signals('${epoch}', 30, 10, 10000, 16777216)`);
      await c.query('ROLLBACK');
      return r.rows.map((x) => x['QUERY PLAN']).join('\n');
    });
    expect(plan).toContain('idx_signals_instance');
    expect(plan).not.toMatch(/Seq Scan on _signals\b/);
  });
});

describe('deleting an instance', () => {
  it('deletes its queue row, executions and node runs (no foreign keys on the hot path)', async () => {
    const id = await start('SELECT 4');
    const c = (await store.claim(epoch, 10, 30)).find((x) => x.instanceId === id)!;
    await store.commit(id, c.token, [{ node: c.loaded!.nodes[0].id, stamp: `${id}::1`, status: 'running' }], 'running');
    const count = (table: string) => withPg(db, (k) => scalar<number>(k, `SELECT count(*)::int FROM ${table} WHERE instance_id = $1`, [id]));
    expect([await count('df._work'), await count('df._execution_log'), await count('df._node_runs')]).toEqual([1, 1, 1]);
    await withPg(db, (k) => k.query("INSERT INTO df._executions (instance_id, execution_id, status, submitted_by) SELECT id, 2, 'Running', submitted_by FROM df.instances WHERE id = $1", [id]));
    await withPg(db, (k) => k.query('DELETE FROM df.instances WHERE id = $1', [id]));
    expect([await count('df._work'), await count('df._executions'), await count('df._node_runs'), await count('df.nodes')]).toEqual([0, 0, 0, 0]);
  });
});

describe('the first durable write', () => {
  it("marks a pending instance running; a completion from pending ends it in one write", async () => {
    const { ids: [a, b], lease } = await startClaimed('SELECT 1', 'SELECT 2');
    await store.commit(a, lease(a).token, [], 'running');
    expect(await status(a)).toBe('running');
    const node = lease(b).loaded!.nodes[0].id;
    await store.commit(b, lease(b).token, [{ node, stamp: `${b}::1`, status: 'completed', result: '{"rows":[],"row_count":0}', json: true }], 'completed', '{}');
    expect(await status(b)).toBe('completed');
    expect(await withPg(db, (c) => scalar<string>(c, "SELECT status FROM df.nodes WHERE instance_id = $1", [b]))).toBe('completed');
  });
});

describe('a busy worker', () => {
  it('claims no more than its step slots can start: one waiting instance at most, the rest stays for other workers', async () => {
    const bdb = await freshDatabase('hot_path_busy');
    const busy = await createTenant(bdb, 'busy');
    const worker = startWorker(url(bdb), { extraArgs: ['--concurrency', '2', '--poll-interval', '50'] });
    try {
      const ids = await asRole(bdb, busy, async (c) => {
        await c.query('BEGIN');
        const out: string[] = [];
        for (let i = 0; i < 6; i++) out.push(await scalar<string>(c, `SELECT df.start('SELECT pg_sleep(1.2), ${i} AS i')`));
        await c.query('COMMIT');
        return out;
      });
      const leased = () => withPg(bdb, (c) => scalar<number>(c, 'SELECT count(*)::int FROM df._work WHERE lease_owner IS NOT NULL'));
      await withPg(bdb, (c) => eventually(async () => (await scalar<number>(c,
        "SELECT count(*)::int FROM pg_stat_activity WHERE application_name = 'pg_durable:worker:workflow-sql' AND query LIKE '%pg_sleep(1.2)%' AND state = 'active'")) === 2,
      15_000, 'both slots busy'));
      // Ten polls later: the two running, and one claimed to wait for the first free slot.
      await new Promise((r) => setTimeout(r, 500));
      expect(await leased()).toBeLessThanOrEqual(3);
      for (const id of ids) expect(await withPg(bdb, (c) => waitFor(c, id, 30_000))).toBe('completed');
    } finally {
      await worker.stop();
    }
  });

  it('whose instances finish quickly claims a few ahead of its slots: more instances per claim than it has slots', async () => {
    const fdb = await freshDatabase('hot_path_ahead');
    const fast = await createTenant(fdb, 'fast');
    await asRole(fdb, fast, (c) => c.query("SELECT count(df.start('SELECT 1 AS one')) FROM generate_series(1, 600)"));
    const worker = startWorker(url(fdb), { extraArgs: ['--concurrency', '2', '--poll-interval', '50', '--metrics-port', '0'] });
    let most = 0;
    try {
      await withPg(fdb, async (c) => {
        for (const deadline = Date.now() + 60_000; ; await new Promise((r) => setTimeout(r, 2))) {
          const q = (await c.query('SELECT count(*)::int AS queued, count(lease_owner)::int AS leased FROM df._work')).rows[0];
          most = Math.max(most, q.leased);
          if (q.queued === 0) break;
          if (Date.now() > deadline) throw new Error(`${q.queued} of 600 instances still queued after 60 s`);
        }
      });
      const text = await (await fetch(`${await metricsAddress(worker)}/metrics`)).text();
      const counter = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
      // A claim of free slots takes at most two; the read-ahead's claims take more.
      expect(counter('pg_durable_worker_instances_claimed_total')).toBe(600);
      expect(counter('pg_durable_worker_instances_claimed_total') / counter('pg_durable_worker_claims_total')).toBeGreaterThan(2);
    } finally {
      await worker.stop();
    }
    // Two running and one waiting for a slot is the most that claims of free slots lease at once.
    expect(most).toBeGreaterThan(3);
  });
});

describe('the run that ends an instance', () => {
  it("lives in its node's row: no df._node_runs row, and df._runs and the monitoring functions show it", async () => {
    const wdb = await freshDatabase('hot_path_final');
    const tenant = await createTenant(wdb, 'final');
    const other = await createTenant(wdb, 'other');
    const [one, chain, slow] = await asRole(wdb, tenant, async (c) => [
      await scalar<string>(c, "SELECT df.start('SELECT 1 AS a')"),
      await scalar<string>(c, "SELECT df.start('SELECT 1 AS a' ~> 'SELECT 2 AS b')"),
      // Slower than the 200 ms after which a step's 'running' stamp is written: that run has a row.
      await scalar<string>(c, "SELECT df.start('SELECT pg_sleep(0.5) IS NULL AS slept')"),
    ]);
    const worker = startWorker(url(wdb), { extraArgs: ['--poll-interval', '50'] });
    try {
      await withPg(wdb, async (c) => {
        for (const id of [one, chain, slow]) expect(await waitFor(c, id)).toBe('completed');
      });
    } finally {
      await worker.stop();
    }
    // Results as jsonb prints them: a run row keeps the text sent, df._runs gives a kept run's compactly.
    const rows = (id: string, from: string) =>
      withPg(wdb, async (c) => (await c.query(`SELECT node_id, stamp, execution_id, status, df._jsonb_text(result) AS result FROM ${from} WHERE instance_id = $1 ORDER BY node_id`, [id])).rows);
    const nodes = (id: string) =>
      withPg(wdb, async (c) => (await c.query("SELECT id, status, result::text AS result FROM df.nodes WHERE instance_id = $1 AND status <> 'pending' ORDER BY id", [id])).rows);

    // One step: its only run is its node's row.
    expect(await rows(one, 'df._node_runs')).toEqual([]);
    const [node] = await nodes(one);
    expect(await rows(one, 'df._runs')).toEqual([{ node_id: node.id, stamp: `${one}::1`, execution_id: 1, status: 'completed', result: node.result }]);
    // It started when its step's transaction did (the instance's completion stamps now() of it) and ended at its checkpoint.
    const times = await withPg(wdb, async (c) => (await c.query(
      `SELECT r.started_at = i.updated_at AS at_step_start, r.finished_at = n.updated_at AS at_checkpoint, r.started_at <= r.finished_at AS ordered
         FROM df._runs r JOIN df.instances i ON i.id = r.instance_id JOIN df.nodes n ON n.instance_id = r.instance_id AND n.id = r.node_id
        WHERE r.instance_id = $1`, [one])).rows);
    expect(times).toEqual([{ at_step_start: true, at_checkpoint: true, ordered: true }]);
    // A chain: its steps and its THEN run once, so their node rows keep every run (the first
    // step's too, written by its own checkpoint); every node that ran has one run.
    expect(await rows(chain, 'df._node_runs')).toEqual([]);
    expect((await rows(chain, 'df._runs')).map((r) => [r.node_id, r.status])).toEqual((await nodes(chain)).map((n) => [n.id, 'completed']));
    // A run stamped 'running' before it ended keeps its row, and the row ends completed.
    expect((await rows(slow, 'df._node_runs')).map((r) => r.status)).toEqual(['completed']);
    expect((await rows(slow, 'df._runs')).length).toBe(1);

    await asRole(wdb, tenant, async (c) => {
      const ex = (await c.query('SELECT execution_id, status, event_count FROM df.instance_executions($1)', [one])).rows;
      expect(ex).toEqual([{ execution_id: '1', status: 'Completed', event_count: '2' }]);
      const history = (await c.query('SELECT status, result FROM df.instance_nodes($1, 1)', [one])).rows;
      expect(history).toEqual([{ status: 'completed', result: node.result }]);
    });
    // The ambiguous-commit check of a step finds the run, and another tenant sees none of it.
    const s = new Store(url(wdb), 1, () => false);
    try {
      expect(JSON.parse((await s.completedResult(one, `${one}::1`, node.id))!)).toEqual(JSON.parse(node.result));
    } finally {
      await s.end();
    }
    expect(await asRole(wdb, other, (c) => scalar<number>(c, 'SELECT count(*)::int FROM df._runs'))).toBe(0);
    expect(await asRole(wdb, tenant, (c) => scalar<number>(c, 'SELECT count(*)::int FROM df._runs'))).toBeGreaterThan(3);
  });
});

describe("a sequence's runs kept by its node rows", () => {
  it('write no node run where the row gives the result back, and a run that starts over replays them', async () => {
    const wdb = await freshDatabase('hot_path_seq');
    const tenant = await createTenant(wdb, 'seq');
    await asRole(wdb, tenant, (c) => c.query('CREATE TABLE effects (k int)'));
    // Step 2's result is in the SELECT list's order, which jsonb does not keep: its run has a row,
    // and $r is substituted from it as the live run saw it (first column zeta). Step 4 waits for
    // a lock the test holds.
    const hold = await connectAs(url(wdb));
    await hold.query('SELECT pg_advisory_lock(4242)');
    const id = await asRole(wdb, tenant, (c) => scalar<string>(c,
      `SELECT df.start('INSERT INTO effects VALUES (1) RETURNING k' ~> 'SELECT 1 AS zeta, 2 AS a' |=> 'r' ~> 'INSERT INTO effects VALUES (3) RETURNING k'
                       ~> 'SELECT pg_advisory_xact_lock(4242) IS NULL AS locked' ~> 'SELECT $r AS first')`));
    const waiting = () => withPg(wdb, (c) => scalar<number>(c, "SELECT count(*)::int FROM pg_stat_activity WHERE query LIKE 'SELECT pg_advisory_xact_lock(4242)%' AND wait_event_type = 'Lock'"));
    const a = startWorker(url(wdb), { leaseSeconds: 2, extraArgs: ['--poll-interval', '50'] });
    try {
      await eventually(async () => (await waiting()) === 1, 15_000, 'the fourth step');
      // Its 'running' stamp (written after 200 ms) too.
      await eventually(async () => (await withPg(wdb, (c) => scalar<string>(c, "SELECT status FROM df.nodes WHERE instance_id = $1 AND query LIKE 'SELECT pg_advisory%'", [id]))) === 'running', 15_000, 'the stamp');
    } finally {
      await a.kill();
    }
    const runs = (from: string) =>
      withPg(wdb, async (c) => (await c.query(`SELECT n.query, r.status, r.result FROM ${from} r JOIN df.nodes n ON n.instance_id = r.instance_id AND n.id = r.node_id
                                                 WHERE r.instance_id = $1 AND n.node_type = 'SQL' ORDER BY n.query`, [id])).rows);
    // Steps 1 and 3 live in their node rows alone; step 2 and the waiting step (its 'running' stamp) have rows.
    expect((await runs('df._node_runs')).map((r) => [r.query, r.status])).toEqual([
      ['SELECT 1 AS zeta, 2 AS a', 'completed'], ['SELECT pg_advisory_xact_lock(4242) IS NULL AS locked', 'running'],
    ]);
    expect((await runs('df._runs')).map((r) => [r.query, r.result])).toEqual([
      ['INSERT INTO effects VALUES (1) RETURNING k', '{"rows":[{"k":1}],"row_count":1}'],
      ['INSERT INTO effects VALUES (3) RETURNING k', '{"rows":[{"k":3}],"row_count":1}'],
      ['SELECT 1 AS zeta, 2 AS a', '{"rows":[{"zeta":1,"a":2}],"row_count":1}'],
      ['SELECT pg_advisory_xact_lock(4242) IS NULL AS locked', null],
    ]);
    // The killed worker's waiting step goes; a second worker takes the instance over when the
    // lease expires, replays steps 1-3 from their runs and runs no effect twice.
    await withPg(wdb, (c) => c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_advisory_xact_lock(4242)%'"));
    const b = startWorker(url(wdb), { leaseSeconds: 2, extraArgs: ['--poll-interval', '50'] });
    try {
      await eventually(async () => (await waiting()) === 1, 15_000, 'the fourth step again');
      await hold.end();
      await withPg(wdb, async (c) => expect(await waitFor(c, id, 30_000)).toBe('completed'));
      expect(b.logs.some((l) => l.msg === 'instance resumed')).toBe(true);
    } finally {
      await b.stop();
    }
    expect(await asRole(wdb, tenant, (c) => c.query('SELECT k FROM effects ORDER BY k').then((r) => r.rows.map((x) => x.k)))).toEqual([1, 3]);
    expect(await asRole(wdb, tenant, (c) => scalar<string>(c, 'SELECT df.result($1)', [id]))).toBe('{"rows": [{"first": 1}], "row_count": 1}');
  });
});

describe('an execution kept by its instance row', () => {
  it('is written only where df._execution_log could not derive it, and reads the same either way', async () => {
    const wdb = await freshDatabase('hot_path_exec');
    const tenant = await createTenant(wdb, 'exec');
    const other = await createTenant(wdb, 'other');
    const [one, keyOrder, failed, waiting] = await asRole(wdb, tenant, async (c) => [
      await scalar<string>(c, "SELECT df.start('SELECT 1 AS a' ~> 'SELECT 42 AS x')"),
      // The output keeps the SELECT list's order, which jsonb does not: the execution has its row.
      await scalar<string>(c, "SELECT df.start('SELECT 1 AS zeta, 2 AS a')"),
      await scalar<string>(c, "SELECT df.start('SELECT 1/0')"),
      await scalar<string>(c, "SELECT df.start(df.wait_for_signal('go') ~> 'SELECT 1')"),
    ]);
    const rowsOf = (id: string) => withPg(wdb, (c) => scalar<number>(c, 'SELECT count(*)::int FROM df._executions WHERE instance_id = $1', [id]));
    const log = (id: string) =>
      asRole(wdb, tenant, async (c) => (await c.query(
        `SELECT e.execution_id, e.status, e.output, e.started_at = i.created_at AS started_with_instance,
                e.completed_at IS NOT DISTINCT FROM i.completed_at AS ended_with_instance
           FROM df._execution_log e JOIN df.instances i ON i.id = e.instance_id WHERE e.instance_id = $1`, [id])).rows);
    // Before any worker: a running first execution, no row.
    expect(await rowsOf(one)).toBe(0);
    expect(await log(one)).toEqual([{ execution_id: 1, status: 'Running', output: null, started_with_instance: true, ended_with_instance: true }]);

    const worker = startWorker(url(wdb), { extraArgs: ['--poll-interval', '50'] });
    try {
      await withPg(wdb, async (c) => {
        for (const id of [one, keyOrder]) expect(await waitFor(c, id)).toBe('completed');
        expect(await waitFor(c, failed)).toBe('failed');
        await eventually(async () => (await scalar<string>(c, "SELECT status FROM df.nodes WHERE instance_id = $1 AND node_type = 'SIGNAL'", [waiting])) === 'running', 10_000, 'the wait');
      });
    } finally {
      await worker.stop();
    }
    // Completed with its root's result as output: no row, and every reader shows the output.
    expect(await rowsOf(one)).toBe(0);
    const out = '{"rows":[{"x":42}],"row_count":1}';
    expect(await log(one)).toEqual([{ execution_id: 1, status: 'Completed', output: out, started_with_instance: true, ended_with_instance: true }]);
    await asRole(wdb, tenant, async (c) => {
      expect((await c.query('SELECT execution_id, status, output FROM df.instance_executions($1)', [one])).rows).toEqual([{ execution_id: '1', status: 'Completed', output: out }]);
      expect((await c.query('SELECT execution_count, output FROM df.list_instances() WHERE instance_id = $1', [one])).rows).toEqual([{ execution_count: '1', output: out }]);
      expect((await c.query('SELECT current_execution_id, output FROM df.instance_info($1)', [one])).rows).toEqual([{ current_execution_id: '1', output: out }]);
    });
    // The others have their rows, as before.
    expect([await rowsOf(keyOrder), await rowsOf(failed), await rowsOf(waiting)]).toEqual([1, 1, 0]);
    expect((await log(keyOrder))[0].output).toBe('{"rows":[{"zeta":1,"a":2}],"row_count":1}');
    expect((await log(failed))[0]).toMatchObject({ status: 'Failed', started_with_instance: true });
    expect((await log(waiting))[0]).toMatchObject({ status: 'Running', output: null });
    await asRole(wdb, tenant, (c) => c.query('SELECT df.cancel($1)', [waiting]));
    expect(await rowsOf(waiting)).toBe(1);
    expect((await log(waiting))[0]).toMatchObject({ execution_id: 1, status: 'Failed', output: 'Cancelled', started_with_instance: true });
    // Another tenant sees none of it.
    expect(await asRole(wdb, other, (c) => scalar<number>(c, 'SELECT count(*)::int FROM df._execution_log'))).toBe(0);
  });

  it("derives exactly the text the worker predicts (src/core/jsonb-text.ts) on this server", async () => {
    const texts = [
      '{"rows":[{"a":1}],"row_count":1}',
      String.raw`{"b":1,"B":2,"\u00e9":3,"aa":4,"\ud83d\ude00":5,"\uffff":6}`,
      '[1.50,-2,0,0.000001,12345678901234567890123456789,true,false,null,[],{}]',
      String.raw`{"s":"q\"b\\s\/\n\t\r\b\f\u0001\u001f\u007f\u2028é😀"}`,
      '{"rows":[{"zeta":1,"a":2}],"row_count":1}',
      // Separators inside strings stay (df._json_compact drops the space of jsonb's own only).
      String.raw`{"k, x: ":"v: \", w\\","z":["a, b",{"c: d":[]}," \\",": "]}`,
    ];
    await withPg(db, async (c) => {
      for (const t of texts) {
        const predicted = jsonbCompactText(t);
        expect(predicted).not.toBeNull();
        expect({ t, text: await scalar<string>(c, 'SELECT df._json_compact($1::jsonb)', [t]) }).toEqual({ t, text: predicted });
      }
    });
  });
});

describe('a refused write', () => {
  it('keeps the management connection: a lease lost is an answer, not a broken session', async () => {
    // A 'running' stamp that loses the race with its instance's completion is refused (PD001).
    // Dropping the connection for it cost a new backend and the re-parse of every kept statement:
    // with 4 workers on 2 cores, 552 new connections for 1 000 one-step instances.
    const one = new Store(url(db), 1, () => false);
    try {
      const pid = () => one.pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid').then((r) => r.rows[0].pid);
      const before = await pid();
      const { ids: [id] } = await startClaimed('SELECT 6');
      await expect(one.commit(id, '00000000-0000-4000-8000-00000000dead', [], 'running')).rejects.toMatchObject({ code: 'PD001' });
      expect(await pid()).toBe(before);
    } finally {
      await one.end();
    }
  });
});

describe("an instance's transitions", () => {
  it('are HOT updates: pending -> running -> completed writes no index entry of df.instances', async () => {
    const { ids: [a, b], lease } = await startClaimed('SELECT 1', 'SELECT 2');
    const node = lease(b).loaded!.nodes[0].id;
    const counts = await withPg(db, async (c) => {
      await c.query('BEGIN');
      const commit = (id: string, events: unknown[], to: string, output: string | null = null) =>
        c.query('SELECT df._commit($1, $2, $3::jsonb, $4, $5)', [id, lease(id).token, JSON.stringify(events), to, output]);
      await commit(a, [], 'running');
      await commit(a, [], 'completed', '{}');
      await commit(b, [{ node, stamp: `${b}::1`, status: 'completed', result: '{"rows":[],"row_count":0}', json: true }], 'completed', '{}');
      // This transaction's own counters: every update of df.instances it made, and the HOT ones.
      const r = await c.query(`SELECT pg_stat_get_xact_tuples_updated('df.instances'::regclass)::int AS updated,
                                      pg_stat_get_xact_tuples_hot_updated('df.instances'::regclass)::int AS hot`);
      await c.query('COMMIT');
      return r.rows[0];
    });
    expect(counts).toEqual({ updated: 3, hot: 3 });
    expect([await status(a), await status(b)]).toEqual(['completed', 'completed']);
  });

  it("skip the status guard's call when the engine makes them; a tenant's hand-set status still goes through it", async () => {
    const { ids: [a, b], lease } = await startClaimed('SELECT 1', 'SELECT 2');
    const calls = await withPg(db, async (c) => {
      const guardCalls = () => scalar<number>(c, "SELECT coalesce(pg_stat_get_xact_function_calls('df._guard_instance_status'::regproc), 0)::int");
      await c.query('BEGIN');
      await c.query("SET LOCAL track_functions = 'pl'");
      const commit = (to: string, output: string | null) => c.query('SELECT df._commit($1, $2, $3::jsonb, $4, $5)', [a, lease(a).token, '[]', to, output]);
      await commit('running', null);
      await commit('completed', '{}');
      const engine = await guardCalls();
      await c.query('SAVEPOINT by_hand');
      await c.query(`SET LOCAL ROLE ${alice}`);
      // A call that raises is not counted: the guard's own message shows it ran.
      const refused = await c.query("UPDATE df.instances SET status = 'completed' WHERE id = $1", [b]).then(() => null, (e: { code: string; message: string }) => [e.code, e.message.split(' from ')[0]]);
      await c.query('ROLLBACK TO SAVEPOINT by_hand');
      await c.query('COMMIT');
      return { engine, refused };
    });
    expect(calls).toEqual({ engine: 0, refused: ['42501', `pg_durable: the status of instance ${b} cannot be changed`] });
    expect([await status(a), await status(b)]).toEqual(['completed', 'pending']);
  });
});

describe("a checkpoint's events", () => {
  it('apply in order: a node run closed and its next run opened in one commit leave the node row on the next run', async () => {
    // A loop's node: its previous iteration's outcome and its next iteration's 'running' stamp
    // travel together (interpreter.ts). Joined as one set, the node row took either of the two.
    const { ids: [a], lease } = await startClaimed('SELECT 1');
    const node = lease(a).loaded!.nodes[0].id;
    const row = await withPg(db, async (c) => {
      await c.query('SELECT df._commit($1, $2, $3::jsonb)', [a, lease(a).token, JSON.stringify([
        { node, stamp: `${a}::1`, status: 'completed', result: '{"i":1}', json: true, detail: null },
        { node, stamp: `${a}::2`, status: 'running', detail: { started_at: 5 } },
      ])]);
      const n = await c.query('SELECT status, result, status_details FROM df.nodes WHERE instance_id = $1 AND id = $2', [a, node]);
      const runs = await c.query('SELECT stamp, status, result, detail FROM df._node_runs WHERE instance_id = $1 ORDER BY stamp', [a]);
      return { node: n.rows[0], runs: runs.rows };
    });
    expect(row).toEqual({
      node: { status: 'running', result: null, status_details: { execution_id: `${a}::2`, started_at: 5 } },
      runs: [
        { stamp: `${a}::1`, status: 'completed', result: '{"i":1}', detail: null },
        { stamp: `${a}::2`, status: 'running', result: null, detail: { started_at: 5 } },
      ],
    });
  });
});

describe('the tables a checkpoint writes', () => {
  it('carry no CHECK constraint, which PostgreSQL would re-plan at every update of every step', async () => {
    const checks = await withPg(db, (c) => c.query(
      `SELECT conrelid::regclass::text AS t, conname FROM pg_constraint
        WHERE contype = 'c' AND conrelid IN ('df.instances'::regclass, 'df.nodes'::regclass, 'df._node_runs'::regclass, 'df._executions'::regclass, 'df._work'::regclass)`,
    ));
    expect(checks.rows).toEqual([]);
  });

  it('still refuse bad rows under the rules\' names: a new row at INSERT, a status set by the owner', async () => {
    const id = await start('SELECT 1');
    const refused = (sql: string, params: unknown[] = []) => withPg(db, (c) => c.query(sql, params).then(() => null, (e: { message: string; code: string; constraint: string }) => [e.code, e.constraint, e.message]));
    expect(await refused("UPDATE df.instances SET status = 'bogus' WHERE id = $1", [id])).toEqual(
      ['23514', 'instances_status_chk', 'new row for relation "instances" violates check constraint "instances_status_chk"'],
    );
    expect(await refused("INSERT INTO df.instances (id, root_node, submitted_by, status) VALUES ('0000bad1', '0000bad2', 'postgres', 'done')")).toEqual(
      ['23514', 'instances_status_chk', 'new row for relation "instances" violates check constraint "instances_status_chk"'],
    );
    expect(await refused("INSERT INTO df.nodes (id, instance_id, node_type, query) VALUES ('0000bad3', $1, 'SQL', 'SELECT 1')", [id])).toEqual(
      ['23514', 'nodes_submitted_by_present_chk', 'new row for relation "nodes" violates check constraint "nodes_submitted_by_present_chk"'],
    );
    expect(await refused("INSERT INTO df.nodes (id, instance_id, node_type, left_node, submitted_by) VALUES ('0000bad4', $1, 'LOOP', NULL, 'postgres')", [id])).toEqual(
      ['23514', 'nodes_structure_chk', 'new row for relation "nodes" violates check constraint "nodes_structure_chk"'],
    );
  });
});

describe('a pipelined step', () => {
  it('runs BEGIN, settings and the statement in one flight and returns the statement\'s own result', async () => {
    await asRole(db, alice, async (c) => {
      await c.query("SET DateStyle = 'SQL, DMY'");
      const r = await pipelined<unknown[]>(c, { text: "SELECT date '2024-02-01'::text AS d, current_setting('df.in_workflow') AS w", rowMode: 'array' } as pg.QueryConfig,
        ['BEGIN', "SET LOCAL df.in_workflow = 'true'", 'SET LOCAL DateStyle = ISO']);
      expect(r.rows).toEqual([['2024-02-01', 'true']]);
      expect(await scalar(c, 'SHOW DateStyle')).toBe('ISO, DMY'); // the session's order is kept
      await c.query('COMMIT');
      expect(await scalar(c, 'SHOW DateStyle')).toBe('SQL, DMY');
    });
  });

  it('names how far it got when a statement fails: nothing after the error runs', async () => {
    await asRole(db, alice, async (c) => {
      await c.query('CREATE TEMP TABLE t (x int)');
      const err = await pipelined(c, { text: 'SELECT 1/0' }, ['BEGIN'], ['INSERT INTO t VALUES (1)', 'COMMIT']).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PipelineError);
      expect((err as PipelineError).completed).toBe(1);
      expect((err as PipelineError).cause.code).toBe('22012');
      await c.query('ROLLBACK');
      expect(await scalar(c, 'SELECT count(*)::int FROM t')).toBe(0);
    });
  });

  it('keeps the user statement one statement: a second one hidden in it is refused', async () => {
    await asRole(db, alice, async (c) => {
      const err = await pipelined(c, { text: 'SELECT 1; SELECT 2' }, ['BEGIN']).catch((e: unknown) => e);
      expect((err as PipelineError).cause.code).toBe('42601');
      await c.query('ROLLBACK');
    });
  });
});

describe('an instance whose first node writes nothing durable for a while', () => {
  it('turns running after 200 ms anyway: an HTTP call in flight, then completed', async () => {
    let release: () => void = () => undefined;
    const server = http.createServer((_req, res) => {
      release = () => res.end('{"ok":true}');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const hdb = await freshDatabase('hot_path_http');
    const web = await createTenant(hdb, 'web', { http: true });
    const worker = startWorker(url(hdb), { extraArgs: ['--http-allow-loopback', '--http-allow-ip-literals', '--http-max-retries', '0'] });
    try {
      const id = await asRole(hdb, web, (c) => scalar<string>(c, `SELECT df.start(df.http(${pg.escapeLiteral(`http://127.0.0.1:${port}/slow`)}, 'GET'))`));
      const statusOf = () => withPg(hdb, (c) => scalar<string>(c, 'SELECT status FROM df.instances WHERE id = $1', [id]));
      await eventually(async () => (await statusOf()) === 'running', 15_000, 'running while the request waits');
      expect(await withPg(hdb, (c) => scalar<string>(c, 'SELECT status FROM df.nodes WHERE instance_id = $1', [id]))).toBe('pending');
      release();
      expect(await withPg(hdb, (c) => waitFor(c, id, 15_000))).toBe('completed');
    } finally {
      release();
      await worker.stop();
      server.close();
    }
  });
});
