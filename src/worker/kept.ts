/**
 * Statements of the worker's own that a connection keeps parsed under a name: `pgd_` and a hash
 * of the text. The management pool names every query (src/worker/store.ts); a step connection
 * keeps the checkpoint and the session reset it sends at every step (src/worker/pipeline.ts), so
 * PostgreSQL parses and plans them once per connection, not at every step: 0.04–0.06 ms less
 * server CPU per step of a 10-step chain on real plv8 (0.51–0.53 → 0.47–0.48 ms, with the reset's
 * extra look at pg_prepared_statements; docs/PERFORMANCE.md).
 *
 * A step connection runs the submitter's SQL, which may DEALLOCATE (the session reset only drops
 * the statements a step PREPAREd, src/sql/55_session.sql). What a step connection has parsed is
 * known exactly: a name is recorded once its ParseComplete arrived, and a step whose statement is
 * a DEALLOCATE stops its pool from keeping statements (src/worker/steps.ts), as does a kept
 * statement found gone (a DEALLOCATE inside a function: that step rolls back and runs again).
 */
import { createHash } from 'node:crypto';

const names = new Map<string, string>();

/** The name a statement is kept under: the same text gets the same name on every connection. */
export function keptName(text: string): string {
  let name = names.get(text);
  if (name === undefined) {
    name = `pgd_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`;
    names.set(text, name);
  }
  return name;
}

/** A PostgreSQL error saying that one of our kept statements does not exist (any more). */
export function keptStatementGone(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return e?.code === '26000' && typeof e.message === 'string' && /"pgd_[0-9a-f]{16}"/.test(e.message);
}

const parsed = new WeakMap<object, Set<string>>();

/** The names parsed on a connection (pg's Connection object, which lives as long as its socket). */
export function keptOn(connection: object): Set<string> {
  let set = parsed.get(connection);
  if (!set) parsed.set(connection, (set = new Set()));
  return set;
}
