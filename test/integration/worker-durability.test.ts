/**
 * Crashes and restarts. Runs on a private cluster (it restarts PostgreSQL). Every step appends to a
 * ledger table, so "no completed step ran twice" is a count.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../../src/embedded/cluster';
import { eventually, startWorker, waitFor } from '../support/worker';

let cluster: Cluster;
let admin: pg.Client;
let user: pg.Client;
const DB = 'durability';
const ROLE = 'ledger_user';

beforeAll(async () => {
  cluster = await startCluster();
  await cluster.createDatabase(DB);
  admin = new pg.Client({ connectionString: cluster.url(DB) });
  await admin.connect();
  await admin.query(`CREATE ROLE ${ROLE} LOGIN; SELECT df.grant_usage('${ROLE}'); GRANT CREATE ON SCHEMA public TO ${ROLE}`);
  user = new pg.Client({ connectionString: cluster.url(DB, ROLE) });
  await user.connect();
  await user.query('CREATE TABLE ledger (instance text NOT NULL, step int NOT NULL, at timestamptz DEFAULT clock_timestamp())');
});

afterAll(async () => {
  await user?.end();
  await admin?.end();
  cluster?.stop();
});

const insertStep = (k: number) => `'INSERT INTO ledger (instance, step) VALUES (''{sys_instance_id}'', ${k}) RETURNING step'`;

/** n ledger steps, each followed by a short sleep so a crash lands mid-workflow. */
function ledgerWorkflow(n: number, pause = 0.3): string {
  const parts: string[] = [];
  for (let k = 1; k <= n; k++) parts.push(insertStep(k), `'SELECT pg_sleep(${pause})'`);
  return parts.join(' ~> ');
}

async function start(expr: string, count = 1): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push((await user.query(`SELECT df.start(${expr}) AS id`)).rows[0].id);
  return ids;
}

async function ledger(ids: string[]): Promise<Map<string, number[]>> {
  const r = await user.query<{ instance: string; step: number }>('SELECT instance, step FROM ledger WHERE instance = ANY($1) ORDER BY instance, step', [ids]);
  const out = new Map<string, number[]>(ids.map((id) => [id, []]));
  for (const row of r.rows) out.get(row.instance)!.push(row.step);
  return out;
}

function expectEachStepOnce(rows: Map<string, number[]>, steps: number): void {
  const expected = Array.from({ length: steps }, (_, i) => i + 1);
  for (const [id, got] of rows) expect(got, `ledger of ${id}`).toEqual(expected);
}

