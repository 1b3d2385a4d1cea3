/**
 * ALTER EXTENSION pg_durable UPDATE: work started on the previous release continues after the
 * update, and an updated install is indistinguishable in the catalog from a fresh one (which is
 * what catches a schema change missing from src/sql/upgrade/).
 */
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, scalar, url, withPg } from '../support/db';
import { startWorker, waitFor, type WorkerHandle } from '../support/worker';

const CURRENT = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
const PREVIOUS = readdirSync('extension')
  .map((f) => /^pg_durable--([^-]+(?:-[^-]+)*)--([^-]+)\.sql$/.exec(f))
  .filter((m): m is RegExpExecArray => m !== null && m[2] === CURRENT)
  .map((m) => m[1])[0];

async function database(name: string, version?: string): Promise<string> {
  const db = `${name}_${Date.now().toString(36)}`;
  await withPg('postgres', (c) => c.query(`CREATE DATABASE ${db}`));
  await withPg(db, (c) => c.query(`CREATE EXTENSION pg_durable ${version ? `VERSION '${version}'` : ''} CASCADE`));
  return db;
}

/** Every definition the extension owns, in a comparable form. */
const CATALOG = `
SELECT kind, name, def FROM (
  SELECT 'function' AS kind, p.oid::regprocedure::text AS name, pg_get_functiondef(p.oid) || ' acl=' || coalesce(p.proacl::text, '') AS def
    FROM pg_proc p WHERE p.pronamespace = 'df'::regnamespace
  UNION ALL SELECT 'operator', o.oid::regoperator::text, o.oprcode::regproc::text FROM pg_operator o WHERE o.oprcode::regproc::text LIKE 'df.%'
  UNION ALL SELECT 'column', c.table_name || '.' || c.column_name,
         c.ordinal_position || ' ' || c.data_type || ' ' || c.is_nullable || ' ' || coalesce(c.column_default, '')
    FROM information_schema.columns c WHERE c.table_schema = 'df'
  UNION ALL SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'df'::regnamespace
  UNION ALL SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'df'
  UNION ALL SELECT 'policy', tablename || '.' || policyname, cmd || ' ' || coalesce(qual, '') || ' ' || coalesce(with_check, '') FROM pg_policies WHERE schemaname = 'df'
  UNION ALL SELECT 'trigger', tgrelid::regclass::text || '.' || tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE 'df.%'
  UNION ALL SELECT 'relation', c.oid::regclass::text, c.relkind::text || ' rls=' || c.relrowsecurity || ' options=' || coalesce(c.reloptions::text, '') || ' acl=' || coalesce(c.relacl::text, '') FROM pg_class c WHERE c.relnamespace = 'df'::regnamespace
  UNION ALL SELECT 'cast', format_type(castsource, NULL) || '->' || format_type(casttarget, NULL), castcontext::text || castmethod::text FROM pg_cast
    WHERE castsource = 'df.node'::regtype OR casttarget = 'df.node'::regtype
  UNION ALL SELECT 'member', pg_describe_object(classid, objid, objsubid), '' FROM pg_depend
    WHERE refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_durable') AND deptype = 'e'
  UNION ALL SELECT 'schema-acl', 'df', coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'df'
) s ORDER BY kind, name`;

