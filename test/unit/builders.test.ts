import { describe, it, expect } from 'vitest';
import * as df from '../../src/core/builders';
import { DfError } from '../../src/core/errors';

const SQL1 = '{"node_type":"SQL","query":"SELECT 1"}';
const SQL2 = '{"node_type":"SQL","query":"SELECT 2"}';

function errorOf(fn: () => unknown): DfError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DfError);
    return e as DfError;
  }
  throw new Error('expected a DfError');
}

describe('df.sql', () => {
  it('wraps any text, unvalidated', () => {
    expect(df.sql('not even sql')).toBe('{"node_type":"SQL","query":"not even sql"}');
    expect(df.sql('')).toBe('{"node_type":"SQL","query":""}');
  });

  it('never auto-wraps or parses its argument', () => {
    expect(df.sql(SQL1)).toBe(String.raw`{"node_type":"SQL","query":"{\"node_type\":\"SQL\",\"query\":\"SELECT 1\"}"}`);
  });
});

describe('composers auto-wrap their step arguments', () => {
  it('uses nodes as given and wraps plain SQL', () => {
    expect(df.seq(SQL1, 'SELECT 2')).toBe(`{"node_type":"THEN","left_node":${SQL1},"right_node":${SQL2}}`);
    expect(df.race('SELECT 1', SQL2)).toBe(`{"node_type":"RACE","left_node":${SQL1},"right_node":${SQL2}}`);
    expect(df.join('SELECT 1', 'SELECT 2')).toBe(`{"node_type":"JOIN","left_node":${SQL1},"right_node":${SQL2}}`);
  });

  it('nests composites (operators compose)', () => {
    const inner = df.seq('SELECT 1', 'SELECT 2');
    expect(df.seq(inner, 'SELECT 3')).toBe(
      `{"node_type":"THEN","left_node":${inner},"right_node":{"node_type":"SQL","query":"SELECT 3"}}`,
    );
  });

  it('loop without a condition has no condition_node', () => {
    expect(df.loop('SELECT 1')).toBe(`{"node_type":"LOOP","left_node":${SQL1}}`);
    expect(df.loop('SELECT 1', null)).toBe(`{"node_type":"LOOP","left_node":${SQL1}}`);
  });

  it('passes the non-future helper through to every step argument', () => {
    const opts = { nonFutureHelper: 'df.setvar' };
    const msg = 'df.setvar cannot be used as a workflow step. Call df.setvar before df.start().';
    expect(() => df.seq('SELECT 1', SQL2, opts)).toThrow(msg);
    expect(() => df.seq(SQL1, 'SELECT 2', opts)).toThrow(msg);
    expect(() => df.as('SELECT 1', 'x', opts)).toThrow(msg);
    expect(() => df.loop(SQL1, 'SELECT true', opts)).toThrow(msg);
    expect(() => df.ifNode('SELECT true', SQL1, SQL2, opts)).toThrow(msg);
    expect(() => df.ifRows('r', SQL1, 'SELECT 2', opts)).toThrow(msg);
    expect(() => df.join3(SQL1, SQL2, 'SELECT 3', opts)).toThrow(msg);
    expect(() => df.race(SQL1, 'x', opts)).toThrow(msg);
    expect(df.seq(SQL1, SQL2, opts)).toBe(df.seq(SQL1, SQL2));
  });

  it('rejects a malformed node operand', () => {
    expect(() => df.seq('{"node_type":"THEN","left_node":1}', 'SELECT 1')).toThrow(
      'Invalid Durofut JSON: failed to deserialize workflow step: Durofut children must be JSON objects',
    );
  });
});

describe('df.as', () => {
  it('sets the top-level result_name on any node, overwriting an existing one', () => {
    const named = df.as('SELECT 1', 'first');
    expect(df.as(named, 'second')).toBe('{"node_type":"SQL","query":"SELECT 1","result_name":"second"}');
    expect(df.as(df.seq('SELECT 1', 'SELECT 2'), 'both')).toBe(
      `{"node_type":"THEN","left_node":${SQL1},"right_node":${SQL2},"result_name":"both"}`,
    );
  });

  it('rejects an empty name', () => {
    expect(errorOf(() => df.as('SELECT 1', '')).message).toBe('df.as: result name cannot be empty');
  });

  it.each(['1abc', 'a-b', 'a b', '$x', 'naïve', 'x.y'])('rejects the invalid identifier %j', (name) => {
    expect(errorOf(() => df.as('SELECT 1', name)).message).toBe(
      `df.as: result name '${name}' is not a valid identifier — must match [a-zA-Z_][a-zA-Z0-9_]*`,
    );
  });

  it('validates the name before looking at the step', () => {
    expect(() => df.as('SELECT 1', '', { nonFutureHelper: 'df.setvar' })).toThrow('df.as: result name cannot be empty');
  });

  it.each(['_', 'a', 'A_1', '_x9'])('accepts %j', (name) => {
    expect(JSON.parse(df.as('SELECT 1', name)).result_name).toBe(name);
  });
});

