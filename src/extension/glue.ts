/**
 * How SQL reaches the bundle. The generated plv8 prologue of every df.* function calls
 * `globalThis.__pg_durable.call(entry, args)`; this module installs that object once per plv8
 * context (the loader function evaluates the bundle, the build hash tells a stale context apart).
 *
 * Errors never leave the bundle by unwinding: plv8 prints the source line of the *throw site* as
 * the error's CONTEXT, and a throw inside the bundle would print `_pgd_load() LINE 1: <a
 * minified line of several kilobytes>`. `call` catches every error and returns FAILED; the
 * prologue then throws `error()` from its own short last line, so users read one context line
 * that names the df function (build/sql-gen.ts, docs/ARCHITECTURE.md).
 */
import { isDfError } from '../core/errors';
import { ENTRIES } from './entries';

declare const __BUILD_HASH__: string;

/** PostgreSQL's MAKE_SQLSTATE: five 6-bit characters packed into an int, as plv8 reads `code`. */
export function packSqlState(sqlstate: string): number {
  let code = 0;
  for (let i = 0; i < 5; i++) code += ((sqlstate.charCodeAt(i) - 48) & 0x3f) << (6 * i);
  return code;
}

type Plv8Error = Error & { code?: number; detail?: string; hint?: string };

/**
 * The error plv8 raises: its message (plv8 trims one leading "Error: "), `code` (packed SQLSTATE),
 * `detail` and `hint`. A fresh Error on purpose: an SQL error from plv8.execute carries `context`
 * (our internal statement), which plv8 would print before the context line.
 */
export function toPlv8Error(err: unknown): Plv8Error {
  if (isDfError(err)) {
    const out: Plv8Error = new Error(err.message);
    out.code = packSqlState(err.sqlstate);
    return out;
  }
  const src = (err !== null && typeof err === 'object' ? err : {}) as Plv8Error;
  const text = err instanceof Error && err.name === 'Error' ? err.message : String(err);
  const out: Plv8Error = new Error(text);
  if (typeof src.code === 'number') out.code = src.code;
  if (src.detail !== undefined && src.detail !== null) out.detail = src.detail;
  if (src.hint !== undefined && src.hint !== null) out.hint = src.hint;
  return out;
}

const FAILED: unknown = Object.freeze({ failed: true });
let failure: Plv8Error | null = null;

function call(entry: string, args: unknown[]): unknown {
  try {
    const fn = ENTRIES[entry];
    if (fn === undefined) throw new Error(`pg_durable: unknown entry point '${entry}' (extension and bundle out of sync; run ALTER EXTENSION pg_durable UPDATE)`);
    return fn(...args);
  } catch (err) {
    failure = toPlv8Error(err);
    return FAILED;
  }
}

/** The error of the last call that returned FAILED (cleared on read). */
function error(): Error {
  const out = failure ?? new Error('pg_durable: internal error (no failure recorded)');
  failure = null;
  return out;
}

(globalThis as unknown as { __pg_durable: unknown }).__pg_durable = { hash: __BUILD_HASH__, call, FAILED, error };
