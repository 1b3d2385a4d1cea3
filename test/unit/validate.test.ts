import { describe, it, expect } from 'vitest';
import * as df from '../../src/core/builders';
import { ensureStep, ensureStrict } from '../../src/core/ensure';
import { DfError } from '../../src/core/errors';
import type { Node } from '../../src/core/node';
import { GraphError, validateGraph } from '../../src/core/validate';

const VALID_TYPES = 'SQL, THEN, IF, JOIN, LOOP, BREAK, RACE, SLEEP, WAIT_SCHEDULE, HTTP, HTTP_MULTIPART, SIGNAL, RETRY, TIMEOUT, UNDO';
const sqlNode = (q = 'SELECT 1'): Node => ({ node_type: 'SQL', query: q });

function graphError(root: Node | string): GraphError {
  const node = typeof root === 'string' ? ensureStrict(root) : root;
  try {
    validateGraph(node);
  } catch (e) {
    expect(e).toBeInstanceOf(GraphError);
    expect(e).toBeInstanceOf(DfError);
    const g = e as GraphError;
    expect(g.message).toBe(`Invalid durable function graph: ${g.path}: ${g.detail}`);
    return g;
  }
  throw new Error('expected a GraphError');
}

/** `depth` nested df.seq calls: seq(seq(...seq('SELECT 1','SELECT 1')...)) */
function nestedSeq(depth: number): string {
  let fut = 'SELECT 1';
  for (let i = 0; i < depth; i++) fut = df.seq(fut, 'SELECT 1');
  return fut;
}

