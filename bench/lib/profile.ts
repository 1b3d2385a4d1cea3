/**
 * Where the time goes: a V8 .cpuprofile of the worker summarised by self time, and the
 * statements the worker sent (pg_stat_statements) per step and per instance.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface CpuSummary {
  file: string;
  wallMs: number;
  /** Self time by bucket (idle, gc, program, node internals, pg driver, pino, worker code, ...), ms. */
  buckets: { bucket: string; ms: number; pct: number }[];
  /** Heaviest functions by self time (idle excluded). */
  top: { fn: string; where: string; ms: number; pct: number }[];
}

function bucketOf(url: string, fn: string): string {
  if (fn === '(idle)') return 'idle (waiting: Postgres, timers)';
  if (fn === '(garbage collector)') return 'garbage collector';
  if (fn === '(program)') return 'V8/native (program)';
  if (fn === '(root)') return 'V8/native (program)';
  if (url.includes('/node_modules/pg-protocol/')) return 'pg-protocol (wire parsing/serialising)';
  if (url.includes('/node_modules/pg/') || url.includes('/node_modules/pg-pool/') || url.includes('/node_modules/pg-types/')) return 'pg driver (client/pool/types)';
  if (url.includes('/node_modules/pino') || url.includes('/node_modules/sonic-boom')) return 'pino logging';
  if (url.includes('/node_modules/')) return 'other packages';
  if (url.endsWith('dist/cli.js')) return 'worker code (dist/cli.js)';
  if (url.startsWith('node:') || url === '') return 'Node internals (net, streams, timers, promises)';
  return 'other';
}

/**
 * `fromUs`: only the samples taken from this moment on, in microseconds of the monotonic clock
 * (`process.hrtime.bigint() / 1000n` in any process of this machine: V8's profile timestamps
 * count on the same clock), so a profile can leave out its process's warm-up.
 */
export function summariseCpuProfile(dir: string, fromUs = 0): CpuSummary | null {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) return null;
  const file = join(dir, files.sort()[files.length - 1]);
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let at = prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    at += prof.timeDeltas[i] ?? 0;
    if (at >= fromUs) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (prof.timeDeltas[i] ?? 0) / 1000);
  }
  const wallMs = (prof.endTime - Math.max(prof.startTime, fromUs)) / 1000;
  const buckets = new Map<string, number>();
  const fns = new Map<string, { fn: string; where: string; ms: number }>();
  for (const [id, ms] of self) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    const b = bucketOf(url, functionName);
    buckets.set(b, (buckets.get(b) ?? 0) + ms);
    if (functionName === '(idle)') continue;
    const where = url ? `${url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')}:${lineNumber + 1}` : '';
    const k = `${functionName}@${where}`;
    const e = fns.get(k) ?? { fn: functionName || '(anonymous)', where, ms: 0 };
    e.ms += ms;
    fns.set(k, e);
  }
  const total = [...buckets.values()].reduce((a, b) => a + b, 0) || 1;
  return {
    file,
    wallMs,
    buckets: [...buckets].map(([bucket, ms]) => ({ bucket, ms, pct: (100 * ms) / total })).sort((a, b) => b.ms - a.ms),
    top: [...fns.values()].sort((a, b) => b.ms - a.ms).slice(0, 15).map((e) => ({ ...e, pct: (100 * e.ms) / total })),
  };
}

export interface StatementRow {
  query: string;
  /** The role that ran it (inside a SECURITY DEFINER function: the function's owner). */
  role: string;
  /** false: run inside a function (df._commit's statements), with pg_stat_statements.track = all. */
  toplevel: boolean;
  calls: number;
  /** Times the statement was planned (pg_stat_statements.track_planning). */
  plans: number;
  planMs: number;
  perStep: number;
  perInstance: number;
  meanMs: number;
  totalMs: number;
}

export interface ServerCounters {
  xactCommit: number;
  walRecords: number;
  walBytes: number;
  walSync: number;
}

export async function serverCounters(admin: pg.Client, db: string): Promise<ServerCounters> {
  const d = await admin.query('SELECT xact_commit::float8 AS c FROM pg_stat_database WHERE datname = $1', [db]);
  const w = await admin.query('SELECT wal_records::float8 AS r, wal_bytes::float8 AS b, wal_sync::float8 AS s FROM pg_stat_wal');
  return { xactCommit: Number(d.rows[0]?.c ?? 0), walRecords: Number(w.rows[0].r), walBytes: Number(w.rows[0].b), walSync: Number(w.rows[0].s) };
}

/** Statements executed in `db` since the last reset, with per-step and per-instance counts. */
export async function statements(admin: pg.Client, db: string, steps: number, instances: number): Promise<StatementRow[]> {
  const r = await admin.query(
    `SELECT regexp_replace(query, '\\s+', ' ', 'g') AS query, userid::regrole::text AS role, toplevel, sum(calls)::float8 AS calls, sum(plans)::float8 AS plans,
            sum(total_plan_time) AS plan, sum(total_exec_time) AS total, sum(total_exec_time) / greatest(sum(calls), 1) AS mean
       FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)
      GROUP BY 1, 2, 3 ORDER BY toplevel DESC, sum(total_exec_time) DESC`,
    [db],
  );
  return r.rows
    .filter((row) => !/pg_stat_statements|FROM df\._work\) AS d/.test(row.query))
    .map((row) => ({
      query: row.query.length > 110 ? `${row.query.slice(0, 107)}...` : row.query,
      role: row.role,
      toplevel: row.toplevel !== false,
      calls: Number(row.calls),
      plans: Number(row.plans),
      planMs: Number(row.plan),
      perStep: Number(row.calls) / steps,
      perInstance: Number(row.calls) / instances,
      meanMs: Number(row.mean),
      totalMs: Number(row.total),
    }));
}
