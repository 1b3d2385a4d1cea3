import { describe, it, expect } from 'vitest';
import * as df from '../../src/core/builders';
import { ensureStrict } from '../../src/core/ensure';
import { buildTree, flattenGraph, newNodeId, type NodeRow } from '../../src/core/flatten';
import type { Node, TreeNode } from '../../src/core/node';
import { validateGraph } from '../../src/core/validate';

/** Deterministic id source: 00000001, 00000002, … */
function counter(): () => string {
  let n = 0;
  return () => (++n).toString(16).padStart(8, '0');
}

/** A TreeNode read back, in the DSL's Node shape (ids dropped, null fields absent). */
function toNode(tree: TreeNode): Node {
  const node: Node = { node_type: tree.node_type };
  if (tree.left) node.left_node = toNode(tree.left);
  if (tree.right) node.right_node = toNode(tree.right);
  if (tree.condition) node.condition_node = toNode(tree.condition);
  if (tree.extras) node.extra_nodes = tree.extras.map(toNode);
  if (tree.query !== null) node.query = tree.query;
  if (tree.result_name !== null) node.result_name = tree.result_name;
  return node;
}

const parse = (text: string): Node => ensureStrict(text);

describe('flattenGraph', () => {
  it('assigns ids on discovery (root, then each node’s children left, right, condition, extras) and emits rows in pre-order', () => {
    const graph = parse(df.seq(df.ifNode('SELECT c', 'SELECT t', 'SELECT e'), df.join3('SELECT a', 'SELECT b', df.as('SELECT x', 'x'))));
    const { rootId, rows } = flattenGraph(graph, counter());
    expect(rootId).toBe('00000001');
    expect(rows).toEqual<NodeRow[]>([
      { id: '00000001', node_type: 'THEN', query: null, result_name: null, left_node: '00000002', right_node: '00000003' },
      { id: '00000002', node_type: 'IF', query: '{"condition_node":"00000006"}', result_name: null, left_node: '00000004', right_node: '00000005' },
      { id: '00000004', node_type: 'SQL', query: 'SELECT t', result_name: null, left_node: null, right_node: null },
      { id: '00000005', node_type: 'SQL', query: 'SELECT e', result_name: null, left_node: null, right_node: null },
      { id: '00000006', node_type: 'SQL', query: 'SELECT c', result_name: null, left_node: null, right_node: null },
      { id: '00000003', node_type: 'JOIN', query: '{"extra_nodes":["00000009"]}', result_name: null, left_node: '00000007', right_node: '00000008' },
      { id: '00000007', node_type: 'SQL', query: 'SELECT a', result_name: null, left_node: null, right_node: null },
      { id: '00000008', node_type: 'SQL', query: 'SELECT b', result_name: null, left_node: null, right_node: null },
      { id: '00000009', node_type: 'SQL', query: 'SELECT x', result_name: 'x', left_node: null, right_node: null },
    ]);
  });

  it('persists a while-loop condition and leaves a plain loop, if_rows and two-branch JOIN queries alone', () => {
    const whileLoop = flattenGraph(parse(df.loop('SELECT 1', 'SELECT true')), counter()).rows[0];
    expect(whileLoop.query).toBe('{"condition_node":"00000003"}');
    expect(flattenGraph(parse(df.loop('SELECT 1')), counter()).rows[0].query).toBeNull();
    expect(flattenGraph(parse(df.join('a', 'b')), counter()).rows[0].query).toBeNull();
    expect(flattenGraph(parse(df.ifRows('data', 'a', 'b')), counter()).rows[0].query).toBe(
      '{"condition_type":"result_has_rows","result_name":"data"}',
    );
  });

  it('merges into an existing JSON config: existing keys first, then condition_node, then extra_nodes', () => {
    const ifNode: Node = {
      node_type: 'IF',
      left_node: { node_type: 'SQL', query: 't' },
      right_node: { node_type: 'SQL', query: 'e' },
      condition_node: { node_type: 'SQL', query: 'c' },
      query: '{ "z": 1, "a": [1, 2] }',
    };
    expect(flattenGraph(ifNode, counter()).rows[0].query).toBe('{"z":1,"a":[1,2],"condition_node":"00000004"}');
    const join: Node = { ...parse(df.join3('a', 'b', 'c')), query: '{"k":"v"}' };
    expect(flattenGraph(join, counter()).rows[0].query).toBe('{"k":"v","extra_nodes":["00000004"]}');
  });

  it('redraws colliding ids', () => {
    const draws = ['aaaaaaaa', 'aaaaaaaa', 'aaaaaaaa', 'bbbbbbbb', 'bbbbbbbb', 'cccccccc'];
    const { rows } = flattenGraph(parse(df.seq('a', 'b')), () => draws.shift() as string);
    expect(rows.map((r) => r.id)).toEqual(['aaaaaaaa', 'bbbbbbbb', 'cccccccc']);
    expect(draws).toEqual([]);
  });

  it('gives up after 10 colliding attempts for one id', () => {
    let calls = 0;
    expect(() =>
      flattenGraph(parse(df.seq('a', 'b')), () => {
        calls++;
        return 'deadbeef';
      }),
    ).toThrow('Failed to create instance: exhausted 10 attempts to generate a collision-free node ID');
    expect(calls).toBe(11); // 1 for the root, 10 failed attempts for its left child
  });

  it('flattens 10 000 nodes and a 256-deep graph', () => {
    const wide: Node = {
      node_type: 'JOIN',
      left_node: { node_type: 'SQL', query: 'a' },
      right_node: { node_type: 'SQL', query: 'b' },
      extra_nodes: Array.from({ length: 9997 }, (_, i) => ({ node_type: 'SQL' as const, query: `SELECT ${i}` })),
    };
    expect(flattenGraph(wide, newNodeId).rows).toHaveLength(10000);
    let deep = 'SELECT 1';
    for (let i = 0; i < 256; i++) deep = df.seq(deep, 'SELECT 1');
    expect(flattenGraph(parse(deep), counter()).rows).toHaveLength(513);
  });
});

