
/**
 * Transient faults (our deviation 6): connection loss, admin shutdown, too many connections,
 * serialization failure and deadlock are retried with capped exponential backoff; anything else
 * is a real error.
 */
import { metrics } from './metrics';

const TRANSIENT_SQLSTATES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up / shutting down)
  '53300', // too_many_connections
  '08000', '08003', '08006', '08001', '08004', // connection exceptions
]);

const TRANSIENT_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOENT', 'ETIMEDOUT', 'EHOSTUNREACH']);

export function isTransient(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { code?: string; message?: string };
  if (e.code && (TRANSIENT_SQLSTATES.has(e.code) || TRANSIENT_ERRNOS.has(e.code))) return true;
  const m = e.message ?? '';
  return /Connection terminated|connection is closed|Client has encountered a connection error|terminating connection|the database system is (starting up|shutting down|in recovery)/i.test(m);
}

/**
 * Whether a connection is still usable after `err` ended its query: an ERROR reported by the
 * server ends the statement (and in autocommit its transaction), not the session. Anything else
 * (FATAL or PANIC, a lost socket, a client-side timeout with the query perhaps still running)
 * means the connection must go.
 */
export function sessionSurvives(err: unknown): boolean {
  const e = err as { severity?: unknown; code?: unknown } | null;
  return !!e && e.severity === 'ERROR' && typeof e.code === 'string' && !isTransient(err);
}

/** Backoff for attempt n (0-based): 100 ms doubling, capped at 5 s, with ±20% jitter. */
export function backoffMs(attempt: number): number {
  const base = Math.min(5000, 100 * 2 ** attempt);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Runs fn, retrying transient failures. `attempts` bounds the retries (about 2.5 minutes at the
 * default, enough to ride out a PostgreSQL restart); `stop` ends retrying early (shutdown, cancel).
 */
export async function withRetry<T>(fn: () => Promise<T>, opts: { attempts?: number; stop?: () => boolean; onRetry?: (err: unknown, attempt: number) => void } = {}): Promise<T> {
  const attempts = opts.attempts ?? 40;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err) || attempt + 1 >= attempts || opts.stop?.()) throw err;
      metrics.transientFault(err); // metrics
      opts.onRetry?.(err, attempt);
      await sleep(backoffMs(attempt));
    }
  }
}

/**
 * What a PostgreSQL error says is missing from the worker's database: the database itself
 * (3D000, e.g. dropped or not created yet) or pg_durable (its schema, a table, a function or a
 * type: 3F000, 42P01, 42883, 42704 — `DROP EXTENSION pg_durable` under a running worker). Null for
 * anything else. A hint only: the worker confirms with an explicit probe (Store.probe) before it
 * acts on it.
 */
export function missingSetup(err: unknown): 'database' | 'extension' | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === '3D000') return 'database';
  if (code === '3F000' || code === '42P01' || code === '42883' || code === '42704') return 'extension';
  return null;
}
