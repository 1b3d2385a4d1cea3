/**
 * Typed access to SPI through plv8. Every statement in the bundle casts its parameters
 * ($1::text, $2::int4, ...): plv8 infers parameter types from context, the test host types them
 * from the JS values, and explicit casts make both resolve identically.
 */
import type { Plv8Plan } from './plv8';

export type Row = Record<string, unknown>;

export function query<T extends Row = Row>(sql: string, params: unknown[] = []): T[] {
  const result = plv8.execute(sql, params);
  if (typeof result === 'number') throw new Error(`internal: expected rows from: ${sql}`);
  return result as T[];
}

export function one<T extends Row = Row>(sql: string, params: unknown[] = []): T | undefined {
  return query<T>(sql, params)[0];
}

/**
 * plv8.execute plans its statement at every call. The few statements of every df.start keep a
 * plan for the session instead (planning was 0.11 ms of df.start's 0.67 ms of server time,
 * docs/PERFORMANCE.md); `types` are their parameters' types, as their casts say.
 */
const kept = new Map<string, Plv8Plan>();

function keptPlan(sql: string, types: string[]): Plv8Plan {
  let plan = kept.get(sql);
  if (plan === undefined) {
    plan = plv8.prepare(sql, types);
    kept.set(sql, plan);
  }
  return plan;
}

export function queryKept<T extends Row = Row>(sql: string, types: string[], params: unknown[] = []): T[] {
  const result = keptPlan(sql, types).execute(params);
  if (typeof result === 'number') throw new Error(`internal: expected rows from: ${sql}`);
  return result as T[];
}

export function execKept(sql: string, types: string[], params: unknown[] = []): number {
  const result = keptPlan(sql, types).execute(params);
  return typeof result === 'number' ? result : result.length;
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
