/** df.setvar / getvar / unsetvar / clearvars (API §7): per-role variables captured by df.start. */
import { DfError } from '../core/errors';
import { MAX_NAME_BYTES, MAX_VALUE_BYTES, tooLarge } from '../core/limits';
import { exec, one } from './db';
import { forbidInWorkflow, markNonFutureHelper } from './session';

const OWNER = 'pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole';

function guarded(prefix: string, fn: () => void): string {
  try {
    fn();
  } catch (err) {
    throw new DfError(`${prefix}: ${(err as Error).message}`);
  }
  return 'OK';
}

/** Names are free text (API §7) but not empty, and short enough to be a key. */
function checkName(fn: string, name: string): void {
  if (name === '') throw new DfError(`${fn}: variable name cannot be empty`, '22023');
  const long = tooLarge(`${fn}: variable name`, name, MAX_NAME_BYTES);
  if (long) throw new DfError(long, '54000');
}

export function setvar(name: string, value: string): string {
  forbidInWorkflow('df.setvar() cannot be called inside a workflow - set variables before starting the workflow');
  markNonFutureHelper('df.setvar');
  checkName('df.setvar', name);
  const big = tooLarge('df.setvar: value', value, MAX_VALUE_BYTES);
  if (big) throw new DfError(big, '54000');
  return guarded('Failed to set variable', () =>
    exec(
      `INSERT INTO df.vars (name, value, owner) VALUES ($1::text, $2::text, ${OWNER})
       ON CONFLICT (owner, name) DO UPDATE SET value = EXCLUDED.value`,
      [name, value],
    ),
  );
}

export function getvar(name: string): string | null {
  const row = one<{ value: string | null }>(
    `SELECT value FROM df.vars WHERE owner OPERATOR(pg_catalog.=) ${OWNER} AND name OPERATOR(pg_catalog.=) $1::text`,
    [name],
  );
  return row ? row.value : null;
}

export function unsetvar(name: string): string {
  forbidInWorkflow('df.unsetvar() cannot be called inside a workflow - manage variables before starting the workflow');
  markNonFutureHelper('df.unsetvar');
  checkName('df.unsetvar', name);
  return guarded('Failed to unset variable', () =>
    exec(`DELETE FROM df.vars WHERE owner OPERATOR(pg_catalog.=) ${OWNER} AND name OPERATOR(pg_catalog.=) $1::text`, [name]),
  );
}

export function clearvars(): string {
  forbidInWorkflow('df.clearvars() cannot be called inside a workflow - manage variables before starting the workflow');
  markNonFutureHelper('df.clearvars');
  return guarded('Failed to clear variables', () => exec(`DELETE FROM df.vars WHERE owner OPERATOR(pg_catalog.=) ${OWNER}`));
}
