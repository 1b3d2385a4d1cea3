/**
 * Tenant isolation end to end, with a real worker (API §6.1, §11.4, deviation 8,
 * docs/SECURITY.md): roles with awkward names run their steps as themselves and only they see the
 * results; every df.* function refuses or hides another tenant's instance; the identity df.start
 * captures (SET ROLE, SECURITY DEFINER) is the one steps run as; the superuser guard holds at the
 * worker even when the start-time check is talked round; and a step cannot climb out of its role.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, errorOf, freshDatabase, scalar, url } from '../support/db';
import { connectAs, createOddTenant } from '../support/security';
import { eventually, startWorker, waitFor, type WorkerHandle } from '../support/worker';

let db: string;
let worker: WorkerHandle;
let admin: pg.Client;
const roles: Record<string, string> = {};
const clients: Record<string, pg.Client> = {};

beforeAll(async () => {
  db = await freshDatabase('seciso');
  roles.alice = await createTenant(db, 'alice');
  roles.bob = await createTenant(db, 'bob');
  roles.lab = await createOddTenant(db, 'labUser_');
  roles.space = await createOddTenant(db, 'role with space ');
  roles.quote = await createOddTenant(db, 'role"with"quote ');
  admin = await connectAs(url(db));
  for (const [k, r] of Object.entries(roles)) clients[k] = await connectAs(url(db, r));
  worker = startWorker(url(db));
});

afterAll(async () => {
  await Promise.all(Object.values(clients).map((c) => c.end()));
  await admin?.end();
  await worker?.stop();
});

const lit = (s: string) => pg.escapeLiteral(s);
const start = (c: pg.Client, expr: string, label: string | null = null) => scalar<string>(c, `SELECT df.start(${expr}, $1)`, [label]);
const rowOf = async (c: pg.Client, id: string) => JSON.parse((await scalar<string>(c, 'SELECT df.result($1)', [id]))!).rows[0];
const lastFailure = (id: string) =>
  scalar<string>(admin, "SELECT n.result #>> '{}' FROM df.nodes n WHERE n.instance_id = $1 AND n.status = 'failed' ORDER BY n.node_type = 'SQL' DESC, n.updated_at LIMIT 1", [id]);

describe('odd role names end to end', () => {
  beforeAll(async () => {
    for (const key of ['lab', 'space', 'quote']) await clients[key].query("SELECT df.setvar('greeting', 'hi')");
  });
  for (const key of ['lab', 'space', 'quote']) {
    it(`${key}: steps run as the role, its variables are captured, only it reads the result`, async () => {
      const role = roles[key];
      const c = clients[key];
      const id = await start(c, lit("SELECT current_user AS cu, session_user AS su, '{greeting}' AS g, df.getvar('greeting') AS v"), `odd-${key}`);
      expect(await waitFor(c, id)).toBe('completed');
      expect(await rowOf(c, id)).toEqual({ cu: role, su: role, g: 'hi', v: 'hi' });
      expect(await scalar(admin, 'SELECT submitted_by::text FROM df.instances WHERE id = $1', [id])).toBe(pg.escapeIdentifier(role));
      const listed = (await c.query("SELECT instance_id FROM df.list_instances(NULL, 10, $1)", [`odd-${key}`])).rows.map((r) => r.instance_id);
      expect(listed).toEqual([id]);
      for (const other of ['alice', key === 'lab' ? 'quote' : 'lab']) {
        const o = clients[other];
        expect(await scalar(o, 'SELECT df.status($1)', [id])).toBeNull();
        expect(await scalar(o, 'SELECT df.result($1)', [id])).toBeNull();
        expect((await errorOf(o, 'SELECT df.cancel($1)', [id])).message).toBe(`Instance not found or access denied: ${id}`);
        expect((await o.query('SELECT * FROM df.list_instances(NULL, 10, $1)', [`odd-${key}`])).rows).toEqual([]);
        expect(await scalar(o, "SELECT df.getvar('greeting')")).toBe(other === 'alice' ? null : 'hi');
      }
    });
  }
});

describe("every df.* function hides or refuses another tenant's instance", () => {
  let done: string;
  let waiting: string;
  beforeAll(async () => {
    const a = clients.alice;
    await a.query("SELECT df.setvar('secret', 'alice-only')");
    done = await start(a, "'SELECT 1 AS x' |=> 'x' ~> 'SELECT $x + 1 AS y'", 'alice-done');
    waiting = await start(a, "df.wait_for_signal('go') ~> 'SELECT 2 AS z'", 'alice-waiting');
    expect(await waitFor(a, done)).toBe('completed');
    await eventually(async () => (await scalar(a, 'SELECT df.status($1)', [waiting])) === 'running', 15_000, 'waiting instance running');
  });

  it('bob: status, result, cancel, signal, await, list, info, nodes, executions, explain, prune, metrics, vars, run', async () => {
    const b = clients.bob;
    const nf = (id: string) => `Instance not found or access denied: ${id}`;
    expect(await scalar(b, 'SELECT df.status($1)', [done])).toBeNull();
    expect(await scalar(b, 'SELECT df.result($1)', [done])).toBeNull();
    expect((await errorOf(b, 'SELECT df.cancel($1)', [waiting])).message).toBe(nf(waiting));
    expect((await errorOf(b, "SELECT df.signal($1, 'go')", [waiting])).message).toBe(nf(waiting));
    expect((await errorOf(b, 'SELECT df.await_instance($1, 1)', [done])).message).toBe(`Instance not found: ${done}`);
    expect((await errorOf(b, 'SELECT df.wait_for_completion($1, 1)', [done])).message).toBe(`Instance not found: ${done}`);
    const ids = (await b.query('SELECT instance_id FROM df.list_instances(NULL, 1000)')).rows.map((r) => r.instance_id);
    expect(ids).not.toContain(done);
    expect(ids).not.toContain(waiting);
    expect((await b.query("SELECT * FROM df.list_instances(NULL, 1000, 'alice-done')")).rows).toEqual([]);
    for (const sql of ['SELECT * FROM df.instance_info($1)', 'SELECT * FROM df.instance_nodes($1)', 'SELECT * FROM df.instance_nodes($1, 5)', 'SELECT * FROM df.instance_executions($1)']) {
      expect({ sql, rows: (await b.query(sql, [done])).rows }).toEqual({ sql, rows: [] });
    }
    expect(await scalar(b, 'SELECT df.explain($1)', [done])).toBe(`Instance '${done}' not found`);
    expect((await b.query("SELECT * FROM df.prune_executions($1, now() + interval '1 day')", [done])).rows).toEqual([
      { instances_processed: '0', executions_deleted: '0', events_deleted: '0' },
    ]);
    expect((await b.query("SELECT * FROM df.prune_executions('alice-done', now() + interval '1 day')")).rows[0].instances_processed).toBe('0');
    expect((await errorOf(b, 'SELECT * FROM df.metrics()')).message).toBe('permission denied for function metrics');
    expect(await scalar(b, "SELECT df.getvar('secret')")).toBeNull();
    expect(await scalar(b, 'SELECT df.clearvars()')).toBe('OK');
    expect(await scalar(b, "SELECT df.unsetvar('secret')")).toBe('OK');
    expect(await scalar(b, 'SELECT df.run($1)', [done])).toBe(`Triggered run for instance: ${done}`);
    // ... and nothing of alice's changed
    const a = clients.alice;
    expect(await scalar(a, "SELECT df.getvar('secret')")).toBe('alice-only');
    expect(await scalar(a, 'SELECT df.status($1)', [waiting])).toBe('running');
    expect(await scalar(a, 'SELECT count(*)::int FROM df.instances WHERE id = $1', [done])).toBe(1);
  });

  it('bob from inside a workflow step sees and touches nothing of alice\'s either', async () => {
    const b = clients.bob;
    const peek = await start(b, lit(`SELECT df.status('${done}') AS s, df.result('${done}') AS r, (SELECT count(*) FROM df.instances WHERE id = '${done}') AS n, (SELECT count(*) FROM df.nodes WHERE instance_id = '${done}') AS nodes`));
    expect(await waitFor(b, peek)).toBe('completed');
    expect(await rowOf(b, peek)).toEqual({ s: null, r: null, n: 0, nodes: 0 });
    const poke = await start(b, lit(`SELECT df.cancel('${waiting}')`));
    expect(await waitFor(b, poke)).toBe('failed');
    expect(await lastFailure(poke)).toContain(`Instance not found or access denied: ${waiting}`);
    expect(await scalar(clients.alice, 'SELECT df.status($1)', [waiting])).toBe('running');
  });

  it('alice herself can do all of it (positive control)', async () => {
    const a = clients.alice;
    expect(await scalar(a, 'SELECT df.result($1)', [done])).toBe('{"rows": [{"y": 2}], "row_count": 1}');
    expect((await a.query('SELECT * FROM df.instance_nodes($1)', [done])).rows).toHaveLength(3);
    expect((await a.query('SELECT * FROM df.instance_executions($1)', [done])).rows).toHaveLength(1);
    expect(await scalar<string>(a, 'SELECT df.explain($1)', [done])).toContain(`Instance: ${done} (alice-done)`);
    expect(await scalar(a, "SELECT df.signal($1, 'go')", [waiting])).toBe('OK');
    expect(await waitFor(a, waiting)).toBe('completed');
  });
});

describe('status writes by hand against a running worker', () => {
  it("UPDATE ... SET status = 'cancelled' stops a running step like df.cancel; nothing resurrects or overwrites it", async () => {
    const a = clients.alice;
    await a.query('CREATE TABLE public.cancel_ledger (x int)');
    const id = await start(a, `${lit('SELECT pg_sleep(30)')} ~> ${lit('INSERT INTO public.cancel_ledger VALUES (1)')}`);
    await eventually(async () => (await scalar(admin, "SELECT count(*)::int FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'")) === 1, 15_000, 'step running');
    // The instance reads 'running' once its first step has run 200 ms (no write at pickup).
    await eventually(async () => (await scalar(a, 'SELECT df.status($1)', [id])) === 'running', 5_000, 'instance running');
    expect((await errorOf(a, "UPDATE df.instances SET status = 'completed' WHERE id = $1", [id])).message).toContain('cannot be changed from running to completed by hand');
    expect((await a.query("UPDATE df.instances SET status = 'cancelled' WHERE id = $1", [id])).rowCount).toBe(1);
    await eventually(async () => (await scalar(admin, "SELECT count(*)::int FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'")) === 0, 15_000, 'step cancelled');
    await new Promise((r) => setTimeout(r, 500));
    expect(await scalar(a, 'SELECT df.status($1)', [id])).toBe('cancelled');
    expect(await scalar(a, 'SELECT count(*)::int FROM public.cancel_ledger')).toBe(0);
    expect(await scalar(admin, 'SELECT status FROM df._executions WHERE instance_id = $1', [id])).toBe('Failed');
  });

  it('SQL that does not parse, or holds two statements, fails its node with PostgreSQL\'s message at run time', async () => {
    const a = clients.alice;
    const bad = await start(a, lit('SELEC 1'));
    const two = await start(a, lit('SELECT 1; SELECT 2'));
    expect(await waitFor(a, bad)).toBe('failed');
    expect(await waitFor(a, two)).toBe('failed');
    expect(await lastFailure(bad)).toBe('SQL execution failed: syntax error at or near "SELEC"');
    expect(await lastFailure(two)).toBe('SQL execution failed: cannot insert multiple commands into a prepared statement');
  });
});

describe('identity captured by df.start is the identity steps run as (API §6.1)', () => {
  it('SET ROLE: the instance belongs to, and runs as, the role set', async () => {
    const carol = await createTenant(db, 'carol');
    await admin.query(`GRANT ${pg.escapeIdentifier(carol)} TO ${pg.escapeIdentifier(roles.alice)}`);
    const a = clients.alice;
    await a.query(`SET ROLE ${pg.escapeIdentifier(carol)}`);
    const id = await start(a, lit('SELECT current_user AS cu, session_user AS su'));
    expect(await waitFor(a, id)).toBe('completed');
    expect(await rowOf(a, id)).toEqual({ cu: carol, su: carol });
    await a.query('RESET ROLE');
    expect(await scalar(a, 'SELECT df.status($1)', [id])).toBeNull();
  });

  it('SECURITY DEFINER: a function owned by another tenant starts an instance that runs as the owner', async () => {
    const dave = await createTenant(db, 'dave');
    const d = await connectAs(url(db, dave));
    try {
      const fn = `public.${pg.escapeIdentifier(`start_as_${dave}`)}`;
      await d.query(`CREATE FUNCTION ${fn}() RETURNS text LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
                     AS $$ SELECT df.start('SELECT current_user AS cu, session_user AS su') $$`);
      await d.query(`GRANT EXECUTE ON FUNCTION ${fn}() TO ${pg.escapeIdentifier(roles.alice)}`);
      const id = await scalar<string>(clients.alice, `SELECT ${fn}()`);
      expect(await scalar(clients.alice, 'SELECT df.status($1)', [id])).toBeNull();
      expect(await waitFor(d, id)).toBe('completed');
      expect(await rowOf(d, id)).toEqual({ cu: dave, su: dave });
    } finally {
      await d.end();
    }
  });

  it('a superuser-owned SECURITY DEFINER start is refused, and a session SET of the setting does not get it past the worker', async () => {
    const a = clients.alice;
    await admin.query(`CREATE FUNCTION public.start_as_superuser() RETURNS text LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
                       AS $$ SELECT df.start('CREATE TABLE public.pwned_by_tenant (x int)') $$`);
    await admin.query(`GRANT EXECUTE ON FUNCTION public.start_as_superuser() TO ${pg.escapeIdentifier(roles.alice)}`);
    expect((await errorOf(a, 'SELECT public.start_as_superuser()')).message).toBe(
      'pg_durable: superuser instances are disabled. current_user "postgres" is a superuser, but pg_durable.enable_superuser_instances is off. Set pg_durable.enable_superuser_instances = on to allow this.',
    );
    // A plv8 extension cannot register the setting, so any session may SET the placeholder; a
    // tenant's value does not count at start (42501, test/integration/admin-settings.test.ts).
    await a.query('SET pg_durable.enable_superuser_instances = on');
    expect((await errorOf(a, 'SELECT public.start_as_superuser()')).code).toBe('42501');
    await a.query('RESET pg_durable.enable_superuser_instances');
    // Even a row that got past df.start (the instance's submitted_by written by hand, as the
    // superuser here) is refused by the worker, which reads the server's value: the real guard.
    await admin.query('SET pg_durable.enable_superuser_instances = on');
    const id = await scalar<string>(admin, "SELECT df.start('CREATE TABLE public.pwned_by_tenant (x int)')");
    await admin.query('RESET pg_durable.enable_superuser_instances');
    expect(await waitFor(admin, id)).toBe('failed');
    expect(await scalar(admin, 'SELECT output FROM df._executions WHERE instance_id = $1', [id])).toBe(
      `pg_durable blocked instance ${id}: submitted_by role "postgres" is a superuser, but pg_durable.enable_superuser_instances is off`,
    );
    expect(await scalar(admin, "SELECT to_regclass('public.pwned_by_tenant') IS NULL")).toBe(true);
    expect(await scalar(admin, "SELECT count(*)::int FROM df.nodes WHERE instance_id = $1 AND status <> 'pending'", [id])).toBe(0);
  });

  it('a role without LOGIN cannot start (SET ROLE to it)', async () => {
    await admin.query(`CREATE ROLE sec_nologin NOLOGIN; SELECT df.grant_usage('sec_nologin'); GRANT sec_nologin TO ${pg.escapeIdentifier(roles.bob)}`);
    const b = clients.bob;
    await b.query('SET ROLE sec_nologin');
    try {
      expect((await errorOf(b, "SELECT df.start('SELECT 1')")).message).toContain('current_user "sec_nologin" does not have LOGIN privilege');
    } finally {
      await b.query('RESET ROLE');
    }
  });
});

describe('a step cannot climb out of its role (deviation 8)', () => {
  const who = lit('SELECT current_user AS cu, session_user AS su');

  it('SET ROLE / SET SESSION AUTHORIZATION to the superuser or another tenant fail with PostgreSQL\'s permission error', async () => {
    const a = clients.alice;
    const attempts: [string, string][] = [
      ['SET ROLE postgres', 'permission denied to set role "postgres"'],
      [`SET ROLE ${pg.escapeIdentifier(roles.bob)}`, `permission denied to set role "${roles.bob}"`],
      ['SET SESSION AUTHORIZATION postgres', 'permission denied to set session authorization'],
      [`SET SESSION AUTHORIZATION ${pg.escapeIdentifier(roles.bob)}`, 'permission denied to set session authorization'],
      ["SELECT set_config('role', 'postgres', false)", 'permission denied to set role "postgres"'],
      ["SELECT set_config('session_authorization', 'postgres', false)", 'permission denied to set session authorization'],
      ['SELECT * FROM df._work', 'permission denied for table _work'],
      ['SELECT * FROM df._worker_epoch', 'permission denied for table _worker_epoch'],
      // Inside its quick first step an instance still reads 'pending': it turns 'running' with its
      // first checkpoint, or when that step has run 200 ms (README, deviations).
      ["UPDATE df.instances SET status = 'completed' WHERE id = '{sys_instance_id}'", 'cannot be changed from pending to completed by hand'],
    ];
    const ids = [];
    for (const [step] of attempts) ids.push(await start(a, `${lit(step)} ~> ${who}`));
    for (let i = 0; i < attempts.length; i++) {
      expect({ step: attempts[i][0], status: await waitFor(a, ids[i]) }).toEqual({ step: attempts[i][0], status: 'failed' });
      expect(await lastFailure(ids[i])).toContain(attempts[i][1]);
    }
  });

  it('RESET ROLE / RESET SESSION AUTHORIZATION leave the step as the tenant, also inside a function', async () => {
    const a = clients.alice;
    const fn = `public.${pg.escapeIdentifier(`whoami_after_reset_${roles.alice}`)}`;
    await a.query(`CREATE FUNCTION ${fn}() RETURNS text LANGUAGE plpgsql AS $$
                   BEGIN RESET ROLE; RESET SESSION AUTHORIZATION; RETURN current_user || '/' || session_user; END $$`);
    const flows = [`${lit('RESET ROLE')} ~> ${who}`, `${lit('RESET SESSION AUTHORIZATION')} ~> ${who}`, `${lit('RESET ALL')} ~> ${who}`];
    const ids = [];
    for (const f of flows) ids.push(await start(a, f));
    const viaFn = await start(a, lit(`SELECT ${fn}() AS w`));
    for (const id of ids) {
      expect(await waitFor(a, id)).toBe('completed');
      expect(await rowOf(a, id)).toEqual({ cu: roles.alice, su: roles.alice });
    }
    expect(await waitFor(a, viaFn)).toBe('completed');
    expect(await rowOf(a, viaFn)).toEqual({ w: `${roles.alice}/${roles.alice}` });
  });

  it("a step that changes search_path cannot redirect the checkpoint's types (shadow uuid/jsonb/text types)", async () => {
    const a = clients.alice;
    for (const t of ['uuid', 'jsonb', 'text']) await a.query(`CREATE TYPE public.${t} AS (stolen pg_catalog.text)`);
    const id = await start(a, `${lit("SELECT pg_catalog.set_config('search_path', 'public, pg_catalog', true) AS sp")} ~> ${who}`);
    expect(await waitFor(a, id)).toBe('completed');
    expect(await rowOf(a, id)).toEqual({ cu: roles.alice, su: roles.alice });
  });

  it('usage revoked while an instance waits: its next step is rolled back and the instance fails saying the role lost its privileges', async () => {
    const erin = await createTenant(db, 'erin');
    const e = await connectAs(url(db, erin));
    try {
      await e.query('CREATE TABLE public.erin_ledger (x int)');
      await admin.query(`ALTER TABLE public.erin_ledger OWNER TO ${pg.escapeIdentifier(erin)}`);
      const id = await start(e, `df.wait_for_signal('go') ~> ${lit('INSERT INTO public.erin_ledger VALUES (1)')}`);
      await eventually(async () => (await scalar(e, 'SELECT df.status($1)', [id])) === 'running', 15_000, 'erin running');
      await admin.query('SELECT df.revoke_usage($1)', [erin]);
      await admin.query("INSERT INTO df._signals (instance_id, signal_name, payload, submitted_by) VALUES ($1, 'go', '{}', $2::regrole)", [id, pg.escapeIdentifier(erin)]);
      expect(await waitFor(admin, id)).toBe('failed');
      const out = await scalar<string>(admin, 'SELECT output FROM df._executions WHERE instance_id = $1', [id]);
      expect(out).toMatch(new RegExp(`^Instance ${id}: role "${erin}" lost its pg_durable privileges`));
      expect(out).toContain('(permission denied for schema df)');
      expect(await scalar(admin, 'SELECT count(*)::int FROM public.erin_ledger')).toBe(0);
    } finally {
      await e.end();
    }
  });
});
