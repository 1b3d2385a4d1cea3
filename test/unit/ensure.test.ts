import { describe, it, expect } from 'vitest';
import { ensureStep, ensureStrict, malformedOf, parseNodeLenient } from '../../src/core/ensure';
import { DfError } from '../../src/core/errors';
import { serializeNode } from '../../src/core/serialize';

const VALID_TYPES = 'SQL, THEN, IF, JOIN, LOOP, BREAK, RACE, SLEEP, WAIT_SCHEDULE, HTTP, HTTP_MULTIPART, SIGNAL, RETRY, TIMEOUT, UNDO';

describe('composer ensure (ensureStep)', () => {
  it('uses a JSON object with a known node_type as the node', () => {
    expect(ensureStep('{"node_type":"SLEEP","query":"5"}')).toEqual({ node_type: 'SLEEP', query: '5' });
  });

  it('parses children recursively and drops unknown keys', () => {
    const text =
      '{"comment":"x","node_type":"THEN","left_node":{"node_type":"SQL","query":"a","extra":1},"right_node":{"node_type":"SQL","query":"b"}}';
    expect(ensureStep(text)).toEqual({
      node_type: 'THEN',
      left_node: { node_type: 'SQL', query: 'a' },
      right_node: { node_type: 'SQL', query: 'b' },
    });
  });

  it('treats null optional fields and an empty extra_nodes as absent', () => {
    const text = '{"node_type":"JOIN","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"},"condition_node":null,"extra_nodes":[],"query":null,"result_name":null}';
    expect(ensureStep(text)).toEqual({
      node_type: 'JOIN',
      left_node: { node_type: 'SQL', query: 'a' },
      right_node: { node_type: 'SQL', query: 'b' },
    });
  });

  it.each([
    ['plain SQL', 'SELECT 1'],
    ['SQL with leading whitespace', '  \n SELECT 1'],
    ['JSON without node_type (an uncompleted partial if)', '{"_partial_if": true, "condition": "SELECT true"}'],
    ['JSON with an unknown node_type', '{"node_type":"NOT_A_NODE","query":"x"}'],
    ['JSON with a lower-case node_type', '{"node_type":"sql","query":"x"}'],
    ['JSON with a non-string node_type', '{"node_type":1}'],
    ['a JSON array', '[{"node_type":"SQL","query":"x"}]'],
    ['a JSON string', '"{\\"node_type\\":\\"SQL\\"}"'],
    ['a JSON number', '42'],
    ['JSON null', 'null'],
    ['broken JSON', '{"node_type":"SQL",'],
    ['the empty string', ''],
  ])('wraps %s as a SQL node with the text exactly as given', (_label, text) => {
    expect(ensureStep(text)).toEqual({ node_type: 'SQL', query: text });
  });

  it.each([
    ['left_node is not an object', '{"node_type":"THEN","left_node":"SELECT 1","right_node":{"node_type":"SQL","query":"x"}}', 'Durofut children must be JSON objects'],
    ['right_node is an array', '{"node_type":"THEN","left_node":{"node_type":"SQL","query":"x"},"right_node":[]}', 'Durofut children must be JSON objects'],
    ['condition_node is a string', '{"node_type":"IF","condition_node":"SELECT true"}', 'condition_node must be a Durofut JSON object'],
    ['an extra_nodes entry is a string', '{"node_type":"JOIN","extra_nodes":["SELECT 3"]}', 'extra_nodes entries must be Durofut JSON objects'],
    ['extra_nodes is not an array', '{"node_type":"JOIN","extra_nodes":{"node_type":"SQL"}}', 'extra_nodes must be a JSON array of Durofut JSON objects'],
    ['query is not a string', '{"node_type":"SLEEP","query":60}', 'query must be a JSON string'],
    ['result_name is not a string', '{"node_type":"SQL","query":"x","result_name":1}', 'result_name must be a JSON string'],
  ])('rejects a known node_type whose %s', (_label, text, detail) => {
    expect(() => ensureStep(text)).toThrow(
      new DfError(`Invalid Durofut JSON: failed to deserialize workflow step: ${detail}`),
    );
  });

  describe('non-future helper rule', () => {
    it('rejects any operand that is not a JSON object once a helper ran in the statement', () => {
      expect(() => ensureStep('SELECT 1', 'df.setvar')).toThrow(
        'df.setvar cannot be used as a workflow step. Call df.setvar before df.start().',
      );
      expect(() => ensureStep("SELECT df.await_instance('abcd1234')", 'df.await_instance')).toThrow(
        'df.await_instance cannot be used as a workflow step. Call df.await_instance before df.start().',
      );
      expect(() => ensureStep('[1]', 'df.clearvars')).toThrow('df.clearvars cannot be used');
    });

    it('lets JSON objects through (after leading whitespace), including ones that are then wrapped', () => {
      expect(ensureStep('  {"node_type":"SQL","query":"x"}', 'df.setvar')).toEqual({ node_type: 'SQL', query: 'x' });
      expect(ensureStep('{"a":1}', 'df.unsetvar')).toEqual({ node_type: 'SQL', query: '{"a":1}' });
    });

    it('does nothing without a helper (null or empty)', () => {
      expect(ensureStep('SELECT 1', null)).toEqual({ node_type: 'SQL', query: 'SELECT 1' });
      expect(ensureStep('SELECT 1', '')).toEqual({ node_type: 'SQL', query: 'SELECT 1' });
    });
  });

  describe('nested children are kept, not lost, for validation to report with a path', () => {
    it('keeps a child with an unknown node_type as its raw type', () => {
      const node = ensureStep('{"node_type":"THEN","left_node":{"node_type":"NOT_A_NODE","query":"x"},"right_node":{"node_type":"SQL","query":"y"}}');
      expect(node.left_node).toEqual({ node_type: 'NOT_A_NODE', query: 'x' });
    });

    it('keeps a child that does not deserialise verbatim, with its parser message', () => {
      const text = '{"node_type":"THEN","left_node":{"query":5,"node_type":"SQL","keep":"me"},"right_node":{"node_type":"SQL","query":"y"}}';
      const node = ensureStep(text);
      expect(malformedOf(node.left_node!)).toBe('query must be a JSON string');
      expect(malformedOf(node.right_node!)).toBeUndefined();
      expect(serializeNode(node)).toBe(
        '{"node_type":"THEN","left_node":{"query":5,"node_type":"SQL","keep":"me"},"right_node":{"node_type":"SQL","query":"y"}}',
      );
    });

    it('reports a child without node_type as malformed', () => {
      const node = ensureStep('{"node_type":"LOOP","left_node":{"query":"x"}}');
      expect(malformedOf(node.left_node!)).toBe('missing field node_type');
    });

    it('parses a 300-deep graph without recursion limits', () => {
      let text = '{"node_type":"SQL","query":"x"}';
      for (let i = 0; i < 300; i++) text = `{"node_type":"LOOP","left_node":${text}}`;
      let node = ensureStep(text);
      let depth = 0;
      while (node.left_node) {
        node = node.left_node;
        depth++;
      }
      expect(depth).toBe(300);
      expect(node).toEqual({ node_type: 'SQL', query: 'x' });
    });
  });
});

