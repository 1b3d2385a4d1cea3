/**
 * Substitution of `{var}` placeholders and `$name` named-result references (API §8.1–§8.3).
 *
 * Substitution runs in the worker just before a node executes: SQL nodes in SQL mode (result
 * values become SQL literals), HTTP/HTTP_MULTIPART fields in raw mode (values inserted verbatim).
 *
 * Named results are raw JSON texts. They are parsed with the small order-preserving parser below
 * rather than `JSON.parse`, because "first column" means SELECT-list order and `JSON.parse` moves
 * integer-like keys (a column aliased `"2024"`) to the front; it also keeps each number's original
 * text, so `$n` inserts exactly the digits the result holds.
 */
import { DfError } from './errors';

// ---------------------------------------------------------------------------------------------
// Order-preserving JSON
// ---------------------------------------------------------------------------------------------

/** A parsed JSON value that keeps object key order and each number's source text. */
export type JsonValue =
  | { t: 'null' }
  | { t: 'bool'; v: boolean }
  | { t: 'num'; text: string }
  | { t: 'str'; v: string }
  | { t: 'arr'; items: JsonValue[] }
  | { t: 'obj'; keys: string[]; map: Map<string, JsonValue> };

export class JsonSyntaxError extends Error {}

/**
 * Strict RFC 8259 parser. Duplicate keys keep their first position and their last value (as an
 * insertion-ordered map would). Error messages follow serde_json's wording
 * (`expected value at line 1 column 1`), since they surface in user-visible error texts.
 */
export function parseJsonOrdered(text: string): JsonValue {
  const p = new JsonParser(text);
  p.ws();
  const v = p.value();
  p.ws();
  if (p.pos < text.length) p.fail('trailing characters');
  return v;
}

/** `parseJsonOrdered`, or undefined when the text is not JSON. */
export function tryParseJson(text: string): JsonValue | undefined {
  try {
    return parseJsonOrdered(text);
  } catch {
    return undefined;
  }
}

/** Compact JSON text (no spaces), keys in their original order, numbers as written. */
export function stringifyJson(v: JsonValue): string {
  switch (v.t) {
    case 'null':
      return 'null';
    case 'bool':
      return v.v ? 'true' : 'false';
    case 'num':
      return v.text;
    case 'str':
      return JSON.stringify(v.v);
    case 'arr':
      return '[' + v.items.map(stringifyJson).join(',') + ']';
    case 'obj':
      return '{' + v.keys.map((k) => JSON.stringify(k) + ':' + stringifyJson(v.map.get(k) as JsonValue)).join(',') + '}';
  }
}

/** The `rows` array of a SQL result object, if the value has one. */
export function rowsOf(v: JsonValue): JsonValue[] | undefined {
  if (v.t !== 'obj') return undefined;
  const rows = v.map.get('rows');
  return rows && rows.t === 'arr' ? rows.items : undefined;
}

class JsonParser {
  pos = 0;
  constructor(readonly text: string) {}

  fail(what: string, at: number = this.pos): never {
    // serde reports the line/column of the last character consumed (column 0 on an empty line).
    const upto = this.text.slice(0, Math.min(at + 1, this.text.length));
    const lines = upto.split('\n');
    throw new JsonSyntaxError(`${what} at line ${lines.length} column ${lines[lines.length - 1].length}`);
  }

