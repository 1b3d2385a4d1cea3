/**
 * Privileges that vanish mid-run (issue 16, part 2): the submitting role loses its pg_durable
 * privileges (df.revoke_usage) or is dropped while an instance waits in a df.sleep before a loop.
 * The instance fails with a message that says what happened, the failing path (root THEN, LOOP,
 * the step) is stamped failed, finished nodes (the SLEEP) keep their outcome, and no node on the
 * path stays running or pending. The step's statement is rolled back with its checkpoint.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, freshDatabase, scalar, url } from '../support/db';
import { eventually, startWorker, waitFor, type WorkerHandle } from '../support/worker';

let db: string;
let admin: pg.Client;
let worker: WorkerHandle;

beforeAll(async () => {
  db = await freshDatabase('idloss');
  admin = new pg.Client({ connectionString: url(db) });
  await admin.connect();
  await admin.query('CREATE TABLE public.led (who text NOT NULL DEFAULT current_user, at timestamptz DEFAULT clock_timestamp())');
  worker = startWorker(url(db));
});

afterAll(async () => {
  await worker?.stop();
  await admin?.end();
});

const STEP = 'INSERT INTO public.led DEFAULT VALUES RETURNING who';
const FLOW = `df.sleep(3) ~> df.loop(${pg.escapeLiteral(STEP)}, 'SELECT false AS again')`;

async function tenant(base: string): Promise<string> {
  const role = await createTenant(db, base);
  await admin.query(`GRANT INSERT, SELECT ON public.led TO ${pg.escapeIdentifier(role)}`);
  return role;
}

async function startAs(role: string, expr: string): Promise<string> {
  const c = new pg.Client({ connectionString: url(db, role) });
  await c.connect();
  try {
    return await scalar<string>(c, `SELECT df.start(${expr})`);
  } finally {
    await c.end();
  }
}

async function nodes(id: string): Promise<Record<string, { status: string; result: unknown }>> {
  const r = await admin.query<{ node_type: string; query: string | null; status: string; result: unknown }>(
    'SELECT node_type, query, status, result FROM df.nodes WHERE instance_id = $1',
    [id],
  );
  const out: Record<string, { status: string; result: unknown }> = {};
  for (const n of r.rows) out[n.query === STEP ? 'STEP' : n.query === 'SELECT false AS again' ? 'COND' : n.node_type] = { status: n.status, result: n.result };
  return out;
}

const output = (id: string) => scalar<string>(admin, 'SELECT output FROM df._executions WHERE instance_id = $1 ORDER BY execution_id DESC LIMIT 1', [id]);
const running = (id: string) => eventually(async () => (await scalar(admin, "SELECT status FROM df.nodes WHERE instance_id = $1 AND node_type = 'SLEEP'", [id])) === 'running', 15_000, 'sleeping');

describe('the role loses its privileges while the instance waits', () => {
  it('df.revoke_usage during the sleep: failed path stamped, SLEEP keeps completed, the message says so, nothing written', async () => {
    const role = await tenant('idl_revoked');
    const id = await startAs(role, FLOW);
    await running(id);
    await admin.query('SELECT df.revoke_usage($1)', [role]);
    expect(await waitFor(admin, id, 20_000)).toBe('failed');
    const out = await output(id);
    expect(out).toMatch(new RegExp(`^Instance ${id}: role "${role}" lost its pg_durable privileges \\(df.revoke_usage`));
    expect(out).toContain('(permission denied for schema df)');
    const n = await nodes(id);
    expect(n.SLEEP.status).toBe('completed');
    expect({ then: n.THEN.status, loop: n.LOOP.status, step: n.STEP.status }).toEqual({ then: 'failed', loop: 'failed', step: 'failed' });
    expect(n.THEN.result).toBe(out);
    expect(n.STEP.result).toBe(out);
    expect(n.COND.status).toBe('pending'); // never reached: not on the failing path
    expect(await scalar(admin, 'SELECT count(*)::int FROM df.nodes WHERE instance_id = $1 AND status = $2', [id, 'running'])).toBe(0);
    expect(await scalar(admin, 'SELECT count(*)::int FROM df._runs WHERE instance_id = $1 AND status = $2', [id, 'running'])).toBe(0);
    expect(await scalar(admin, 'SELECT count(*)::int FROM public.led WHERE who = $1', [role])).toBe(0);
  });

  it('DROP ROLE during the sleep: the message says the role no longer exists; failed path stamped', async () => {
    const role = await tenant('idl_dropped');
    const id = await startAs(role, FLOW);
    await running(id);
    // df rows reference the role by oid (regrole, no dependency); its grants and objects must go first
    const q = pg.escapeIdentifier(role);
    await admin.query(`REASSIGN OWNED BY ${q} TO postgres; DROP OWNED BY ${q}; DROP ROLE ${q}`);
    expect(await waitFor(admin, id, 20_000)).toBe('failed');
    const out = await output(id);
    expect(out).toMatch(new RegExp(`^Instance ${id}: role "${role}" no longer exists \\(dropped while the instance ran\\)`));
    const n = await nodes(id);
    expect(n.SLEEP.status).toBe('completed');
    expect({ then: n.THEN.status, loop: n.LOOP.status, step: n.STEP.status }).toEqual({ then: 'failed', loop: 'failed', step: 'failed' });
    expect(n.COND.status).toBe('pending');
    expect(await scalar(admin, 'SELECT count(*)::int FROM df.nodes WHERE instance_id = $1 AND status = $2', [id, 'running'])).toBe(0);
    expect(await scalar(admin, 'SELECT count(*)::int FROM df._runs WHERE instance_id = $1 AND status = $2', [id, 'running'])).toBe(0);
  });

  it('privileges revoked while no worker runs: the next claim fails the instance and stamps what was running', async () => {
    const role = await tenant('idl_offline');
    const id = await startAs(role, `df.sleep(30) ~> ${pg.escapeLiteral(STEP)}`);
    await running(id);
    await worker.stop();
    await admin.query('SELECT df.revoke_usage($1)', [role]);
    worker = startWorker(url(db));
    expect(await waitFor(admin, id, 20_000)).toBe('failed');
    expect(await output(id)).toMatch(new RegExp(`^Instance ${id}: role "${role}" lost its pg_durable privileges`));
    const n = await nodes(id);
    expect({ then: n.THEN.status, sleep: n.SLEEP.status, step: n.STEP.status }).toEqual({ then: 'failed', sleep: 'failed', step: 'pending' });
    expect(await scalar(admin, 'SELECT count(*)::int FROM df._runs WHERE instance_id = $1 AND status = $2', [id, 'running'])).toBe(0);
  });
});