describe('df.sleep', () => {
  it('stores the seconds as decimal text, 0 allowed', () => {
    expect(df.sleep(0)).toBe('{"node_type":"SLEEP","query":"0"}');
    expect(df.sleep(86400)).toBe('{"node_type":"SLEEP","query":"86400"}');
    expect(df.sleep(BigInt('9007199254740993'))).toBe('{"node_type":"SLEEP","query":"9007199254740993"}');
  });

  it('rejects negative durations', () => {
    expect(errorOf(() => df.sleep(-1)).message).toBe('Sleep duration must be non-negative');
  });
});

describe('df.wait_for_schedule', () => {
  it('stores only the expression, as given', () => {
    expect(df.waitForSchedule('0 9 * * 1-5')).toBe(String.raw`{"node_type":"WAIT_SCHEDULE","query":"{\"cron_expr\":\"0 9 * * 1-5\"}"}`);
  });

  it.each(['61 * * * *', '* * * *', '0 0 9 * * 1', 'not a cron', ''])('rejects %j at build time', (expr) => {
    expect(errorOf(() => df.waitForSchedule(expr)).message).toMatch(new RegExp(`^Invalid cron expression '${expr.replace(/\*/g, '\\*')}': .+`));
  });
});

describe('df.break', () => {
  it('stores the value as a literal JSON string, never wrapped or substituted', () => {
    expect(df.breakNode('$r.summary')).toBe(String.raw`{"node_type":"BREAK","query":"{\"break_value\":\"$r.summary\"}"}`);
    expect(df.breakNode('SELECT 1')).toBe(String.raw`{"node_type":"BREAK","query":"{\"break_value\":\"SELECT 1\"}"}`);
    expect(df.breakNode(null)).toBe(String.raw`{"node_type":"BREAK","query":"{\"break_value\":null}"}`);
  });
});

describe('df.if / df.if_rows', () => {
  it('if_rows does not validate the result name', () => {
    expect(JSON.parse(JSON.parse(df.ifRows('not valid!', 'a', 'b')).query)).toEqual({
      condition_type: 'result_has_rows',
      result_name: 'not valid!',
    });
  });
});

describe('df.loop NULL handling', () => {
  it('rejects a NULL body', () => {
    expect(errorOf(() => df.loop(null)).message).toBe('df.loop: body cannot be NULL');
  });
});

describe('df.http', () => {
  it('upper-cases the method and keeps body and headers as given', () => {
    expect(df.http('http://x.example/a', 'patch', '{"k":1}', { 'X-B': '2', 'X-A': '1' }, 5)).toBe(
      String.raw`{"node_type":"HTTP","query":"{\"url\":\"http://x.example/a\",\"method\":\"PATCH\",\"body\":\"{\\\"k\\\":1}\",\"headers\":{\"X-B\":\"2\",\"X-A\":\"1\"},\"timeout_seconds\":5}"}`,
    );
  });

  it('defaults to POST, no body, no headers, 30 s', () => {
    expect(JSON.parse(JSON.parse(df.http('https://x.example')).query)).toEqual({
      url: 'https://x.example',
      method: 'POST',
      body: null,
      headers: null,
      timeout_seconds: 30,
    });
  });

  it.each([
    ['ftp://x.example/a', 'ftp'],
    ['FILE:///etc/passwd', 'file'],
    ['x.example/a', 'x.example/a'],
    ['$endpoint', '$endpoint'],
  ])('blocks the URL %j (scheme %j)', (url, scheme) => {
    expect(errorOf(() => df.http(url, 'GET')).message).toBe(
      `Blocked: unsupported URL scheme '${scheme}'. Only http and https are allowed.`,
    );
  });

  it('accepts HTTP(S) in any case, and skips the scheme check for {var} URLs', () => {
    expect(() => df.http('HTTPS://x.example', 'GET')).not.toThrow();
    expect(() => df.http('{base_url}/items', 'GET')).not.toThrow();
  });

  it('rejects an unknown method, quoting it as given', () => {
    expect(errorOf(() => df.http('https://x.example', 'fetch')).message).toBe(
      'Invalid HTTP method: fetch. Must be GET, POST, PUT, DELETE, or PATCH',
    );
  });

  it('rejects a non-positive timeout', () => {
    expect(errorOf(() => df.http('https://x.example', 'GET', null, null, 0)).message).toBe('Timeout must be positive');
    expect(errorOf(() => df.http('https://x.example', 'GET', null, null, -5)).message).toBe('Timeout must be positive');
  });

  it('checks scheme, then method, then timeout', () => {
    expect(() => df.http('ftp://x', 'bad', null, null, 0)).toThrow('unsupported URL scheme');
    expect(() => df.http('https://x', 'bad', null, null, 0)).toThrow('Invalid HTTP method');
  });

  it('is never disabled at build time (deviation 9)', () => {
    expect(() => df.http('https://x.example', 'GET')).not.toThrow();
  });

  it('rejects NULL for required parameters', () => {
    expect(errorOf(() => df.http(null, 'GET')).message).toBe('df.http: url cannot be NULL');
    expect(errorOf(() => df.http('https://x', null)).message).toBe('df.http: method cannot be NULL');
    expect(errorOf(() => df.http('https://x', 'GET', null, null, null)).message).toBe('df.http: timeout_seconds cannot be NULL');
  });
});

