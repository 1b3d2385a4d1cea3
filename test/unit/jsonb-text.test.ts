/**
 * What PostgreSQL prints for JSON stored as jsonb and rendered by df._json_compact: the worker
 * leaves a completed execution's output to df._execution_log only where this prediction equals
 * the output. The integration test "executions kept by instance rows" compares it with the server.
 */
import { describe, expect, it } from 'vitest';
import { jsonbCompactText, jsonbKeyOrder } from '../../src/core/jsonb-text';

describe('jsonb compact text', () => {
  it('orders keys as jsonb does: shorter first, then by UTF-8 bytes', () => {
    expect(jsonbCompactText('{"rows":[{"zeta":1,"a":2}],"row_count":1}')).toBe('{"rows":[{"a":2,"zeta":1}],"row_count":1}');
    expect(jsonbCompactText('{"b":1,"B":2,"é":3,"aa":4}')).toBe('{"B":2,"b":1,"aa":4,"é":3}');
    expect(['\u{1F600}', '\uFFFF'].sort(jsonbKeyOrder)).toEqual(['\uFFFF', '\u{1F600}']); // 3 bytes before 4
    expect(['b\u{1F600}', 'b\uFFFF'].sort(jsonbKeyOrder)).toEqual(['b\uFFFF', 'b\u{1F600}']);
  });

  it('prints numbers digit for digit, and declines those numeric prints otherwise', () => {
    expect(jsonbCompactText('[1.50,-2,0,12345678901234567890123]')).toBe('[1.50,-2,0,12345678901234567890123]');
    expect(jsonbCompactText('[1e3]')).toBeNull();
    expect(jsonbCompactText('[-0]')).toBeNull();
    expect(jsonbCompactText('[-0.00]')).toBeNull();
  });

  it('escapes strings as PostgreSQL does and drops the spaces', () => {
    expect(jsonbCompactText('{ "k" : "a\\"b\\\\c\\n\\u0001\\/" }')).toBe('{"k":"a\\"b\\\\c\\n\\u0001/"}');
    expect(jsonbCompactText('"\u2028\u00e9"')).toBe('"\u2028\u00e9"');
  });

  it('is null for what is not JSON', () => {
    expect(jsonbCompactText('not json')).toBeNull();
  });
});
