/**
 * Helpers shared by the multi-tenant security suites (test/integration/security-*.test.ts):
 * row counts of every table a df.* call could write, the exact privileges a role holds on the
 * extension's objects, and LOGIN roles with awkward names.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { withPg } from './db';

/** Every table pg_durable writes for a user action (the bad-input suite checks none changed). */
export const COUNTED_TABLES = ['df.instances', 'df.nodes', 'df._work', 'df._executions', 'df._node_runs', 'df._signals', 'df.vars'] as const;

export async function tableCounts(client: pg.Client): Promise<Record<string, number>> {
  const sql = `SELECT ${COUNTED_TABLES.map((t) => `(SELECT count(*) FROM ${t})::int AS "${t}"`).join(', ')}`;
  return (await client.query(sql)).rows[0];
}

/**
 * What `role` holds directly on schema df and everything in it, one line per privilege:
 * `<object> <PRIVILEGE>[ WITH GRANT OPTION]`, sorted. Built from the ACLs themselves, so a grant
 * nobody expected shows up.
 */
export async function privilegesOf(client: pg.Client, role: string): Promise<string[]> {
  const r = await client.query<{ line: string }>(
    `WITH who AS (SELECT oid FROM pg_roles WHERE rolname = $1)
     SELECT obj || ' ' || a.privilege_type || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END AS line
       FROM (SELECT 'schema df' AS obj, nspacl AS acl FROM pg_namespace WHERE nspname = 'df'
             UNION ALL SELECT 'table ' || c.oid::regclass::text, c.relacl FROM pg_class c WHERE c.relnamespace = 'df'::regnamespace
             UNION ALL SELECT 'column ' || c.oid::regclass::text || '.' || att.attname, att.attacl
               FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid
              WHERE c.relnamespace = 'df'::regnamespace AND att.attnum > 0 AND NOT att.attisdropped
             UNION ALL SELECT 'function ' || p.oid::regprocedure::text, p.proacl FROM pg_proc p WHERE p.pronamespace = 'df'::regnamespace) o,
            aclexplode(o.acl) a, who
      WHERE a.grantee = who.oid
      ORDER BY 1`,
    [role],
  );
  return r.rows.map((x) => x.line);
}

/** A LOGIN role named `<base><suffix>` (cluster-wide, so unique per call), granted df usage. */
export async function createOddTenant(database: string, base: string, opts: { http?: boolean } = {}): Promise<string> {
  const name = `${base}${randomBytes(2).toString('hex')}`;
  await withPg(database, async (c) => {
    await c.query(`CREATE ROLE ${pg.escapeIdentifier(name)} LOGIN`);
    await c.query('SELECT df.grant_usage($1, include_http => $2)', [name, opts.http ?? false]);
  });
  return name;
}

/** A connected client authenticated as `role`; the caller ends it. */
export async function connectAs(connectionString: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString });
  await c.connect();
  c.on('error', () => undefined);
  return c;
}

/** NOTICE texts the server sends on `client` while fn runs. */
export async function noticesDuring(client: pg.Client, fn: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const on = (n: { message?: string; severity?: string }) => seen.push(`${n.severity}: ${n.message}`);
  client.on('notice', on);
  try {
    await fn();
  } finally {
    client.off('notice', on);
  }
  return seen;
}
