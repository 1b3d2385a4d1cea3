/**
 * The compact text PostgreSQL gives for a JSON text stored as jsonb and rendered back by
 * df._json_compact (src/sql/00_schema.sql): keys in jsonb's order (shorter first, then by their
 * UTF-8 bytes), no spaces, strings escaped as PostgreSQL escapes them, numbers as numeric prints
 * them. A completed execution whose output is this text of its root node's result needs no row of
 * its own (df._execution_log derives it; docs/PERFORMANCE.md, "Executions kept by instance rows").
 */
import { utf8Bytes } from './limits';
import { stringifyJson, tryParseJson, type JsonValue } from './substitute';

/**
 * `jsonbCompactText(text)`, or null where the text is not JSON or the rendering cannot be
 * predicted exactly: a number in exponent form or a negative zero (numeric prints them otherwise).
 */
export function jsonbCompactText(text: string): string | null {
  const v = tryParseJson(text);
  const stored = v === undefined ? null : asJsonb(v);
  return stored === null ? null : stringifyJson(stored);
}

/** A plain decimal that numeric prints digit for digit (its scale is kept: 1.50 stays 1.50). */
const DECIMAL = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/;
const NEGATIVE_ZERO = /^-0(\.0+)?$/;

/**
 * The value as jsonb keeps it, keys in jsonb's order, for stringifyJson (whose strings are
 * JSON.stringify's: it escapes what PostgreSQL's escape_json does, \" \\ \b \f \n \r \t and other
 * characters below U+0020 as \u00xx in lower case); null for a number numeric would print otherwise.
 */
function asJsonb(v: JsonValue): JsonValue | null {
  switch (v.t) {
    case 'num':
      return DECIMAL.test(v.text) && !NEGATIVE_ZERO.test(v.text) ? v : null;
    case 'arr': {
      const items: JsonValue[] = [];
      for (const item of v.items) {
        const s = asJsonb(item);
        if (s === null) return null;
        items.push(s);
      }
      return { t: 'arr', items };
    }
    case 'obj': {
      const keys = [...v.keys].sort(jsonbKeyOrder);
      const map = new Map<string, JsonValue>();
      for (const k of keys) {
        const s = asJsonb(v.map.get(k) as JsonValue);
        if (s === null) return null;
        map.set(k, s);
      }
      return { t: 'obj', keys, map };
    }
    default:
      return v;
  }
}

/** jsonb's key order: UTF-8 length first, then the bytes (the order of their code points). */
export function jsonbKeyOrder(a: string, b: string): number {
  const la = utf8Bytes(a);
  const lb = utf8Bytes(b);
  if (la !== lb) return la - lb;
  const ca = [...a];
  const cb = [...b];
  for (let i = 0; i < ca.length && i < cb.length; i++) {
    const d = (ca[i].codePointAt(0) as number) - (cb[i].codePointAt(0) as number);
    if (d !== 0) return d;
  }
  return ca.length - cb.length;
}
