/**
 * The compact text PostgreSQL gives for a JSON text stored as jsonb and rendered back by
 * df._json_compact (src/sql/00_schema.sql): keys in jsonb's order (shorter first, then by their
 * UTF-8 bytes), no spaces, strings escaped as PostgreSQL escapes them, numbers as numeric prints
 * them. A completed execution whose output is this text of its root node's result needs no row of
 * its own (df._execution_log derives it; docs/PERFORMANCE.md, "Executions kept by instance rows").
 */
import { tryParseJson, type JsonValue } from './substitute';

/**
 * `jsonbCompactText(text)`, or null where the text is not JSON or the rendering cannot be
 * predicted exactly: a number in exponent form or a negative zero (numeric prints them otherwise).
 */
export function jsonbCompactText(text: string): string | null {
  const v = tryParseJson(text);
  return v === undefined ? null : render(v);
}

/** A plain decimal that numeric prints digit for digit (its scale is kept: 1.50 stays 1.50). */
const DECIMAL = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/;
const NEGATIVE_ZERO = /^-0(\.0+)?$/;

function render(v: JsonValue): string | null {
  switch (v.t) {
    case 'null':
      return 'null';
    case 'bool':
      return v.v ? 'true' : 'false';
    case 'num':
      return DECIMAL.test(v.text) && !NEGATIVE_ZERO.test(v.text) ? v.text : null;
    case 'str':
      // JSON.stringify escapes what PostgreSQL's escape_json does: \" \\ \b \f \n \r \t and other
      // characters below U+0020 as \u00xx (lower-case hex); everything else stays as it is.
      return JSON.stringify(v.v);
    case 'arr': {
      const items: string[] = [];
      for (const item of v.items) {
        const r = render(item);
        if (r === null) return null;
        items.push(r);
      }
      return '[' + items.join(',') + ']';
    }
    case 'obj': {
      const parts: string[] = [];
      for (const k of [...v.keys].sort(jsonbKeyOrder)) {
        const r = render(v.map.get(k) as JsonValue);
        if (r === null) return null;
        parts.push(JSON.stringify(k) + ':' + r);
      }
      return '{' + parts.join(',') + '}';
    }
  }
}

/** jsonb's key order: UTF-8 length first, then the bytes (the order of their code points). */
export function jsonbKeyOrder(a: string, b: string): number {
  const la = utf8Length(a);
  const lb = utf8Length(b);
  if (la !== lb) return la - lb;
  const ca = [...a];
  const cb = [...b];
  for (let i = 0; i < ca.length && i < cb.length; i++) {
    const d = (ca[i].codePointAt(0) as number) - (cb[i].codePointAt(0) as number);
    if (d !== 0) return d;
  }
  return ca.length - cb.length;
}

function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
}