  ws(): void {
    const s = this.text;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.pos++;
      else break;
    }
  }

  value(): JsonValue {
    const s = this.text;
    if (this.pos >= s.length) this.fail('EOF while parsing a value');
    const c = s[this.pos];
    switch (c) {
      case '{':
        return this.object();
      case '[':
        return this.array();
      case '"':
        return { t: 'str', v: this.string() };
      case 't':
        return this.literal('true', { t: 'bool', v: true });
      case 'f':
        return this.literal('false', { t: 'bool', v: false });
      case 'n':
        return this.literal('null', { t: 'null' });
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.number();
        return this.fail('expected value');
    }
  }

  literal(word: string, v: JsonValue): JsonValue {
    for (let i = 0; i < word.length; i++) {
      if (this.pos >= this.text.length) this.fail('EOF while parsing a value');
      if (this.text[this.pos] !== word[i]) this.fail('expected ident');
      this.pos++;
    }
    return v;
  }

  number(): JsonValue {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.text.slice(this.pos));
    if (!m || m[0] === '-') this.fail('invalid number', this.pos + (m ? m[0].length : 0));
    const text = m[0];
    const next = this.text[this.pos + text.length];
    if (next === '.' || next === 'e' || next === 'E') this.fail('invalid number', this.pos + text.length);
    if (!isFinite(Number(text))) this.fail('number out of range', this.pos + text.length - 1);
    this.pos += text.length;
    return { t: 'num', text };
  }

  string(): string {
    const s = this.text;
    this.pos++; // opening quote
    let out = '';
    let start = this.pos;
    for (;;) {
      if (this.pos >= s.length) this.fail('EOF while parsing a string', s.length - 1);
      const c = s.charCodeAt(this.pos);
      if (c === 0x22) {
        out += s.slice(start, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) this.fail('control character (\\u0000-\\u001F) found while parsing a string');
      if (c !== 0x5c) {
        this.pos++;
        continue;
      }
      out += s.slice(start, this.pos);
      this.pos++;
      if (this.pos >= s.length) this.fail('EOF while parsing a string', s.length - 1);
      const e = s[this.pos];
      const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (Object.prototype.hasOwnProperty.call(simple, e)) {
        out += simple[e];
        this.pos++;
      } else if (e === 'u') {
        const hex = s.slice(this.pos + 1, this.pos + 5);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('invalid escape', this.pos + 1);
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += 5;
      } else {
        this.fail('invalid escape');
      }
      start = this.pos;
    }
  }

  array(): JsonValue {
    this.pos++;
    const items: JsonValue[] = [];
    this.ws();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return { t: 'arr', items };
    }
    for (;;) {
      this.ws();
      if (this.pos >= this.text.length) this.fail('EOF while parsing a list', this.text.length - 1);
      if (this.text[this.pos] === ']' && items.length > 0) this.fail('trailing comma');
      items.push(this.value());
      this.ws();
      if (this.pos >= this.text.length) this.fail('EOF while parsing a list', this.text.length - 1);
      const c = this.text[this.pos];
      if (c === ',') this.pos++;
      else if (c === ']') {
        this.pos++;
        return { t: 'arr', items };
      } else this.fail('expected `,` or `]`');
    }
  }

  object(): JsonValue {
    this.pos++;
    const keys: string[] = [];
    const map = new Map<string, JsonValue>();
    this.ws();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return { t: 'obj', keys, map };
    }
    for (;;) {
      this.ws();
      if (this.pos >= this.text.length) this.fail('EOF while parsing an object', this.text.length - 1);
      if (this.text[this.pos] === '}' && keys.length > 0) this.fail('trailing comma');
      if (this.text[this.pos] !== '"') this.fail('key must be a string');
      const key = this.string();
      this.ws();
      if (this.pos >= this.text.length) this.fail('EOF while parsing an object', this.text.length - 1);
      if (this.text[this.pos] !== ':') this.fail('expected `:`');
      this.pos++;
      this.ws();
      const v = this.value();
      if (!map.has(key)) keys.push(key);
      map.set(key, v);
      this.ws();
      if (this.pos >= this.text.length) this.fail('EOF while parsing an object', this.text.length - 1);
      const c = this.text[this.pos];
      if (c === ',') this.pos++;
      else if (c === '}') {
        this.pos++;
        return { t: 'obj', keys, map };
      } else this.fail('expected `,` or `}`');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Quoting helpers
// ---------------------------------------------------------------------------------------------

/** A SQL string literal: single-quoted, embedded quotes doubled. */
export function sqlLiteral(s: string): string {
  return "'" + s.replace(/'/g, "''") + "'";
}

/** A SQL identifier: double-quoted, embedded double quotes doubled (always quoted). */
export function quoteIdent(s: string): string {
  return '"' + s.replace(/"/g, '""') + '"';
}

// ---------------------------------------------------------------------------------------------
// Substitution
// ---------------------------------------------------------------------------------------------

export interface SubstitutionContext {
  instanceId: string;
  label: string | null;
  /** The variables captured by df.start (name → value, inserted verbatim). */
  vars: Record<string, string>;
  /** Named results: result_name → the node's raw result text. */
  results: Record<string, string>;
}

export type SubstitutionMode = 'sql' | 'raw';

/** Row-set expansion (`$name.*`) refuses results with more rows than this. */
export const MAX_ROWSET_EXPANSION = 10000;

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

function isIdentContinue(c: string | undefined): boolean {
  return c !== undefined && /^[A-Za-z0-9_]$/.test(c);
}
/** The identifier `[A-Za-z_][A-Za-z0-9_]*` at the start of `s`, or ''. */
function leadingIdentifier(s: string): string {
  const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s);
  return m ? m[0] : '';
}

/**
 * Substitutes `text` for execution: pass 1 replaces braced variables, pass 2 (only when at least
 * one named result exists) replaces `$name` references. Throws DfError with the contract's texts.
 */
export function substitute(text: string, ctx: SubstitutionContext, mode: SubstitutionMode): string {
  const afterVars = substituteBracedVariables(text, ctx);
  return substituteResults(afterVars, ctx.results, mode === 'sql');
}

/** Pass 1 (§8.1): one left-to-right scan; inserted values are never re-scanned. */
export function substituteBracedVariables(text: string, ctx: Pick<SubstitutionContext, 'instanceId' | 'label' | 'vars'>): string {
  let out = '';
  let rest = text;
  for (;;) {
    const open = rest.indexOf('{');
    if (open < 0) break;
    out += rest.slice(0, open);
    const close = rest.indexOf('}', open + 1);
    if (close < 0) {
      // An unclosed brace ends the scan: the remainder is kept as is.
      out += rest.slice(open);
      return out;
    }
    const name = rest.slice(open + 1, close);
    let replacement: string | undefined;
    if (name === 'sys_instance_id') replacement = ctx.instanceId;
    else if (name === 'sys_label') replacement = ctx.label ?? '';
    else if (name !== '' && leadingIdentifier(name) === name && hasOwn(ctx.vars, name)) replacement = ctx.vars[name];
    out += replacement !== undefined ? replacement : rest.slice(open, close + 1);
    rest = rest.slice(close + 1);
  }
  return out + rest;
}

/** Pass 2 (§8.2). A no-op when there are no named results. */
export function substituteResults(text: string, results: Record<string, string>, forSql: boolean): string {
  const names = Object.keys(results)
    .filter((n) => n !== '')
    .sort((a, b) => b.length - a.length);
  if (names.length === 0) return text;

  let out = '';
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar < 0) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, dollar);
    i = dollar;
    const afterDollar = text.slice(i + 1);
    let matched = false;
    for (const name of names) {
      if (!afterDollar.startsWith(name)) continue;
      const afterName = afterDollar.slice(name.length);
      const raw = results[name];
      // 1. $name.* — row-set expansion
      if (afterName.startsWith('.*')) {
        out += expandRowSet(name, raw, forSql);
        i += 1 + name.length + 2;
        matched = true;
        break;
      }
      // 2. $name.col / $name.col?
      if (afterName.startsWith('.')) {
        const col = leadingIdentifier(afterName.slice(1));
        if (col !== '') {
          const nullSafe = afterName[1 + col.length] === '?';
          out += columnValue(name, raw, col, nullSafe, forSql);
          i += 1 + name.length + 1 + col.length + (nullSafe ? 1 : 0);
          matched = true;
          break;
        }
        // no identifier after the dot: fall through to the scalar forms
      }
      // 3. $name? — null-safe scalar
      if (afterName.startsWith('?')) {
        out += scalarValue(name, raw, true, forSql);
        i += 1 + name.length + 1;
        matched = true;
        break;
      }
      // 4. $name — strict scalar, at a word boundary
      if (afterName === '' || !isIdentContinue(afterName[0])) {
        out += scalarValue(name, raw, false, forSql);
        i += 1 + name.length;
        matched = true;
        break;
      }
      // 5. the identifier continues ($document vs doc): try shorter names
    }
    if (!matched) {
      out += '$';
      i += 1;
    }
  }
  return out;
}

