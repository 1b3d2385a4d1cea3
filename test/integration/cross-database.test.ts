/**
 * Steps in another database (`df.start(..., database => 'other')`, issue 16): the step runs there as
 * the submitting role, its checkpoint lands in the worker's own database.
 *
 *  - Private cluster with max_prepared_transactions = 10: exactly-once through two-phase commit,
 *    including a worker SIGKILL after PREPARE (rolled back, run again) and after the checkpoint
 *    (committed by recovery at the next claim, or by the periodic sweep when nothing follows).
 *  - The shared test cluster (max_prepared_transactions = 0): at-least-once, said in status_details.
 *  - A target the role may not connect to, or that was dropped, fails the node with a clear message.
 *
 * The target databases never have pg_durable installed.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../../src/embedded/cluster';
import { createTenant, freshDatabase, scalar, url, withPg } from '../support/db';
import { eventually, startWorker, waitFor, type WorkerHandle } from '../support/worker';

const lit = (s: string) => pg.escapeLiteral(s);
const TWO_PHASE = (db: string) => `ran in database "${db}": exactly-once through two-phase commit`;
const AT_LEAST_ONCE = (db: string) => `ran in database "${db}" without two-phase commit (its server has max_prepared_transactions = 0): at-least-once`;

interface Env {
  home: string;
  target: string;
  tenant: string;
  urlOf(db: string, user?: string): string;
  admin: pg.Client; // superuser, home
  adminTarget: pg.Client; // superuser, target
  user: pg.Client; // tenant, home
}

/** Home database with pg_durable + a tenant; a target database without it, holding table t the tenant may write. */
async function makeEnv(urlOf: (db: string, user?: string) => string, home: string, tenant: string, prefix: string): Promise<Env> {
  const target = `${prefix}_x_${randomBytes(2).toString('hex')}`;
  const admin = new pg.Client({ connectionString: urlOf(home) });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(target)}`);
  const adminTarget = new pg.Client({ connectionString: urlOf(target) });
  await adminTarget.connect();
  await adminTarget.query('CREATE TABLE t (id serial PRIMARY KEY, v text NOT NULL, inst text, who text DEFAULT current_user)');
  await adminTarget.query(`GRANT INSERT, SELECT ON t TO ${pg.escapeIdentifier(tenant)}; GRANT USAGE ON SEQUENCE t_id_seq TO ${pg.escapeIdentifier(tenant)}`);
  const user = new pg.Client({ connectionString: urlOf(home, tenant) });
  await user.connect();
  return { home, target, tenant, urlOf, admin, adminTarget, user };
}

async function closeEnv(env: Env | undefined): Promise<void> {
  await env?.user.end().catch(() => undefined);
  await env?.adminTarget.end().catch(() => undefined);
  await env?.admin.end().catch(() => undefined);
}

const start = (env: Env, expr: string, label = 'xdb-probe') =>
  scalar<string>(env.user, `SELECT df.start(${expr}, ${lit(label)}, ${lit(env.target)})`);

const insertStep = (v: string) => lit(`INSERT INTO t (v, inst) VALUES ('${v}', '{sys_instance_id}') RETURNING id, v, current_database() AS db, current_user AS cu, session_user AS su`);

async function stepNode(env: Env, id: string, v: string): Promise<{ status: string; result: unknown; status_details: Record<string, unknown> }> {
  const r = await env.admin.query(
    "SELECT status, result, status_details FROM df.nodes WHERE instance_id = $1 AND node_type = 'SQL' AND query LIKE $2",
    [id, `%'${v}'%`],
  );
  return r.rows[0];
}

const prepared = async (env: Env) =>
  (await env.admin.query<{ gid: string; database: string }>("SELECT gid, database FROM pg_prepared_xacts WHERE gid LIKE 'pgd:%'")).rows;

const rowsOf = async (env: Env, v: string) => scalar<number>(env.adminTarget, 'SELECT count(*)::int FROM t WHERE v = $1', [v]);

describe('two-phase commit (private cluster, max_prepared_transactions = 10)', () => {
  let cluster: Cluster;
  let env: Env;
  const workers: WorkerHandle[] = [];
  const worker = (extraEnv: Record<string, string> = {}) => {
    const w = startWorker(cluster.url(env.home), { env: extraEnv });
    workers.push(w);
    return w;
  };

  beforeAll(async () => {
    cluster = await startCluster({ settings: { max_prepared_transactions: 10 } });
    await cluster.createDatabase('xhome');
    const tenant = 'franck';
    await withPgUrl(cluster.url('xhome'), async (c) => {
      await c.query(`CREATE ROLE ${tenant} LOGIN`);
      await c.query('SELECT df.grant_usage($1)', [tenant]);
    });
    env = await makeEnv((db, user) => cluster.url(db, user), 'xhome', tenant, 'tpc');
  }, 120_000);

  afterAll(async () => {
    for (const w of workers) await w.stop().catch(() => undefined);
    await closeEnv(env);
    cluster?.stop();
  });

  it('the reproduction: completes once, effect in the target as the role, checkpoint at home with the gid', async () => {
    const w = worker();
    try {
      const id = await start(env, insertStep('hello'));
      expect(await waitFor(env.user, id)).toBe('completed');
      // The checkpoint, which ends the instance, commits before COMMIT PREPARED (the design: recovery
      // decides by it), so the row shows a round trip after the instance reads completed.
      await eventually(async () => (await rowsOf(env, 'hello')) === 1, 10_000, 'the prepared statement committed');
      const node = await stepNode(env, id, 'hello');
      expect(node.status).toBe('completed');
      expect(node.result).toMatchObject({ rows: [{ v: 'hello', db: env.target, cu: env.tenant, su: env.tenant }], row_count: 1 });
      expect(node.status_details.note).toBe(TWO_PHASE(env.target));
      const homeOid = await scalar<string>(env.admin, 'SELECT oid::text FROM pg_database WHERE datname = current_database()');
      expect(String(node.status_details.xact)).toMatch(new RegExp(`^pgd:${homeOid}:${id}:[0-9a-f]{12}:[0-9a-f]{8}:0$`));
      expect(await prepared(env)).toEqual([]);
      expect(await scalar(env.adminTarget, "SELECT count(*)::int FROM pg_namespace WHERE nspname = 'df'")).toBe(0);
      // the tenant's own view at home (RLS) shows it; the result is the usual one
      expect(await scalar(env.user, 'SELECT df.status($1)', [id])).toBe('completed');
    } finally {
      await w.stop();
    }
  });

  it('a failing statement in the target fails the node and leaves nothing prepared; a multi-step flow mixes in-target steps', async () => {
    const w = worker();
    try {
      const bad = await start(env, lit('INSERT INTO t (v) VALUES (NULL)'));
      expect(await waitFor(env.user, bad)).toBe('failed');
      expect(await scalar(env.admin, "SELECT result #>> '{}' FROM df.nodes WHERE instance_id = $1 AND node_type = 'SQL'", [bad])).toMatch(/^SQL execution failed: null value in column "v"/);
      const id = await start(env, `${insertStep('m1')} |=> 'a' ~> ${insertStep('m2')} ~> ${lit("SELECT count(*)::int AS n FROM t WHERE inst = '{sys_instance_id}'")}`);
      expect(await waitFor(env.user, id)).toBe('completed');
      expect(await scalar(env.user, "SELECT df.result($1)::jsonb #>> '{rows,0,n}'", [id])).toBe('2');
      expect(await prepared(env)).toEqual([]);
    } finally {
      await w.stop();
    }
  });

  it('worker SIGKILL after PREPARE, before the checkpoint: the prepared statement is rolled back and the step runs again, once', async () => {
    const w = worker({ PG_DURABLE_TEST_2PC_PAUSE: 'prepared:60000' });
    const id = await start(env, insertStep('kill-prepared'));
    await eventually(async () => (await prepared(env)).length === 1, 20_000, 'a prepared transaction');
    const [{ gid }] = await prepared(env);
    await w.kill();
    expect(await rowsOf(env, 'kill-prepared')).toBe(0); // prepared, not committed
    const w2 = worker();
    try {
      expect(await waitFor(env.user, id, 40_000)).toBe('completed');
      // The checkpoint, which ends the instance, commits before COMMIT PREPARED (the design: recovery
      // decides by it), so the row shows a round trip after the instance reads completed.
      await eventually(async () => (await rowsOf(env, 'kill-prepared')) === 1, 10_000, 'the prepared statement committed');
      expect(await prepared(env)).toEqual([]);
      const node = await stepNode(env, id, 'kill-prepared');
      expect(node.status_details.xact).not.toBe(gid); // the recorded run is the second one
      expect(w2.logs.some((l) => l.msg === 'prepared transaction settled' && l.gid === gid && l.action === 'rolled back')).toBe(true);
    } finally {
      await w2.stop();
    }
  });

  it('worker SIGKILL after the checkpoint, before COMMIT PREPARED: the next claim commits it (a step follows)', async () => {
    const w = worker({ PG_DURABLE_TEST_2PC_PAUSE: 'checkpointed:60000' });
    const id = await start(env, `${insertStep('kill-checkpointed')} ~> ${lit('SELECT 1 AS after')}`);
    await eventually(
      async () => (await scalar<number>(env.admin, "SELECT count(*)::int FROM df._node_runs WHERE instance_id = $1 AND detail ? 'xact'", [id])) === 1,
      20_000,
      'the checkpoint',
    );
    const [{ gid }] = await prepared(env);
    await w.kill();
    expect(await rowsOf(env, 'kill-checkpointed')).toBe(0);
    const w2 = worker();
    try {
      expect(await waitFor(env.user, id, 40_000)).toBe('completed');
      // The checkpoint, which ends the instance, commits before COMMIT PREPARED (the design: recovery
      // decides by it), so the row shows a round trip after the instance reads completed.
      await eventually(async () => (await rowsOf(env, 'kill-checkpointed')) === 1, 10_000, 'the prepared statement committed');
      expect(await prepared(env)).toEqual([]);
      expect((await stepNode(env, id, 'kill-checkpointed')).status_details.xact).toBe(gid);
      expect(w2.logs.some((l) => l.msg === 'prepared transaction settled' && l.gid === gid && l.action === 'committed')).toBe(true);
    } finally {
      await w2.stop();
    }
  });

  it('worker SIGKILL after the checkpoint of the last step (instance already completed): the periodic sweep commits it', async () => {
    const w = worker({ PG_DURABLE_TEST_2PC_PAUSE: 'checkpointed:60000' });
    const id = await start(env, insertStep('kill-last'));
    expect(await waitFor(env.user, id)).toBe('completed'); // the checkpoint completed the instance
    const [{ gid }] = await prepared(env);
    await w.kill();
    expect(await rowsOf(env, 'kill-last')).toBe(0);
    const w2 = worker({ PG_DURABLE_TEST_PREPARED_SWEEP_MS: '1000' });
    try {
      await eventually(async () => (await prepared(env)).length === 0, 30_000, 'the sweep');
      expect(await rowsOf(env, 'kill-last')).toBe(1);
      expect(w2.logs.some((l) => l.msg === 'prepared transaction settled' && l.gid === gid && l.action === 'committed')).toBe(true);
    } finally {
      await w2.stop();
    }
  });
});

async function withPgUrl<T>(u: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: u });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

describe('at-least-once (shared cluster, max_prepared_transactions = 0) and unreachable targets', () => {
  let env: Env;
  let w: WorkerHandle;

  beforeAll(async () => {
    const home = await freshDatabase('xhome');
    const tenant = await createTenant(home, 'xdb_user');
    env = await makeEnv((db, user) => url(db, user), home, tenant, 'alo');
    w = startWorker(url(home));
  });

  afterAll(async () => {
    await w?.stop();
    await closeEnv(env);
  });

  it('completes once with the effect in the target, the checkpoint at home, and the guarantee in status_details', async () => {
    expect(await scalar(env.admin, "SELECT current_setting('max_prepared_transactions')")).toBe('0');
    const id = await start(env, insertStep('hello'));
    expect(await waitFor(env.user, id)).toBe('completed');
    expect(await rowsOf(env, 'hello')).toBe(1);
    const node = await stepNode(env, id, 'hello');
    expect(node.result).toMatchObject({ rows: [{ v: 'hello', db: env.target, cu: env.tenant, su: env.tenant }] });
    expect(node.status_details.note).toBe(AT_LEAST_ONCE(env.target));
    expect(node.status_details.xact).toBeUndefined();
    expect(await scalar(env.admin, 'SELECT count(*)::int FROM df._runs WHERE instance_id = $1 AND status = $2', [id, 'completed'])).toBeGreaterThan(0);
  });

  it('another tenant sees nothing of it at home (RLS), and cannot write the target table', async () => {
    const id = await start(env, insertStep('private'));
    expect(await waitFor(env.user, id)).toBe('completed');
    const other = await createTenant(env.home, 'xdb_other');
    await withPg(env.home, async (c) => {
      expect(await scalar(c, 'SELECT count(*)::int FROM df.nodes WHERE instance_id = $1', [id])).toBe(0);
      const theirs = await scalar<string>(c, `SELECT df.start(${insertStep('intruder')}, 'x', ${lit(env.target)})`);
      expect(await waitFor(c, theirs)).toBe('failed');
      expect(await scalar(c, "SELECT result #>> '{}' FROM df.nodes WHERE instance_id = $1 AND node_type = 'SQL'", [theirs])).toMatch(/permission denied for table t/);
    }, other);
    expect(await rowsOf(env, 'intruder')).toBe(0);
  });

  it('a target the role may not CONNECT to fails the node with a clear message, not retried forever', async () => {
    const locked = `${env.target}_locked`;
    await env.admin.query(`CREATE DATABASE ${pg.escapeIdentifier(locked)}`);
    await env.admin.query(`REVOKE CONNECT ON DATABASE ${pg.escapeIdentifier(locked)} FROM PUBLIC`);
    const id = await scalar<string>(env.user, `SELECT df.start('SELECT 1', 'locked', ${lit(locked)})`);
    expect(await waitFor(env.user, id, 20_000)).toBe('failed');
    const msg = await scalar<string>(env.admin, "SELECT result #>> '{}' FROM df.nodes WHERE instance_id = $1 AND node_type = 'SQL'", [id]);
    expect(msg).toBe(
      `Failed to connect to database '${locked}' as '${env.tenant}'. Error: role "${env.tenant}" may not connect to database "${locked}": permission denied for database "${locked}" (User does not have CONNECT privilege.). Grant it with GRANT CONNECT ON DATABASE.`,
    );
  });

  it('a target dropped while the instance waits fails the node: database "..." does not exist (dropped?)', async () => {
    const doomed = `${env.target}_doomed`;
    await env.admin.query(`CREATE DATABASE ${pg.escapeIdentifier(doomed)}`);
    const id = await scalar<string>(env.user, `SELECT df.start(df.sleep(2) ~> 'SELECT 1', 'doomed', ${lit(doomed)})`);
    await eventually(async () => (await scalar(env.user, 'SELECT df.status($1)', [id])) === 'running', 15_000, 'running');
    await env.admin.query(`DROP DATABASE ${pg.escapeIdentifier(doomed)} WITH (FORCE)`);
    expect(await waitFor(env.user, id, 20_000)).toBe('failed');
    const msg = await scalar<string>(env.admin, "SELECT result #>> '{}' FROM df.nodes WHERE instance_id = $1 AND node_type = 'SQL'", [id]);
    expect(msg).toBe(`Failed to connect to database '${doomed}' as '${env.tenant}'. Error: database "${doomed}" does not exist (dropped?)`);
    const statuses = (await env.admin.query('SELECT status FROM df.nodes WHERE instance_id = $1', [id])).rows.map((r) => r.status);
    expect(statuses).not.toContain('running');
  });
});
