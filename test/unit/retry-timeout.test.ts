/** df.retry and df.timeout (ours, beyond the original): their JSON, their checks, their rendering. */
import { describe, expect, it } from 'vitest';
import { retry, timeout } from '../../src/core/builders';
import { ensureStrict } from '../../src/core/ensure';
import { displayTree, renderMermaid, renderTree } from '../../src/core/explain';
import { validateGraph } from '../../src/core/validate';

describe('df.retry / df.timeout builders', () => {
  it('wrap any step with its policy as JSON config', () => {
    expect(retry('SELECT 1', 3, 1)).toBe('{"node_type":"RETRY","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\\"max_attempts\\":3,\\"backoff_seconds\\":1}"}');
    expect(timeout('SELECT 1', 2.5)).toBe('{"node_type":"TIMEOUT","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\\"seconds\\":2.5}"}');
  });

  it('reject policies that make no sense, naming the argument', () => {
    expect(() => retry('SELECT 1', 0, 1)).toThrow('df.retry: max_attempts must be a whole number between 1 and 100, got 0');
    expect(() => retry('SELECT 1', 101, 1)).toThrow('df.retry: max_attempts must be a whole number between 1 and 100, got 101');
    expect(() => retry('SELECT 1', 3, -1)).toThrow('df.retry: backoff_seconds must be between 0 and 86400, got -1');
    expect(() => timeout('SELECT 1', 0)).toThrow('df.timeout: seconds must be positive and at most 31536000, got 0');
  });
});

describe('validation of hand-written RETRY / TIMEOUT nodes', () => {
  const check = (json: string) => () => validateGraph(ensureStrict(json));
  it('accepts what the builders produce', () => {
    expect(check(retry(timeout('SELECT 1', 5), 2, 0))).not.toThrow();
  });
  it('requires a child and a valid config', () => {
    expect(check('{"node_type":"RETRY","query":"{\\"max_attempts\\":3,\\"backoff_seconds\\":1}"}')).toThrow('root: RETRY node requires left_node (the node it applies to)');
    expect(check('{"node_type":"TIMEOUT","left_node":{"node_type":"SQL","query":"x"}}')).toThrow('root: TIMEOUT node requires a query (its JSON config)');
    expect(check('{"node_type":"RETRY","left_node":{"node_type":"SQL","query":"x"},"query":"{\\"max_attempts\\":0,\\"backoff_seconds\\":1}"}')).toThrow('RETRY max_attempts must be a whole number between 1 and 100');
    expect(check('{"node_type":"TIMEOUT","left_node":{"node_type":"SQL","query":"x"},"query":"{\\"seconds\\":-2}"}')).toThrow('TIMEOUT seconds must be positive');
  });
});

describe('rendering', () => {
  const graph = displayTree(ensureStrict(retry(timeout("SELECT 'a'", 5), 3, 2)));
  it('explain shows the policy and its child', () => {
    expect(renderTree(graph).split('\n').map((l) => l.trimEnd())).toEqual([
      'RETRY (max 3 attempts, backoff 2s)',
      '    ↺ attempt:',
      '      └─TIMEOUT 5s',
      '          ⏱ within:',
      "            └─SQL: SELECT 'a'",
    ]);
  });
  it('mermaid labels the edges', () => {
    const m = renderMermaid(graph);
    expect(m).toContain('RETRY (max 3 attempts, backoff 2s)');
    expect(m).toContain('-->|attempt|');
    expect(m).toContain('-->|within|');
  });
});
