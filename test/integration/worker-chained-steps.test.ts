/**
 * A chain's steps travel together (src/worker/steps.ts, Parked): a SQL step's checkpoint is held
 * back, its transaction open, until the instance's next step takes it over (the checkpoint,
 * COMMIT, reset, BEGIN, settings and the next statement in one round trip) or the instance
 * commits it. Nothing a held-back step did is visible before its checkpoint commits, and a
 * checkpoint that cannot commit takes the step's effect with it.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../src/worker/config';
import { createLogger } from '../../src/worker/log';
import { LeaseLost, ParkedCheckpointFailed, StepRunner, type StepRequest } from '../../src/worker/steps';
import { COMMIT_SQL, Store } from '../../src/worker/store';
import { asRole, createTenant, freshDatabase, scalar, url, withPg } from '../support/db';
import { setupFlow, type Flow } from '../support/flows';

let db: string;
let alice: string;
let store: Store;
let steps: StepRunner;
const epoch = '00000000-0000-4000-8000-0000000000c1';

beforeAll(async () => {
  db = await freshDatabase('chained');
  alice = await createTenant(db, 'alice');
  // A row 'bad' is refused when its transaction commits (a deferred constraint trigger).
  await withPg(db, (c) => c.query(`CREATE TABLE public.ledger (step text); GRANT SELECT, INSERT ON public.ledger TO ${pg.escapeIdentifier(alice)};
    CREATE FUNCTION public.refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.step = 'bad' THEN RAISE EXCEPTION 'no bad steps' USING ERRCODE = '23514'; END IF;
      RETURN NULL;
    END $$;
    CREATE CONSTRAINT TRIGGER refuse_bad AFTER INSERT ON public.ledger DEFERRABLE INITIALLY DEFERRED
      FOR EACH ROW EXECUTE FUNCTION public.refuse_bad()`));
  store = new Store(url(db), 2, () => false);
  steps = new StepRunner(parseConfig(['--database-url', url(db)]), store, createLogger('silent'));
});
afterAll(async () => {
  await steps?.end();
  await store?.end();
});

const ledger = () => withPg(db, async (c) => (await c.query<{ step: string }>('SELECT step FROM public.ledger ORDER BY step')).rows.map((r) => r.step));
const insert = (step: string) => `INSERT INTO public.ledger VALUES ('${step}') RETURNING step`;

/** Starts a chain of `sqls` as alice and claims it: the instance, its lease and its SQL node ids in order. */
async function leased(...sqls: string[]) {
  const graph = sqls.map((s) => pg.escapeLiteral(s)).join(' ~> ');
  const id = await asRole(db, alice, (c) => scalar<string>(c, `SELECT df.start(${graph})`));
  const claim = (await store.claim(epoch, 10, 30)).find((x) => x.instanceId === id)!;
  const nodes = sqls.map((s) => claim.loaded!.nodes.find((n) => n.node_type === 'SQL' && n.query === s)!.id);
  return { id, token: claim.token, nodes };
}

/** The request the interpreter makes for a chained SQL step: its checkpoint records the node completed. */
function request(inst: { id: string; token: string }, node: string, sql: string): StepRequest {
  const stamp = `${inst.id}::1`;
  return {
    role: alice,
    database: db,
    sql,
    signal: new AbortController().signal,
    instance: inst.id,
    stamp,
    node,
    token: () => inst.token,
    checkpoint: async (run, json) => {
      await run(COMMIT_SQL, [inst.id, inst.token, JSON.stringify([{ node, stamp, status: 'completed', result: json, json: true }]), null, null]);
    },
    recorded: () => store.completedResult(inst.id, stamp, node),
    chain: true,
  };
}

