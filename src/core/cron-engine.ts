/**
 * The cron engine: cron-parser with luxon, pinned to be Intl-free. It is most of the plv8 bundle's
 * weight (about 165 of 218 KB), so the plv8 build ships it as a separate chunk that loads only when
 * a schedule is built or validated (build/bundle.ts swaps this module for src/extension/cron-lazy.ts);
 * Node code imports it directly. Raw operations only: src/core/cron.ts owns the rules and the errors.
 */
import { CronExpressionParser } from 'cron-parser';
import { Settings } from 'luxon';

// plv8 builds V8 without ICU unless USE_ICU=1, so `Intl` may not exist. luxon (cron-parser's date
// library) touches Intl only to discover the system locale and zone; pinning both keeps every
// cron computation Intl-free. The plv8 host removes Intl from its context to hold us to this.
Settings.defaultLocale = 'en-US';
Settings.defaultZone = 'utc';

/** Parses a normalized five-field expression; throws cron-parser's error when it is invalid. */
export function parseCron(normalized: string): void {
  CronExpressionParser.parse(normalized, { tz: 'UTC', currentDate: new Date(0) });
}

/**
 * The next instant after `after` (ms since the epoch), or NaN when there is none. Throws
 * cron-parser's error when the expression is invalid (`invalid: true` on the thrown object).
 */
export function nextAfter(normalized: string, after: number): number {
  let interval;
  try {
    interval = CronExpressionParser.parse(normalized, { tz: 'UTC', currentDate: new Date(after) });
  } catch (e) {
    throw Object.assign(e instanceof Error ? e : new Error(String(e)), { invalid: true });
  }
  try {
    return interval.next().toDate().getTime();
  } catch {
    return NaN;
  }
}
