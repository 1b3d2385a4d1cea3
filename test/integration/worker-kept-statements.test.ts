/**
 * The worker keeps its checkpoint and session reset parsed on a step connection (src/worker/kept.ts)
 * while the session stays the step's own: a step's PREPAREd statements go at the reset, ours stay.
 * A step that deallocates ours — DEALLOCATE as its statement, or inside a function where no command
 * tag says so — still runs exactly once and its instance completes.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, scalar, url } from '../support/db';
import { type Flow, lit, setupFlow } from '../support/flows';
import { waitFor } from '../support/worker';

let f: Flow;

beforeAll(async () => {
  f = await setupFlow('kept');
});

afterAll(async () => {
  await f?.stop();
});

/** Another tenant of the same database: its own step connections (and pool) in the worker. */
async function tenant(base: string): Promise<{ name: string; run: (expr: string) => Promise<{ id: string; status: string }>; end: () => Promise<void> }> {
  const name = await createTenant(f.db, base);
  const c = new pg.Client({ connectionString: url(f.db, name) });
  await c.connect();
  return {
    name,
    async run(expr) {
      const id = await scalar<string>(c, `SELECT df.start(${expr})`);
      return { id, status: await waitFor(c, id) };
    },
    end: () => c.end(),
  };
}

/** Worker log lines about `id` whose message matches `what`. */
const logged = (id: string, what: RegExp) => f.worker.logs.filter((l) => l.instance === id && what.test(String(l.msg)));

/** A function that deallocates every prepared statement of the session, out of sight of any command tag. */
const DEALLOCATE_INSIDE = `CREATE FUNCTION public.deallocate_inside() RETURNS int LANGUAGE plpgsql AS $$
  BEGIN EXECUTE 'DEALLOCATE ALL'; RETURN 1; END $$`;

describe("the worker's own statements on a step connection", () => {
  it('stay parsed across the steps of a chain, while what a step PREPAREs is gone at the next', async () => {
    const probe = `SELECT string_agg(name, ',') FILTER (WHERE from_sql) AS own,
        max(generic_plans + custom_plans) FILTER (WHERE NOT from_sql AND statement LIKE '%df._commit(%') AS checkpoint_runs,
        count(*) FILTER (WHERE NOT from_sql AND statement LIKE '%df._reset_session()%') AS reset
      FROM pg_prepared_statements`;
    const { id, status } = await f.run(
      `${lit('PREPARE mine AS SELECT 1')} ~> ${lit('SELECT 2')} ~> ${lit('SELECT 3')} ~> ${lit('SELECT 4')} ~> ${lit(probe)}`,
    );
    expect(status).toBe('completed');
    const row = JSON.parse((await f.result(id))!).rows[0];
    // The chain's steps share one connection: the checkpoint parsed once ran for each earlier step.
    expect(row).toEqual({ own: null, checkpoint_runs: expect.any(Number), reset: 1 });
    expect(row.checkpoint_runs).toBeGreaterThanOrEqual(4);
  });

  it('a step whose function deallocates them rolls back once, runs again and completes: its effect is there once', async () => {
    for (const chained of [true, false]) {
      const t = await tenant(chained ? 'kept_chain' : 'kept_last');
      await f.admin.query(`CREATE TABLE IF NOT EXISTS public.once_t (who text)`);
      await f.admin.query(`GRANT INSERT, SELECT ON public.once_t TO ${pg.escapeIdentifier(t.name)}`);
      await f.admin.query(`CREATE OR REPLACE ${DEALLOCATE_INSIDE.slice('CREATE '.length)}`);
      // Warm: the tenant's connection has the checkpoint and the reset parsed.
      expect((await t.run(`${lit('SELECT 1')} ~> ${lit('SELECT 2')}`)).status).toBe('completed');
      const step = `WITH i AS (INSERT INTO public.once_t VALUES ('${t.name}') RETURNING 1) SELECT public.deallocate_inside() AS d, (SELECT count(*) FROM i) AS n`;
      const expr = chained ? `${lit(step)} ~> ${lit(`SELECT count(*) AS n FROM public.once_t WHERE who = '${t.name}'`)}` : lit(step);
      const { id, status } = await t.run(expr);
      expect(status).toBe('completed');
      expect(await scalar(f.admin, 'SELECT count(*)::int FROM public.once_t WHERE who = $1', [t.name])).toBe(1);
      if (chained) expect(JSON.parse(await scalar<string>(f.admin, 'SELECT df.result($1)::text', [id]))).toEqual({ rows: [{ n: 1 }], row_count: 1 });
      // It was the fallback that ran: the first attempt's checkpoint found our statement gone.
      const fallback = chained ? /checkpoint lost/ : /transient failure in SQL step/;
      expect(f.worker.logs.some((l) => fallback.test(String(l.msg)) && /"pgd_[0-9a-f]{16}" does not exist/.test(String(l.err)))).toBe(true);
      await t.end();
    }
  });

  it('a step that is DEALLOCATE ALL completes without running anything twice (its command tag says so)', async () => {
    await f.user.query('CREATE TABLE tag_t (x int)');
    expect((await f.run(`${lit('SELECT 1')} ~> ${lit('SELECT 2')}`)).status).toBe('completed');
    const { id, status } = await f.run(
      `${lit('INSERT INTO tag_t VALUES (1)')} ~> ${lit('DEALLOCATE ALL')} ~> ${lit('INSERT INTO tag_t VALUES (2)')} ~> ${lit("SELECT string_agg(x::text, ',' ORDER BY x) AS xs FROM tag_t")}`,
    );
    expect(status).toBe('completed');
    expect(JSON.parse((await f.result(id))!)).toEqual({ rows: [{ xs: '1,2' }], row_count: 1 });
    expect(logged(id, /checkpoint lost|transient failure/)).toEqual([]);
  });
});
