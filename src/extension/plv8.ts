/**
 * The part of plv8's API (3.x, docs/BUILTINS.md) that the bundle uses. There is no @types/plv8, so
 * this module is its typed declaration; everything else reaches the database through db.ts.
 * The same surface is implemented by the test host (src/host), so keep it minimal.
 */

export interface Plv8 {
  /** Rows for SELECT / RETURNING / utility statements with tuples; the affected count otherwise. */
  execute(sql: string, params?: unknown[]): Record<string, unknown>[] | number;
  /** Levels are the globals below. ERROR throws a catchable JS Error carrying the message. */
  elog(level: number, ...message: unknown[]): void;
  quote_ident(value: string): string;
  quote_literal(value: string): string;
  quote_nullable(value: string | null): string;
  /** Runs fn in a subtransaction: any exception rolls back everything fn did, then propagates. */
  subtransaction<T>(fn: () => T): T;
  find_function(name: string): (...args: unknown[]) => unknown;
  /** A plan kept for the session (SPI_saveplan), for the parameter types given. */
  prepare(sql: string, types: string[]): Plv8Plan;
}

export interface Plv8Plan {
  /** As Plv8.execute, with the plan's parameter types. */
  execute(params?: unknown[]): Record<string, unknown>[] | number;
}

declare global {
  // eslint-disable-next-line no-var
  var plv8: Plv8;
  const DEBUG1: number;
  const LOG: number;
  const INFO: number;
  const NOTICE: number;
  const WARNING: number;
  const ERROR: number;
}
