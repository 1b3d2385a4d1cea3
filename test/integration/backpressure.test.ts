/**
 * Backpressure: when connections are scarce, work queues and completes later; nothing fails that
 * patience would have completed (within --acquire-timeout for step slots; within the transient
 * retry budget for refused connections). Private cluster: these tests fill max_connections.
 *
 * Timing assertions are lower bounds derived from the work (n steps x duration / slots) with 10 %
 * slack, and upper bounds of tens of seconds: this machine has 2 cores shared with other test files.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../../src/embedded/cluster';
import { startWorker, waitFor, type WorkerHandle } from '../support/worker';

let cluster: Cluster;
let admin: pg.Client;
const DB = 'backpressure';
const MAX_CONNECTIONS = 30;

beforeAll(async () => {
  cluster = await startCluster({ settings: { max_connections: MAX_CONNECTIONS, superuser_reserved_connections: 3 } });
  await cluster.createDatabase(DB);
  admin = new pg.Client({ connectionString: cluster.url(DB) });
  await admin.connect();
  await admin.query('CREATE TABLE bp_ledger (inst text NOT NULL, step text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())');
  await admin.query('GRANT CREATE ON SCHEMA public TO PUBLIC');
});

afterAll(async () => {
  await admin?.end();
  cluster?.stop();
});

let tenantSeq = 0;
async function tenant(opts: { connectionLimit?: number } = {}): Promise<string> {
  const name = `bp_tenant_${++tenantSeq}`;
  await admin.query(`CREATE ROLE ${name} LOGIN`);
  await admin.query('SELECT df.grant_usage($1)', [name]);
  await admin.query(`GRANT INSERT, SELECT ON bp_ledger TO ${name}`);
  if (opts.connectionLimit !== undefined) await admin.query(`ALTER ROLE ${name} CONNECTION LIMIT ${opts.connectionLimit}`);
  return name;
}

async function startAs(role: string, exprs: string[]): Promise<string[]> {
  const c = new pg.Client({ connectionString: cluster.url(DB, role) });
  await c.connect();
  try {
    const ids: string[] = [];
    for (const e of exprs) ids.push((await c.query(`SELECT df.start(${e}) AS id`)).rows[0].id);
    return ids;
  } finally {
    await c.end();
  }
}

/** One step: a ledger row plus `seconds` of work, in one statement (so it holds its connection). */
const step = (key: string, seconds: number) =>
  pg.escapeLiteral(`WITH x AS (INSERT INTO bp_ledger (inst, step) VALUES ('{sys_instance_id}', '${key}') RETURNING step) SELECT step, pg_sleep(${seconds}) FROM x`);

/** Samples a count every 50 ms until stopped; returns the maximum seen. */
function sampler(sql: string, params: unknown[]): { stop(): Promise<number> } {
  let max = 0;
  let running = true;
  const c = new pg.Client({ connectionString: cluster.url(DB) });
  const loop = (async () => {
    await c.connect();
    while (running) {
      const n = (await c.query(sql, params)).rows[0].n as number;
      max = Math.max(max, n);
      await new Promise((r) => setTimeout(r, 50));
    }
    await c.end();
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return max;
    },
  };
}

async function ledgerOf(ids: string[]): Promise<{ inst: string; step: string }[]> {
  return (await admin.query('SELECT inst, step FROM bp_ledger WHERE inst = ANY($1) ORDER BY inst, step', [ids])).rows;
}

const retries = (w: WorkerHandle, pattern: RegExp) =>
  w.logs.filter((l) => l.msg === 'transient failure in SQL step, retrying' && pattern.test(String(l.err))).length;

