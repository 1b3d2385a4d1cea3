/**
 * The worker's step connections (src/worker/step-pools.ts): a pool of the worker's own database
 * keeps its last connection warm after the others close, until it has been unused for
 * KEEP_WARM_MS; at most `keep` such pools keep one; a pool of another database keeps none.
 * Counted in pg_stat_activity of a real server.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEEP_WARM_MS, StepPools } from '../../src/worker/step-pools';
import { createTenant, freshDatabase, url, withPg } from '../support/db';

const APP = `test:step-pools:${randomBytes(3).toString('hex')}`;
let home: string;
let other: string;
let roles: string[];
let clock = 0;
let pools: StepPools;

beforeAll(async () => {
  home = await freshDatabase('pools_home');
  other = await freshDatabase('pools_other');
  roles = [];
  for (const base of ['ann', 'ben', 'cat']) roles.push(await createTenant(home, base));
  pools = new StepPools((role, database) => ({ connectionString: url(database, role), max: 3, application_name: APP }), home, 2, {
    idleMs: 100,
    now: () => clock,
  });
});

afterAll(async () => {
  await pools?.end();
});

/** Our backends, per database and role ("db/role"), once they have settled. */
async function connections(): Promise<Record<string, number>> {
  await new Promise((r) => setTimeout(r, 400)); // idle timeouts fire, closed backends exit
  const rows = (
    await withPg('postgres', (c) =>
      c.query('SELECT datname, usename, count(*)::int AS n FROM pg_catalog.pg_stat_activity WHERE application_name = $1 GROUP BY 1, 2', [APP]),
    )
  ).rows;
  return Object.fromEntries(rows.map((r) => [`${r.datname}/${r.usename}`, r.n]));
}

/** `n` connections of the pool checked out at once, then given back. */
async function use(pool: pg.Pool, n: number): Promise<void> {
  const clients = await Promise.all(Array.from({ length: n }, () => pool.connect()));
  await Promise.all(clients.map((c) => c.query('SELECT 1')));
  clients.forEach((c) => c.release());
}

describe('step pools', () => {
  it('a pool of the home database keeps its last connection past the idle timeout; one of another database keeps none', async () => {
    await use(pools.get(roles[0], home), 3);
    await use(pools.get(roles[0], other), 2);
    expect(await connections()).toEqual({ [`${home}/${roles[0]}`]: 1 });
  });

  it('the kept connection serves the next step, and closes once the pool has been unused for KEEP_WARM_MS', async () => {
    const pid = async () => {
      const c = await pools.get(roles[0], home).connect();
      try {
        return (await c.query('SELECT pg_catalog.pg_backend_pid() AS p')).rows[0].p as number;
      } finally {
        c.release();
      }
    };
    const first = await pid();
    await new Promise((r) => setTimeout(r, 300));
    expect(await pid()).toBe(first); // the same backend: nothing to warm up again
    clock += KEEP_WARM_MS - 1;
    pools.sweep();
    expect(await connections()).toEqual({ [`${home}/${roles[0]}`]: 1 });
    clock += 1;
    pools.sweep();
    expect(await connections()).toEqual({});
  });

  it('at most `keep` home pools keep a connection: the least recently used idle one ends, a busy one never', async () => {
    const held = await pools.get(roles[0], home).connect(); // ann's pool: the oldest, and busy
    await use(pools.get(roles[1], home), 1);
    await use(pools.get(roles[2], home), 1); // three home pools, two kept: ben's is the oldest idle one
    expect(await connections()).toEqual({ [`${home}/${roles[0]}`]: 1, [`${home}/${roles[2]}`]: 1 });
    held.release();
    expect(await connections()).toEqual({ [`${home}/${roles[0]}`]: 1, [`${home}/${roles[2]}`]: 1 });
    await use(pools.get(roles[1], home), 1); // ben again: ann's is the oldest now
    expect(await connections()).toEqual({ [`${home}/${roles[1]}`]: 1, [`${home}/${roles[2]}`]: 1 });
  });
});
