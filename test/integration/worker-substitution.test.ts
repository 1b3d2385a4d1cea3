/**
 * Substitution end to end (API §7, §8.1, §8.2): `{var}` and system variables, every `$name` form,
 * and the strict errors, as a real worker applies them right before each SQL step runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Flow, lit, setupFlow } from '../support/flows';

let f: Flow;

beforeAll(async () => {
  f = await setupFlow('subst');
  await f.user.query('CREATE TABLE sub_items (id int, name text)');
  await f.user.query("INSERT INTO sub_items VALUES (1, 'a'), (2, 'b'), (3, 'c')");
  await f.user.query('CREATE TABLE sub_log (msg text)');
});

afterAll(async () => {
  await f?.stop();
});

/** Runs `expr`, expects completion, returns the parsed df.result. */
async function completed(expr: string, label?: string): Promise<any> {
  const { id, status } = await f.run(expr, label);
  expect(status).toBe('completed');
  return JSON.parse((await f.result(id))!);
}

/** Runs `expr`, expects failure, returns the failed node whose query is `failing` and the instance id. */
async function failedAt(expr: string, failing: string) {
  const { id, status } = await f.run(expr);
  expect(status).toBe('failed');
  expect(await f.result(id)).toBeNull();
  return { id, node: await f.nodeByQuery(id, failing), root: await f.root(id) };
}

const row = (r: any) => r.rows[0];

describe('braced variables {…} (pass 1)', () => {
  it('{var} inserts the value captured by df.start verbatim (here a table name)', async () => {
    await f.user.query("SELECT df.setvar('tbl', 'sub_items')");
    expect(row(await completed(lit('SELECT count(*) AS n FROM {tbl}')))).toEqual({ n: 3 });
  });

  it('a setvar after df.start does not affect the started instance, only later ones', async () => {
    await f.user.query("SELECT df.setvar('greeting', 'before')");
    const step = "SELECT '{greeting}' AS g";
    const id = await f.start(`${lit('SELECT pg_sleep(0.5)')} ~> ${lit(step)}`);
    await f.user.query("SELECT df.setvar('greeting', 'after')");
    expect(await f.wait(id)).toBe('completed');
    expect(row(JSON.parse((await f.result(id))!))).toEqual({ g: 'before' });
    expect(row(await completed(lit(step)))).toEqual({ g: 'after' });
  });

  it('{sys_instance_id} and {sys_label} are the instance id and its label', async () => {
    const { id, status } = await f.run(lit("SELECT '{sys_instance_id}' AS id, '{sys_label}' AS label"), 'my-label');
    expect(status).toBe('completed');
    expect(row(JSON.parse((await f.result(id))!))).toEqual({ id, label: 'my-label' });
  });

  it("{sys_label} is '' when the instance has no label", async () => {
    expect(row(await completed(lit("SELECT '{sys_label}' AS label, length('{sys_label}') AS len")))).toEqual({ label: '', len: 0 });
  });

  it('unknown {x}, JSON braces and array literals are kept as written', async () => {
    const r = row(await completed(lit(`SELECT '{nope}' AS unknown, '{"a": 1}'::jsonb AS j, '{1,2}'::int4[] = ARRAY[1,2] AS arr`)));
    expect(r).toEqual({ unknown: '{nope}', j: { a: 1 }, arr: true });
  });

  it('inserted values are never re-scanned for {…}', async () => {
    await f.user.query("SELECT df.setvar('outer', '{tbl}')");
    const r = await completed(`${lit("SELECT chr(123) || 'tbl' || chr(125) AS v")} |=> 'v' ~> ${lit("SELECT '{outer}' AS from_var, $v AS from_result")}`);
    expect(row(r)).toEqual({ from_var: '{tbl}', from_result: '{tbl}' });
  });
});