describe('chained SQL steps', () => {
  // The interpreter's next step arrives within the same turn of the event loop; here the test's
  // own queries come in between, so the turn's end (which commits a step nobody took) is held.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setImmediate', 'clearImmediate'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("travel with the previous step's checkpoint: one round trip per step, nothing visible before its COMMIT", async () => {
    const inst = await leased(insert('a'), insert('b'));
    const flights = vi.spyOn(pg.Client.prototype, 'query');
    try {
      const a = await steps.run(request(inst, inst.nodes[0], insert('a')));
      expect(a).toMatchObject({ kind: 'ok', parked: true });
      expect(flights).toHaveBeenCalledTimes(1); // BEGIN, settings, statement
      flights.mockClear();
      expect(await ledger()).toEqual([]); // a's transaction is still open
      flights.mockClear();

      const b = await steps.run(request(inst, inst.nodes[1], insert('b')));
      expect(b).toMatchObject({ kind: 'ok', parked: true });
      expect(flights).toHaveBeenCalledTimes(1); // a's checkpoint, COMMIT, reset; BEGIN, settings, statement
      flights.mockClear();
      expect(await ledger()).toEqual(['a']);
      flights.mockClear();

      await steps.commitParked(inst.id);
      expect(flights).toHaveBeenCalledTimes(1); // b's checkpoint, COMMIT, reset
    } finally {
      flights.mockRestore();
    }
    expect(await ledger()).toEqual(['a', 'b']);
    const runs = await withPg(db, (c) => c.query("SELECT node_id FROM df._node_runs WHERE instance_id = $1 AND status = 'completed'", [inst.id]));
    expect(runs.rows.map((r) => r.node_id).sort()).toEqual([...inst.nodes].sort());
  });

  it('roll back with a checkpoint whose lease is gone: a cancel between two steps leaves nothing', async () => {
    await withPg(db, (c) => c.query('TRUNCATE public.ledger'));
    const inst = await leased(insert('c'), insert('d'));
    expect(await steps.run(request(inst, inst.nodes[0], insert('c')))).toMatchObject({ kind: 'ok', parked: true });
    await asRole(db, alice, (c) => c.query('SELECT df.cancel($1)', [inst.id]));
    await expect(steps.run(request(inst, inst.nodes[1], insert('d')))).rejects.toBeInstanceOf(LeaseLost);
    expect(await ledger()).toEqual([]);
  });

  it("refused at COMMIT (a deferred constraint): the refusal is the previous step's, with its SQLSTATE, and the next step never runs", async () => {
    await withPg(db, (c) => c.query('TRUNCATE public.ledger'));
    const inst = await leased(insert('bad'), insert('f'));
    expect(await steps.run(request(inst, inst.nodes[0], insert('bad')))).toMatchObject({ kind: 'ok', parked: true });
    const err = await steps.run(request(inst, inst.nodes[1], insert('f'))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ParkedCheckpointFailed);
    expect((err as ParkedCheckpointFailed).code).toBe('23514');
    expect((err as ParkedCheckpointFailed).node).toBe(inst.nodes[0]);
    expect(await ledger()).toEqual([]);
  });
});

describe('a held-back checkpoint nobody takes over', () => {
  it("commits when the event loop turns: a step never waits on another branch's I/O", async () => {
    await withPg(db, (c) => c.query('TRUNCATE public.ledger'));
    const inst = await leased(insert('g'), insert('h'));
    expect(await steps.run(request(inst, inst.nodes[0], insert('g')))).toMatchObject({ kind: 'ok', parked: true });
    for (let i = 0; i < 100 && (await ledger()).length === 0; i++) await new Promise((res) => setTimeout(res, 10));
    expect(await ledger()).toEqual(['g']);
    // The next step finds nothing parked: its own two round trips, its checkpoint held back again.
    expect(await steps.run(request(inst, inst.nodes[1], insert('h')))).toMatchObject({ kind: 'ok', parked: true });
    await steps.commitParked(inst.id);
    expect(await ledger()).toEqual(['g', 'h']);
  });
});

