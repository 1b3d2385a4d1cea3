/**
 * How SQL reaches the bundle. The generated plv8 prologue of every df.* function calls
 * `globalThis.__pg_durable.call(entry, args)`; this module installs that object once per plv8
 * context (the loader function evaluates the bundle, the build hash tells a stale context apart).
 */
import { DfError } from '../core/errors';
import { ENTRIES } from './entries';

declare const __BUILD_HASH__: string;

/** PostgreSQL's MAKE_SQLSTATE: five 6-bit characters packed into an int, as plv8 reads `code`. */
export function packSqlState(sqlstate: string): number {
  let code = 0;
  for (let i = 0; i < 5; i++) code += ((sqlstate.charCodeAt(i) - 48) & 0x3f) << (6 * i);
  return code;
}

/** plv8 raises an uncaught Error as ERROR with its message (a leading "Error: " trimmed) and `code`. */
function toPlv8Error(err: DfError): Error {
  const out = new Error(err.message) as Error & { code: number };
  out.code = packSqlState(err.sqlstate);
  return out;
}

function call(entry: string, args: unknown[]): unknown {
  const fn = ENTRIES[entry];
  if (fn === undefined) throw new Error(`pg_durable: unknown entry point '${entry}' (extension and bundle out of sync; run ALTER EXTENSION pg_durable UPDATE)`);
  try {
    return fn(...args);
  } catch (err) {
    if (err instanceof DfError) throw toPlv8Error(err);
    throw err;
  }
}

(globalThis as unknown as { __pg_durable: unknown }).__pg_durable = { hash: __BUILD_HASH__, call };