describe(`ALTER EXTENSION pg_durable UPDATE (${PREVIOUS} -> ${CURRENT})`, () => {
  it('has an upgrade script into the current version', () => {
    expect(PREVIOUS).toBeDefined();
  });

  it('an updated install has the same catalog as a fresh one', async () => {
    const updated = await database('upg_updated', PREVIOUS);
    expect(await withPg(updated, (c) => scalar(c, "SELECT extversion FROM pg_extension WHERE extname = 'pg_durable'"))).toBe(PREVIOUS);
    await withPg(updated, (c) => c.query('ALTER EXTENSION pg_durable UPDATE'));
    const fresh = await database('upg_fresh');
    const [a, b] = await Promise.all([withPg(updated, (c) => c.query(CATALOG)), withPg(fresh, (c) => c.query(CATALOG))]);
    expect(a.rows.length).toBeGreaterThan(100);
    expect(a.rows).toEqual(b.rows);
    expect(await withPg(updated, (c) => scalar(c, "SELECT extversion FROM pg_extension WHERE extname = 'pg_durable'"))).toBe(CURRENT);
  });

  it("roles granted usage before the update get what this version's df.grant_usage adds", async () => {
    const db = await database('upg_grants', PREVIOUS);
    const role = `upg_tenant_${Date.now().toString(36)}`;
    await withPg(db, async (c) => {
      await c.query(`CREATE ROLE ${role} LOGIN`);
      await c.query('SELECT df.grant_usage($1)', [role]);
      // 0.1.0's grant set lacked df._commit for delegated grants; revoke it to see it come back.
      await c.query(`REVOKE EXECUTE ON FUNCTION df._commit(text, uuid, jsonb, text, text) FROM ${role}`);
      await c.query('ALTER EXTENSION pg_durable UPDATE');
      const privs = (await c.query(
        `SELECT has_function_privilege($1, 'df._commit(text, uuid, jsonb, text, text)', 'EXECUTE') AS commit_fn,
                has_function_privilege($1, 'df._start_new(uuid, text, text, text)', 'EXECUTE') AS start_new,
                has_column_privilege($1, 'df._launch_tickets', 'nonce', 'INSERT') AS ticket,
                has_table_privilege($1, 'df._runs', 'SELECT') AS run_log,
                has_table_privilege($1, 'df._execution_log', 'SELECT') AS execution_log`,
        [role],
      )).rows[0];
      expect(privs).toEqual({ commit_fn: true, start_new: true, ticket: true, run_log: true, execution_log: true });
    });
  });

  describe('work started before the update continues after it', () => {
    let db: string;
    let tenant: string;
    let worker: WorkerHandle;
    let user: pg.Client;
    beforeAll(async () => {
      db = await database('upg_work', PREVIOUS);
      tenant = await createTenant(db, 'upg');
      user = new pg.Client({ connectionString: url(db, tenant) });
      await user.connect();
    });
    afterAll(async () => {
      await user?.end();
      await worker?.stop();
    });

    it('an instance waiting on a signal across the update completes, and new starts run', async () => {
      const waiting = await scalar<string>(user, "SELECT df.start(df.wait_for_signal('go') |=> 'sig' ~> 'SELECT $sig::jsonb->''data''->>''n'' AS n', 'across-update')");
      const pending = await scalar<string>(user, "SELECT df.start('SELECT 41 + 1 AS answer')"); // queued while no worker runs
      worker = startWorker(url(db));
      expect(await waitFor(user, pending)).toBe('completed');
      await withPg(db, async (c) => {
        for (let i = 0; i < 100; i++) {
          const st = await scalar<string>(c, "SELECT status FROM df.nodes WHERE instance_id = $1 AND node_type = 'SIGNAL'", [waiting]);
          if (st === 'running') break;
          await new Promise((r) => setTimeout(r, 50));
        }
        await c.query('ALTER EXTENSION pg_durable UPDATE');
      });
      await user.end();
      user = new pg.Client({ connectionString: url(db, tenant) }); // a new session loads the new bundle
      await user.connect();
      expect(await scalar<string>(user, 'SELECT df.version()')).toMatch(new RegExp(`^${CURRENT.replace(/\./g, '\\.')} \\(built `));
      expect(await scalar(user, `SELECT df.signal($1, 'go', '{"n": 7}')`, [waiting])).toBe('OK');
      expect(await waitFor(user, waiting)).toBe('completed');
      expect(await scalar(user, 'SELECT df.result($1)', [waiting])).toBe('{"rows": [{"n": "7"}], "row_count": 1}');
      // Its first execution's row (Running, from 0.1.0) went with the update: the view derives it,
      // once. The instance completed by this worker under 0.1.0 kept its output (the older
      // df._commit ignores the event's "output" mark and writes the output it is sent).
      const executions = (id: string) => user.query('SELECT execution_id, status, output FROM df.instance_executions($1)', [id]).then((r) => r.rows);
      expect(await executions(waiting)).toEqual([{ execution_id: '1', status: 'Completed', output: '{"rows":[{"n":"7"}],"row_count":1}' }]);
      expect(await executions(pending)).toEqual([{ execution_id: '1', status: 'Completed', output: '{"rows":[{"answer":42}],"row_count":1}' }]);
      const after = await scalar<string>(user, "SELECT df.start('SELECT 1' ~> 'SELECT 2 AS two')");
      expect(await waitFor(user, after)).toBe('completed');
    });
  });
});
