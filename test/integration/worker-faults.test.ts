/**
 * Failures and how the worker handles them: transient faults (our deviation 6) are retried by the
 * worker without re-running completed steps; ordinary errors fail the node at once; df.retry and
 * df.timeout (ours, beyond the original) let a workflow retry or bound any node, composites included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupFlow, sleep, type Flow } from '../support/flows';

let flow: Flow;
beforeAll(async () => {
  flow = await setupFlow('faults');
  // flaky(seq, sqlstate, n): raises `sqlstate` on its first n calls (a sequence counts calls, and
  // sequences do not roll back), then returns the call number.
  await flow.user.query(`
    CREATE FUNCTION flaky(seq regclass, code text, failures int, pause float8 DEFAULT 0) RETURNS bigint LANGUAGE plpgsql AS $$
    DECLARE n bigint := nextval(seq);
    BEGIN
      IF n <= failures THEN
        PERFORM pg_sleep(pause);
        RAISE EXCEPTION 'flaky call % of %', n, failures USING ERRCODE = code;
      END IF;
      RETURN n;
    END $$;
    CREATE TABLE attempts_log (attempt int, at timestamptz DEFAULT clock_timestamp())`);
});
afterAll(async () => flow?.stop());

let seqNo = 0;
async function newSeq(): Promise<string> {
  const name = `calls_${++seqNo}`;
  await flow.user.query(`CREATE SEQUENCE ${name}`);
  return name;
}
const calls = async (seq: string) => Number((await flow.user.query(`SELECT last_value FROM ${seq}`)).rows[0].last_value);

describe('transient faults are retried by the worker (deviation 6)', () => {
  for (const [code, what] of [
    ['40001', 'serialization failure'],
    ['40P01', 'deadlock'],
    ['57P01', 'admin shutdown'],
    ['53300', 'too many connections'],
  ]) {
    it(`${code} (${what}): the step is retried until it succeeds`, async () => {
      const seq = await newSeq();
      const { id, status } = await flow.run(`'SELECT 1 AS first' ~> 'SELECT flaky(''${seq}'', ''${code}'', 2) AS n'`);
      expect(status).toBe('completed');
      expect(await flow.result(id)).toBe('{"rows": [{"n": 3}], "row_count": 1}');
      expect(await calls(seq)).toBe(3);
    });
  }

  it('a lost connection (backend terminated mid-step) is retried on a new one', async () => {
    const seq = await newSeq();
    const id = await flow.start(`'SELECT nextval(''${seq}'') AS n, pg_sleep(1.5) AS slept'`);
    for (let i = 0; i < 100; i++) {
      const r = await flow.admin.query("SELECT pid FROM pg_stat_activity WHERE usename = $1 AND query LIKE 'SELECT nextval(%pg_sleep(1.5)%' AND state = 'active'", [flow.tenant]);
      if (r.rowCount === 1) {
        await flow.admin.query('SELECT pg_terminate_backend($1)', [r.rows[0].pid]);
        break;
      }
      await sleep(50);
    }
    expect(await flow.wait(id, 30_000)).toBe('completed');
    expect(await calls(seq)).toBe(2); // the killed attempt drew 1, the retry 2
    expect(await flow.result(id)).toBe('{"rows": [{"n": 2, "slept": null}], "row_count": 1}');
  });

  it('an ordinary error fails the node at once, without retries', async () => {
    const seq = await newSeq();
    const { id, status } = await flow.run(`'SELECT flaky(''${seq}'', ''22012'', 5) AS n'`);
    expect(status).toBe('failed');
    expect(await calls(seq)).toBe(1);
    expect((await flow.root(id)).result).toBe('SQL execution failed: flaky call 1 of 5');
  });
});

describe('df.retry', () => {
  it('re-runs a failing step with backoff until it succeeds, and shows the attempt count', async () => {
    const seq = await newSeq();
    const started = Date.now();
    const { id, status } = await flow.run(`df.retry('SELECT flaky(''${seq}'', ''P0001'', 2) AS n', 5, 0.2)`);
    expect(status).toBe('completed');
    expect(await flow.result(id)).toBe('{"rows": [{"n": 3}], "row_count": 1}');
    expect(Date.now() - started).toBeGreaterThanOrEqual(0.2 * 0.8 * 1000 + 0.4 * 0.8 * 1000); // two backoffs: 0.2 s then 0.4 s (±20%)
    const retry = (await flow.nodes(id)).find((n) => n.node_type === 'RETRY')!;
    expect(retry.status).toBe('completed');
    expect(retry.status_details).toMatchObject({ attempt: 3, execution_id: `${id}::1::${retry.id}::3` });
    const runs = await flow.admin.query("SELECT stamp, status FROM df._node_runs WHERE instance_id = $1 AND node_id = $2 ORDER BY stamp", [id, retry.id]);
    expect(runs.rows.map((r) => r.status)).toEqual(['failed', 'failed', 'completed']);
  });

  it('gives up after max_attempts with the last error', async () => {
    const { id, status } = await flow.run(`df.retry('SELECT 1/0', 2, 0.1)`);
    expect(status).toBe('failed');
    expect((await flow.root(id)).result).toBe('Retry exhausted after 2 attempts: SQL execution failed: division by zero');
  });

  it('retries a whole THEN chain: every step of a failed attempt runs again', async () => {
    const seq = await newSeq();
    const { id, status } = await flow.run(
      `df.retry('INSERT INTO attempts_log (attempt) VALUES (currval(''${seq}'') + 0) RETURNING 1' ~> 'SELECT flaky(''${seq}'', ''P0001'', 1) AS n', 3, 0.1)`.replace(
        `currval(''${seq}'') + 0`,
        `(SELECT count(*) FROM attempts_log) + 1`,
      ),
    );
    expect(status).toBe('completed');
    expect(await flow.result(id)).toBe('{"rows": [{"n": 2}], "row_count": 1}');
    expect(Number((await flow.user.query('SELECT count(*) AS n FROM attempts_log')).rows[0].n)).toBe(2);
    await flow.user.query('TRUNCATE attempts_log');
  });

  it('does not retry a df.break: it ends the enclosing loop as usual', async () => {
    const { id, status } = await flow.run(`@> df.retry(df.break('out'), 3, 0.1)`);
    expect(status).toBe('completed');
    expect(await flow.result(id)).toBe('"out"');
  });
});

describe('df.timeout', () => {
  it('fails a step that runs too long and cancels its SQL', async () => {
    const started = Date.now();
    const { id, status } = await flow.run(`df.timeout('SELECT pg_sleep(30)', 1)`);
    expect(status).toBe('failed');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await flow.root(id)).result).toBe('Timed out: did not finish within 1s');
    let active = 1;
    for (let i = 0; i < 50 && active > 0; i++) {
      active = (await flow.admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND query = 'SELECT pg_sleep(30)' AND state = 'active'", [flow.tenant])).rows[0].n;
      if (active > 0) await sleep(100);
    }
    expect(active).toBe(0);
  });

  it('passes the result through when the step finishes in time', async () => {
    const { id, status } = await flow.run(`df.timeout('SELECT 7 AS v', 5)`);
    expect(status).toBe('completed');
    expect(await flow.result(id)).toBe('{"rows": [{"v": 7}], "row_count": 1}');
  });

  it('composes with df.retry: a timed-out attempt is retried', async () => {
    const seq = await newSeq();
    // First call sleeps 5 s (then would fail), the second returns at once.
    const { id, status } = await flow.run(`df.retry(df.timeout('SELECT flaky(''${seq}'', ''P0001'', 1, 5) AS n', 1), 3, 0.1)`);
    expect(status).toBe('completed');
    expect(await flow.result(id)).toBe('{"rows": [{"n": 2}], "row_count": 1}');
  });

  it('bounds a whole composite (a JOIN) and cancels every branch', async () => {
    const { id, status } = await flow.run(`df.timeout('SELECT pg_sleep(20)' & 'SELECT pg_sleep(25)', 1)`);
    expect(status).toBe('failed');
    expect((await flow.root(id)).result).toBe('Timed out: did not finish within 1s');
  });
});

describe('retry and timeout in explain', () => {
  it('renders the policies in the tree', async () => {
    const text = (await flow.user.query(`SELECT df.explain('SELECT 0' ~> df.retry(df.timeout('SELECT 1' ~> 'SELECT 2', 5), 3, 2)) AS e`)).rows[0].e as string;
    expect(text.split('\n').map((l) => l.trimEnd())).toEqual([
      'SQL: SELECT 0',
      '→ RETRY (max 3 attempts, backoff 2s)',
      '    ↺ attempt:',
      '      └─TIMEOUT 5s',
      '          ⏱ within:',
      '            └─SQL: SELECT 1',
      '            → SQL: SELECT 2',
    ]);
  });
});

describe('composite results obey --max-result-bytes', () => {
  it('a JOIN whose assembled array is too large fails the node, not the worker', async () => {
    const big = flowBig ?? (flowBig = await setupFlow('faults_big', { extraArgs: ['--max-result-bytes', '4096'] }));
    const branch = `'SELECT repeat(''x'', 3000) AS s'`;
    const { id, status } = await big.run(`${branch} & ${branch}`);
    expect(status).toBe('failed');
    expect((await big.root(id)).result).toMatch(/^JOIN result too large: \d+ bytes, the limit is 4096 bytes/);
    await big.stop();
  });
});
let flowBig: Flow | undefined;
