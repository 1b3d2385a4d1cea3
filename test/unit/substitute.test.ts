import { describe, it, expect } from 'vitest';
import { DfError } from '../../src/core/errors';
import {
  isWholeValueReference,
  parseJsonOrdered,
  quoteIdent,
  sqlLiteral,
  stringifyJson,
  substitute,
  substituteWholeValue,
  type SubstitutionContext,
} from '../../src/core/substitute';

const ctx = (results: Record<string, string> = {}, vars: Record<string, string> = {}, label: string | null = 'demo'): SubstitutionContext => ({
  instanceId: 'c0ffee42',
  label,
  vars,
  results,
});
const sqlSub = (text: string, results: Record<string, string>, vars: Record<string, string> = {}): string => substitute(text, ctx(results, vars), 'sql');
const rawSub = (text: string, results: Record<string, string>, vars: Record<string, string> = {}): string => substitute(text, ctx(results, vars), 'raw');

/** Runs `fn` and returns the DfError text it throws. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DfError);
    return (e as Error).message;
  }
  throw new Error('expected a DfError');
}

const one = (row: Record<string, unknown>): string => JSON.stringify({ rows: [row], row_count: 1 });
const none = JSON.stringify({ rows: [], row_count: 0 });

describe('quoting helpers', () => {
  it('sqlLiteral single-quotes and doubles quotes', () => {
    expect(sqlLiteral("it's")).toBe("'it''s'");
    expect(quoteIdent('a"b')).toBe('"a""b"');
  });
});

describe('pass 1: braced variables', () => {
  it('system variables and captured vars are inserted verbatim', () => {
    expect(substitute('{sys_instance_id}/{sys_label}/{tbl}', ctx({}, { tbl: 'public.t' }), 'sql')).toBe('c0ffee42/demo/public.t');
    expect(substitute('[{sys_label}]', ctx({}, {}, null), 'raw')).toBe('[]');
  });

  it('system variables win over a captured var of the same name', () => {
    expect(substitute('{sys_label}', ctx({}, { sys_label: 'mine' }), 'sql')).toBe('demo');
  });

  it('keeps unknown names and non-identifier contents as is', () => {
    expect(substitute(`SELECT '{"a":1}'::jsonb, '{1,2}'::int[], {missing}, {}`, ctx({}, { a: 'X' }), 'sql')).toBe(
      `SELECT '{"a":1}'::jsonb, '{1,2}'::int[], {missing}, {}`,
    );
  });

  it('substitutes an array literal whose contents name a variable', () => {
    expect(substitute("SELECT '{a}'::text[]", ctx({}, { a: 'x' }), 'sql')).toBe("SELECT 'x'::text[]");
  });

  it('never re-scans inserted values', () => {
    expect(substitute('{a}', ctx({}, { a: '{b}', b: 'B' }), 'sql')).toBe('{b}');
    expect(substitute('{a}{b}', ctx({}, { a: '{', b: 'B' }), 'sql')).toBe('{B');
  });

  it('resumes after the first closing brace', () => {
    // `{x{a}` is one candidate `x{a` (not an identifier), kept; the scan resumes after its `}`.
    expect(substitute('{x{a} {a}', ctx({}, { a: 'A' }), 'sql')).toBe('{x{a} A');
  });

  it('an unclosed brace ends the scan', () => {
    // (a `{` followed by a later `}` is a candidate: `{ {a}` is one non-identifier candidate, kept)
    expect(substitute('{a} { {a}', ctx({}, { a: 'A' }), 'sql')).toBe('A { {a}');
    expect(substitute('{a} {', ctx({}, { a: 'A' }), 'sql')).toBe('A {');
    expect(substitute('x { y', ctx({}, { y: 'Y' }), 'sql')).toBe('x { y');
  });

  it('does not see Object.prototype members as variables', () => {
    expect(substitute('{constructor}{toString}', ctx(), 'sql')).toBe('{constructor}{toString}');
  });

  it('braces are substituted before results, so a var can carry a $reference', () => {
    expect(sqlSub('SELECT {expr}', { x: one({ a: 5 }) }, { expr: '$x + 1' })).toBe('SELECT 5 + 1');
  });
});

describe('pass 2: scalar $name', () => {
  it('inserts the first column of the first row, in SELECT-list order', () => {
    const r = '{"rows":[{"b":"second","a":"first"},{"b":"x","a":"y"}],"row_count":2}';
    expect(sqlSub('VALUES ($r)', { r })).toBe("VALUES ('second')");
    // integer-like column names keep their position too
    expect(sqlSub('$r', { r: '{"rows":[{"z":1,"2":2}],"row_count":1}' })).toBe('1');
  });

  it('formats values per mode', () => {
    const cases: [unknown, string, string][] = [
      ["it's", "'it''s'", "it's"],
      ['9876543.12345678', "'9876543.12345678'", '9876543.12345678'],
      [42, '42', '42'],
      [3.14, '3.14', '3.14'],
      [true, 'true', 'true'],
      [false, 'false', 'false'],
      [{ k: "v'" }, `'{"k":"v''"}'`, '{"k":"v\'"}'],
      [[1, 'a'], `'[1,"a"]'`, '[1,"a"]'],
    ];
    for (const [value, inSql, inRaw] of cases) {
      expect(sqlSub('$v', { v: one({ c: value }) })).toBe(inSql);
      expect(rawSub('$v', { v: one({ c: value }) })).toBe(inRaw);
    }
  });

  it('keeps the number text of the result (big integers, exponents)', () => {
    expect(sqlSub('$n', { n: '{"rows":[{"n":12345678901234567890}],"row_count":1}' })).toBe('12345678901234567890');
    expect(sqlSub('$n', { n: '{"rows":[{"n":1.5e3}],"row_count":1}' })).toBe('1.5e3');
  });

  it('strict scalar errors', () => {
    expect(errorOf(() => sqlSub('$x', { x: none }))).toBe('$x has no rows — query returned zero results');
    expect(errorOf(() => sqlSub('$x', { x: one({ a: null }) }))).toBe('$x is NULL — first column of first row is NULL');
    expect(errorOf(() => sqlSub('$x', { x: '{"rows":[1]}' }))).toBe('$x: first row is not an object');
    expect(errorOf(() => sqlSub('$x', { x: '{"rows":[{}]}' }))).toBe('$x: first row has no columns');
  });

  it('null-safe $name? yields NULL (SQL) / the text NULL (raw) for no rows or a NULL value', () => {
    expect(sqlSub('SELECT $x?', { x: none })).toBe('SELECT NULL');
    expect(sqlSub('SELECT $x?', { x: one({ a: null }) })).toBe('SELECT NULL');
    expect(rawSub('[$x?]', { x: none })).toBe('[NULL]');
    expect(sqlSub('SELECT $x?', { x: one({ a: 'v' }) })).toBe("SELECT 'v'");
  });

  it('inserts the whole result when it has no rows array (or is not JSON)', () => {
    expect(sqlSub('SELECT $loop_result::jsonb', { loop_result: '"done"' })).toBe(`SELECT '"done"'::jsonb`);
    expect(rawSub('$loop_result', { loop_result: '"done"' })).toBe('"done"');
    const env = '{"status":200,"ok":true,"body":"it\'s"}';
    expect(sqlSub('SELECT $response::jsonb', { response: env })).toBe(`SELECT '{"status":200,"ok":true,"body":"it''s"}'::jsonb`);
    expect(sqlSub('SELECT $t', { t: "not json's" })).toBe("SELECT 'not json''s'");
    expect(rawSub('$t', { t: 'not json' })).toBe('not json');
    expect(sqlSub('$pair', { pair: '[1,2]' })).toBe("'[1,2]'");
  });
});

describe('pass 2: matching rules', () => {
  it('tries names longest first and falls through to shorter names', () => {
    const results = { doc: one({ v: 'short' }), document: one({ v: 'long' }) };
    expect(sqlSub('$document $doc $docs', results)).toBe("'long' 'short' $docs");
    expect(sqlSub('$documents', { doc: one({ v: 1 }) })).toBe('$documents');
  });

  it('a word boundary is any non-identifier character', () => {
    expect(sqlSub('$x+$x::int,$x)', { x: one({ a: 1 }) })).toBe('1+1::int,1)');
    expect(sqlSub('$xé', { x: one({ a: 1 }) })).toBe('1é');
  });

  it('leaves $1, $$, unknown names and lone dollars untouched', () => {
    const results = { x: one({ a: 1 }) };
    expect(sqlSub('SELECT $1, $$body$$, $unknown, $ , $', results)).toBe('SELECT $1, $$body$$, $unknown, $ , $');
  });

  it('does nothing at all when there are no named results', () => {
    expect(sqlSub('SELECT $x, $x.*', {})).toBe('SELECT $x, $x.*');
  });

  it('a dot not followed by an identifier is just text after a scalar', () => {
    expect(sqlSub('$x.5 $x. ', { x: one({ a: 7 }) })).toBe('7.5 7. ');
  });

  it('a dollar-quote tag equal to a result name is substituted (documented caveat)', () => {
    expect(sqlSub('$tag$x$tag$', { tag: one({ a: 1 }) })).toBe('1$x1$');
  });
});

describe('pass 2: column access $name.col', () => {
  const r = one({ id: 7, name: "O'Brien", note: null });

  it('reads a column of the first row', () => {
    expect(sqlSub('SELECT $r.name, $r.id', { r })).toBe("SELECT 'O''Brien', 7");
    expect(rawSub('$r.name/$r.id', { r })).toBe("O'Brien/7");
  });

  it('rows take precedence over top-level fields', () => {
    expect(sqlSub('$r.row_count', { r })).toBe('$r.row_count');
  });

  it('reads top-level fields of results without rows (HTTP envelopes)', () => {
    const resp = '{"status":201,"ok":true,"body":"{\\"id\\":1}","headers":{"a":"b"}}';
    expect(sqlSub('SELECT $resp.status, $resp.ok, $resp.body::jsonb, $resp.headers', { resp })).toBe(
      `SELECT 201, true, '{"id":1}'::jsonb, '{"a":"b"}'`,
    );
    expect(rawSub('$resp.body', { resp })).toBe('{"id":1}');
  });

  it('NULL field: strict error, null-safe NULL', () => {
    expect(errorOf(() => sqlSub('$r.note', { r }))).toBe('$r.note is NULL');
    expect(sqlSub('$r.note?', { r })).toBe('NULL');
    expect(rawSub('$r.note?', { r })).toBe('NULL');
  });

  it('no rows: strict error, null-safe NULL', () => {
    expect(errorOf(() => sqlSub('$r.id', { r: none }))).toBe('$r has no rows — query returned zero results');
    expect(sqlSub('$r.id?', { r: none })).toBe('NULL');
  });

  it('missing field: SQL mode leaves the pattern, raw strict fails listing sorted keys, raw null-safe leaves it', () => {
    expect(sqlSub('SELECT $r.nope, $r.nope?', { r })).toBe('SELECT $r.nope, $r.nope?');
    expect(errorOf(() => rawSub('$r.nope', { r }))).toBe("$r.nope: result has no field 'nope' (available: id, name, note)");
    expect(rawSub('$r.nope?', { r })).toBe('$r.nope?');
  });

  it('structural errors', () => {
    expect(errorOf(() => sqlSub('$t.a', { t: 'plain text' }))).toBe('$t.a: result is not valid JSON');
    expect(errorOf(() => sqlSub('$t.a', { t: '[1,2]' }))).toBe('$t.a: result is neither a row set nor a JSON object');
    expect(errorOf(() => sqlSub('$t.a', { t: '"done"' }))).toBe('$t.a: result is neither a row set nor a JSON object');
    expect(errorOf(() => sqlSub('$t.a', { t: '{"rows":["x"]}' }))).toBe('$t.a: first row is not an object');
  });
});

describe('pass 2: row-set expansion $name.*', () => {
  const rows = '{"rows":[{"id":1,"name":"a\'b","flag":true,"meta":{"k":[1]},"gone":null},{"id":2.5,"name":"x"}],"row_count":2}';

  it('SQL mode: an inline VALUES list with quoted columns and typed values', () => {
    expect(sqlSub('SELECT * FROM $items.*', { items: rows })).toBe(
      `SELECT * FROM (VALUES (1,'a''b'::text,true,'{"k":[1]}'::text,NULL), (2.5,'x'::text,NULL,NULL,NULL)) AS "items"("id", "name", "flag", "meta", "gone")`,
    );
  });

  it('numeric strings stay quoted text', () => {
    expect(sqlSub('$n.*', { n: one({ amount: '9876543.12345678' }) })).toBe(`(VALUES ('9876543.12345678'::text)) AS "n"("amount")`);
  });

  it('column names are double-quoted with quotes doubled', () => {
    expect(sqlSub('$q.*', { q: one({ 'we"ird': 1 }) })).toBe(`(VALUES (1)) AS "q"("we""ird")`);
  });

  it('an empty row set is a relation with no rows', () => {
    expect(sqlSub('SELECT * FROM $e.*', { e: none })).toBe('SELECT * FROM (SELECT NULL WHERE false) AS "e"');
  });

  it('raw mode: the compact JSON array of rows', () => {
    expect(rawSub('$items.*', { items: rows })).toBe('[{"id":1,"name":"a\'b","flag":true,"meta":{"k":[1]},"gone":null},{"id":2.5,"name":"x"}]');
    expect(rawSub('$e.*', { e: none })).toBe('[]');
  });

  it('errors', () => {
    expect(errorOf(() => sqlSub('$x.*', { x: '{"status":200}' }))).toBe('$x.* — invalid result format');
    expect(errorOf(() => sqlSub('$x.*', { x: 'nope' }))).toBe('$x.* — invalid result JSON: expected ident at line 1 column 2');
    expect(errorOf(() => sqlSub('$x.*', { x: '{"rows":[1]}' }))).toBe('$x.* — row is not an object');
  });

  it('refuses more than 10000 rows', () => {
    const many = (n: number): string => JSON.stringify({ rows: Array.from({ length: n }, (_, i) => ({ i })), row_count: n });
    expect(sqlSub('$m.*', { m: many(10000) }).startsWith('(VALUES (0), (1),')).toBe(true);
    expect(errorOf(() => sqlSub('$m.*', { m: many(10001) }))).toBe(
      '$m.* — result has 10001 rows, exceeding the maximum of 10000 for row-set expansion. Use pagination or intermediate tables for large result sets.',
    );
  });
});

describe('multipart data_b64 whole-value rule', () => {
  const c = ctx({ file: one({ data: 'aGVsbG8=' }) }, { blob: 'd29ybGQ=' });

  it('recognises exactly one reference', () => {
    for (const v of ['$file', '$file?', '$file.data', '$file.data?', '{blob}', '  $file  ']) expect(isWholeValueReference(v)).toBe(true);
    for (const v of ['$file.*', 'x$file', '$file x', '{blob}{blob}', '{1}', '$', 'aGVsbG8=']) expect(isWholeValueReference(v)).toBe(false);
  });

  it('substitutes a whole reference in raw mode, keeps plain base64, rejects mixtures', () => {
    expect(substituteWholeValue('$file', c, 'upload', 'ab12cd34')).toBe('aGVsbG8=');
    expect(substituteWholeValue('$file.data', c, 'upload', 'ab12cd34')).toBe('aGVsbG8=');
    expect(substituteWholeValue('{blob}', c, 'upload', 'ab12cd34')).toBe('d29ybGQ=');
    expect(substituteWholeValue('aGVsbG8=', c, 'upload', 'ab12cd34')).toBe('aGVsbG8=');
    expect(errorOf(() => substituteWholeValue('aGVs$file', c, 'upload', 'ab12cd34'))).toBe(
      "HTTP_MULTIPART node ab12cd34: data_b64 for part 'upload' mixes a variable reference with other text. Only a whole-value reference is supported (e.g. data_b64 => '$result' or '{myvar}'), because splicing into base64 would corrupt the payload.",
    );
    expect(() => substituteWholeValue('$file.*', c, 'p', 'n')).toThrow(DfError);
  });
});

describe('order-preserving JSON', () => {
  it('round-trips compactly with key order and number text', () => {
    const text = '{ "b" : 1.50, "2": [true, null, "x\\"y\\u00e9"], "a": {"1": -0} }';
    expect(stringifyJson(parseJsonOrdered(text))).toBe('{"b":1.50,"2":[true,null,"x\\"yé"],"a":{"1":-0}}');
  });

  it('rejects what strict JSON rejects, with serde-style messages', () => {
    expect(() => parseJsonOrdered('')).toThrow('EOF while parsing a value at line 1 column 0');
    expect(() => parseJsonOrdered('{"a":1,}')).toThrow('trailing comma');
    expect(() => parseJsonOrdered('01')).toThrow();
    expect(() => parseJsonOrdered('1 2')).toThrow('trailing characters at line 1 column 3');
    expect(() => parseJsonOrdered("{'a':1}")).toThrow('key must be a string');
  });
});
