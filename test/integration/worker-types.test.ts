/**
 * Typed step results (API §9.3) and condition truthiness (§8.4) end to end: each case is its own
 * instance started through SQL by a tenant, run by a real worker, read back through df.result,
 * df.nodes and the engine's raw output.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, scalar, url } from '../support/db';
import { type Flow, lit, setupFlow } from '../support/flows';
import { waitFor } from '../support/worker';

let f: Flow;

beforeAll(async () => {
  f = await setupFlow('types');
  await f.user.query('CREATE TABLE t_plain (x int)');
  await f.user.query('CREATE TABLE t_blob (id int, data bytea)');
});

afterAll(async () => {
  await f?.stop();
});

/** Starts every step at once (the worker runs them concurrently), then waits for all. */
async function runAll(steps: string[]): Promise<{ id: string; status: string }[]> {
  const ids = await startAll(steps.map(lit));
  const out: { id: string; status: string }[] = [];
  for (const id of ids) out.push({ id, status: await f.wait(id) });
  return out;
}

/** df.start for each expression, one after the other on the tenant's connection. */
async function startAll(exprs: string[]): Promise<string[]> {
  const ids: string[] = [];
  for (const e of exprs) ids.push(await f.start(e));
  return ids;
}

const SUPPORTED = 'Supported types: bool, int2, int4, int8, float4, float8, text, varchar, numeric, uuid, timestamptz, timestamp, date, jsonb, json, void.';