describe('newNodeId', () => {
  it('returns 8 lowercase hex characters', () => {
    for (let i = 0; i < 1000; i++) expect(newNodeId()).toMatch(/^[0-9a-f]{8}$/);
  });
});

describe('buildTree', () => {
  const graphs: Array<[string, string]> = [
    ['a single SQL step', df.sql('SELECT 1')],
    ['a named sequence', df.as(df.seq(df.as('SELECT 1', 'a'), 'SELECT $a'), 'both')],
    ['df.if', df.ifNode('SELECT true', df.sleep(5), df.waitForSchedule('0 9 * * 1-5'))],
    ['df.if_rows', df.ifRows('data', 'SELECT 1', df.breakNode('x'))],
    ['a while loop', df.loop(df.seq(df.waitForSignal('go', 60), df.http('https://x.example', 'GET')), 'SELECT false')],
    ['a JOIN with extras inside a RACE', df.race(df.join3('a', 'b', df.join3('c', 'd', 'e')), df.httpMultipart('https://x', 'POST', [{ name: 'f', data_b64: 'eA==' }]))],
  ];

  for (const [label, text] of graphs) {
    it(`round-trips ${label}: flatten then buildTree gives back the original shape`, () => {
      const node = parse(text);
      validateGraph(node);
      const { rootId, rows } = flattenGraph(node, newNodeId);
      const tree = buildTree(rows, rootId);
      expect(tree.id).toBe(rootId);
      expect(toNode(tree)).toEqual(node);
    });
  }

  it('round-trips an own JSON query next to a condition (envelope form, persisted keys lifted)', () => {
    const node: Node = { ...parse(df.loop('SELECT 1', 'SELECT true')), query: '{"note":"x"}' };
    const { rootId, rows } = flattenGraph(node, counter());
    const tree = buildTree(rows, rootId);
    expect(tree.query).toBe('{"note":"x"}');
    expect(toNode(tree)).toEqual(node);
  });

  it('does not lift condition_node out of a SQL query that happens to look like config', () => {
    const rows: NodeRow[] = [{ id: '00000001', node_type: 'SQL', query: '{"condition_node":"00000002"}', result_name: null, left_node: null, right_node: null }];
    expect(buildTree(rows, '00000001')).toEqual({ id: '00000001', node_type: 'SQL', query: '{"condition_node":"00000002"}', result_name: null });
  });

  it('keeps ids and does not depend on row order', () => {
    const { rootId, rows } = flattenGraph(parse(df.ifNode('c', 't', 'e')), counter());
    const tree = buildTree(rows.slice().reverse(), rootId);
    expect([tree.id, tree.left!.id, tree.right!.id, tree.condition!.id]).toEqual(['00000001', '00000002', '00000003', '00000004']);
  });

  describe('hand-edited rows', () => {
    const row = (id: string, extra: Partial<NodeRow> = {}): NodeRow => ({
      id,
      node_type: 'SQL',
      query: 'x',
      result_name: null,
      left_node: null,
      right_node: null,
      ...extra,
    });

    it('reports a missing root', () => {
      expect(() => buildTree([row('00000001')], 'ffffffff')).toThrow("Invalid node graph: root node 'ffffffff' not found");
    });

    it('reports a missing child', () => {
      const rows = [row('00000001', { node_type: 'THEN', query: null, left_node: '00000002', right_node: '00000009' }), row('00000002')];
      expect(() => buildTree(rows, '00000001')).toThrow("Invalid node graph: node '00000009' referenced by '00000001' (right_node) not found");
    });

    it('reports a missing condition or extra', () => {
      const loop = [row('00000001', { node_type: 'LOOP', query: '{"condition_node":"0000000c"}', left_node: '00000002' }), row('00000002')];
      expect(() => buildTree(loop, '00000001')).toThrow("node '0000000c' referenced by '00000001' (condition_node) not found");
    });

    it('reports a cycle', () => {
      const rows = [
        row('00000001', { node_type: 'THEN', query: null, left_node: '00000002', right_node: '00000003' }),
        row('00000002'),
        row('00000003', { node_type: 'LOOP', query: null, left_node: '00000001' }),
      ];
      expect(() => buildTree(rows, '00000001')).toThrow("Invalid node graph: node '00000001' is referenced more than once (cycle or shared child)");
    });

    it('reports a shared child', () => {
      const rows = [row('00000001', { node_type: 'THEN', query: null, left_node: '00000002', right_node: '00000002' }), row('00000002')];
      expect(() => buildTree(rows, '00000001')).toThrow('is referenced more than once');
    });

    it('reports malformed persisted references', () => {
      const rows = [row('00000001', { node_type: 'JOIN', query: '{"extra_nodes":"00000004"}', left_node: '00000002', right_node: '00000003' }), row('00000002'), row('00000003')];
      expect(() => buildTree(rows, '00000001')).toThrow("Invalid node row '00000001': extra_nodes must be an array of node ids");
    });
  });
});
