/**
 * Session facts the df.* functions depend on: whether we run inside a workflow step, and the
 * "non-future helper" marker (API §5.3) that catches df.setvar(...) used as a workflow step.
 */
import { DfError } from '../core/errors';
import { one, query } from './db';

export function inWorkflow(): boolean {
  const row = one<{ v: string | null }>("SELECT pg_catalog.current_setting('df.in_workflow', true) AS v");
  return row?.v === 'true';
}

export function forbidInWorkflow(message: string): void {
  if (inWorkflow()) throw new DfError(message);
}

/** Records that `name` (e.g. 'df.setvar') ran in the current statement. */
export function markNonFutureHelper(name: string): void {
  query(
    "SELECT pg_catalog.set_config('df.non_future_helper', $1::text OPERATOR(pg_catalog.||) E'\\n' OPERATOR(pg_catalog.||) pg_catalog.statement_timestamp()::text, true) AS v",
    [name],
  );
}

/**
 * The helper that ran earlier in this statement, if any. Only consulted when a step argument is
 * not JSON, so the common DSL path (nested builders) costs no query.
 */
export function nonFutureHelperFor(stepArgs: (string | null)[]): string | null {
  const needsCheck = stepArgs.some((a) => a !== null && !a.trimStart().startsWith('{'));
  if (!needsCheck) return null;
  const row = one<{ v: string | null; ts: string }>(
    "SELECT pg_catalog.current_setting('df.non_future_helper', true) AS v, pg_catalog.statement_timestamp()::text AS ts",
  );
  if (!row || !row.v) return null;
  const nl = row.v.indexOf('\n');
  if (nl < 0 || row.v.slice(nl + 1) !== row.ts) return null;
  return row.v.slice(0, nl);
}

export function settingIsOn(name: string): boolean {
  const row = one<{ v: string | null }>('SELECT pg_catalog.current_setting($1::text, true) AS v', [name]);
  const v = (row?.v ?? '').trim().toLowerCase();
  return v === 'on' || v === 'true' || v === 'yes' || v === '1';
}

export function requireNonNull<T>(fn: string, param: string, value: T | null | undefined): T {
  if (value === null || value === undefined) throw new DfError(`${fn}: ${param} cannot be NULL`);
  return value;
}