describe('crash recovery', () => {
  it('a worker killed with SIGKILL mid-workflow is replaced and no completed step runs twice', async () => {
    const ids = await start(ledgerWorkflow(6), 5);
    const a = startWorker(cluster.url(DB), { leaseSeconds: 3 });
    await eventually(async () => (await user.query('SELECT count(*)::int AS n FROM ledger WHERE instance = ANY($1)', [ids])).rows[0].n >= 8, 20_000, 'progress before the crash');
    await a.kill();
    const b = startWorker(cluster.url(DB), { leaseSeconds: 3 });
    try {
      for (const id of ids) expect(await waitFor(user, id, 40_000)).toBe('completed');
      expectEachStepOnce(await ledger(ids), 6);
      expect(b.logs.some((l) => l.msg === 'instance resumed')).toBe(true);
    } finally {
      await b.stop();
    }
  });

  it("a step's SQL and its checkpoint commit together: killed in between, the effect is rolled back and the step re-runs once", async () => {
    const [id] = await start(`'WITH ins AS (INSERT INTO ledger (instance, step) VALUES (''{sys_instance_id}'', 1) RETURNING step) SELECT step, pg_sleep(2) FROM ins'`);
    const a = startWorker(cluster.url(DB), { leaseSeconds: 3 });
    // The INSERT has run and the statement is still sleeping: effect made, not committed, not recorded.
    await eventually(
      async () => (await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND query LIKE 'WITH ins AS%' AND state = 'active'", [ROLE])).rows[0].n === 1,
      15_000,
      'the step to be running',
    );
    // Slow steps are stamped running after 200 ms (quick ones go straight to completed), the
    // instance with its node: one write (one transaction), not one each.
    await eventually(async () => (await admin.query('SELECT status FROM df.nodes WHERE instance_id = $1', [id])).rows[0].status === 'running', 5_000, 'the running stamp');
    const stamped = await admin.query(
      'SELECT i.status, i.xmin::text AS instance_xact, n.xmin::text AS node_xact FROM df.instances i JOIN df.nodes n ON n.instance_id = i.id WHERE i.id = $1',
      [id],
    );
    expect(stamped.rows[0].status).toBe('running');
    expect(stamped.rows[0].instance_xact).toBe(stamped.rows[0].node_xact);
    await a.kill();
    expect((await ledger([id])).get(id)).toEqual([]);
    expect((await admin.query("SELECT status FROM df.nodes WHERE instance_id = $1", [id])).rows[0].status).toBe('running');
    const b = startWorker(cluster.url(DB), { leaseSeconds: 3 });
    try {
      expect(await waitFor(user, id, 30_000)).toBe('completed');
      // The orphaned transaction of the killed worker rolled back; the re-run committed exactly once.
      await eventually(async () => (await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND query LIKE 'WITH ins AS%'", [ROLE])).rows[0].n === 0, 15_000, 'the orphan to end');
      expect((await ledger([id])).get(id)).toEqual([1]);
      const node = (await admin.query('SELECT status, result FROM df.nodes WHERE instance_id = $1', [id])).rows[0];
      expect(node).toMatchObject({ status: 'completed', result: { rows: [{ step: 1, pg_sleep: null }], row_count: 1 } });
    } finally {
      await b.stop();
    }
  });

  it('two workers on one database share the work and never run a step twice', async () => {
    const a = startWorker(cluster.url(DB), { leaseSeconds: 4, concurrency: 4 });
    const b = startWorker(cluster.url(DB), { leaseSeconds: 4, concurrency: 4 });
    try {
      await eventually(async () => (await admin.query('SELECT count(*)::int AS n FROM df._worker_epoch WHERE last_seen_at > now() - interval \'15 seconds\'')).rows[0].n >= 2, 15_000, 'both workers to heartbeat');
      const ids = await start([insertStep(1), `'SELECT pg_sleep(0.1)'`, insertStep(2), insertStep(3)].join(' ~> '), 30);
      for (const id of ids) expect(await waitFor(user, id, 60_000)).toBe('completed');
      expectEachStepOnce(await ledger(ids), 3);
      const started = (w: typeof a) => w.logs.filter((l) => l.msg === 'instance started').length;
      expect(started(a) + started(b)).toBe(30);
      expect(started(a)).toBeGreaterThan(0);
      expect(started(b)).toBeGreaterThan(0);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('a PostgreSQL restart mid-run: the worker reconnects and every instance completes', async () => {
    const ids = await start(ledgerWorkflow(5, 0.2), 8);
    const w = startWorker(cluster.url(DB), { leaseSeconds: 10 });
    try {
      await eventually(async () => (await user.query('SELECT count(*)::int AS n FROM ledger WHERE instance = ANY($1)', [ids])).rows[0].n >= 6, 20_000, 'progress before the restart');
      await user.end();
      await admin.end();
      cluster.restart('fast');
      admin = new pg.Client({ connectionString: cluster.url(DB) });
      await admin.connect();
      user = new pg.Client({ connectionString: cluster.url(DB, ROLE) });
      await user.connect();
      for (const id of ids) expect(await waitFor(user, id, 60_000)).toBe('completed');
      expectEachStepOnce(await ledger(ids), 5);
    } finally {
      await w.stop();
    }
  });

  it('graceful shutdown lets the in-flight step finish and hands the lease back at once', async () => {
    const [id] = await start(`${insertStep(1)} ~> 'SELECT pg_sleep(2)' ~> ${insertStep(2)}`);
    const a = startWorker(cluster.url(DB), { leaseSeconds: 30 });
    await eventually(async () => (await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND query = 'SELECT pg_sleep(2)' AND state = 'active'", [ROLE])).rows[0].n === 1, 15_000, 'the sleep step');
    expect(await a.stop()).toBe(0);
    const sleepNode = await admin.query("SELECT status FROM df.nodes WHERE instance_id = $1 AND query = 'SELECT pg_sleep(2)'", [id]);
    expect(sleepNode.rows[0].status).toBe('completed');
    const lease = await admin.query('SELECT lease_owner FROM df._work WHERE instance_id = $1', [id]);
    expect(lease.rows[0].lease_owner).toBeNull();
    const before = Date.now();
    const b = startWorker(cluster.url(DB), { leaseSeconds: 30 });
    try {
      expect(await waitFor(user, id, 15_000)).toBe('completed');
      expect(Date.now() - before).toBeLessThan(10_000); // no 30 s lease wait
      expectEachStepOnce(await ledger([id]), 2);
    } finally {
      await b.stop();
    }
  });
});

describe('identity at run time', () => {
  it('fails an instance whose role lost LOGIN, with a message that says so', async () => {
    await admin.query('CREATE ROLE fading LOGIN');
    await admin.query("SELECT df.grant_usage('fading')");
    const fading = new pg.Client({ connectionString: cluster.url(DB, 'fading') });
    await fading.connect();
    const id = (await fading.query("SELECT df.start('SELECT 1') AS id")).rows[0].id as string;
    await fading.end();
    await admin.query('ALTER ROLE fading NOLOGIN');
    const w = startWorker(cluster.url(DB));
    try {
      expect(await waitFor(admin, id, 15_000)).toBe('failed');
      const out = await admin.query('SELECT output FROM df._executions WHERE instance_id = $1', [id]);
      expect(out.rows[0].output).toContain('does not have LOGIN privilege');
    } finally {
      await w.stop();
    }
  });

  it('refuses to run a forged superuser instance (guard re-checked by the worker)', async () => {
    // A superuser could insert rows claiming submitted_by = postgres; df.start refuses, the worker must too.
    const id = 'f0f0f0f0';
    await admin.query('BEGIN');
    await admin.query("INSERT INTO df.instances (id, root_node, submitted_by) VALUES ($1, 'a0a0a0a0', 'postgres')", [id]);
    await admin.query("INSERT INTO df.nodes (id, instance_id, node_type, query, submitted_by) VALUES ('a0a0a0a0', $1, 'SQL', 'SELECT 1', 'postgres')", [id]);
    await admin.query('COMMIT');
    const w = startWorker(cluster.url(DB));
    try {
      expect(await waitFor(admin, id, 15_000)).toBe('failed');
      const out = await admin.query('SELECT output FROM df._executions WHERE instance_id = $1', [id]);
      expect(out.rows[0].output).toBe(`pg_durable blocked instance ${id}: submitted_by role "postgres" is a superuser, but pg_durable.enable_superuser_instances is off`);
      expect((await admin.query("SELECT count(*)::int AS n FROM df.nodes WHERE instance_id = $1 AND status <> 'pending'", [id])).rows[0].n).toBe(0);
    } finally {
      await w.stop();
    }
  });
});
