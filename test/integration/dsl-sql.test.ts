/**
 * The DSL as users write it in psql: builders and operators on bare literals, for a plain tenant
 * with the default search_path, byte-identical to API §3.15 and parsed with PostgreSQL's real
 * precedence (API §4.2).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { asRole, createTenant, errorOf, freshDatabase, scalar, withPg } from '../support/db';

let db: string;
let user: string;
beforeAll(async () => {
  db = await freshDatabase('dsl');
  user = await createTenant(db, 'dsl_user');
});

const dsl = (expr: string) => asRole(db, user, (c) => scalar<string>(c, `SELECT (${expr})::text`));
const S = (q: string) => `{"node_type":"SQL","query":"${q}"}`;

describe('builders through SQL (API §3.15)', () => {
  const examples: [string, string][] = [
    ["df.seq('SELECT 1','SELECT 2')", `{"node_type":"THEN","left_node":${S('SELECT 1')},"right_node":${S('SELECT 2')}}`],
    ["df.as('SELECT 1','x')", '{"node_type":"SQL","query":"SELECT 1","result_name":"x"}'],
    ["df.if('SELECT true','SELECT 1','SELECT 2')", `{"node_type":"IF","left_node":${S('SELECT 1')},"right_node":${S('SELECT 2')},"condition_node":${S('SELECT true')}}`],
    ["df.if_rows('data','SELECT 1','SELECT 2')", `{"node_type":"IF","left_node":${S('SELECT 1')},"right_node":${S('SELECT 2')},"query":"{\\"condition_type\\":\\"result_has_rows\\",\\"result_name\\":\\"data\\"}"}`],
    ["df.join3('SELECT 1','SELECT 2','SELECT 3')", `{"node_type":"JOIN","left_node":${S('SELECT 1')},"right_node":${S('SELECT 2')},"extra_nodes":[${S('SELECT 3')}]}`],
    ["df.loop('SELECT 1','SELECT true')", `{"node_type":"LOOP","left_node":${S('SELECT 1')},"condition_node":${S('SELECT true')}}`],
    [`df.break('{"a":1}')`, '{"node_type":"BREAK","query":"{\\"break_value\\":\\"{\\\\\\"a\\\\\\":1}\\"}"}'],
    ['df.break()', '{"node_type":"BREAK","query":"{\\"break_value\\":null}"}'],
    ['df.sleep(60)', '{"node_type":"SLEEP","query":"60"}'],
    ["df.wait_for_schedule('*/5 * * * *')", '{"node_type":"WAIT_SCHEDULE","query":"{\\"cron_expr\\":\\"*/5 * * * *\\"}"}'],
    ["df.wait_for_signal('approval',3600)", '{"node_type":"SIGNAL","query":"{\\"signal_name\\":\\"approval\\",\\"timeout_seconds\\":3600}"}'],
    ["df.wait_for_signal('go')", '{"node_type":"SIGNAL","query":"{\\"signal_name\\":\\"go\\",\\"timeout_seconds\\":null}"}'],
  ];
  for (const [expr, json] of examples) {
    it(`${expr} is byte-identical`, async () => {
      expect(await dsl(expr)).toBe(json);
    });
  }

  it('df.http needs EXECUTE (revoked from PUBLIC) and serialises its config in order', async () => {
    const denied = await asRole(db, user, (c) => errorOf(c, "SELECT df.http('https://api.example.com/x','get')"));
    expect(denied.message).toBe('permission denied for function http');
    const json = await withPg(db, (c) => scalar<string>(c, "SELECT df.http('https://api.example.com/x','get')"));
    expect(json).toBe('{"node_type":"HTTP","query":"{\\"url\\":\\"https://api.example.com/x\\",\\"method\\":\\"GET\\",\\"body\\":null,\\"headers\\":null,\\"timeout_seconds\\":30}"}');
  });
});

