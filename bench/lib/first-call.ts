/**
 * "First call in a new session": what a psql user, a short-lived connection, a serverless client
 * or a pg_regress file pays before the first df.* call answers. Each sample is a new connection
 * as the tenant; we time its first and second statement. Side by side:
 *  - the floor: a new session's first INSERT ... RETURNING into a plain table (PostgreSQL's own
 *    cold-cache cost of a first write);
 *  - plv8 alone (plv8 flavor): the first call of a one-line plv8 function (the language's own
 *    start-up, before any of our code);
 *  - ours: the first df.start, in a fresh session and right after plv8 has started.
 */
import pg from 'pg';
import { dist, type Dist } from './util';

export interface FirstCall {
  first: Dist;
  second: Dist;
  /** Per session: first minus second. */
  extra: Dist;
}

export interface FirstCallResult {
  sessions: number;
  floor: FirstCall;
  plv8: FirstCall | null;
  ours: FirstCall;
  /** df.start's first call after plv8 has started in the session (ours alone). */
  oursAfterPlv8: FirstCall | null;
  /** The first df.* call that loads the bundle and touches no table (df.version()), after plv8 started. */
  bundleLoad: Dist | null;
}

async function sample(url: string, sessions: number, prelude: string[], statement: string): Promise<FirstCall> {
  const first: number[] = [];
  const second: number[] = [];
  for (let i = 0; i < sessions; i++) {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query('SELECT 1'); // the connection itself is not what we measure
      for (const p of prelude) await c.query(p);
      let t = performance.now();
      await c.query(statement);
      first.push(performance.now() - t);
      t = performance.now();
      await c.query(statement);
      second.push(performance.now() - t);
    } finally {
      await c.end();
    }
  }
  return { first: dist(first), second: dist(second), extra: dist(first.map((x, i) => x - second[i])) };
}

async function timeAfter(url: string, sessions: number, prelude: string[], statement: string): Promise<Dist> {
  const out: number[] = [];
  for (let i = 0; i < sessions; i++) {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query('SELECT 1');
      for (const p of prelude) await c.query(p);
      const t = performance.now();
      await c.query(statement);
      out.push(performance.now() - t);
    } finally {
      await c.end();
    }
  }
  return dist(out);
}

/**
 * `adminUrl` creates the probe objects; `tenantUrl` (a role with df usage, in a database with
 * pg_durable) runs the samples. Started instances stay pending: no worker runs here.
 */
export async function firstCall(adminUrl: string, tenantUrl: string, tenant: string, plv8: boolean, sessions: number): Promise<FirstCallResult> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query('CREATE TABLE IF NOT EXISTS public.first_call_floor (id bigserial PRIMARY KEY, v text)');
    await admin.query(`GRANT ALL ON public.first_call_floor, public.first_call_floor_id_seq TO ${pg.escapeIdentifier(tenant)}`);
    if (plv8) await admin.query("CREATE OR REPLACE FUNCTION public.first_call_plv8() RETURNS int LANGUAGE plv8 AS 'return 1'");
  } finally {
    await admin.end();
  }
  const start = "SELECT df.start('SELECT 1')";
  const trivial = 'SELECT public.first_call_plv8()';
  return {
    sessions,
    floor: await sample(tenantUrl, sessions, [], "INSERT INTO public.first_call_floor (v) VALUES ('x') RETURNING id"),
    plv8: plv8 ? await sample(tenantUrl, sessions, [], trivial) : null,
    ours: await sample(tenantUrl, sessions, [], start),
    oursAfterPlv8: plv8 ? await sample(tenantUrl, sessions, [trivial], start) : null,
    bundleLoad: plv8 ? await timeAfter(tenantUrl, sessions, [trivial], 'SELECT df.version()') : null,
  };
}

const ms = (d: Dist | undefined | null) => (d && d.n > 0 ? d.median.toFixed(1) : '–');

/** The section printed after the main table (medians, ms). */
export function firstCallMarkdown(r: FirstCallResult, flavor: string): string {
  const row = (what: string, x: FirstCall | null) => (x ? `| ${what} | ${ms(x.first)} | ${ms(x.second)} | ${ms(x.extra)} |` : `| ${what} | – | – | – |`);
  return [
    `First call in a new session (${r.sessions} new sessions each, medians in ms; ${flavor}):`,
    '',
    '| statement | first | second | extra (first − second) |',
    '|---|---|---|---|',
    row('floor: INSERT ... RETURNING into a plain table', r.floor),
    row('plv8 alone: a one-line plv8 function', r.plv8),
    row('ours: df.start(\'SELECT 1\')', r.ours),
    row('ours after plv8 started: df.start(\'SELECT 1\')', r.oursAfterPlv8),
    `| bundle load alone, after plv8 started: df.version() | ${ms(r.bundleLoad)} | | |`,
  ].join('\n');
}
