/**
 * Session facts the df.* functions depend on: whether we run inside a workflow step, and the
 * "non-future helper" marker (API §5.3) that catches df.setvar(...) used as a workflow step.
 */
import { DfError } from '../core/errors';
import { one, query, queryKept } from './db';

export function inWorkflow(): boolean {
  const [row] = queryKept<{ v: string | null }>("SELECT pg_catalog.current_setting('df.in_workflow', true) AS v", []);
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
  const [row] = queryKept<{ v: string | null; ts: string }>(
    "SELECT pg_catalog.current_setting('df.non_future_helper', true) AS v, pg_catalog.statement_timestamp()::text AS ts",
    [],
  );
  if (!row || !row.v) return null;
  const nl = row.v.indexOf('\n');
  if (nl < 0 || row.v.slice(nl + 1) !== row.ts) return null;
  return row.v.slice(0, nl);
}

const norm = (v: string | null | undefined): string | null => {
  const t = (v ?? '').trim().toLowerCase();
  return t === '' ? null : t;
};

/**
 * A pg_durable.* setting that bounds or widens what a role may do, as it counts (API deviation
 * 15): in a superuser's session, its current value (a superuser's SET included); in anyone
 * else's, the administrator's value (df._admin_setting: role and database defaults, the
 * configuration files). A non-superuser's session SET that differs from it is refused with
 * 42501, as the original refuses setting these SUSET parameters. NULL: not set (the default).
 */
export function adminSetting(name: string): string | null {
  // df._admin_setting reads the configuration files: only asked when a non-superuser's session
  // has a value (unset, nothing can widen the default).
  const row = one<{ cur: string | null; admin: string | null; su: boolean | null; who: string }>(
    `SELECT cur, su, who, CASE WHEN su OR COALESCE(cur, '') OPERATOR(pg_catalog.=) '' THEN NULL ELSE df._admin_setting($1::text) END AS admin
       FROM (SELECT pg_catalog.current_setting($1::text, true) AS cur, SESSION_USER::pg_catalog.text AS who,
                    (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) SESSION_USER) AS su) s`,
    [name],
  );
  if (!row) return null;
  if (row.su) return norm(row.cur);
  if (norm(row.cur) === null || norm(row.cur) === norm(row.admin)) return norm(row.admin);
  throw new DfError(
    `pg_durable: ${name} can only be set by a superuser; the value '${row.cur}' set in this session by role "${row.who}" does not count. ` +
      `RESET ${name}, or ask an administrator to set it with ALTER DATABASE ... SET, ALTER ROLE ... SET or postgresql.conf.`,
    '42501',
  );
}

export function settingIsOn(name: string): boolean {
  const v = adminSetting(name);
  return v === 'on' || v === 'true' || v === 'yes' || v === '1';
}

export function requireNonNull<T>(fn: string, param: string, value: T | null | undefined): T {
  if (value === null || value === undefined) throw new DfError(`${fn}: ${param} cannot be NULL`);
  return value;
}