/** Value formatting table of §8.2 (null is handled by the callers). */
function formatValue(v: JsonValue, forSql: boolean): string {
  switch (v.t) {
    case 'str':
      return forSql ? sqlLiteral(v.v) : v.v;
    case 'num':
      return v.text;
    case 'bool':
      return v.v ? 'true' : 'false';
    default: {
      const json = stringifyJson(v);
      return forSql ? sqlLiteral(json) : json;
    }
  }
}

function wholeText(raw: string, forSql: boolean): string {
  return forSql ? sqlLiteral(raw) : raw;
}

function scalarValue(name: string, raw: string, nullSafe: boolean, forSql: boolean): string {
  const json = tryParseJson(raw);
  if (json === undefined) return wholeText(raw, forSql);
  const rows = rowsOf(json);
  if (rows === undefined) return wholeText(raw, forSql);
  if (rows.length === 0) {
    if (nullSafe) return 'NULL';
    throw new DfError(`$${name} has no rows — query returned zero results`);
  }
  const first = rows[0];
  if (first.t !== 'obj') throw new DfError(`$${name}: first row is not an object`);
  if (first.keys.length === 0) throw new DfError(`$${name}: first row has no columns`);
  const v = first.map.get(first.keys[0]) as JsonValue;
  if (v.t === 'null') {
    if (nullSafe) return 'NULL';
    throw new DfError(`$${name} is NULL — first column of first row is NULL`);
  }
  return formatValue(v, forSql);
}

