import { describe, it, expect } from 'vitest';
import { DfError } from '../../src/core/errors';
import { conditionIsTrue, ifRowsTest, isTruthy } from '../../src/core/truthy';

const sqlResult = (rows: unknown[]): string => JSON.stringify({ rows, row_count: rows.length });

describe('isTruthy', () => {
  it('booleans, numbers, null', () => {
    expect([true, false, 1, -2.5, 0, -0, null, undefined].map(isTruthy)).toEqual([true, false, true, true, false, false, false, false]);
  });

  it('strings: blank false, yes/no words, numeric text by value, other text true', () => {
    const cases: [string, boolean][] = [
      ['', false], ['   ', false],
      ['true', true], [' T ', true], ['YES', true],
      ['false', false], ['F', false], ['No', false],
      ['0', false], ['0.00', false], ['-0', false], ['0e5', false], ['.0', false], ['+0.', false],
      ['1', true], ['-3.5', true], ['1e-9', true],
      ['off', true], ['n', true], ['NaN', true], ['inf', true], ['0x0', true], ['hello', true],
    ];
    for (const [s, want] of cases) expect([s, isTruthy(s)]).toEqual([s, want]);
  });

  it('arrays and objects are truthy when non-empty', () => {
    expect([[], [0], {}, { a: 0 }].map(isTruthy)).toEqual([false, true, false, true]);
  });
});

describe('conditionIsTrue', () => {
  it('a SQL result: first column of the first row', () => {
    expect(conditionIsTrue(sqlResult([{ ok: true }]))).toBe(true);
    expect(conditionIsTrue(sqlResult([{ ok: false }]))).toBe(false);
    expect(conditionIsTrue(sqlResult([{ n: '0.00' }]))).toBe(false); // numeric 0.00 arrives as a string
    expect(conditionIsTrue(sqlResult([{ v: null }]))).toBe(false); // SELECT NULL
    expect(conditionIsTrue('{"rows":[{"b":0,"a":1}],"row_count":1}')).toBe(false); // first column is b
  });

  it('zero rows are false', () => {
    expect(conditionIsTrue(sqlResult([]))).toBe(false);
  });

  it('a first row that is not an object or has no columns falls through to the whole value', () => {
    expect(conditionIsTrue('{"rows":[{}],"row_count":1}')).toBe(true);
    expect(conditionIsTrue('{"rows":[0]}')).toBe(true);
  });

  it('other JSON is judged as a whole: envelopes, signals and JOIN arrays are true', () => {
    expect(conditionIsTrue('{"status":500,"ok":false}')).toBe(true);
    expect(conditionIsTrue('[{"rows":[]},{"rows":[]}]')).toBe(true);
    expect(conditionIsTrue('{}')).toBe(false);
    expect(conditionIsTrue('"no"')).toBe(false);
    expect(conditionIsTrue('0')).toBe(false);
    expect(conditionIsTrue('null')).toBe(false);
  });

  it('non-JSON text is judged as a string', () => {
    expect(conditionIsTrue('yes')).toBe(true);
    expect(conditionIsTrue(' f ')).toBe(false);
    expect(conditionIsTrue('0.0.1')).toBe(true);
  });
});

describe('ifRowsTest', () => {
  it('is true iff row_count > 0', () => {
    expect(ifRowsTest('data', { data: sqlResult([{ a: 1 }]) })).toBe(true);
    expect(ifRowsTest('data', { data: sqlResult([]) })).toBe(false);
  });

  it('error texts', () => {
    const err = (fn: () => unknown): string => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(DfError);
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(err(() => ifRowsTest('data', {}))).toBe("df.if_rows: result 'data' not found");
    expect(err(() => ifRowsTest('data', { data: 'plain' }))).toBe('df.if_rows: invalid result JSON: expected value at line 1 column 1');
    expect(err(() => ifRowsTest('data', { data: '{"status":200}' }))).toBe("df.if_rows: result 'data' is not a SQL result (missing row_count)");
    expect(err(() => ifRowsTest('data', { data: '{"row_count":"3"}' }))).toBe("df.if_rows: result 'data' is not a SQL result (missing row_count)");
    expect(err(() => ifRowsTest('data', { data: '[1]' }))).toBe("df.if_rows: result 'data' is not a SQL result (missing row_count)");
    expect(err(() => ifRowsTest('toString', {}))).toBe("df.if_rows: result 'toString' not found");
  });
});
