/**
 * The seeds' walkthrough, end to end with a real worker process (sleeps scaled down): every
 * example runs as the user who started it and produces the outputs the seeds show.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, freshDatabase, scalar, url, withPg } from '../support/db';
import { startWorker, waitFor, type WorkerHandle } from '../support/worker';

let db: string;
let franck: string;
let worker: WorkerHandle;
let user: pg.Client;

beforeAll(async () => {
  db = await freshDatabase('seeds');
  franck = await createTenant(db, 'franck');
  worker = startWorker(url(db));
  user = new pg.Client({ connectionString: url(db, franck) });
  await user.connect();
});

afterAll(async () => {
  await user?.end();
  await worker?.stop();
});

async function startAndWait(expr: string, label?: string): Promise<string> {
  const id = await scalar<string>(user, `SELECT df.start(${expr}${label ? `, '${label}'` : ''})`);
  expect(await waitFor(user, id)).toBe('completed');
  return id;
}

const nodes = (id: string) =>
  user.query('SELECT node_id, node_type, result_name, status, result, left_node, right_node FROM df.nodes n JOIN LATERAL (SELECT n.id AS node_id) x ON true WHERE instance_id = $1', [id]).then((r) => r.rows);

describe("the seeds' walkthrough", () => {
  it('hello world: completed, result and node exactly as shown', async () => {
    const id = await startAndWait("$sql$ SELECT 'Hello, durable world!' AS message $sql$");
    expect(await scalar(user, 'SELECT df.status($1)', [id])).toBe('completed');
    expect(await scalar(user, 'SELECT df.result($1)', [id])).toBe('{"rows": [{"message": "Hello, durable world!"}], "row_count": 1}');
    const rows = await nodes(id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ node_type: 'SQL', status: 'completed' });
  });

  it('sequential steps wait for each other (pg_sleep) and name their results', async () => {
    const id = await startAndWait(
      `'SELECT now() as step1' |=> 't1' ~> 'SELECT pg_sleep(2)' ~> 'SELECT now() as step2' |=> 't2' ~> 'SELECT now() as step3' |=> 't3'`,
      'sequential-timing',
    );
    const result = JSON.parse(await scalar<string>(user, 'SELECT df.result($1)', [id]));
    expect(result.rows[0].step3).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$/);
    const rows = await nodes(id);
    expect(rows.map((r) => `${r.node_type}:${r.result_name ?? ''}`).sort()).toEqual(['SQL:', 'SQL:', 'SQL:', 'SQL:t1', 'THEN:', 'THEN:t2', 'THEN:t3']);
    const t1 = rows.find((r) => r.result_name === 't1')!.result.rows[0].step1;
    const t2 = rows.find((r) => r.result_name === 't2')!.result.rows[0].step2;
    expect(Date.parse(t2) - Date.parse(t1)).toBeGreaterThanOrEqual(2000);
  });

  it('parallel branches really overlap in time and the join waits for both', async () => {
    const id = await startAndWait(
      `('SELECT now() as branch1' |=> 'b1' ~> 'SELECT pg_sleep(3)') & ('SELECT now() as branch2' |=> 'b2' ~> 'SELECT pg_sleep(2)') ~> 'SELECT now() as after_join' |=> 'final'`,
      'parallel-sleep',
    );
    const rows = await nodes(id);
    const at = (name: string, col: string) => Date.parse(rows.find((r) => r.result_name === name)!.result.rows[0][col]);
    expect(Math.abs(at('b1', 'branch1') - at('b2', 'branch2'))).toBeLessThan(1000);
    const elapsed = at('final', 'after_join') - at('b1', 'branch1');
    expect(elapsed).toBeGreaterThanOrEqual(3000);
    expect(elapsed).toBeLessThan(5000); // serially it would be 5 s or more
    const join = rows.find((r) => r.node_type === 'JOIN')!;
    expect(join.result).toEqual([{ rows: [{ pg_sleep: null }], row_count: 1 }, { rows: [{ pg_sleep: null }], row_count: 1 }]);
  });

  it('race: the fast branch wins and the slow one is cancelled', async () => {
    const started = Date.now();
    const id = await startAndWait(`'SELECT pg_sleep(1)' | 'SELECT pg_sleep(60)' ~> 'SELECT ''fast'' as winner'`, 'race-test');
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(await scalar(user, 'SELECT df.result($1)', [id])).toBe('{"rows": [{"winner": "fast"}], "row_count": 1}');
    const sleeping = await withPg(db, (c) =>
      scalar<number>(c, "SELECT count(*)::int FROM pg_stat_activity WHERE usename = $1 AND query = 'SELECT pg_sleep(60)' AND state = 'active'", [franck]),
    );
    expect(sleeping).toBe(0);
  });

  it('if/else takes the branch the condition picks, both ways', async () => {
    const a = await startAndWait(`'SELECT 42 = 6*7 as condition' |=> 'cond' ?> 'SELECT ''Branch A'' as result' !> 'SELECT ''Branch B'' as result'`, 'conditional-test');
    expect(await scalar(user, 'SELECT df.result($1)', [a])).toBe('{"rows": [{"result": "Branch A"}], "row_count": 1}');
    const rows = await nodes(a);
    expect(rows.filter((r) => r.status === 'pending')).toHaveLength(1); // the untaken arm never ran
    const b = await startAndWait(`'SELECT 41 = 6*7 as condition' ?> 'SELECT ''Branch A'' as result' !> 'SELECT ''Branch B'' as result'`);
    expect(await scalar(user, 'SELECT df.result($1)', [b])).toBe('{"rows": [{"result": "Branch B"}], "row_count": 1}');
  });

  it('variable capture: $x * 2 and $x + 10', async () => {
    const id = await startAndWait(`'SELECT 42 as answer' |=> 'x' ~> 'SELECT $x * 2 as doubled' ~> 'SELECT $x + 10 as plus_ten'`, 'variable-test');
    expect(await scalar(user, 'SELECT df.result($1)', [id])).toBe('{"rows": [{"plus_ten": 52}], "row_count": 1}');
    const results = (await nodes(id)).filter((r) => r.node_type === 'SQL').map((r) => JSON.stringify(r.result)).sort();
    expect(results).toEqual(['{"rows":[{"answer":42}],"row_count":1}', '{"rows":[{"doubled":84}],"row_count":1}', '{"rows":[{"plus_ten":52}],"row_count":1}']);
  });

  it('each step runs in its own transaction, as the submitting user', async () => {
    const q = (tag: string, col = 'step') => `'SELECT user, pg_backend_pid() as session_id, txid_current() as txid, ''${tag}'' as ${col}'`;
    const id = await startAndWait(`${q('step1')} |=> 's1' ~> ${q('step2')} ~> (${q('race_branch1', 'branch')} | ${q('race_branch2', 'branch')}) ~> ${q('final')}`, 'txid-demo');
    const sql = (await nodes(id)).filter((r) => r.node_type === 'SQL' && r.result).map((r) => r.result.rows[0]);
    expect(sql.length).toBeGreaterThanOrEqual(4);
    expect(new Set(sql.map((r) => r.txid)).size).toBe(sql.length);
    for (const r of sql) expect(r.user).toBe(franck);
  });

  it('a scheduled loop samples on every cron tick (worker clock running 60x)', async () => {
    const fast = startWorker(url(db), { clockSpeed: 60 });
    const sampler = await freshInstanceOnlyFor(fast);
    try {
      const executions = async () => withPg(db, (c) => scalar<number>(c, 'SELECT count(*)::int FROM df._executions WHERE instance_id = $1', [sampler]));
      const deadline = Date.now() + 20_000;
      while ((await executions()) < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(await executions()).toBeGreaterThanOrEqual(3); // two ticks sampled, a third execution waiting
      const samples = await withPg(db, (c) =>
        c.query("SELECT count(*)::int AS n FROM df._node_runs r JOIN df.nodes n ON n.instance_id = r.instance_id AND n.id = r.node_id WHERE r.instance_id = $1 AND n.node_type = 'SQL' AND r.status = 'completed'", [sampler]),
      );
      expect(samples.rows[0].n).toBeGreaterThanOrEqual(2);
      expect(await scalar(user, 'SELECT df.cancel($1)', [sampler])).toBe(`Instance ${sampler} cancelled: Cancelled by user`);
    } finally {
      await fast.stop();
    }
  });
});

/** Starts the seeds' pg_stat_activity sampler while only `w` (the fast-clock worker) should pick it up. */
async function freshInstanceOnlyFor(_w: WorkerHandle): Promise<string> {
  // The normal worker would also claim it; stop it for this test so the fast clock drives the schedule.
  await worker.stop();
  const id = await scalar<string>(
    user,
    `SELECT df.start(@> ('SELECT datname, usename, application_name, wait_event_type, wait_event, state, query FROM pg_stat_activity' ~> df.wait_for_schedule('*/1 * * * *')), 'pg-stat-activity-sampler')`,
  );
  return id;
}