describe('typed results: one step per type, df.result text exactly', () => {
  const cases: [string, string, string][] = [
    ['bool', 'SELECT true AS v, false AS w', '{"v": true, "w": false}'],
    ['int2', 'SELECT 32767::int2 AS v, (-32768)::int2 AS w', '{"v": 32767, "w": -32768}'],
    ['int4', 'SELECT 2147483647::int4 AS v, (-2147483648)::int4 AS w', '{"v": 2147483647, "w": -2147483648}'],
    ['int8 beyond 2^53 stays exact', 'SELECT 9007199254740993::int8 AS v', '{"v": 9007199254740993}'],
    ['float4 widened to double', 'SELECT 3.14::float4 AS v', '{"v": 3.140000104904175}'],
    ['float8 shortest round-trip', 'SELECT 0.1::float8 + 0.2::float8 AS v, 2.5::float8 AS w', '{"v": 0.30000000000000004, "w": 2.5}'],
    ['NaN and Infinity are null', "SELECT 'NaN'::float8 AS v, 'Infinity'::float4 AS w, '-Infinity'::float8 AS x", '{"v": null, "w": null, "x": null}'],
    ['text, varchar, bpchar, name', "SELECT 'a'::text AS t, 'b'::varchar(5) AS vc, 'c'::char(3) AS bp, 'd'::name AS nm", '{"t": "a", "bp": "c  ", "nm": "d", "vc": "b"}'],
    ['numeric is an exact string with its scale', 'SELECT 123456.78900000::numeric AS v', '{"v": "123456.78900000"}'],
    ['uuid in canonical lower case', "SELECT 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid AS v", '{"v": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}'],
    [
      'timestamptz in UTC with +00:00, fraction only when non-zero (3/6/9 digits)',
      "SELECT '2024-06-15 14:30:00+02'::timestamptz AS a, '2024-06-15 12:30:00.5+00'::timestamptz AS b, '2024-06-15 12:30:00.123456+00'::timestamptz AS c, '2024-06-15 12:30:00.12+05:30'::timestamptz AS d",
      '{"a": "2024-06-15T12:30:00+00:00", "b": "2024-06-15T12:30:00.500+00:00", "c": "2024-06-15T12:30:00.123456+00:00", "d": "2024-06-15T07:00:00.120+00:00"}',
    ],
    ['timestamp without zone', "SELECT '2024-06-15 12:30:00'::timestamp AS a, '2024-06-15 12:30:00.25'::timestamp AS b", '{"a": "2024-06-15T12:30:00", "b": "2024-06-15T12:30:00.250"}'],
    ['date', "SELECT '2024-02-29'::date AS v", '{"v": "2024-02-29"}'],
    ['json and jsonb embedded natively', `SELECT '{"b": 1, "a": [1, 2.50]}'::json AS j, '{"x": {"y": null}}'::jsonb AS jb`, '{"j": {"a": [1, 2.50], "b": 1}, "jb": {"x": {"y": null}}}'],
    ['void is null', 'SELECT pg_sleep(0) AS v', '{"v": null}'],
    ['SQL NULL is null (any supported type)', 'SELECT NULL::int AS a, NULL AS b, NULL::jsonb AS c, NULL::timestamptz AS d', '{"a": null, "b": null, "c": null, "d": null}'],
    ['duplicate column names: the first one wins', "SELECT 1 AS a, 2 AS a, 'x' AS b", '{"a": 1, "b": "x"}'],
  ];

  it('every supported type maps as the contract says', async () => {
    const all = cases;
    const runs = await runAll(all.map((c) => c[1]));
    for (let i = 0; i < all.length; i++) {
      const [what, , row] = all[i];
      expect({ what, status: runs[i].status }).toEqual({ what, status: 'completed' });
      expect({ what, result: await f.result(runs[i].id) }).toEqual({ what, result: `{"rows": [${row}], "row_count": 1}` });
    }
  });

  it('the raw result keeps SELECT-list order and the exact JSON text (engine output)', async () => {
    const [r] = await runAll([`SELECT 2 AS z, 9007199254740993::int8 AS a, '{"b": 1, "a": 2}'::json AS j, 3.14::float4 AS f`]);
    expect(r.status).toBe('completed');
    expect(await f.output(r.id)).toBe('{"rows":[{"z":2,"a":9007199254740993,"j":{"b":1,"a":2},"f":3.140000104904175}],"row_count":1}');
  });

  it('timestamptz is +00:00 even when the session TimeZone is not UTC (ALTER ROLE ... SET timezone)', async () => {
    const kolkata = await createTenant(f.db, 'kolkata');
    await f.admin.query(`ALTER ROLE ${pg.escapeIdentifier(kolkata)} SET timezone = 'Asia/Kolkata'`);
    const c = new pg.Client({ connectionString: url(f.db, kolkata) });
    await c.connect();
    try {
      const id = await scalar<string>(c, `SELECT df.start(${lit("SELECT '2024-06-15 12:30:00+00'::timestamptz AS v, current_setting('TimeZone') AS tz, '2024-06-15 12:30:00'::timestamptz AS local")})`);
      expect(await waitFor(c, id)).toBe('completed');
      expect(await scalar(c, 'SELECT df.result($1)', [id])).toBe(
        '{"rows": [{"v": "2024-06-15T12:30:00+00:00", "tz": "Asia/Kolkata", "local": "2024-06-15T07:00:00+00:00"}], "row_count": 1}',
      );
    } finally {
      await c.end();
    }
  });

  it('role defaults for DateStyle and extra_float_digits do not change result values', async () => {
    const odd = await createTenant(f.db, 'datestyle');
    await f.admin.query(`ALTER ROLE ${pg.escapeIdentifier(odd)} SET DateStyle = 'SQL, DMY'`);
    await f.admin.query(`ALTER ROLE ${pg.escapeIdentifier(odd)} SET extra_float_digits = 0`);
    await f.admin.query(`ALTER ROLE ${pg.escapeIdentifier(odd)} SET timezone = 'America/New_York'`);
    const c = new pg.Client({ connectionString: url(f.db, odd) });
    await c.connect();
    try {
      const step =
        "SELECT '2024-06-15 12:30:00.5+00'::timestamptz AS tz, '2024-06-15 12:30:00'::timestamp AS ts, '01/02/2024'::date AS dmy, " +
        '0.1::float8 + 0.2::float8 AS f8, 16777217::float4 AS f4';
      const id = await scalar<string>(c, `SELECT df.start(${lit(step)})`);
      expect(await waitFor(c, id)).toBe('completed');
      expect(await f.output(id)).toBe(
        '{"rows":[{"tz":"2024-06-15T12:30:00.500+00:00","ts":"2024-06-15T12:30:00","dmy":"2024-02-01","f8":0.30000000000000004,"f4":16777216}],"row_count":1}',
      );
    } finally {
      await c.end();
    }
  });

  it('the output settings hold for every step of a connection, not only its first: a chain, a later instance, after a step changed them', async () => {
    const odd = await createTenant(f.db, 'datestyle_again');
    await f.admin.query(`ALTER ROLE ${pg.escapeIdentifier(odd)} SET DateStyle = 'SQL, DMY'`);
    await f.admin.query(`ALTER ROLE ${pg.escapeIdentifier(odd)} SET extra_float_digits = 0`);
    const c = new pg.Client({ connectionString: url(f.db, odd) });
    await c.connect();
    try {
      const step = "SELECT '01/02/2024'::date AS dmy, 0.1::float8 + 0.2::float8 AS f8, current_setting('df.in_workflow') AS w";
      const expected = '{"rows":[{"dmy":"2024-02-01","f8":0.30000000000000004,"w":"true"}],"row_count":1}';
      const chain = [step, "SET DateStyle = 'German'", 'SET extra_float_digits = 0', step].map(lit).join(' ~> ');
      for (const graph of [chain, lit(step)]) {
        const id = await scalar<string>(c, `SELECT df.start(${graph})`);
        expect(await waitFor(c, id)).toBe('completed');
        expect(await f.output(id)).toBe(expected);
        const first = await scalar<string>(f.admin, "SELECT n.result::text FROM df.nodes n WHERE n.instance_id = $1 AND n.node_type = 'SQL' AND n.query = $2 LIMIT 1", [id, step]);
        expect(JSON.parse(first)).toEqual(JSON.parse(expected));
      }
    } finally {
      await c.end();
    }
  });

  it('INSERT without RETURNING gives no rows and row_count 0 (returned rows, not affected rows)', async () => {
    const [r] = await runAll(['INSERT INTO t_plain (x) VALUES (1), (2)']);
    expect(r.status).toBe('completed');
    expect(await f.result(r.id)).toBe('{"rows": [], "row_count": 0}');
    expect(await scalar(f.user, 'SELECT count(*)::int FROM t_plain')).toBe(2);
  });

  it('duplicate column names of different types fail the node', async () => {
    const [r] = await runAll(["SELECT 1 AS a, 'x' AS a"]);
    expect(r.status).toBe('failed');
    const root = await f.root(r.id);
    expect(root.status).toBe('failed');
    expect(root.result).toMatch(/^Failed to decode column 'a'/);
  });
});