describe('validateGraph', () => {
  it('accepts what the builders produce and returns the node count', () => {
    const graph = df.seq(
      df.as('SELECT 1', 'a'),
      df.join3(
        df.ifNode('SELECT true', df.sleep(1), df.waitForSchedule('0 9 * * 1-5')),
        df.loop(df.seq(df.waitForSignal('go', 10), df.breakNode('done')), 'SELECT false'),
        df.race(df.http('https://x.example', 'GET'), df.httpMultipart('https://x.example', 'POST', [{ name: 'f', data_b64: '' }])),
      ),
    );
    expect(validateGraph(ensureStrict(graph))).toBe(15);
    expect(validateGraph(ensureStrict(df.ifRows('rows', 'a', 'b')))).toBe(3);
    expect(validateGraph(sqlNode())).toBe(1);
  });

  describe('nesting depth (root = depth 0)', () => {
    it('accepts 256 nested df.seq levels', () => {
      expect(validateGraph(ensureStrict(nestedSeq(256)))).toBe(513);
    });

    it('rejects 257 nested df.seq levels at the first node deeper than 256', () => {
      const err = graphError(nestedSeq(257));
      expect(err.path).toBe('root' + '.left'.repeat(257));
      expect(err.detail).toBe(
        'Graph exceeds maximum nesting depth of 256. Simplify the workflow or break it into multiple instances.',
      );
    });

    it('reports depth (not a stack overflow) for a 300-deep hand-written graph', () => {
      let text = '{"node_type":"SQL","query":"x"}';
      for (let i = 0; i < 300; i++) text = `{"node_type":"LOOP","left_node":${text}}`;
      expect(graphError(text).detail).toContain('maximum nesting depth of 256');
    });

    it('copes with a 100 000-deep graph', () => {
      let node: Node = sqlNode();
      for (let i = 0; i < 100000; i++) node = { node_type: 'LOOP', left_node: node };
      expect(graphError(node).detail).toContain('maximum nesting depth of 256');
    });
  });

  describe('node count', () => {
    const joinWith = (extras: number): Node => ({
      node_type: 'JOIN',
      left_node: sqlNode(),
      right_node: sqlNode(),
      extra_nodes: Array.from({ length: extras }, () => sqlNode()),
    });

    it('accepts 10 000 nodes (a JOIN with 999 extras is routine)', () => {
      expect(validateGraph(joinWith(999))).toBe(1002);
      expect(validateGraph(joinWith(9997))).toBe(10000);
    });

    it('rejects the 10 001st node', () => {
      const err = graphError(joinWith(9998));
      expect(err.path).toBe('root.extra_nodes[9997]');
      expect(err.detail).toBe(
        'Workflow exceeds maximum node count of 10000. Simplify the workflow or break it into multiple instances.',
      );
    });
  });

  describe('unknown node types are reported with their path', () => {
    it.each([
      ['{"node_type":"THEN","left_node":{"node_type":"NOT_A_NODE"},"right_node":{"node_type":"SQL","query":"x"}}', 'root.left'],
      ['{"node_type":"THEN","left_node":{"node_type":"SQL","query":"x"},"right_node":{"node_type":"NOT_A_NODE"}}', 'root.right'],
      ['{"node_type":"LOOP","left_node":{"node_type":"SQL","query":"x"},"condition_node":{"node_type":"NOT_A_NODE"}}', 'root.condition_node'],
      [
        '{"node_type":"THEN","left_node":{"node_type":"JOIN","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"},"extra_nodes":[{"node_type":"SQL","query":"c"},{"node_type":"THEN","left_node":{"node_type":"SQL","query":"d"},"right_node":{"node_type":"NOT_A_NODE"}}]},"right_node":{"node_type":"SQL","query":"e"}}',
        'root.left.extra_nodes[1].right',
      ],
    ])('%s → %s', (text, path) => {
      const err = graphError(text);
      expect(err.path).toBe(path);
      expect(err.detail).toBe(`Unknown node_type 'NOT_A_NODE'. Valid types: ${VALID_TYPES}`);
    });

    it('survives composition: a composed operand keeps its bad child', () => {
      const bad = '{"node_type":"THEN","left_node":{"node_type":"NOT_A_NODE"},"right_node":{"node_type":"SQL","query":"x"}}';
      expect(graphError(df.seq('SELECT 0', bad)).path).toBe('root.right.left');
    });

    it('reports an unknown root (explain graph mode) at root', () => {
      const root = { node_type: 'NOT_A_NODE' } as unknown as Node;
      expect(graphError(root).message).toBe(`Invalid durable function graph: root: Unknown node_type 'NOT_A_NODE'. Valid types: ${VALID_TYPES}`);
    });
  });

  it('reports a child that does not deserialise', () => {
    const err = graphError(df.seq('{"node_type":"THEN","left_node":{"node_type":"SQL","query":5},"right_node":{"node_type":"SQL","query":"x"}}', 'SELECT 2'));
    expect(err.path).toBe('root.left.left');
    expect(err.detail).toBe('failed to deserialize Durofut child: query must be a JSON string');
  });

  it.each([
    ['SQL', 'root', { node_type: 'SQL', query: 'x', condition_node: sqlNode() }, 'condition_node is not valid for SQL nodes'],
    ['THEN', 'root', { node_type: 'THEN', left_node: sqlNode(), right_node: sqlNode(), condition_node: sqlNode() }, 'condition_node is not valid for THEN nodes'],
    ['RACE', 'root', { node_type: 'RACE', left_node: sqlNode(), right_node: sqlNode(), extra_nodes: [sqlNode()] }, 'extra_nodes is not valid for RACE nodes'],
    ['IF', 'root', { node_type: 'IF', left_node: sqlNode(), right_node: sqlNode(), condition_node: sqlNode(), extra_nodes: [sqlNode()] }, 'extra_nodes is not valid for IF nodes'],
  ] as Array<[string, string, Node, string]>)('rejects misplaced child fields on %s', (_t, path, node, detail) => {
    const err = graphError(node);
    expect([err.path, err.detail]).toEqual([path, detail]);
  });

  describe('legacy layouts with children embedded in query', () => {
    it.each([
      ['IF', { node_type: 'IF', left_node: sqlNode(), right_node: sqlNode(), query: '{"condition_node":{"node_type":"SQL","query":"SELECT true"}}' }],
      ['LOOP', { node_type: 'LOOP', left_node: sqlNode(), query: '{"condition_node":{"node_type":"SQL","query":"SELECT true"}}' }],
    ] as Array<[string, Node]>)('rejects condition_node inside the query of %s', (t, node) => {
      expect(graphError(node).detail).toBe(`condition_node in ${t} must be a first-class Durofut field, not embedded in query`);
    });

    it('rejects extra_nodes inside the query of JOIN', () => {
      const node: Node = { node_type: 'JOIN', left_node: sqlNode(), right_node: sqlNode(), query: '{"extra_nodes":[{"node_type":"SQL","query":"x"}]}' };
      expect(graphError(node).detail).toBe('extra_nodes in JOIN must be a first-class Durofut field, not embedded in query');
    });
  });

  describe('query merge of condition_node / extra_nodes into a node that has its own query', () => {
    it('accepts a JSON object query', () => {
      const node: Node = { node_type: 'IF', left_node: sqlNode(), right_node: sqlNode(), condition_node: sqlNode(), query: '{"note":"x"}' };
      expect(validateGraph(node)).toBe(4);
    });

    it('rejects a query that is not JSON', () => {
      const node: Node = { node_type: 'IF', left_node: sqlNode(), right_node: sqlNode(), condition_node: sqlNode(), query: 'SELECT true' };
      expect(graphError(node).detail).toMatch(/^query in IF must be valid JSON config: .+/);
    });

    it('rejects a query that is JSON but not an object', () => {
      const loop: Node = { node_type: 'LOOP', left_node: sqlNode(), condition_node: sqlNode(), query: '[1]' };
      expect(graphError(loop).detail).toBe('query in LOOP must be a JSON config object');
      const join: Node = { node_type: 'JOIN', left_node: sqlNode(), right_node: sqlNode(), extra_nodes: [sqlNode()], query: '"x"' };
      expect(graphError(join).detail).toBe('query in JOIN must be a JSON config object');
    });

    it('does not need JSON when nothing is merged (JOIN without extras)', () => {
      expect(validateGraph({ node_type: 'JOIN', left_node: sqlNode(), right_node: sqlNode(), query: 'anything' })).toBe(3);
    });
  });

  describe('structure (the original table CHECKs)', () => {
    it.each([
      [{ node_type: 'SQL' }, 'SQL node requires a query'],
      [{ node_type: 'SLEEP', left_node: sqlNode(), query: '1' }, 'SLEEP node must not have left_node or right_node'],
      [{ node_type: 'SIGNAL', right_node: sqlNode(), query: '{}' }, 'SIGNAL node must not have left_node or right_node'],
      [{ node_type: 'THEN', left_node: sqlNode() }, 'THEN node requires left_node and right_node'],
      [{ node_type: 'THEN', left_node: sqlNode(), right_node: sqlNode(), query: 'x' }, 'THEN node must not have a query'],
      [{ node_type: 'IF', left_node: sqlNode(), condition_node: sqlNode() }, 'IF node requires left_node (then branch) and right_node (else branch)'],
      [{ node_type: 'IF', left_node: sqlNode(), right_node: sqlNode() }, 'IF node requires a condition_node or a query (df.if_rows config)'],
      [{ node_type: 'LOOP' }, 'LOOP node requires left_node (the loop body)'],
      [{ node_type: 'LOOP', left_node: sqlNode(), right_node: sqlNode() }, 'LOOP node must not have right_node'],
      [{ node_type: 'JOIN', right_node: sqlNode() }, 'JOIN node requires left_node and right_node'],
      [{ node_type: 'RACE', left_node: sqlNode() }, 'RACE node requires left_node and right_node'],
      [{ node_type: 'RACE', left_node: sqlNode(), right_node: sqlNode(), query: 'x' }, 'RACE node must not have a query'],
    ] as Array<[Node, string]>)('%j → %s', (node, detail) => {
      const err = graphError(node);
      expect([err.path, err.detail]).toEqual(['root', detail]);
    });
  });

  describe('result names', () => {
    it.each(['1x', 'a-b', '', 'é'])('rejects %j with its path', (name) => {
      const node: Node = { node_type: 'THEN', left_node: sqlNode(), right_node: { node_type: 'SQL', query: 'x', result_name: name } };
      const err = graphError(node);
      expect(err.path).toBe('root.right');
      expect(err.detail).toBe(`result_name '${name}' is not a valid identifier — must match [a-zA-Z_][a-zA-Z0-9_]*`);
    });
  });

  describe('per-type config', () => {
    it.each([
      ['SLEEP', '-1', "SLEEP query must be a non-negative integer number of seconds, got '-1'"],
      ['SLEEP', '1.5', "SLEEP query must be a non-negative integer number of seconds, got '1.5'"],
      ['SLEEP', '', "SLEEP query must be a non-negative integer number of seconds, got ''"],
      ['WAIT_SCHEDULE', '*/5 * * * *', /^query in WAIT_SCHEDULE must be valid JSON config: /],
      ['WAIT_SCHEDULE', '{}', 'WAIT_SCHEDULE config requires a string cron_expr'],
      ['WAIT_SCHEDULE', '{"cron_expr":"61 * * * *"}', /^Invalid cron expression '61 \* \* \* \*': /],
      ['SIGNAL', '[]', 'query in SIGNAL must be a JSON config object'],
      ['SIGNAL', '{"signal_name":""}', 'SIGNAL config requires a non-empty string signal_name'],
      ['SIGNAL', '{"signal_name":"go","timeout_seconds":0}', 'SIGNAL timeout_seconds must be null or a positive integer'],
      ['SIGNAL', '{"signal_name":"go","timeout_seconds":"10"}', 'SIGNAL timeout_seconds must be null or a positive integer'],
      ['BREAK', '{"break_value":1}', 'BREAK break_value must be a string or null'],
      ['BREAK', 'done', /^query in BREAK must be valid JSON config: /],
      ['HTTP', '{"method":"GET"}', 'HTTP config requires a string url'],
      ['HTTP', '{"url":"https://x"}', 'HTTP config requires a string method'],
      ['HTTP_MULTIPART', '{"url":"https://x","method":"POST"}', 'HTTP_MULTIPART config requires a parts array'],
    ] as Array<[string, string, string | RegExp]>)('%s query %j is rejected', (t, query, detail) => {
      const err = graphError({ node_type: t, query } as Node);
      if (typeof detail === 'string') expect(err.detail).toBe(detail);
      else expect(err.detail).toMatch(detail);
    });

    it('rejects an IF without condition_node whose query is not the if_rows config', () => {
      const node: Node = { node_type: 'IF', left_node: sqlNode(), right_node: sqlNode(), query: '{"condition_type":"other"}' };
      expect(graphError(node).detail).toBe(
        'IF without condition_node requires a query {"condition_type":"result_has_rows","result_name":"<name>"}',
      );
    });

    it('accepts BREAK and SIGNAL configs with absent optional keys, and 0-second sleeps', () => {
      expect(validateGraph({ node_type: 'BREAK', query: '{}' })).toBe(1);
      expect(validateGraph({ node_type: 'SIGNAL', query: '{"signal_name":"go"}' })).toBe(1);
      expect(validateGraph({ node_type: 'SLEEP', query: '0' })).toBe(1);
    });
  });

  it('walks in pre-order: left before right before condition before extras', () => {
    const bad = (q: string): Node => ({ node_type: 'SQL', query: q, result_name: '1bad' });
    expect(graphError({ node_type: 'IF', left_node: bad('l'), right_node: bad('r'), condition_node: bad('c') }).path).toBe('root.left');
    expect(graphError({ node_type: 'IF', left_node: sqlNode(), right_node: bad('r'), condition_node: bad('c') }).path).toBe('root.right');
    expect(graphError({ node_type: 'IF', left_node: sqlNode(), right_node: sqlNode(), condition_node: bad('c') }).path).toBe('root.condition_node');
    expect(
      graphError({ node_type: 'JOIN', left_node: { node_type: 'LOOP', left_node: bad('deep') }, right_node: bad('r') }).path,
    ).toBe('root.left.left');
  });

  it('ensureStep output of plain SQL validates', () => {
    expect(validateGraph(ensureStep('SELECT 1'))).toBe(1);
  });
});
