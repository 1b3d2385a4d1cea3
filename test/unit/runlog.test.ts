/**
 * Which events of a commit that ends an instance leave their run to the node's row (df._runs):
 * each node's last event, finished, of a run no earlier write may have recorded.
 */
import { describe, expect, it } from 'vitest';
import { RunLog } from '../../src/worker/runlog';
import type { StepRunner } from '../../src/worker/steps';
import type { NodeEvent, Store } from '../../src/worker/store';

const log = (history: { stamp: string; nodeId: string }[] = []) =>
  new RunLog({} as Store, {} as StepRunner, { id: 'i1', token: 't', started: true, executionId: 1 },
    history.map((h) => ({ ...h, status: 'running' as const, result: null, detail: null })), 'root');
const finals = (events: NodeEvent[]) => events.filter((e) => e.final).map((e) => `${e.stamp}|${e.node}`);
const done = (node: string, stamp = 'i1::1'): NodeEvent => ({ node, stamp, status: 'completed', result: '1', json: true });

describe('the events of a commit that ends an instance', () => {
  it('leave a never-written run to its node row', () => {
    expect(finals(log().outgoing([done('a'), done('b')], 'completed'))).toEqual(['i1::1|a', 'i1::1|b']);
  });

  it('keep a row for a run loaded at claim or sent in any earlier write', () => {
    const l = log([{ stamp: 'i1::1', nodeId: 'a' }]);
    l.sending([{ node: 'b', stamp: 'i1::1', status: 'running' }]);
    expect(finals(l.outgoing([done('a'), done('b'), done('c')], 'failed'))).toEqual(['i1::1|c']);
  });

  it('are never final in a commit that does not end the instance', () => {
    expect(finals(log().outgoing([done('a')], null))).toEqual([]);
    expect(finals(log().outgoing([done('a')], 'continue:1'))).toEqual([]);
  });

  it("mark only a node's last event (its row shows that one) and never a 'running' one", () => {
    const events = [done('a', 'i1::1::x::1'), done('a', 'i1::1::x::2'), { node: 'b', stamp: 'i1::1', status: 'running' as const }];
    expect(finals(log().outgoing(events, 'cancelled'))).toEqual(['i1::1::x::2|a']);
  });
});

describe("the output of a commit that completes an instance's first execution", () => {
  const out = '{"rows":[{"x":84}],"row_count":1}';
  const rootDone = (result = out): NodeEvent => ({ node: 'root', stamp: 'i1::1', status: 'completed', result, json: true });
  const second = () =>
    new RunLog({} as Store, {} as StepRunner, { id: 'i1', token: 't', started: true, executionId: 2 }, [], 'root');

  it('is left to df._execution_log when it is the root result as jsonb prints it compactly', () => {
    expect(log().output([done('a', 'i1::1'), rootDone()], 'completed', out)).toBeNull();
  });

  it('is sent where a reader could not derive it', () => {
    expect(log().output([rootDone()], 'failed', out)).toBe(out); // failed: not from the root's result
    expect(log().output([done('a')], 'completed', out)).toBe(out); // the root's row is not in this commit
    expect(log().output([rootDone('{"row_count":1,"rows":[]}')], 'completed', '{"row_count":1,"rows":[]}')).toBe('{"row_count":1,"rows":[]}'); // key order
    expect(log().output([rootDone('{"v":1e3}')], 'completed', '{"v":1e3}')).toBe('{"v":1e3}'); // numeric prints 1000
    expect(log().output([{ ...rootDone(), json: false }], 'completed', out)).toBe(out); // stored as a JSON string
    expect(log().output([rootDone('{"a":1}')], 'completed', out)).toBe(out); // the output is not the root's result
    expect(second().output([rootDone()], 'completed', out)).toBe(out); // a later execution has its row
    const big = `[${'1,'.repeat(3000)}1]`;
    expect(log().output([rootDone(big)], 'completed', big)).toBe(big);
  });
});