describe('unsupported column types fail the node', () => {
  it.each([
    ['bytea', "SELECT '\\x01'::bytea AS b", 'BYTEA', 'b'],
    ['interval', "SELECT interval '1 day' AS span", 'INTERVAL', 'span'],
    ['int4[]', 'SELECT ARRAY[1, 2]::int4[] AS arr', 'INT4[]', 'arr'],
  ])('%s', async (_t, sql, type, col) => {
    const [r] = await runAll([sql]);
    expect(r.status).toBe('failed');
    expect(await f.result(r.id)).toBeNull();
    const root = await f.root(r.id);
    expect(root).toMatchObject({ node_type: 'SQL', status: 'failed', result: `Unsupported column type '${type}' for column '${col}'. ${SUPPORTED}` });
  });

  it('unlike the original, the failed statement is rolled back: INSERT ... RETURNING bytea leaves no row', async () => {
    const [r] = await runAll(["INSERT INTO t_blob (id, data) VALUES (1, '\\x0102') RETURNING id, data"]);
    expect(r.status).toBe('failed');
    expect((await f.root(r.id)).result).toBe(`Unsupported column type 'BYTEA' for column 'data'. ${SUPPORTED}`);
    expect(await scalar(f.user, 'SELECT count(*)::int FROM t_blob')).toBe(0);
  });

  it('an unsupported type in a result with no rows is not an error (types are checked while decoding rows)', async () => {
    const [r] = await runAll(["SELECT '\\x01'::bytea AS b WHERE false"]);
    expect(r.status).toBe('completed');
    expect(await f.result(r.id)).toBe('{"rows": [], "row_count": 0}');
  });
});

