/**
 * Cron for WAIT_SCHEDULE (our deviation 4): standard five-field cron
 * `minute hour day-of-month month day-of-week`, evaluated in UTC with cron-parser.
 * Day-of-week is 0-7 (0 and 7 = Sunday), month and day names are allowed; `0 9 * * 1-5` means
 * weekdays at 09:00 UTC. When both day-of-month and day-of-week are restricted, either may match
 * (Vixie cron semantics, as cron-parser implements them).
 *
 * Beyond what cron-parser rejects, we reject:
 * - anything that is not exactly five whitespace-separated fields (cron-parser also takes a
 *   leading seconds field, `@daily`-style macros and an empty expression);
 * - cron-parser's `H` (hash/jitter) extension: unseeded it picks a new random value on every
 *   parse, so the schedule validated at build time would not be the one that runs.
 * cron-parser's other extensions (`L`, `#`, `?`) are deterministic and are accepted.
 */
import { DfError } from './errors';
import { nextAfter, parseCron } from './cron-engine';

const FIELD_NAMES = 'minute hour day-of-month month day-of-week';

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function invalid(expr: string, reason: string): DfError {
  return new DfError(`Invalid cron expression '${expr}': ${reason}`);
}

function checkedFields(expr: string): string {
  const trimmed = expr.trim();
  const fields = trimmed === '' ? [] : trimmed.split(/\s+/);
  if (fields.length !== 5) {
    throw invalid(expr, `expected 5 fields (${FIELD_NAMES}), got ${fields.length}`);
  }
  for (const field of fields) {
    if (/(^|,)H/.test(field)) throw invalid(expr, `the H (hash) extension is not supported, got '${field}'`);
  }
  return fields.join(' ');
}

/** Throws `Invalid cron expression '<expr>': <reason>` unless `expr` is a valid five-field cron. */
export function validateCron(expr: string): void {
  const normalized = checkedFields(expr);
  try {
    parseCron(normalized);
  } catch (e) {
    throw invalid(expr, errorText(e));
  }
}

/** The next instant matching `expr` strictly after `after`, in UTC. */
export function nextTick(expr: string, after: Date): Date {
  const normalized = checkedFields(expr);
  let next: Date;
  try {
    next = new Date(nextAfter(normalized, after.getTime()));
  } catch (e) {
    if ((e as { invalid?: boolean }).invalid) throw invalid(expr, errorText(e));
    throw new DfError(`No upcoming schedule found for '${expr}'`);
  }
  if (Number.isNaN(next.getTime()) || next.getTime() <= after.getTime()) {
    throw new DfError(`No upcoming schedule found for '${expr}'`);
  }
  return next;
}
