/**
 * Truthiness of IF / while-loop conditions and the `df.if_rows` test (API §8.4).
 */
import { DfError } from './errors';
import { type JsonValue, parseJsonOrdered, rowsOf, tryParseJson } from './substitute';

/**
 * What Rust's `str::parse::<f64>` accepts (the original's rule for numeric strings): decimal
 * with optional sign, fraction and exponent, plus inf/infinity/nan. Unlike `Number()`, no hex,
 * no empty string, no underscores.
 */
const FLOAT_TEXT = /^[+-]?(?:[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)$/i;

function stringIsTruthy(s: string): boolean {
  const trimmed = s.trim();
  if (trimmed === '') return false;
  const lower = trimmed.toLowerCase();
  if (lower === 'true' || lower === 't' || lower === 'yes') return true;
  if (lower === 'false' || lower === 'f' || lower === 'no') return false;
  if (FLOAT_TEXT.test(lower)) {
    const n = /^[+-]?nan$/.test(lower) ? NaN : Number(lower.replace(/inf(inity)?$/, 'Infinity'));
    return n !== 0; // NaN !== 0 → true, as in the original
  }
  return true;
}

/**
 * `is_truthy` on a plain JavaScript value as produced by `JSON.parse` (or a bare string):
 * boolean → itself; number → non-zero; string → trimmed empty false, true/t/yes true,
 * false/f/no false, numeric text non-zero, other text true; array/object → non-empty;
 * null/undefined → false.
 */
export function isTruthy(value: unknown): boolean {
  if (value === null || value === undefined) return false;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value !== 0; // NaN counts as true, like the text 'NaN'
  if (typeof value === 'string') return stringIsTruthy(value);
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value as object).length > 0;
  return true;
}

/** `is_truthy` on an order-preserving parsed JSON value. */
export function isTruthyJson(v: JsonValue): boolean {
  switch (v.t) {
    case 'null':
      return false;
    case 'bool':
      return v.v;
    case 'num':
      return Number(v.text) !== 0;
    case 'str':
      return stringIsTruthy(v.v);
    case 'arr':
      return v.items.length > 0;
    case 'obj':
      return v.keys.length > 0;
  }
}

/**
 * Whether a condition node's result text counts as true:
 * 1. JSON with a `rows` array: empty → false; else the first row's first column (falls through
 *    to 2 when the first row is not an object or has no columns);
 * 2. other JSON → the whole value;
 * 3. not JSON → the text as a string.
 */
export function conditionIsTrue(resultText: string): boolean {
  const json = tryParseJson(resultText);
  if (json === undefined) return stringIsTruthy(resultText);
  const rows = rowsOf(json);
  if (rows !== undefined) {
    if (rows.length === 0) return false;
    const first = rows[0];
    if (first.t === 'obj' && first.keys.length > 0) return isTruthyJson(first.map.get(first.keys[0]) as JsonValue);
  }
  return isTruthyJson(json);
}

/**
 * The `df.if_rows(name, …)` test: true iff the named result is a SQL result with
 * `row_count > 0`. The name is looked up among the named results (no step runs).
 */
export function ifRowsTest(resultName: string, results: Record<string, string>): boolean {
  if (!Object.prototype.hasOwnProperty.call(results, resultName)) {
    throw new DfError(`df.if_rows: result '${resultName}' not found`);
  }
  let json: JsonValue;
  try {
    json = parseJsonOrdered(results[resultName]);
  } catch (e) {
    throw new DfError(`df.if_rows: invalid result JSON: ${(e as Error).message}`);
  }
  const rc = json.t === 'obj' ? json.map.get('row_count') : undefined;
  // The original reads row_count as an unsigned integer: 1.0, -1 or "1" do not qualify.
  if (rc === undefined || rc.t !== 'num' || !/^[0-9]+$/.test(rc.text)) {
    throw new DfError(`df.if_rows: result '${resultName}' is not a SQL result (missing row_count)`);
  }
  return Number(rc.text) > 0;
}