describe('df.http_multipart', () => {
  const parts = [{ name: 'file', data_b64: 'aGk=', filename: 'a.txt' }];

  it('builds the config with keys url, method, parts, headers, timeout_seconds', () => {
    expect(df.httpMultipart('https://x.example/up', 'put', parts, null, 10)).toBe(
      String.raw`{"node_type":"HTTP_MULTIPART","query":"{\"url\":\"https://x.example/up\",\"method\":\"PUT\",\"parts\":[{\"name\":\"file\",\"data_b64\":\"aGk=\",\"filename\":\"a.txt\"}],\"headers\":null,\"timeout_seconds\":10}"}`,
    );
  });

  it('validates scheme, method, timeout and the parts array', () => {
    expect(errorOf(() => df.httpMultipart('gopher://x', 'POST', parts)).message).toBe(
      "Blocked: unsupported URL scheme 'gopher'. Only http and https are allowed.",
    );
    expect(errorOf(() => df.httpMultipart('https://x', 'get', parts)).message).toBe(
      'Invalid HTTP method for multipart: get. Must be POST, PUT, or PATCH',
    );
    expect(errorOf(() => df.httpMultipart('https://x', 'POST', parts, null, 0)).message).toBe('Timeout must be positive');
    expect(errorOf(() => df.httpMultipart('https://x', 'POST', null)).message).toBe('parts is required and cannot be NULL');
    expect(errorOf(() => df.httpMultipart('https://x', 'POST', { name: 'a' })).message).toBe(
      'parts must be a JSON array of part objects',
    );
    expect(errorOf(() => df.httpMultipart('https://x', 'POST', [])).message).toBe('parts must contain at least one part');
  });

  it('does not validate the shape of individual parts at build time', () => {
    expect(() => df.httpMultipart('https://x', 'POST', [42])).not.toThrow();
  });

  it('rejects NULL for required parameters', () => {
    expect(errorOf(() => df.httpMultipart(null, 'POST', parts)).message).toBe('df.http_multipart: url cannot be NULL');
    expect(errorOf(() => df.httpMultipart('https://x', null, parts)).message).toBe('df.http_multipart: method cannot be NULL');
    expect(errorOf(() => df.httpMultipart('https://x', 'POST', parts, null, null)).message).toBe(
      'df.http_multipart: timeout_seconds cannot be NULL',
    );
  });
});

describe('df.wait_for_signal', () => {
  it('rejects an empty or NULL name', () => {
    expect(errorOf(() => df.waitForSignal('')).message).toBe('Signal name cannot be empty');
    expect(errorOf(() => df.waitForSignal(null)).message).toBe('df.wait_for_signal: name cannot be NULL');
  });

  it('rejects a non-positive timeout, allows NULL (wait forever)', () => {
    expect(errorOf(() => df.waitForSignal('go', 0)).message).toBe('Timeout must be positive');
    expect(errorOf(() => df.waitForSignal('go', -1)).message).toBe('Timeout must be positive');
    expect(JSON.parse(JSON.parse(df.waitForSignal('go', null)).query).timeout_seconds).toBeNull();
  });
});
