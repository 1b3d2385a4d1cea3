/**
 * Size limits on what a tenant can hand pg_durable (docs/SECURITY.md). The SQL side backs the
 * text limits with CHECK constraints (src/sql/50_security.sql) so direct table writes obey them
 * too; the df.* functions check first to give a clear message. The worker's step-result limit is
 * configuration (--max-result-bytes), defaulting to DEFAULT_MAX_RESULT_BYTES.
 */

/** df.start: the whole workflow definition (Durofut JSON or SQL text) as passed in. */
export const MAX_DEFINITION_BYTES = 8 * 1024 * 1024;
/** df.start label (also a btree key: df.instances' label index). */
export const MAX_LABEL_BYTES = 1024;
/** df.setvar name and df.signal signal_name (btree keys). */
export const MAX_NAME_BYTES = 1024;
/** df.setvar value and a df.signal payload (after normalisation to JSON). */
export const MAX_VALUE_BYTES = 1024 * 1024;
/** Variables captured by one df.start (enforced by the df.instances insert trigger). */
export const MAX_VARS_SNAPSHOT_BYTES = 4 * 1024 * 1024;
/** Default cap on one step result (SQL rows as JSON, an HTTP response body). */
export const DEFAULT_MAX_RESULT_BYTES = 16 * 1024 * 1024;

/** UTF-8 length of a JS string without allocating a Buffer (plv8 has none). */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** `<what> is too large (<n> bytes; the limit is <max> bytes)`, or null when within the limit. */
export function tooLarge(what: string, value: string, max: number): string | null {
  // Cheap rejection first: every UTF-16 unit is at least one UTF-8 byte, at most three.
  if (value.length <= max / 3) return null;
  const n = utf8Bytes(value);
  return n > max ? `${what} is too large (${n} bytes; the limit is ${max} bytes)` : null;
}