describe('truthiness of conditions (§8.4)', () => {
  const conditions: [string, boolean][] = [
    ['SELECT 1 AS x WHERE false', false], // zero rows
    ['SELECT NULL::bool AS x', false],
    ['SELECT 0 AS x', false],
    ['SELECT 0.00::numeric AS x', false], // a numeric string
    ["SELECT 'f' AS x", false],
    ["SELECT 'no' AS x", false],
    ["SELECT ' False ' AS x", false],
    ["SELECT '' AS x", false],
    ['SELECT false AS x', false],
    ['SELECT false AS first, true AS second', false], // the first column decides
    ["SELECT '{}'::jsonb AS x", false],
    ['SELECT true AS x', true],
    ['SELECT 2 AS x', true],
    ['SELECT 0.5::numeric AS x', true],
    ["SELECT 'yes' AS x", true],
    ["SELECT 'off' AS x", true], // other text is true
    ["SELECT 'banana' AS x", true],
    ["SELECT 'NaN' AS x", true],
    ['SELECT \'{"a": 1}\'::jsonb AS x', true],
  ];

  it('IF: each condition picks the branch the contract says', async () => {
    const ids = await startAll(conditions.map(([c]) => `${lit(c)} ?> ${lit("SELECT 'then' AS branch")} !> ${lit("SELECT 'else' AS branch")}`));
    for (let i = 0; i < ids.length; i++) {
      const [cond, truth] = conditions[i];
      expect({ cond, status: await f.wait(ids[i]) }).toEqual({ cond, status: 'completed' });
      const branch = JSON.parse((await f.result(ids[i]))!).rows[0].branch;
      expect({ cond, branch }).toEqual({ cond, branch: truth ? 'then' : 'else' });
    }
  });

  it('while-loop: a false condition ends the loop after one body run, a true one runs it again', async () => {
    await f.user.query('CREATE TABLE t_loops (inst text)');
    const body = "INSERT INTO t_loops (inst) VALUES ('{sys_instance_id}') RETURNING inst";
    const falsy = ['SELECT 1 AS x WHERE false', 'SELECT NULL::int AS x', 'SELECT 0.00::numeric AS x', "SELECT 'no' AS x", "SELECT 'f' AS x"];
    const again = "SELECT count(*) < 2 FROM t_loops WHERE inst = '{sys_instance_id}'"; // true once, then false
    const ids = await startAll([...falsy, again].map((c) => `df.loop(${lit(body)}, ${lit(c)})`));
    for (let i = 0; i < ids.length; i++) {
      expect(await f.wait(ids[i])).toBe('completed');
      expect(await f.result(ids[i])).toBe(`{"rows": [{"inst": "${ids[i]}"}], "row_count": 1}`);
      const runs = await scalar(f.user, 'SELECT count(*)::int FROM t_loops WHERE inst = $1', [ids[i]]);
      expect({ cond: i < falsy.length ? falsy[i] : again, runs }).toEqual({ cond: i < falsy.length ? falsy[i] : again, runs: i < falsy.length ? 1 : 2 });
    }
  });

  it('df.if_rows tests the named result for rows, without running a step', async () => {
    const expr = (from: string) =>
      `${lit(from)} |=> 'r' ~> df.if_rows('r', ${lit("SELECT 'has rows' AS v")}, ${lit("SELECT 'empty' AS v")})`;
    const [yes, no] = await startAll([expr('SELECT 1 AS a'), expr('SELECT 1 AS a WHERE false')]).then((ids) => ids.map((id) => ({ id })));
    expect([await f.wait(yes.id), await f.wait(no.id)]).toEqual(['completed', 'completed']);
    expect(await f.result(yes.id)).toBe('{"rows": [{"v": "has rows"}], "row_count": 1}');
    expect(await f.result(no.id)).toBe('{"rows": [{"v": "empty"}], "row_count": 1}');
    const nodes = await f.nodes(no.id);
    expect(nodes.filter((n) => n.status === 'completed').map((n) => n.node_type).sort()).toEqual(['IF', 'SQL', 'SQL', 'THEN']);
  });

  it("df.if_rows on a name that was never produced fails: df.if_rows: result '<name>' not found", async () => {
    const { id, status } = await f.run(`${lit('SELECT 1')} ~> df.if_rows('nope', 'SELECT 1', 'SELECT 2')`);
    expect(status).toBe('failed');
    const ifNode = (await f.nodes(id)).find((n) => n.node_type === 'IF')!;
    expect(ifNode).toMatchObject({ status: 'failed', result: "df.if_rows: result 'nope' not found" });
    expect((await f.root(id)).result).toBe("df.if_rows: result 'nope' not found");
  });
});
