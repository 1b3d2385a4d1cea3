/**
 * What a psql user reads when a df.* function fails: the message, and one short CONTEXT line that
 * names the function — never the bundle's source. plv8 prints the source line of the throw site
 * (`<function>() LINE <n>: <line>`); the bundle raises every error from the prologue's last line.
 * The plv8 host reproduces plv8's rule (test/unit/host-context.test.ts), so this pins every entry
 * point on both flavors.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { FUNCTIONS } from '../../build/manifest';
import { asRole, createTenant, freshDatabase, withPg } from '../support/db';

let db: string;
let alice: string;
beforeAll(async () => {
  db = await freshDatabase('errctx');
  alice = await createTenant(db, 'alice', { http: true });
});

/** One failing call per manifest entry (key: the bundle entry). */
const FAILING: Record<string, string> = {
  sql: "SELECT df.sql(df.setvar('errctx', 'x'))",
  seq: "SELECT df.seq('{\"node_type\":\"SQL\",\"query\":1}', 'SELECT 1')",
  as: "SELECT df.as('SELECT 1', '1x')",
  sleep: 'SELECT df.sleep(-1)',
  wait_for_schedule: "SELECT df.wait_for_schedule('bad cron')",
  loop: 'SELECT df.loop(NULL)',
  break: "SELECT df.break(df.setvar('errctx', 'x'))",
  if: "SELECT df.if('{\"node_type\":\"SQL\",\"query\":1}', 'SELECT 1', 'SELECT 2')",
  if_rows: "SELECT df.if_rows('r', df.unsetvar('x'), 'SELECT 2')",
  join: "SELECT df.join(df.unsetvar('x'), 'SELECT 1')",
  join3: "SELECT df.join3('{\"node_type\":\"SQL\",\"query\":1}', 'SELECT 1', 'SELECT 2')",
  race: "SELECT df.race('{\"node_type\":\"SQL\",\"query\":1}', 'SELECT 1')",
  http: "SELECT df.http('ftp://example.com/x')",
  http_multipart: "SELECT df.http_multipart('ftp://example.com/x')",
  retry: "SELECT df.retry('SELECT 1', 0)",
  timeout: "SELECT df.timeout('SELECT 1', -1)",
  with_undo: "SELECT df.with_undo(df.setvar('errctx', 'x'), 'SELECT 1')",
  wait_for_signal: "SELECT df.wait_for_signal('')",
  start: "SELECT df.start('SELECT 1', repeat('x', 100000))",
  signal: "SELECT df.signal('deadbeef', 'go')",
  cancel: "SELECT df.cancel('deadbeef')",
  status: "SELECT df.status(repeat('x', 10))",
  result: "SELECT df.result(repeat('x', 10))",
  await_instance: "SELECT df.await_instance('deadbeef', 1)",
  wait_for_completion: "SELECT df.wait_for_completion('deadbeef', 0)",
  run: "SELECT df.run(repeat('x', 10))",
  setvar: "SELECT df.setvar('', 'x')",
  getvar: "SELECT df.getvar(repeat('x', 100000))",
  unsetvar: "SELECT df.unsetvar('')",
  clearvars: 'SELECT df.clearvars()',
  list_instances: 'SELECT * FROM df.list_instances(NULL, 0)',
  list_instances_paged: "SELECT * FROM df.list_instances(NULL, 10, NULL, 'not a cursor')",
  instance_info: "SELECT * FROM df.instance_info('deadbeef')",
  instance_executions: "SELECT * FROM df.instance_executions('deadbeef', 0)",
  instance_nodes: "SELECT * FROM df.instance_nodes('deadbeef')",
  instance_nodes_history: "SELECT * FROM df.instance_nodes('deadbeef', 0)",
  explain: "SELECT df.explain('{\"node_type\":\"SQL\",\"query\":1}')",
  prune_executions: 'SELECT * FROM df.prune_executions(NULL, now())',
  version: 'SELECT df.version()',
};

/**
 * Entry points that do not fail on any input (they take any text, or answer NULL or an error
 * text for what they cannot use: df.explain renders its error); the rest must fail as listed.
 */
const CANNOT_FAIL = new Set(['sql', 'break', 'getvar', 'explain', 'clearvars', 'run', 'version', 'status', 'result', 'instance_info', 'instance_nodes']);

describe('the CONTEXT of df.* errors', () => {
  it('lists a failing call for every entry point of the manifest', () => {
    expect(Object.keys(FAILING).sort()).toEqual([...new Set(FUNCTIONS.map((f) => f.entry))].sort());
  });

  for (const f of FUNCTIONS) {
    if (CANNOT_FAIL.has(f.entry)) continue;
    it(`${f.sql} (${f.entry}): the message and one line naming the function`, async () => {
      const err = await asRole(db, alice, async (c) => {
        try {
          await c.query(FAILING[f.entry]);
        } catch (e) {
          return e as { message: string; where?: string; code: string };
        }
        throw new Error(`expected ${FAILING[f.entry]} to fail`);
      });
      const proname = f.sql.slice('df.'.length);
      expect(err.where).toBe(`${proname}() LINE 6: throw m.error(); // ${f.sql}`);
      expect(err.message.length).toBeLessThan(400);
      expect(err.code).not.toBe('XX000');
    });
  }

  it('an SQL error inside a df.* function does not leak the internal statement into CONTEXT', async () => {
    // alice may not insert into another tenant's instance: RLS/privileges fail inside df.signal's INSERT.
    const err = await withPg(db, async (c) => {
      await c.query(`CREATE ROLE errctx_noone_${process.pid} LOGIN`).catch(() => undefined);
      await c.query(`GRANT USAGE ON SCHEMA df TO errctx_noone_${process.pid}`);
      await c.query(`SET ROLE errctx_noone_${process.pid}`);
      try {
        await c.query("SELECT df.cancel('deadbeef')");
      } catch (e) {
        return e as { message: string; where?: string };
      } finally {
        await c.query('RESET ROLE');
      }
      throw new Error('expected a failure');
    });
    expect(err.message).toMatch(/permission denied/);
    expect(err.where).toBe('cancel() LINE 6: throw m.error(); // df.cancel');
  });

  it('a caller\'s frames follow the df function\'s line, as with any function', async () => {
    const err = await asRole(db, alice, async (c) => {
      try {
        await c.query("DO $$ BEGIN PERFORM df.cancel('deadbeef'); END $$");
      } catch (e) {
        return e as { where?: string };
      }
      throw new Error('expected a failure');
    });
    expect(err.where).toBe(
      ['cancel() LINE 6: throw m.error(); // df.cancel', `SQL statement "SELECT df.cancel('deadbeef')"`, 'PL/pgSQL function inline_code_block line 1 at PERFORM'].join('\n'),
    );
  });

  it('an operator fails with the context of the function behind it', async () => {
    const err = await asRole(db, alice, async (c) => {
      try {
        await c.query("SELECT 'SELECT 1' |=> '1x'");
      } catch (e) {
        return e as { message: string; where?: string };
      }
      throw new Error('expected a failure');
    });
    expect(err.message).toContain("result name '1x' is not a valid identifier");
    expect(err.where?.split('\n')[0]).toMatch(/^\w+\(\) LINE 6: throw m\.error\(\); \/\/ df\.\w+$/);
    expect(err.where?.length).toBeLessThan(200);
  });
});
