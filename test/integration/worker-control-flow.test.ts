/**
 * Control flow end to end (API §9.4–§9.10): THEN, JOIN, RACE, loops, break and sleep, with
 * failures propagating the contract's messages to the nodes on the failing path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scalar } from '../support/db';
import { type Flow, lit, setupFlow } from '../support/flows';

let f: Flow;

beforeAll(async () => {
  f = await setupFlow('flow');
  await f.user.query('CREATE TABLE cf_side (tag text, at timestamptz DEFAULT clock_timestamp())');
  await f.user.query('CREATE TABLE cf_counter (inst text, n int, at timestamptz DEFAULT clock_timestamp())');
});

afterAll(async () => {
  await f?.stop();
});

const DIV0 = 'SQL execution failed: division by zero';

describe('THEN', () => {
  it('a failing left side skips the right side (pending) and fails the instance', async () => {
    const { id, status } = await f.run(`${lit('SELECT 1/0 AS x')} ~> ${lit('SELECT 2 AS y')}`);
    expect(status).toBe('failed');
    expect(await f.result(id)).toBeNull();
    expect(await f.nodeByQuery(id, 'SELECT 1/0 AS x')).toMatchObject({ status: 'failed', result: DIV0 });
    expect(await f.nodeByQuery(id, 'SELECT 2 AS y')).toMatchObject({ status: 'pending', result: null });
    expect(await f.root(id)).toMatchObject({ node_type: 'THEN', status: 'failed', result: DIV0 });
  });
});

describe('JOIN', () => {
  it('a failing branch fails the join as "JOIN branch 2 failed: ..." while the other branch still completes', async () => {
    const slow = "INSERT INTO cf_side (tag) VALUES ('join-survivor') RETURNING tag";
    const { id, status } = await f.run(`(${lit('SELECT pg_sleep(0.5)')} ~> ${lit(slow)}) & ${lit('SELECT 1/0 AS boom')}`);
    expect(status).toBe('failed');
    expect(await f.root(id)).toMatchObject({ node_type: 'JOIN', status: 'failed', result: `JOIN branch 2 failed: ${DIV0}` });
    expect(await f.nodeByQuery(id, 'SELECT 1/0 AS boom')).toMatchObject({ status: 'failed', result: DIV0 });
    // The sibling was not cancelled: it ran to the end after the failure.
    expect(await f.nodeByQuery(id, slow)).toMatchObject({ status: 'completed', result: { rows: [{ tag: 'join-survivor' }], row_count: 1 } });
    expect(await scalar(f.user, "SELECT count(*)::int FROM cf_side WHERE tag = 'join-survivor'")).toBe(1);
  });

  it('three branches: the result is the array of branch results and their names reach later steps', async () => {
    const { id, status } = await f.run(
      `df.join3(${lit('SELECT 1 AS a')} |=> 'ra', ${lit('SELECT 2 AS b')} |=> 'rb', ${lit('SELECT 3 AS c')} |=> 'rc') |=> 'all3' ~> ${lit('SELECT $ra + $rb + $rc AS total, jsonb_array_length($all3::jsonb) AS n')}`,
    );
    expect(status).toBe('completed');
    expect(await f.result(id)).toBe('{"rows": [{"n": 3, "total": 6}], "row_count": 1}');
    const join = (await f.nodes(id)).find((n) => n.node_type === 'JOIN')!;
    expect(join.result).toEqual([
      { rows: [{ a: 1 }], row_count: 1 },
      { rows: [{ b: 2 }], row_count: 1 },
      { rows: [{ c: 3 }], row_count: 1 },
    ]);
  });

  it('nested joins give nested arrays', async () => {
    const { id, status } = await f.run(`(${lit('SELECT 1 AS a')} & ${lit('SELECT 2 AS b')}) & ${lit('SELECT 3 AS c')}`);
    expect(status).toBe('completed');
    expect(await f.result(id)).toBe(
      '[[{"rows": [{"a": 1}], "row_count": 1}, {"rows": [{"b": 2}], "row_count": 1}], {"rows": [{"c": 3}], "row_count": 1}]',
    );
    expect(await f.output(id)).toBe('[[{"rows":[{"a":1}],"row_count":1},{"rows":[{"b":2}],"row_count":1}],{"rows":[{"c":3}],"row_count":1}]');
  });
});

describe('RACE', () => {
  it('a winner that fails fails the race: "RACE left branch failed: ..." / "RACE right branch failed: ..."', async () => {
    const left = await f.start(`${lit('SELECT 1/0 AS l')} | ${lit('SELECT pg_sleep(30) AS slow_l')}`);
    const right = await f.start(`${lit('SELECT pg_sleep(30) AS slow_r')} | ${lit('SELECT 1/0 AS r')}`);
    expect(await f.wait(left, 10_000)).toBe('failed');
    expect(await f.wait(right, 10_000)).toBe('failed');
    expect(await f.root(left)).toMatchObject({ node_type: 'RACE', status: 'failed', result: `RACE left branch failed: ${DIV0}` });
    expect(await f.root(right)).toMatchObject({ node_type: 'RACE', status: 'failed', result: `RACE right branch failed: ${DIV0}` });
  });
});

describe('loops', () => {
  it('while-loop: runs while the condition holds, ends with the last body result, at least 1 s per iteration', async () => {
    const body = "INSERT INTO cf_counter (inst, n) SELECT '{sys_instance_id}', count(*) + 1 FROM cf_counter WHERE inst = '{sys_instance_id}' RETURNING n";
    const cond = "SELECT count(*) < 3 FROM cf_counter WHERE inst = '{sys_instance_id}'";
    const { id, status } = await f.run(`df.loop(${lit(body)}, ${lit(cond)})`);
    expect(status).toBe('completed');
    expect(await f.result(id)).toBe('{"rows": [{"n": 3}], "row_count": 1}');
    expect(await scalar(f.user, 'SELECT array_agg(n ORDER BY n)::text FROM cf_counter WHERE inst = $1', [id])).toBe('{1,2,3}');
    const ms = await scalar<number>(f.user, 'SELECT (extract(epoch FROM completed_at - created_at) * 1000)::int FROM df.instances WHERE id = $1', [id]);
    expect(ms).toBeGreaterThanOrEqual(2000); // three iterations: two 1-second floors between them
  });

  it('an infinite loop ended by df.break(\'{"status": "done"}\') has that JSON as its result', async () => {
    const body =
      `${lit("INSERT INTO cf_side (tag) VALUES ('brk-{sys_instance_id}') RETURNING tag")} ~> ` +
      `(${lit("SELECT count(*) >= 2 FROM cf_side WHERE tag = 'brk-{sys_instance_id}'")} ?> df.break('{"status": "done"}') !> ${lit("SELECT 'again' AS next")})`;
    const { id, status } = await f.run(`@> (${body})`);
    expect(status).toBe('completed');
    expect(await f.result(id)).toBe('{"status": "done"}');
    expect(await f.output(id)).toBe('{"status":"done"}');
    expect(await scalar(f.user, 'SELECT count(*)::int FROM cf_side WHERE tag = $1', [`brk-${id}`])).toBe(2);
    expect((await f.nodes(id)).find((n) => n.node_type === 'BREAK')).toMatchObject({ status: 'completed', result: { status: 'done' } });
  });

  it("a break value that is not JSON becomes a JSON string: 'done' → \"done\"", async () => {
    const { id, status } = await f.run(`@> df.break('done')`);
    expect(status).toBe('completed');
    expect(await f.result(id)).toBe('"done"');
  });

  it('df.break outside a loop fails the instance', async () => {
    const { id, status } = await f.run(`${lit('SELECT 1 AS x')} ~> df.break('x')`);
    expect(status).toBe('failed');
    expect(await f.result(id)).toBeNull();
    expect(await f.root(id)).toMatchObject({
      status: 'failed',
      result: 'df.break() was called outside of a loop. df.break() may only be used inside df.loop().',
    });
  });

  it('a non-root loop: the prefix runs once, named results of the iterations and the loop reach the suffix', async () => {
    const body = "INSERT INTO cf_counter (inst, n) SELECT '{sys_instance_id}-nr', $base + count(*) FROM cf_counter WHERE inst = '{sys_instance_id}-nr' RETURNING n";
    const { id, status } = await f.run(
      `${lit('SELECT 10 AS base, clock_timestamp() AS at')} |=> 'base' ~> ` +
        `(df.loop(${lit(body)} |=> 'last', ${lit('SELECT $last < 12')}) |=> 'lp') ~> ` +
        lit('SELECT $last AS last, $lp.n AS loop_n, $base AS base'),
    );
    expect(status).toBe('completed');
    expect(await f.result(id)).toBe('{"rows": [{"base": 10, "last": 12, "loop_n": 12}], "row_count": 1}');
    expect(await scalar(f.user, 'SELECT array_agg(n ORDER BY n)::text FROM cf_counter WHERE inst = $1', [`${id}-nr`])).toBe('{10,11,12}');
    const prefix = await f.nodeByQuery(id, 'SELECT 10 AS base, clock_timestamp() AS at');
    expect(await scalar(f.admin, 'SELECT count(*)::int FROM df._node_runs WHERE instance_id = $1 AND node_id = $2', [id, prefix.id])).toBe(1);
    const loop = (await f.nodes(id)).find((n) => n.node_type === 'LOOP')!;
    expect(loop).toMatchObject({ status: 'completed', result: { rows: [{ n: 12 }], row_count: 1 } });
  });
});

describe('SLEEP', () => {
  it('df.sleep(1) waits a second and reports {"slept": true, "seconds": 1}', async () => {
    const started = Date.now();
    const { id, status } = await f.run('df.sleep(1)');
    expect(status).toBe('completed');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(await f.result(id)).toBe('{"slept": true, "seconds": 1}');
  });
});
