/**
 * Test helpers over the embedded cluster: a fresh database per test file (with pg_durable
 * installed), clients as the superuser or as a tenant role, and explicit transactions.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

export const SUPERUSER = 'postgres';

export function clusterInfo() {
  return inject('cluster');
}

export function url(database: string, user = SUPERUSER): string {
  const c = clusterInfo();
  return `postgresql://${encodeURIComponent(user)}@/${encodeURIComponent(database)}?host=${encodeURIComponent(c.socketDir)}&port=${c.port}`;
}

export async function withPg<T>(database: string, fn: (client: pg.Client) => Promise<T>, user = SUPERUSER): Promise<T> {
  const client = new pg.Client({ connectionString: url(database, user) });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Runs fn as `role` on its own connection (authenticated as that role, like the worker does). */
export function asRole<T>(database: string, role: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return withPg(database, fn, role);
}

/** Runs fn inside BEGIN ... COMMIT, or ROLLBACK when `rollback` is set or fn throws. */
export async function withTransaction<T>(client: pg.Client, fn: () => Promise<T>, opts: { rollback?: boolean } = {}): Promise<T> {
  await client.query('BEGIN');
  try {
    const out = await fn();
    await client.query(opts.rollback ? 'ROLLBACK' : 'COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

/** A new database with pg_durable installed; name is unique per call. */
export async function freshDatabase(prefix: string): Promise<string> {
  const name = `${prefix}_${randomBytes(3).toString('hex')}`;
  await withPg('postgres', (c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
  await withPg(name, (c) => c.query('CREATE EXTENSION pg_durable CASCADE'));
  return name;
}

/** A LOGIN role granted df usage (roles are cluster-wide, so names get a unique suffix). */
export async function createTenant(database: string, base: string, opts: { http?: boolean } = {}): Promise<string> {
  const name = `${base}_${randomBytes(2).toString('hex')}`;
  await withPg(database, async (c) => {
    await c.query(`CREATE ROLE ${pg.escapeIdentifier(name)} LOGIN`);
    await c.query('SELECT df.grant_usage($1, include_http => $2)', [name, opts.http ?? false]);
    await c.query(`GRANT CREATE ON SCHEMA public TO ${pg.escapeIdentifier(name)}`);
  });
  return name;
}

/** The error a query raises (message and SQLSTATE), failing the test if it succeeds. */
export async function errorOf(client: pg.Client, sql: string, params: unknown[] = []): Promise<{ message: string; code: string }> {
  try {
    await client.query(sql, params);
  } catch (err) {
    const e = err as { message: string; code: string };
    return { message: e.message, code: e.code };
  }
  throw new Error(`expected an error from: ${sql}`);
}

export async function scalar<T = unknown>(client: pg.Client, sql: string, params: unknown[] = []): Promise<T> {
  const r = await client.query(sql, params);
  return Object.values(r.rows[0] ?? {})[0] as T;
}
