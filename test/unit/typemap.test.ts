import { describe, it, expect } from 'vitest';
import { DfError } from '../../src/core/errors';
import {
  SUPPORTED_TYPE_OIDS,
  displayTypeName,
  formatDate,
  formatTimestamp,
  formatTimestamptz,
  resultJson,
} from '../../src/worker/typemap';

/** Result JSON of a single column, single row. */
const one = (oid: number, text: string | null, name = 'v'): string => resultJson([{ name, dataTypeID: oid }], [[text]]);
const val = (oid: number, text: string | null): string => {
  const r = one(oid, text);
  const m = /^\{"rows":\[\{"v":(.*)\}\],"row_count":1\}$/.exec(r);
  if (!m) throw new Error(`unexpected shape: ${r}`);
  return m[1];
};

describe('resultJson: type mapping', () => {
  it('bool', () => {
    expect(val(16, 't')).toBe('true');
    expect(val(16, 'f')).toBe('false');
  });

  it('int2 / int4 / int8, exact beyond 2^53', () => {
    expect(val(21, '-32768')).toBe('-32768');
    expect(val(23, '42')).toBe('42');
    expect(val(20, '9223372036854775807')).toBe('9223372036854775807');
    expect(val(20, '-9223372036854775808')).toBe('-9223372036854775808');
    expect(val(20, '9007199254740993')).toBe('9007199254740993');
  });

  it('float4 widened to double', () => {
    expect(val(700, '3.14')).toBe('3.140000104904175');
    expect(val(700, '1')).toBe('1');
    expect(val(700, '-0.5')).toBe('-0.5');
    expect(val(700, 'NaN')).toBe('null');
    expect(val(700, 'Infinity')).toBe('null');
    expect(val(700, '-Infinity')).toBe('null');
  });

  it('float8 shortest round trip', () => {
    expect(val(701, '0.1')).toBe('0.1');
    expect(val(701, '1e+100')).toBe('1e+100');
    expect(val(701, '3.141592653589793')).toBe('3.141592653589793');
    expect(val(701, '1.5e-07')).toBe('1.5e-7');
    expect(val(701, 'NaN')).toBe('null');
    expect(val(701, 'Infinity')).toBe('null');
    expect(val(701, '-Infinity')).toBe('null');
    expect(() => JSON.parse(one(701, '1e-300'))).not.toThrow();
  });

  it('text, varchar, bpchar, name as strings with escaping', () => {
    expect(val(25, 'hello "world"\n\\')).toBe('"hello \\"world\\"\\n\\\\"');
    expect(val(1043, 'v')).toBe('"v"');
    expect(val(1042, 'ab  ')).toBe('"ab  "');
    expect(val(19, 'postgres')).toBe('"postgres"');
    expect(val(25, '')).toBe('""');
    expect(val(25, 'héllo ✓')).toBe('"héllo ✓"');
  });

  it('numeric stays exact text', () => {
    expect(val(1700, '123456.78900000')).toBe('"123456.78900000"');
    expect(val(1700, '12345678901234567890.123456789012345678')).toBe('"12345678901234567890.123456789012345678"');
    expect(val(1700, 'NaN')).toBe('"NaN"');
    expect(val(1700, '-0.00')).toBe('"-0.00"');
  });

  it('uuid lower-case', () => {
    expect(val(2950, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11')).toBe('"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"');
  });

  it('json / jsonb embedded compactly, order and number text preserved', () => {
    expect(val(3802, '{"b": 1, "a": [1, 2.50, {"x": null}], "2024": true}')).toBe('{"b":1,"a":[1,2.50,{"x":null}],"2024":true}');
    expect(val(114, ' [ 12345678901234567890 , "s" ] ')).toBe('[12345678901234567890,"s"]');
    expect(val(3802, '"str"')).toBe('"str"');
    expect(val(3802, 'null')).toBe('null');
    expect(() => one(114, '{bad')).toThrow(DfError);
  });

  it('void → null; SQL NULL of any type → null', () => {
    expect(val(2278, '')).toBe('null');
    for (const oid of SUPPORTED_TYPE_OIDS) expect(val(oid, null)).toBe('null');
  });

  it('date', () => {
    expect(val(1082, '2024-06-15')).toBe('"2024-06-15"');
    expect(val(1082, 'infinity')).toBe('null');
    expect(formatDate('-infinity')).toBeNull();
    expect(() => formatDate('0044-03-15 BC')).toThrow(/BC/);
  });

  it('timestamp (no zone), fraction rule', () => {
    expect(val(1114, '2024-06-15 12:30:00')).toBe('"2024-06-15T12:30:00"');
    expect(formatTimestamp('2024-06-15 12:30:00.5')).toBe('2024-06-15T12:30:00.500');
    expect(formatTimestamp('2024-06-15 12:30:00.123456')).toBe('2024-06-15T12:30:00.123456');
    expect(formatTimestamp('2024-06-15 12:30:00.1234')).toBe('2024-06-15T12:30:00.123400');
    expect(formatTimestamp('2024-06-15 12:30:00.000001')).toBe('2024-06-15T12:30:00.000001');
    expect(formatTimestamp('2024-06-15 12:30:00.123')).toBe('2024-06-15T12:30:00.123');
    expect(formatTimestamp('infinity')).toBeNull();
    expect(() => formatTimestamp('2024-06-15 12:30:00 BC')).toThrow(DfError);
  });

  it('timestamptz → UTC RFC 3339 with +00:00', () => {
    expect(val(1184, '2024-06-15 12:30:00+00')).toBe('"2024-06-15T12:30:00+00:00"');
    expect(formatTimestamptz('2024-06-15 14:30:00.5+02')).toBe('2024-06-15T12:30:00.500+00:00');
    expect(formatTimestamptz('2024-06-15 18:00:00.123456+05:30')).toBe('2024-06-15T12:30:00.123456+00:00');
    expect(formatTimestamptz('2024-06-15 12:30:00+05:30')).toBe('2024-06-15T07:00:00+00:00');
    expect(formatTimestamptz('2024-06-15 18:15:30+05:45:30')).toBe('2024-06-15T12:30:00+00:00');
    expect(formatTimestamptz('2024-06-15 20:30:00.1234-08')).toBe('2024-06-16T04:30:00.123400+00:00');
    expect(formatTimestamptz('2024-12-31 22:00:00-03:30')).toBe('2025-01-01T01:30:00+00:00');
    expect(formatTimestamptz('2024-03-01 01:00:00+02')).toBe('2024-02-29T23:00:00+00:00');
    expect(formatTimestamptz('1969-12-31 23:59:59.999+00')).toBe('1969-12-31T23:59:59.999+00:00');
    expect(formatTimestamptz('infinity')).toBeNull();
    expect(formatTimestamptz('-infinity')).toBeNull();
    expect(val(1184, 'infinity')).toBe('null');
    expect(() => formatTimestamptz('0001-01-01 00:00:00+00 BC')).toThrow(/BC/);
    expect(() => one(1184, '2024-06-15 12:30:00+00 BC')).toThrow(DfError);
  });
});

describe('resultJson: shape', () => {
  it('empty result', () => {
    expect(resultJson([], [])).toBe('{"rows":[],"row_count":0}');
    expect(resultJson([{ name: 'a', dataTypeID: 23 }], [])).toBe('{"rows":[],"row_count":0}');
  });

  it('several rows and columns, column order kept (integer-like names too)', () => {
    const fields = [
      { name: 'z', dataTypeID: 23 },
      { name: '2024', dataTypeID: 25 },
      { name: '?column?', dataTypeID: 16 },
    ];
    expect(resultJson(fields, [['1', 'a', 't'], ['2', null, 'f']])).toBe(
      '{"rows":[{"z":1,"2024":"a","?column?":true},{"z":2,"2024":null,"?column?":false}],"row_count":2}',
    );
  });

  it('duplicate column names: first position, first value', () => {
    const fields = [
      { name: 'a', dataTypeID: 23 },
      { name: 'b', dataTypeID: 25 },
      { name: 'a', dataTypeID: 23 },
    ];
    expect(resultJson(fields, [['1', 'x', '2']])).toBe('{"rows":[{"a":1,"b":"x"}],"row_count":1}');
    expect(resultJson(fields, [[null, 'x', '2']])).toBe('{"rows":[{"a":null,"b":"x"}],"row_count":1}');
  });

  it('duplicate column names with mismatching types fail the node', () => {
    const fields = [
      { name: 'a', dataTypeID: 23 },
      { name: 'a', dataTypeID: 25 },
    ];
    expect(() => resultJson(fields, [['1', 'x']])).toThrow(DfError);
    // text-like types decode alike
    expect(resultJson([{ name: 'a', dataTypeID: 25 }, { name: 'a', dataTypeID: 1043 }], [['p', 'q']])).toBe('{"rows":[{"a":"p"}],"row_count":1}');
  });
});

describe('resultJson: unsupported types', () => {
  const msg = (type: string, col: string): string =>
    `Unsupported column type '${type}' for column '${col}'. Supported types: bool, int2, int4, int8, float4, float8, text, varchar, numeric, uuid, timestamptz, timestamp, date, jsonb, json, void.`;

  it('bytea', () => {
    expect(() => resultJson([{ name: 'b', dataTypeID: 17 }], [['\\x00']])).toThrow(msg('BYTEA', 'b'));
    try {
      resultJson([{ name: 'b', dataTypeID: 17 }], [['\\x00']]);
    } catch (e) {
      expect(e).toBeInstanceOf(DfError);
    }
  });

  it('int4[] via typeName', () => {
    const typeName = (oid: number): string => (oid === 1007 ? '_int4' : 'unknown');
    expect(() => resultJson([{ name: 'arr', dataTypeID: 1007 }], [['{1,2}']], typeName)).toThrow(msg('INT4[]', 'arr'));
  });

  it('NULL of an unsupported type still fails; a custom type uses typeName; unknown without typeName → OID n', () => {
    expect(() => resultJson([{ name: 'i', dataTypeID: 1186 }], [[null]])).toThrow(msg('INTERVAL', 'i'));
    expect(() => resultJson([{ name: 'e', dataTypeID: 90001 }], [['x']], () => 'mood')).toThrow(msg('MOOD', 'e'));
    expect(() => resultJson([{ name: 'e', dataTypeID: 90001 }], [['x']])).toThrow(msg('OID 90001', 'e'));
  });

  it('display names', () => {
    expect(displayTypeName(1007)).toBe('INT4[]');
    expect(displayTypeName(1083)).toBe('TIME');
    expect(displayTypeName(869)).toBe('INET');
    expect(displayTypeName(790)).toBe('MONEY');
    expect(displayTypeName(26)).toBe('OID');
  });

  it('supported set', () => {
    expect([...SUPPORTED_TYPE_OIDS].sort((a, b) => a - b)).toEqual([16, 19, 20, 21, 23, 25, 114, 700, 701, 1042, 1043, 1082, 1114, 1184, 1700, 2278, 2950, 3802]);
  });
});