describe('backpressure', () => {
  it('20 parallel branches on a worker with --concurrency 2 queue for the 2 step slots and all complete', async () => {
    const role = await tenant();
    const branches = Array.from({ length: 20 }, (_, i) => step(`b${i + 1}`, 0.5));
    const [id] = await startAs(role, [branches.join(' & ')]);
    const peak = sampler("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND state = 'active' AND query LIKE 'WITH x AS%'", [role]);
    const t0 = Date.now();
    const w = startWorker(cluster.url(DB), { concurrency: 2, extraArgs: ['--acquire-timeout', '60'] });
    try {
      expect(await waitFor(admin, id, 90_000)).toBe('completed');
      const elapsed = Date.now() - t0;
      const max = await peak.stop();
      console.log(`[backpressure] 20 x 0.5 s branches, 2 slots: ${elapsed} ms (lower bound 20*0.5/2 = 5000 ms, -10 %), peak concurrent steps ${max}`);
      expect(max).toBeLessThanOrEqual(2);
      expect(max).toBeGreaterThanOrEqual(1);
      expect(elapsed).toBeGreaterThanOrEqual(4500);
      const rows = await ledgerOf([id]);
      expect(rows.map((r) => r.step).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `b${i + 1}`).sort());
    } finally {
      await peak.stop();
      await w.stop();
    }
  }, 120_000);

  it('--acquire-timeout is the boundary: a step that waits longer for a slot fails with the documented message', async () => {
    const role = await tenant();
    const branches = Array.from({ length: 6 }, (_, i) => step(`t${i + 1}`, 3));
    const [id] = await startAs(role, [branches.join(' & ')]);
    const w = startWorker(cluster.url(DB), { concurrency: 2, extraArgs: ['--acquire-timeout', '1'] });
    try {
      expect(await waitFor(admin, id, 60_000)).toBe('failed');
      const out = (await admin.query('SELECT output FROM df._executions WHERE instance_id = $1', [id])).rows[0].output as string;
      expect(out).toContain('pg_durable: connection limit reached (max_user_connections=2). Timed out after 1s waiting for an available execution slot.');
    } finally {
      await w.stop();
    }
  }, 90_000);

  it("the tenant role's CONNECTION LIMIT refuses step connections: steps retry and all complete", async () => {
    const role = await tenant();
    const ids = await startAs(role, Array.from({ length: 16 }, (_, i) => step(`c${i + 1}`, 0.3)));
    await admin.query(`ALTER ROLE ${role} CONNECTION LIMIT 2`);
    const peak = sampler('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [role]);
    const w = startWorker(cluster.url(DB), { concurrency: 8, extraArgs: ['--acquire-timeout', '60'] });
    try {
      for (const id of ids) expect(await waitFor(admin, id, 120_000)).toBe('completed');
      const max = await peak.stop();
      const refused = retries(w, /too many connections for role/);
      console.log(`[backpressure] CONNECTION LIMIT 2, worker concurrency 8: 16 instances completed, peak backends of the role ${max}, refused connections retried ${refused} times`);
      expect(max).toBeLessThanOrEqual(2);
      expect(refused).toBeGreaterThan(0);
      const rows = await ledgerOf(ids);
      expect(rows).toHaveLength(16);
      expect(new Set(rows.map((r) => `${r.inst}|${r.step}`)).size).toBe(16);
    } finally {
      await peak.stop();
      await w.stop();
    }
  }, 150_000);

  it('max_connections reached by idle connections: steps wait until connections free up, then complete', async () => {
    const role = await tenant();
    await admin.query('CREATE ROLE bp_hog LOGIN');
    const w = startWorker(cluster.url(DB), { concurrency: 4, extraArgs: ['--acquire-timeout', '60'] });
    const hogs: pg.Client[] = [];
    try {
      // Each instance sleeps first, so the server is full by the time its SQL step needs a connection.
      const ids = await startAs(role, Array.from({ length: 6 }, (_, i) => `df.seq(df.sleep(3), ${step(`m${i + 1}`, 0.1)})`));
      let refusal = '';
      for (let i = 0; i < MAX_CONNECTIONS; i++) {
        const c = new pg.Client({ connectionString: cluster.url(DB, 'bp_hog') });
        try {
          await c.connect();
          c.on('error', () => undefined);
          hogs.push(c);
        } catch (err) {
          refusal = (err as Error).message;
          break;
        }
      }
      console.log(`[backpressure] ${hogs.length} idle connections hold the server full (${refusal})`);
      expect(refusal).toMatch(/too many clients|reserved/);
      const holdMs = 8000;
      await new Promise((r) => setTimeout(r, holdMs));
      // Nothing ran while the server was full, and nothing failed.
      const during = (await admin.query("SELECT count(*) FILTER (WHERE status = 'failed')::int AS failed, count(*) FILTER (WHERE status = 'completed')::int AS done FROM df.instances WHERE id = ANY($1)", [ids])).rows[0];
      expect(during).toEqual({ failed: 0, done: 0 });
      const released = Date.now();
      await Promise.all(hogs.splice(0).map((c) => c.end()));
      for (const id of ids) expect(await waitFor(admin, id, 120_000)).toBe('completed');
      const refused = retries(w, /too many clients|reserved/);
      console.log(`[backpressure] after releasing them all 6 completed within ${Date.now() - released} ms; refused step connections retried ${refused} times`);
      expect(refused).toBeGreaterThan(0);
      expect(await ledgerOf(ids)).toHaveLength(6);
    } finally {
      await Promise.all(hogs.map((c) => c.end().catch(() => undefined)));
      await w.stop();
    }
  }, 150_000);
});