describe('a statement that fails just before its connection breaks', () => {
  it("fails the step with the statement's own error: the broken ROLLBACK does not turn it into a worker error", async () => {
    const inst = await leased('SELECT 1/0 AS boom');
    const query = pg.Client.prototype.query;
    // PostgreSQL shuts down (or the backend is terminated) between the statement's error and the
    // worker's ROLLBACK: a chaos run's saga step ended its instance without its undos that way.
    const rollbacks = vi.spyOn(pg.Client.prototype, 'query').mockImplementation(function (this: pg.Client, ...args: unknown[]) {
      if (args[0] === 'ROLLBACK') return Promise.reject(new Error('Connection terminated unexpectedly'));
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof query);
    try {
      const out = await steps.run({ ...request(inst, inst.nodes[0], 'SELECT 1/0 AS boom'), chain: false });
      expect(out).toEqual({ kind: 'fail', error: 'SQL execution failed: division by zero' });
      expect(rollbacks.mock.calls.filter((c) => c[0] === 'ROLLBACK')).toHaveLength(1); // no retry
    } finally {
      rollbacks.mockRestore();
    }
  });
});

describe('a lost connection around a held-back checkpoint (worker)', () => {
  let flow: Flow;
  beforeAll(async () => {
    flow = await setupFlow('chained_faults');
    // Every row inserted into slow_commit makes its transaction's COMMIT take 1.5 s.
    await flow.admin.query(`
      CREATE TABLE public.slow_commit (step text);
      GRANT SELECT, INSERT ON public.slow_commit TO ${pg.escapeIdentifier(flow.tenant)};
      CREATE FUNCTION public.slow_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$;
      CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON public.slow_commit DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION public.slow_at_commit()`);
  });
  afterAll(async () => flow?.stop());

  /** Terminates the tenant's step backend once it is seen sleeping in a statement like `query`. */
  async function killSleepingStep(query: string): Promise<void> {
    for (let i = 0; i < 250; i++) {
      const r = await flow.admin.query("SELECT pid FROM pg_stat_activity WHERE usename = $1 AND wait_event = 'PgSleep' AND query LIKE $2", [flow.tenant, query]);
      if (r.rowCount === 1) {
        await flow.admin.query('SELECT pg_terminate_backend($1)', [r.rows[0].pid]);
        return;
      }
      await new Promise((res) => setTimeout(res, 20));
    }
    throw new Error('no step was seen sleeping');
  }

  it('before its COMMIT ended: the instance resumes from its last checkpoint and the step lands once', async () => {
    const id = await flow.start(`'INSERT INTO public.slow_commit VALUES (''x'') RETURNING 1 AS one' ~> 'SELECT 2 AS two'`);
    await killSleepingStep('COMMIT'); // the first step's COMMIT, carried by the second step's flight
    expect(await flow.wait(id, 30_000)).toBe('completed');
    expect(await scalar(flow.admin, 'SELECT count(*)::int FROM public.slow_commit')).toBe(1);
    expect(flow.worker.logs.some((l) => l.msg === 'checkpoint lost; resuming the instance from its last checkpoint' && l.instance === id)).toBe(true);
  });

  it('after its COMMIT, during the next statement: the next step runs again, the one before stays done', async () => {
    await flow.admin.query('TRUNCATE public.slow_commit');
    const id = await flow.start(`'INSERT INTO public.slow_commit VALUES (''y'') RETURNING 1 AS one' ~> 'SELECT 3 AS three, pg_sleep(1) AS nap'`);
    await killSleepingStep('SELECT 3 AS three, pg_sleep(1)%');
    expect(await flow.wait(id, 30_000)).toBe('completed');
    expect(await scalar(flow.admin, 'SELECT count(*)::int FROM public.slow_commit')).toBe(1);
    expect(await flow.result(id)).toContain('"three": 3');
    expect(flow.worker.logs.some((l) => l.msg === 'transient failure in SQL step, retrying')).toBe(true);
  });
});
