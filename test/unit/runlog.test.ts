/**
 * Which events leave their run to the node's row (df._runs): in a commit that ends an instance,
 * each node's last event, finished, of a run no earlier write may have recorded; in any other,
 * those of a node that runs once per execution whose row gives the result back as sent.
 */
import { describe, expect, it } from 'vitest';
import { RunLog } from '../../src/worker/runlog';
import type { StepRunner } from '../../src/worker/steps';
import type { InstanceTransition, NodeEvent, Store } from '../../src/worker/store';

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

  it('are not final in a commit that does not end the instance, unless their node runs once', () => {
    expect(finals(log().outgoing([done('a')], null))).toEqual([]);
    expect(finals(log().outgoing([done('a')], 'continue:1'))).toEqual([]);
  });

  it("mark only a node's last event (its row shows that one) and never a 'running' one", () => {
    const events = [done('a', 'i1::1::x::1'), done('a', 'i1::1::x::2'), { node: 'b', stamp: 'i1::1', status: 'running' as const }];
    expect(finals(log().outgoing(events, 'cancelled'))).toEqual(['i1::1::x::2|a']);
  });
});

describe("the events of a sequence's steps (nodes that run once per execution)", () => {
  const spine = (history: { stamp: string; nodeId: string }[] = []) =>
    new RunLog({} as Store, {} as StepRunner, { id: 'i1', token: 't', started: true, executionId: 1 },
      history.map((h) => ({ ...h, status: 'running' as const, result: null, detail: null })), 'root', new Set(['root', 's1', 's2']));
  const step = (node: string, result = '{"rows":[{"v":1}],"row_count":1}'): NodeEvent => ({ node, stamp: 'i1::1', status: 'completed', result, json: true });

  it('leave a run to its node row when the row gives its result back as sent', () => {
    const running: NodeEvent = { node: 'root', stamp: 'i1::1', status: 'running' };
    expect(finals(spine().outgoing([step('s1'), running], null))).toEqual(['i1::1|s1', 'i1::1|root']);
  });

  it('keep a row where the row could not give the run back, or the node may run again', () => {
    const l = spine([{ stamp: 'i1::1', nodeId: 's2' }]);
    expect(finals(l.outgoing([
      step('s1', '{"rows":[{"zeta":1,"a":2}],"row_count":1}'), // jsonb orders the keys
      step('s2'), // its run has a row already (its 'running' stamp)
      { ...step('root'), detail: { note: 'x' } }, // a detail
      step('other'), // not on the spine: in a loop, a branch, a retry
    ], null))).toEqual([]);
    expect(finals(spine().outgoing([{ node: 's1', stamp: 'i1::1', status: 'failed', result: 'boom', json: false }], null))).toEqual([]);
  });

  it("leave a run's later events to the row too when its earlier ones were", () => {
    const l = spine();
    expect(finals(l.outgoing([{ node: 'root', stamp: 'i1::1', status: 'running' }], null))).toEqual(['i1::1|root']);
    expect(finals(l.outgoing([step('root')], 'completed'))).toEqual(['i1::1|root']);
  });

  it('keep a row for a run any earlier write may have recorded', () => {
    const l = spine();
    l.sending([{ node: 's1', stamp: 'i1::1', status: 'running' }]);
    expect(finals(l.outgoing([step('s1')], null))).toEqual([]);
  });
});

describe("the root event of a commit that completes an instance's first execution", () => {
  const out = '{"rows":[{"x":84}],"row_count":1}';
  const rootDone = (result = out): NodeEvent => ({ node: 'root', stamp: 'i1::1', status: 'completed', result, json: true });
  const marked = (l: RunLog, events: NodeEvent[], t: InstanceTransition, output: string) =>
    l.outgoing(events, t, output).filter((e) => e.output).map((e) => e.node);
  const second = () =>
    new RunLog({} as Store, {} as StepRunner, { id: 'i1', token: 't', started: true, executionId: 2 }, [], 'root');

  it('carries the output (df._execution_log derives it) when it is the root result as jsonb prints it compactly', () => {
    expect(marked(log(), [done('a'), rootDone()], 'completed', out)).toEqual(['root']);
    // Also where the root's run has a row already: the mark concerns the execution, not the run.
    expect(marked(log([{ stamp: 'i1::1', nodeId: 'root' }]), [rootDone()], 'completed', out)).toEqual(['root']);
  });

  it('does not where a reader could not derive it', () => {
    expect(marked(log(), [rootDone()], 'failed', out)).toEqual([]); // a failure's output is its message
    expect(marked(log(), [done('a')], 'completed', out)).toEqual([]); // the root's row is not in this commit
    const reordered = '{"row_count":1,"rows":[]}';
    expect(marked(log(), [rootDone(reordered)], 'completed', reordered)).toEqual([]); // jsonb orders the keys
    expect(marked(log(), [rootDone('{"v":1e3}')], 'completed', '{"v":1e3}')).toEqual([]); // numeric prints 1000
    expect(marked(log(), [{ ...rootDone(), json: false }], 'completed', out)).toEqual([]); // stored as a JSON string
    expect(marked(log(), [rootDone('{"a":1}')], 'completed', out)).toEqual([]); // the output is not the root's result
    expect(marked(log(), [rootDone(), { ...rootDone(), status: 'failed' }], 'completed', out)).toEqual([]); // the row shows its last event
    expect(marked(second(), [rootDone()], 'completed', out)).toEqual([]); // a later execution has its row
    const big = `[${'1,'.repeat(3000)}1]`;
    expect(marked(log(), [rootDone(big)], 'completed', big)).toEqual([]); // read back at every read: kept short
  });
});