function columnValue(name: string, raw: string, col: string, nullSafe: boolean, forSql: boolean): string {
  const json = tryParseJson(raw);
  if (json === undefined) throw new DfError(`$${name}.${col}: result is not valid JSON`);
  const rows = rowsOf(json);
  let fields: Extract<JsonValue, { t: 'obj' }>;
  if (rows !== undefined) {
    if (rows.length === 0) {
      if (nullSafe) return 'NULL';
      throw new DfError(`$${name} has no rows — query returned zero results`);
    }
    const first = rows[0];
    if (first.t !== 'obj') throw new DfError(`$${name}.${col}: first row is not an object`);
    fields = first;
  } else {
    if (json.t !== 'obj') throw new DfError(`$${name}.${col}: result is neither a row set nor a JSON object`);
    fields = json;
  }
  const v = fields.map.get(col);
  if (v === undefined) {
    if (!forSql && !nullSafe) {
      const available = fields.keys.slice().sort().join(', ');
      throw new DfError(`$${name}.${col}: result has no field '${col}' (available: ${available})`);
    }
    // SQL mode (and raw null-safe): leave the pattern for PostgreSQL / the caller to see.
    return `$${name}.${col}${nullSafe ? '?' : ''}`;
  }
  if (v.t === 'null') {
    if (nullSafe) return 'NULL';
    throw new DfError(`$${name}.${col} is NULL`);
  }
  return formatValue(v, forSql);
}

function expandRowSet(name: string, raw: string, forSql: boolean): string {
  let json: JsonValue;
  try {
    json = parseJsonOrdered(raw);
  } catch (e) {
    throw new DfError(`$${name}.* — invalid result JSON: ${(e as Error).message}`);
  }
  const rows = rowsOf(json);
  if (rows === undefined) throw new DfError(`$${name}.* — invalid result format`);
  if (rows.length > MAX_ROWSET_EXPANSION) {
    throw new DfError(
      `$${name}.* — result has ${rows.length} rows, exceeding the maximum of ${MAX_ROWSET_EXPANSION} for row-set expansion. ` +
        'Use pagination or intermediate tables for large result sets.',
    );
  }
  if (!forSql) return stringifyJson({ t: 'arr', items: rows });

  const alias = quoteIdent(name);
  if (rows.length === 0) return `(SELECT NULL WHERE false) AS ${alias}`;
  const first = rows[0];
  if (first.t !== 'obj') throw new DfError(`$${name}.* — row is not an object`);
  const columns = first.keys;
  const tuples = rows.map((row) => {
    if (row.t !== 'obj') throw new DfError(`$${name}.* — row is not an object`);
    const values = columns.map((c) => rowSetValue(row.map.get(c)));
    return '(' + values.join(',') + ')';
  });
  return `(VALUES ${tuples.join(', ')}) AS ${alias}(${columns.map(quoteIdent).join(', ')})`;
}

function rowSetValue(v: JsonValue | undefined): string {
  if (v === undefined) return 'NULL';
  switch (v.t) {
    case 'null':
      return 'NULL';
    case 'str':
      return sqlLiteral(v.v) + '::text';
    case 'num':
      return v.text;
    case 'bool':
      return v.v ? 'true' : 'false';
    default:
      return sqlLiteral(stringifyJson(v)) + '::text';
  }
}

// ---------------------------------------------------------------------------------------------
// Multipart data_b64 (§8.3)
// ---------------------------------------------------------------------------------------------

/**
 * Whether `value` (trimmed) is exactly one reference: `$name`, `$name?`, `$name.col`,
 * `$name.col?` or `{name}`. `$name.*` is not one.
 */
export function isWholeValueReference(value: string): boolean {
  const v = value.trim();
  if (v.startsWith('$')) {
    const name = leadingIdentifier(v.slice(1));
    if (name === '') return false;
    let rest = v.slice(1 + name.length);
    if (rest.startsWith('.')) {
      const col = leadingIdentifier(rest.slice(1));
      if (col === '') return false;
      rest = rest.slice(1 + col.length);
    }
    return rest === '' || rest === '?';
  }
  if (v.startsWith('{')) {
    const name = leadingIdentifier(v.slice(1));
    return name !== '' && v.slice(1 + name.length) === '}';
  }
  return false;
}

/**
 * The `data_b64` rule of an HTTP_MULTIPART part: a whole-value reference is substituted (raw
 * mode); any other text containing `$` or `{` fails the node; anything else is returned as is.
 */
export function substituteWholeValue(value: string, ctx: SubstitutionContext, partName: string, nodeId: string): string {
  if (isWholeValueReference(value)) return substitute(value, ctx, 'raw');
  if (value.indexOf('$') >= 0 || value.indexOf('{') >= 0) {
    throw new DfError(
      `HTTP_MULTIPART node ${nodeId}: data_b64 for part '${partName}' mixes a variable reference with other text. ` +
        "Only a whole-value reference is supported (e.g. data_b64 => '$result' or '{myvar}'), because splicing into base64 would corrupt the payload.",
    );
  }
  return value;
}