describe('strict ensure (ensureStrict, df.start)', () => {
  it('wraps plain SQL and JSON without node_type like the composer ensure', () => {
    expect(ensureStrict('SELECT 1')).toEqual({ node_type: 'SQL', query: 'SELECT 1' });
    expect(ensureStrict('{"a":1}')).toEqual({ node_type: 'SQL', query: '{"a":1}' });
  });

  it('rejects an unknown node_type instead of wrapping it', () => {
    expect(() => ensureStrict('{"node_type":"NOT_A_NODE"}')).toThrow(
      new DfError(`Invalid durable function: Unknown node_type 'NOT_A_NODE'. Valid types: ${VALID_TYPES}`),
    );
  });

  it('rejects a malformed node with a valid node_type', () => {
    expect(() => ensureStrict('{"node_type":"THEN","left_node":"SELECT 1"}')).toThrow(
      new DfError("Invalid durable function: Malformed Durofut JSON with node_type 'THEN': Durofut children must be JSON objects"),
    );
    expect(() => ensureStrict('{"node_type":"IF","condition_node":[1]}')).toThrow(
      "Invalid durable function: Malformed Durofut JSON with node_type 'IF': condition_node must be a Durofut JSON object",
    );
  });

  it('does not apply the non-future helper rule', () => {
    expect(ensureStrict('SELECT 1')).toEqual({ node_type: 'SQL', query: 'SELECT 1' });
  });
});

describe('parseNodeLenient (explain graph mode)', () => {
  it('keeps an unknown or malformed root for validation instead of throwing', () => {
    expect(parseNodeLenient({ node_type: 'NOT_A_NODE' })).toEqual({ node_type: 'NOT_A_NODE' });
    expect(malformedOf(parseNodeLenient({ node_type: 'THEN', left_node: 1 }))).toBe('Durofut children must be JSON objects');
    expect(malformedOf(parseNodeLenient([1]))).toBe('a Durofut node must be a JSON object');
  });
});