describe('named results $name (pass 2)', () => {
  it('$name is the first column of the first row, text quoted for SQL: VALUES ($msg) works', async () => {
    const r = await completed(
      `${lit("SELECT 'it''s here' AS msg, 2 AS other")} |=> 'msg' ~> ${lit('INSERT INTO sub_log (msg) VALUES ($msg) RETURNING msg')}`,
    );
    expect(row(r)).toEqual({ msg: "it's here" });
    expect((await f.user.query('SELECT msg FROM sub_log')).rows).toEqual([{ msg: "it's here" }]);
  });

  it('$name.col reads a column of the first row', async () => {
    const r = await completed(`${lit("SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'")} |=> 'r' ~> ${lit('SELECT $r.b AS b, $r.a + 1 AS a2')}`);
    expect(row(r)).toEqual({ b: 'x', a2: 2 });
  });

  it('$name? and $name.col? give NULL on zero rows and on NULL values', async () => {
    const r = await completed(
      `${lit('SELECT 1 AS a WHERE false')} |=> 'none' ~> ${lit('SELECT NULL::int AS v, 5 AS w')} |=> 'nul' ~> ` +
        lit('SELECT $none? IS NULL AS a, $none.a? IS NULL AS b, $nul? IS NULL AS c, $nul.v? IS NULL AS d, $nul.w AS w'),
    );
    expect(row(r)).toEqual({ a: true, b: true, c: true, d: true, w: 5 });
  });

  it('$name.* expands the whole row set for a FROM clause (and an empty one to no rows)', async () => {
    const r = await completed(
      `${lit("SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, NULL)) v(id, tag)")} |=> 'src' ~> ${lit('SELECT 1 AS x WHERE false')} |=> 'empty' ~> ` +
        lit("SELECT sum(id) AS total, string_agg(tag, ',' ORDER BY id) AS tags, count(tag) AS tagged, (SELECT count(*) FROM $empty.*) AS none FROM $src.*"),
    );
    expect(row(r)).toEqual({ total: 6, tags: 'a,b', tagged: 2, none: 0 });
  });

  it('$1, $$ and dollar-quoted text are left untouched', async () => {
    const r = await completed(`${lit('SELECT 7 AS x')} |=> 'x' ~> ${lit("SELECT '$1 and $$' AS lit, $$quoted$$ AS dq, $x AS x")}`);
    expect(row(r)).toEqual({ lit: '$1 and $$', dq: 'quoted', x: 7 });
  });

  it('longest name first: $document is not $doc followed by "ument"', async () => {
    const r = await completed(
      `${lit("SELECT 'short' AS v")} |=> 'doc' ~> ${lit("SELECT 'long' AS v")} |=> 'document' ~> ${lit("SELECT $doc AS a, $document AS b, $doc || '!' AS c")}`,
    );
    expect(row(r)).toEqual({ a: 'short', b: 'long', c: 'short!' });
  });

  it('numeric columns arrive as quoted text: cast them ($n::numeric)', async () => {
    const r = await completed(`${lit('SELECT 9876543.12345678::numeric AS n')} |=> 'n' ~> ${lit('SELECT $n::numeric * 2 AS doubled, length($n) AS len')}`);
    expect(row(r)).toEqual({ doubled: '19753086.24691356', len: 16 });
  });

  it('$name of a JOIN (an array, not a row set) is the whole result as one quoted literal', async () => {
    const r = await completed(
      `(${lit('SELECT 1 AS a')} & ${lit('SELECT 2 AS b')}) |=> 'pair' ~> ${lit("SELECT $pair::jsonb -> 1 -> 'rows' -> 0 ->> 'b' AS b, jsonb_typeof($pair::jsonb) AS t, $pair AS raw")}`,
    );
    expect(row(r)).toEqual({ b: '2', t: 'array', raw: '[{"rows":[{"a":1}],"row_count":1},{"rows":[{"b":2}],"row_count":1}]' });
  });

  it('$name of a loop break value is inserted whole, JSON quotes included', async () => {
    const r = await completed(`(@> df.break('done')) |=> 'lr' ~> ${lit("SELECT $lr AS v, $lr::jsonb #>> '{}' AS s")}`);
    expect(row(r)).toEqual({ v: '"done"', s: 'done' });
  });
});

describe('strict references fail the node and the instance', () => {
  it('$x on zero rows: "$x has no rows — query returned zero results"', async () => {
    const { node, root } = await failedAt(`${lit('SELECT 1 AS a WHERE false')} |=> 'x' ~> ${lit('SELECT $x AS v')}`, 'SELECT $x AS v');
    expect(node.status).toBe('failed');
    expect(node.result).toBe('$x has no rows — query returned zero results');
    expect(root).toMatchObject({ node_type: 'THEN', status: 'failed', result: '$x has no rows — query returned zero results' });
  });

  it('$x.col on zero rows fails the same way', async () => {
    const { node } = await failedAt(`${lit('SELECT 1 AS a WHERE false')} |=> 'x' ~> ${lit('SELECT $x.a AS v')}`, 'SELECT $x.a AS v');
    expect(node).toMatchObject({ status: 'failed', result: '$x has no rows — query returned zero results' });
  });

  it('$x on a NULL first column: "$x is NULL — first column of first row is NULL"', async () => {
    const { node, root } = await failedAt(`${lit('SELECT NULL::int AS a, 1 AS b')} |=> 'x' ~> ${lit('SELECT $x AS v')}`, 'SELECT $x AS v');
    expect(node).toMatchObject({ status: 'failed', result: '$x is NULL — first column of first row is NULL' });
    expect(root.result).toBe('$x is NULL — first column of first row is NULL');
  });
});