describe('operators on bare literals with the default search_path (API §4.2)', () => {
  it('resolves for a tenant whose search_path does not include df', async () => {
    const path = await asRole(db, user, (c) => scalar<string>(c, 'SHOW search_path'));
    expect(path).toBe('"$user", public');
    expect(await dsl("'SELECT 1' ~> 'SELECT 2'")).toBe(await dsl("df.seq('SELECT 1','SELECT 2')"));
  });

  const same: [string, string][] = [
    ["'a' ~> 'b' |=> 'n'", "df.as(df.seq('a','b'),'n')"],
    ["'a' |=> 'n' ~> 'b'", "df.seq(df.as('a','n'),'b')"],
    ["'a' ~> 'b' ~> 'c'", "df.seq(df.seq('a','b'),'c')"],
    ["@> 'a' ~> 'b'", "df.seq(df.loop('a'),'b')"],
    ["@> ('a' ~> 'b')", "df.loop(df.seq('a','b'))"],
    ["'c' ?> 't' !> 'e'", "df.if('c','t','e')"],
    ["'x' ~> 'c' ?> 't' !> 'e'", "df.if(df.seq('x','c'),'t','e')"],
    ["'a' & 'b' | 'c'", "df.race(df.join('a','b'),'c')"],
    ["'a' | 'b' & 'c'", "df.join(df.race('a','b'),'c')"],
    ["'SELECT ' || 'x' ~> 'y'", "df.seq('SELECT x','y')"],
    ["'x' ~> @> 'a' ~> 'b'", "df.seq(df.seq('x',df.loop('a')),'b')"],
  ];
  for (const [expr, equivalent] of same) {
    it(`${expr}  ==  ${equivalent}`, async () => {
      expect(await dsl(expr)).toBe(await dsl(equivalent));
    });
  }

  it('comparison binds looser than the DSL operators', async () => {
    const eq = await asRole(db, user, (c) => scalar<boolean>(c, "SELECT 'a' ~> 'b' = df.seq('a','b')"));
    expect(eq).toBe(true);
  });

  it('leaves the built-in &, | and || alone', async () => {
    const r = await asRole(db, user, (c) => c.query("SELECT 12 & 10 AS band, 12 | 3 AS bor, B'101' & B'011' AS bits, 'ab' || 'cd' AS cat"));
    expect(r.rows[0]).toEqual({ band: 8, bor: 15, bits: '001', cat: 'abcd' });
  });

  it('?> builds the jsonb-normalised partial if and !> needs one on its left', async () => {
    expect(await dsl("'SELECT true' ?> 'SELECT 1'")).toBe('{"condition": "SELECT true", "_partial_if": true, "then_branch": "SELECT 1"}');
    const err = await asRole(db, user, (c) => errorOf(c, `SELECT '{"x":1}' !> 'SELECT 2'`));
    expect(err.message).toBe('Invalid if-then-else: left side of !> must be a ?> expression');
  });
});

describe('builder errors through SQL', () => {
  const cases: [string, string][] = [
    ["df.as('SELECT 1', '')", 'df.as: result name cannot be empty'],
    ["df.as('SELECT 1', '1x')", "df.as: result name '1x' is not a valid identifier — must match [a-zA-Z_][a-zA-Z0-9_]*"],
    ["'SELECT 1' |=> 'bad name'", "df.as: result name 'bad name' is not a valid identifier — must match [a-zA-Z_][a-zA-Z0-9_]*"],
    ['df.sleep(-1)', 'Sleep duration must be non-negative'],
    ["df.wait_for_schedule('* * * *')", "Invalid cron expression '* * * *'"],
    ["df.wait_for_signal('')", 'Signal name cannot be empty'],
    ["df.wait_for_signal('x', 0)", 'Timeout must be positive'],
    ['df.loop(NULL)', 'df.loop: body cannot be NULL'],
  ];
  for (const [expr, message] of cases) {
    it(`${expr} -> ${message}`, async () => {
      const err = await asRole(db, user, (c) => errorOf(c, `SELECT ${expr}`));
      expect(err.message.startsWith(message)).toBe(true);
    });
  }

  it('a non-future helper used as a step is rejected', async () => {
    const err = await asRole(db, user, (c) => errorOf(c, "SELECT df.seq(df.setvar('a','1'), 'SELECT 1')"));
    expect(err.message).toBe('df.setvar cannot be used as a workflow step. Call df.setvar before df.start().');
  });

  it('STRICT builders return NULL for a NULL step', async () => {
    expect(await dsl("df.seq(NULL, 'SELECT 1')")).toBeNull();
  });
});
