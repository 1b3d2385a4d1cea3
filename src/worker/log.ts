/** Structured logs: one JSON line per instance transition at info, per step at debug. */
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { service: 'pg_durable', ...base }, timestamp: pino.stdTimeFunctions.isoTime });
}
