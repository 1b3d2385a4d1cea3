/**
 * What a SQL step sees (API §7, §9.3, deviations 7 and 8): the submitting role, the workflow flag,
 * the df.* functions allowed and forbidden inside a workflow, a clean session for every step, and
 * the autocommit fallback for statements that cannot run in a transaction block.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scalar, url } from '../support/db';
import { type Flow, lit, setupFlow } from '../support/flows';

let f: Flow;

beforeAll(async () => {
  f = await setupFlow('context');
});

afterAll(async () => {
  await f?.stop();
});

async function completedRow(expr: string): Promise<{ id: string; row: any }> {
  const { id, status } = await f.run(expr);
  expect(status).toBe('completed');
  return { id, row: JSON.parse((await f.result(id))!).rows[0] };
}

describe('identity and workflow context', () => {
  it("steps run as the submitting tenant with df.in_workflow = 'true'", async () => {
    const { row } = await completedRow(lit("SELECT current_user AS cu, session_user AS su, current_setting('df.in_workflow') AS in_workflow"));
    expect(row).toEqual({ cu: f.tenant, su: f.tenant, in_workflow: 'true' });
  });

  it('df.setvar inside a step fails that node (and the instance)', async () => {
    const step = "SELECT df.setvar('inside', 'x') AS r";
    const { id, status } = await f.run(lit(step));
    expect(status).toBe('failed');
    expect(await f.nodeByQuery(id, step)).toMatchObject({
      status: 'failed',
      result: 'SQL execution failed: df.setvar() cannot be called inside a workflow - set variables before starting the workflow',
    });
    expect(await scalar(f.user, "SELECT df.getvar('inside')")).toBeNull();
  });

  it('df.unsetvar and df.clearvars inside a step fail too, leaving the variables alone', async () => {
    await f.user.query("SELECT df.setvar('keep', 'me')");
    for (const [step, fn] of [["SELECT df.unsetvar('keep')", 'df.unsetvar()'], ['SELECT df.clearvars()', 'df.clearvars()']]) {
      const { id, status } = await f.run(lit(step));
      expect(status).toBe('failed');
      expect((await f.root(id)).result).toBe(
        `SQL execution failed: ${fn} cannot be called inside a workflow - manage variables before starting the workflow`,
      );
    }
    expect(await scalar(f.user, "SELECT df.getvar('keep')")).toBe('me');
  });

  it("a step can read the submitter's variables with df.getvar", async () => {
    await f.user.query("SELECT df.setvar('color', 'blue')");
    const { row } = await completedRow(lit("SELECT df.getvar('color') AS color, df.getvar('missing') AS missing"));
    expect(row).toEqual({ color: 'blue', missing: null });
  });

  it('a step can start a child instance with df.start, and the child completes too', async () => {
    const { id, row } = await completedRow(lit("SELECT df.start('SELECT 7 AS child_value', 'child-of-{sys_instance_id}') AS child"));
    const child = row.child as string;
    expect(child).toMatch(/^[0-9a-f]{8}$/);
    expect(await f.wait(child)).toBe('completed');
    expect(await f.result(child)).toBe('{"rows": [{"child_value": 7}], "row_count": 1}');
    expect(await scalar(f.user, 'SELECT label FROM df.instances WHERE id = $1', [child])).toBe(`child-of-${id}`);
    expect(await scalar(f.user, 'SELECT submitted_by::text FROM df.instances WHERE id = $1', [child])).toBe(f.tenant);
  });

  it('session state does not leak between steps: a SET search_path is gone in the next step', async () => {
    const { row } = await completedRow(
      `${lit('SET search_path = pg_catalog')} ~> ${lit("SELECT current_setting('search_path') AS sp, current_setting('df.in_workflow') AS in_workflow")}`,
    );
    expect(row).toEqual({ sp: '"$user", public', in_workflow: 'true' });
  });

  it('session state does not leak between steps: a temp table is gone in the next step', async () => {
    const { id, row } = await completedRow(
      `${lit('CREATE TEMP TABLE leak_tmp AS SELECT 1 AS x')} ~> ${lit("SELECT to_regclass('leak_tmp') IS NULL AS gone, (SELECT count(*) FROM pg_class WHERE relname = 'leak_tmp') AS n")}`,
    );
    expect(row).toEqual({ gone: true, n: 0 });
    expect(await f.nodeByQuery(id, 'CREATE TEMP TABLE leak_tmp AS SELECT 1 AS x')).toMatchObject({ status: 'completed' });
  });
  it('session state does not leak between steps: a SET ROLE is gone in the next step', async () => {
    // RESET ALL leaves the role alone; the session reset undoes it as DISCARD ALL would.
    const other = `${f.tenant}_member`;
    await f.admin.query(`CREATE ROLE ${other} NOLOGIN`);
    await f.admin.query(`GRANT ${other} TO ${f.tenant}`);
    await f.admin.query(`SELECT df.grant_usage('${other}')`);
    const { row } = await completedRow(`${lit(`SET ROLE ${other}`)} ~> ${lit('SELECT current_user AS cu, session_user AS su')}`);
    expect(row).toEqual({ cu: f.tenant, su: f.tenant });
  });

  it('session state does not leak between steps: prepared statements, cursors, LISTENs and advisory locks are gone', async () => {
    // The statements a step PREPAREd (from_sql); the worker's own stay (worker-kept-statements.test.ts).
    const { row } = await completedRow(
      `${lit("SELECT pg_advisory_lock(4242), set_config('work_mem', '7MB', false), pg_notify('x', 'y')")} ~> ${lit('LISTEN leak_channel')} ~> ${lit('PREPARE leak_stmt AS SELECT 1')} ~> ` +
        lit(`SELECT (SELECT count(*) FROM pg_prepared_statements WHERE from_sql) AS prepared, (SELECT count(*) FROM pg_listening_channels()) AS listening,
                (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory, current_setting('work_mem') AS work_mem`),
    );
    expect(row).toEqual({ prepared: 0, listening: 0, advisory: 0, work_mem: '4MB' });
  });
});

describe('autocommit fallback (at-least-once)', () => {
  it('VACUUM on a tenant table completes and its node says it ran at-least-once', async () => {
    await f.user.query('CREATE TABLE vac_t (x int)');
    await f.user.query('INSERT INTO vac_t SELECT generate_series(1, 100)');
    const { id, status } = await f.run(`${lit('VACUUM vac_t')} ~> ${lit('SELECT count(*) AS n FROM vac_t')}`);
    expect(status).toBe('completed');
    expect(await f.result(id)).toBe('{"rows": [{"n": 100}], "row_count": 1}');
    const vacuum = await f.nodeByQuery(id, 'VACUUM vac_t');
    expect(vacuum).toMatchObject({ status: 'completed', result: { rows: [], row_count: 0 } });
    expect(JSON.stringify(vacuum.status_details)).toContain('at-least-once');
    const other = await f.nodeByQuery(id, 'SELECT count(*) AS n FROM vac_t');
    expect(JSON.stringify(other.status_details)).not.toContain('at-least-once');
    const vacuumed = await scalar(f.admin, "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'vac_t'");
    expect(vacuumed).toBe(true);
  });

  it('a CALL of a procedure that commits runs in autocommit: the rolled-back first attempt leaves nothing behind', async () => {
    await f.user.query('CREATE TABLE proc_t (step int)');
    await f.user.query(`CREATE PROCEDURE commit_twice() LANGUAGE plpgsql AS $p$
      BEGIN INSERT INTO proc_t VALUES (1); COMMIT; INSERT INTO proc_t VALUES (2); END $p$`);
    const { id, status } = await f.run(lit('CALL commit_twice()'));
    expect(status).toBe('completed');
    expect(await scalar(f.user, 'SELECT array_agg(step ORDER BY step)::text FROM proc_t')).toBe('{1,2}');
    expect(JSON.stringify((await f.root(id)).status_details)).toContain('at-least-once');
  });
});

describe('step connections of a --step-url template', () => {
  it("keep the template's server options and the step settings, which the reset after a step restores", async () => {
    // A step's settings are its own: the reset after it puts back what the template asked for at
    // connection time (libpq -c) and the step output settings.
    const template = `${url('DB_HERE', 'ROLE_HERE').replace('ROLE_HERE', '{role}').replace('DB_HERE', '{database}')}&options=${encodeURIComponent('-c work_mem=5MB')}`;
    const g = await setupFlow('stepurl', { extraArgs: ['--step-url', template, '--concurrency', '1'] });
    try {
      const settings = "SELECT current_setting('work_mem') AS work_mem, current_setting('DateStyle') AS datestyle, current_setting('extra_float_digits') AS digits, current_setting('df.in_workflow') AS in_workflow";
      const { id, status } = await g.run(`${lit("SET DateStyle = 'German'")} ~> ${lit("SET work_mem = '9MB'")} ~> ${lit('SET extra_float_digits = 0')} ~> ${lit(settings)}`);
      expect(status).toBe('completed');
      expect(JSON.parse((await g.result(id))!).rows[0]).toEqual({ work_mem: '5MB', datestyle: 'ISO, MDY', digits: '3', in_workflow: 'true' });
    } finally {
      await g.stop();
    }
  });
});
