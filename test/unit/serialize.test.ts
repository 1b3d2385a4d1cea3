import { describe, it, expect } from 'vitest';
import * as df from '../../src/core/builders';
import { ensureStep } from '../../src/core/ensure';
import type { Node } from '../../src/core/node';
import { serializeNode } from '../../src/core/serialize';

// API §3.15, with the `{...}` abbreviations written out in full.
const WIRE_EXAMPLES: Array<[string, () => string, string]> = [
  [
    "df.seq('SELECT 1','SELECT 2')",
    () => df.seq('SELECT 1', 'SELECT 2'),
    String.raw`{"node_type":"THEN","left_node":{"node_type":"SQL","query":"SELECT 1"},"right_node":{"node_type":"SQL","query":"SELECT 2"}}`,
  ],
  ["df.as('SELECT 1','x')", () => df.as('SELECT 1', 'x'), String.raw`{"node_type":"SQL","query":"SELECT 1","result_name":"x"}`],
  [
    "df.if('SELECT true','SELECT 1','SELECT 2')",
    () => df.ifNode('SELECT true', 'SELECT 1', 'SELECT 2'),
    String.raw`{"node_type":"IF","left_node":{"node_type":"SQL","query":"SELECT 1"},"right_node":{"node_type":"SQL","query":"SELECT 2"},"condition_node":{"node_type":"SQL","query":"SELECT true"}}`,
  ],
  [
    "df.if_rows('data','SELECT 1','SELECT 2')",
    () => df.ifRows('data', 'SELECT 1', 'SELECT 2'),
    String.raw`{"node_type":"IF","left_node":{"node_type":"SQL","query":"SELECT 1"},"right_node":{"node_type":"SQL","query":"SELECT 2"},"query":"{\"condition_type\":\"result_has_rows\",\"result_name\":\"data\"}"}`,
  ],
  [
    "df.join3('SELECT 1','SELECT 2','SELECT 3')",
    () => df.join3('SELECT 1', 'SELECT 2', 'SELECT 3'),
    String.raw`{"node_type":"JOIN","left_node":{"node_type":"SQL","query":"SELECT 1"},"right_node":{"node_type":"SQL","query":"SELECT 2"},"extra_nodes":[{"node_type":"SQL","query":"SELECT 3"}]}`,
  ],
  [
    "df.loop('SELECT 1','SELECT true')",
    () => df.loop('SELECT 1', 'SELECT true'),
    String.raw`{"node_type":"LOOP","left_node":{"node_type":"SQL","query":"SELECT 1"},"condition_node":{"node_type":"SQL","query":"SELECT true"}}`,
  ],
  [`df.break('{"a":1}')`, () => df.breakNode('{"a":1}'), String.raw`{"node_type":"BREAK","query":"{\"break_value\":\"{\\\"a\\\":1}\"}"}`],
  ['df.break()', () => df.breakNode(), String.raw`{"node_type":"BREAK","query":"{\"break_value\":null}"}`],
  ['df.sleep(60)', () => df.sleep(60), String.raw`{"node_type":"SLEEP","query":"60"}`],
  [
    "df.wait_for_schedule('*/5 * * * *')",
    () => df.waitForSchedule('*/5 * * * *'),
    String.raw`{"node_type":"WAIT_SCHEDULE","query":"{\"cron_expr\":\"*/5 * * * *\"}"}`,
  ],
  [
    "df.wait_for_signal('approval',3600)",
    () => df.waitForSignal('approval', 3600),
    String.raw`{"node_type":"SIGNAL","query":"{\"signal_name\":\"approval\",\"timeout_seconds\":3600}"}`,
  ],
  [
    "df.wait_for_signal('go')",
    () => df.waitForSignal('go'),
    String.raw`{"node_type":"SIGNAL","query":"{\"signal_name\":\"go\",\"timeout_seconds\":null}"}`,
  ],
  [
    "df.http('https://api.example.com/x','get')",
    () => df.http('https://api.example.com/x', 'get'),
    String.raw`{"node_type":"HTTP","query":"{\"url\":\"https://api.example.com/x\",\"method\":\"GET\",\"body\":null,\"headers\":null,\"timeout_seconds\":30}"}`,
  ],
];

describe('API §3.15 wire examples are reproduced byte for byte', () => {
  for (const [call, build, expected] of WIRE_EXAMPLES) {
    it(call, () => {
      expect(build()).toBe(expected);
    });
  }

  it('is deterministic: the same DSL gives the same text, and re-serialising a parsed envelope is the identity', () => {
    for (const [, build, expected] of WIRE_EXAMPLES) {
      expect(build()).toBe(build());
      expect(serializeNode(ensureStep(expected))).toBe(expected);
    }
  });
});

describe('serializeNode', () => {
  it('writes keys in the fixed order node_type, left, right, condition, extras, query, result_name whatever the object order', () => {
    const node = {
      result_name: 'r',
      query: '{"x":1}',
      extra_nodes: [{ query: 'SELECT 3', node_type: 'SQL' }],
      condition_node: { node_type: 'SQL', query: 'SELECT true' },
      right_node: { node_type: 'SQL', query: 'SELECT 2' },
      left_node: { node_type: 'SQL', query: 'SELECT 1' },
      node_type: 'JOIN',
    } as unknown as Node;
    expect(serializeNode(node)).toBe(
      String.raw`{"node_type":"JOIN","left_node":{"node_type":"SQL","query":"SELECT 1"},"right_node":{"node_type":"SQL","query":"SELECT 2"},"condition_node":{"node_type":"SQL","query":"SELECT true"},"extra_nodes":[{"node_type":"SQL","query":"SELECT 3"}],"query":"{\"x\":1}","result_name":"r"}`,
    );
  });

  it('omits absent fields, undefined fields and an empty extra_nodes', () => {
    const node: Node = { node_type: 'JOIN', left_node: { node_type: 'SQL', query: 'a' }, right_node: { node_type: 'SQL', query: 'b' }, extra_nodes: [], query: undefined };
    expect(serializeNode(node)).toBe('{"node_type":"JOIN","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"}}');
  });

  it('escapes strings like serde_json: quotes, backslashes, control characters; leaves non-ASCII and / alone', () => {
    const node: Node = { node_type: 'SQL', query: 'SELECT \'a"b\\c\n\t\u0001/é€😀' };
    expect(serializeNode(node)).toBe('{"node_type":"SQL","query":"SELECT \'a\\"b\\\\c\\n\\t\\u0001/é€😀"}');
  });

  it('serialises a 5000-deep graph without recursion', () => {
    let node: Node = { node_type: 'SQL', query: 'x' };
    for (let i = 0; i < 5000; i++) node = { node_type: 'THEN', left_node: node, right_node: { node_type: 'SQL', query: 'y' } };
    const text = serializeNode(node);
    expect(text.startsWith('{"node_type":"THEN","left_node":{"node_type":"THEN",')).toBe(true);
    expect(text.split('"THEN"').length - 1).toBe(5000);
  });
});
