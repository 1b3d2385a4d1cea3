/**
 * Typed access to SPI through plv8. Every statement in the bundle casts its parameters
 * ($1::text, $2::int4, ...): plv8 infers parameter types from context, the test host types them
 * from the JS values, and explicit casts make both resolve identically.
 */
import type {} from './plv8';

export type Row = Record<string, unknown>;

export function query<T extends Row = Row>(sql: string, params: unknown[] = []): T[] {
  const result = plv8.execute(sql, params);
  if (typeof result === 'number') throw new Error(`internal: expected rows from: ${sql}`);
  return result as T[];
}

export function one<T extends Row = Row>(sql: string, params: unknown[] = []): T | undefined {
  return query<T>(sql, params)[0];
}

export function exec(sql: string, params: unknown[] = []): number {
  const result = plv8.execute(sql, params);
  return typeof result === 'number' ? result : result.length;
}

export function notice(message: string): void {
  plv8.elog(NOTICE, message);
}

export function warning(message: string): void {
  plv8.elog(WARNING, message);
}
