import { describe, expect, it } from 'vitest';
import { MAX_HOLD_MS, ReadAhead } from '../../src/worker/readahead';
import type { Claim } from '../../src/worker/store';

const claim = (id: string): Claim => ({ instanceId: id, token: `token-${id}`, executionId: 1, vars: {} });

/** A read-ahead for a worker with `slots` step slots on a clock the test moves. */
function withClock(slots: number) {
  let t = 1_000;
  const ahead = new ReadAhead(slots, () => t);
  return { ahead, advance: (ms: number) => { t += ms; } };
}

describe('the read-ahead', () => {
  it('holds nothing for a worker whose instances have not finished lately', () => {
    const { ahead, advance } = withClock(10);
    expect(ahead.target()).toBe(0);
    for (let i = 0; i < 5; i++) ahead.finished();
    advance(50);
    expect(ahead.target()).toBe(0);
  });

  it('holds as many as finished in the last 20 ms, at most the step slots', () => {
    const { ahead, advance } = withClock(4);
    ahead.finished();
    advance(5);
    ahead.finished();
    ahead.finished();
    expect(ahead.target()).toBe(3);
    for (let i = 0; i < 10; i++) ahead.finished();
    expect(ahead.target()).toBe(4);
    advance(30);
    expect(ahead.target()).toBe(0);
  });

  it('starts the oldest held claim first', () => {
    const { ahead } = withClock(4);
    ahead.hold(claim('a'));
    ahead.hold(claim('b'));
    ahead.hold(claim('c'));
    expect(ahead.size).toBe(3);
    expect([ahead.take()?.instanceId, ahead.take()?.instanceId, ahead.take()?.instanceId, ahead.take()]).toEqual(['a', 'b', 'c', null]);
  });

  it('gives up a held claim whose instance was cancelled, keeping the others in order', () => {
    const { ahead } = withClock(4);
    for (const id of ['a', 'b', 'c']) ahead.hold(claim(id));
    expect(ahead.drop('b')?.instanceId).toBe('b');
    expect(ahead.drop('b')).toBeNull();
    expect([ahead.take()?.instanceId, ahead.take()?.instanceId, ahead.take()]).toEqual(['a', 'c', null]);
  });

  it(`hands back what it held longer than ${MAX_HOLD_MS} ms, and only that`, () => {
    const { ahead, advance } = withClock(4);
    ahead.hold(claim('old'));
    advance(MAX_HOLD_MS - 100);
    ahead.hold(claim('new'));
    expect(ahead.expired()).toEqual([]);
    advance(200);
    expect(ahead.expired().map((c) => c.instanceId)).toEqual(['old']);
    expect(ahead.size).toBe(1);
    ahead.clear();
    expect(ahead.size).toBe(0);
    expect(ahead.take()).toBeNull();
  });
});
