import { describe, it, expect } from 'vitest';
import type { NodeStatus, NodeType, TreeNode } from '../../src/core/node';
import { inferStatuses, parseStamp, type PhysicalNode } from '../../src/core/infer';

/** A tree node with children; ids double as names in the assertions. */
function n(id: string, node_type: NodeType, kids: Partial<Pick<TreeNode, 'left' | 'right' | 'condition' | 'extras'>> = {}): TreeNode {
  return { id, node_type, query: null, result_name: null, ...kids };
}
/** The physical rows: id → [status, stamp]. */
function phys(rows: Record<string, [NodeStatus, string | null]>): Map<string, PhysicalNode> {
  return new Map(Object.entries(rows).map(([id, [status, stamp]]) => [id, { status, stamp }]));
}
function statuses(out: ReturnType<typeof inferStatuses>): Record<string, string> {
  const o: Record<string, string> = {};
  out.forEach((v, k) => (o[k] = v.fromAncestor ? `${v.status}<-${v.fromAncestor}` : v.status));
  return o;
}

describe('parseStamp', () => {
  it('splits scope and generation', () => {
    expect(parseStamp('a1b2c3d4::1')).toEqual({ scope: 'a1b2c3d4', generation: 1 });
    expect(parseStamp('a1b2c3d4::1::7f9a0012::2')).toEqual({ scope: 'a1b2c3d4::1::7f9a0012', generation: 2 });
    expect(parseStamp('a::1::b::3::c::12')).toEqual({ scope: 'a::1::b::3::c', generation: 12 });
  });

  it('treats malformed stamps as unstamped', () => {
    for (const s of ['a1b2c3d4', 'a1b2c3d4::x', '::1', 'a::1::2', 'a::x::b::1', 'a::1::::2', '']) expect([s, parseStamp(s)]).toEqual([s, null]);
  });
});

describe('inferStatuses', () => {
  it('a clean sequence: inferred = physical, no ancestor', () => {
    const root = n('T', 'THEN', { left: n('A', 'SQL'), right: n('B', 'SQL') });
    const out = inferStatuses(root, phys({ T: ['completed', 'i::1'], A: ['completed', 'i::1'], B: ['completed', 'i::1'] }));
    expect(statuses(out)).toEqual({ T: 'completed', A: 'completed', B: 'completed' });
  });

  it('the untaken IF arm is skipped, decided by the IF', () => {
    const root = n('IF', 'IF', { condition: n('C', 'SQL'), left: n('Y', 'SQL'), right: n('N', 'SQL') });
    const out = inferStatuses(root, phys({ IF: ['completed', 'i::1'], C: ['completed', 'i::1'], Y: ['completed', 'i::1'], N: ['pending', null] }));
    expect(statuses(out)).toEqual({ IF: 'completed', C: 'completed', Y: 'completed', N: 'skipped<-IF' });
  });

  it('the right side of a failed THEN is skipped', () => {
    const root = n('T', 'THEN', { left: n('A', 'SQL'), right: n('B', 'SQL') });
    const out = inferStatuses(root, phys({ T: ['failed', 'i::1'], A: ['failed', 'i::1'], B: ['pending', null] }));
    expect(statuses(out)).toEqual({ T: 'failed', A: 'failed', B: 'skipped<-T' });
  });

  it('a race loser still running is skipped; a losing loop keeps its physical failed', () => {
    const root = n('R', 'RACE', { left: n('W', 'SQL'), right: n('L', 'SLEEP') });
    expect(statuses(inferStatuses(root, phys({ R: ['completed', 'i::1'], W: ['completed', 'i::1::R::1'], L: ['running', 'i::1::R::1'] })))).toEqual({
      R: 'completed',
      W: 'completed',
      L: 'skipped<-R',
    });
    const root2 = n('R', 'RACE', { left: n('W', 'SLEEP'), right: n('LP', 'LOOP', { left: n('B', 'SQL') }) });
    const out2 = inferStatuses(root2, phys({ R: ['completed', 'i::1'], W: ['completed', 'i::1'], LP: ['failed', 'i::1::LP::1'], B: ['completed', 'i::1::LP::1'] }));
    expect(statuses(out2)).toEqual({ R: 'completed', W: 'completed', LP: 'failed', B: 'completed' });
  });

  it('a running node without a terminal ancestor stays running; unreached pending stays pending', () => {
    const root = n('T', 'THEN', { left: n('A', 'SQL'), right: n('B', 'SQL') });
    const out = inferStatuses(root, phys({ T: ['running', 'i::1'], A: ['running', 'i::1'], B: ['pending', null] }));
    expect(statuses(out)).toEqual({ T: 'running', A: 'running', B: 'pending' });
  });

  it('superseded loop iterations read pending (will re-run), attributed to the newest ancestor', () => {
    // Root loop now in generation 2; the whole body subtree still carries generation-1 stamps.
    const root = n('LP', 'LOOP', { left: n('S', 'THEN', { left: n('A', 'SQL'), right: n('B', 'SLEEP') }) });
    const out = inferStatuses(root, phys({ LP: ['running', 'i::2'], S: ['completed', 'i::1'], A: ['completed', 'i::1'], B: ['completed', 'i::1'] }));
    expect(statuses(out)).toEqual({ LP: 'running', S: 'pending<-LP', A: 'pending<-LP', B: 'pending<-LP' });
  });

  it('a current-generation IF still skips an arm that ran in an older iteration', () => {
    const root = n('LP', 'LOOP', { left: n('IF', 'IF', { condition: n('C', 'SQL'), left: n('Y', 'SQL'), right: n('N', 'SQL') }) });
    const out = inferStatuses(
      root,
      phys({ LP: ['running', 'i::2'], IF: ['completed', 'i::2'], C: ['completed', 'i::2'], Y: ['completed', 'i::2'], N: ['completed', 'i::1'] }),
    );
    expect(statuses(out)).toEqual({ LP: 'running', IF: 'completed', C: 'completed', Y: 'completed', N: 'skipped<-IF' });
  });

  it('a branch scope spawned by an older generation of its parent is superseded', () => {
    // Root generation advanced to 2: the JOIN branch scope i::1::J (spawned by generation 1) is stale,
    // although within its own scope generation 1 is the newest.
    const root = n('LP', 'LOOP', { left: n('J', 'JOIN', { left: n('A', 'SQL'), right: n('B', 'SQL') }) });
    const out = inferStatuses(root, phys({ LP: ['running', 'i::2'], J: ['completed', 'i::1'], A: ['completed', 'i::1::J::1'], B: ['completed', 'i::1::J::1'] }));
    expect(statuses(out)).toEqual({ LP: 'running', J: 'pending<-LP', A: 'pending<-LP', B: 'pending<-LP' });
  });

  it('nested scopes: superseded when any enclosing scope advanced past the spawning generation', () => {
    const leafAt = (stamp: string, extra: Record<string, [NodeStatus, string | null]>): string =>
      statuses(inferStatuses(n('X', 'SQL'), phys({ X: ['completed', stamp], ...extra }))).X;
    const chain = 'root::1::loop::3::branch::8';
    expect(leafAt(chain, { a: ['completed', 'root::1'], b: ['completed', 'root::1::loop::3'] })).toBe('completed');
    expect(leafAt(chain, { a: ['completed', 'root::2'], b: ['completed', 'root::1::loop::3'] })).toBe('pending');
    expect(leafAt(chain, { a: ['completed', 'root::1'], b: ['completed', 'root::1::loop::4'] })).toBe('pending');
  });

  it('after a finished non-root loop nothing reads running or pending', () => {
    const root = n('T', 'THEN', { left: n('LP', 'LOOP', { left: n('B', 'SQL'), condition: n('C', 'SQL') }), right: n('Z', 'SQL') });
    const out = inferStatuses(
      root,
      phys({ T: ['completed', 'i::1'], LP: ['completed', 'i::1'], B: ['completed', 'i::1::LP::3'], C: ['completed', 'i::1::LP::3'], Z: ['completed', 'i::1'] }),
    );
    expect([...out.values()].every((v) => v.status === 'completed')).toBe(true);
  });

  it('nodes the walk does not reach keep their physical status', () => {
    const root = n('A', 'SQL');
    const out = inferStatuses(root, phys({ A: ['completed', 'i::1'], ORPHAN: ['running', 'garbage'], OLD: ['failed', 'i::0'] }));
    expect(statuses(out)).toEqual({ A: 'completed', ORPHAN: 'running', OLD: 'failed' });
  });

  it('accepts status_details JSON as the stamp and treats unparseable stamps as unstamped', () => {
    const root = n('LP', 'LOOP', { left: n('A', 'SQL') });
    const out = inferStatuses(root, phys({ LP: ['running', '{"execution_id": "i::2"}'], A: ['completed', '{"execution_id": "i::1"}'] }));
    expect(statuses(out)).toEqual({ LP: 'running', A: 'pending<-LP' });
    const out2 = inferStatuses(root, phys({ LP: ['running', 'i::2'], A: ['completed', 'i::x'] }));
    expect(statuses(out2)).toEqual({ LP: 'running', A: 'completed' });
  });

  it('a tree node without a physical row reads pending (or skipped under a terminal ancestor)', () => {
    const root = n('T', 'THEN', { left: n('A', 'SQL'), right: n('B', 'SQL') });
    expect(statuses(inferStatuses(root, phys({ T: ['failed', 'i::1'] })))).toEqual({ T: 'failed', A: 'skipped<-T', B: 'skipped<-T' });
    expect(statuses(inferStatuses(root, phys({})))).toEqual({ T: 'pending', A: 'pending', B: 'pending' });
  });
});

describe('inferStatuses: sagas (UNDO: left the forward, right the undo)', () => {
  // An undo runs only on compensation, in scope `<UNDO run stamp>::<UNDO id>` generation 1.
  const step = (): TreeNode =>
    n('T', 'THEN', { left: n('U', 'UNDO', { left: n('F', 'SQL'), right: n('UT', 'THEN', { left: n('X1', 'SQL'), right: n('X2', 'SQL') }) }), right: n('NEXT', 'SQL') });

  it('the forward failed: nothing was registered, the undo subtree is skipped by the UNDO node', () => {
    const out = inferStatuses(step(), phys({ T: ['failed', 'i::1'], U: ['failed', 'i::1'], F: ['failed', 'i::1'] }));
    expect(statuses(out)).toEqual({ T: 'failed', U: 'failed', F: 'failed', UT: 'skipped<-U', X1: 'skipped<-U', X2: 'skipped<-U', NEXT: 'skipped<-T' });
  });

  it('the forward completed and the instance goes on: the undo is registered, pending', () => {
    const out = inferStatuses(step(), phys({ T: ['running', 'i::1'], U: ['completed', 'i::1'], F: ['completed', 'i::1'], NEXT: ['running', 'i::1'] }));
    expect(statuses(out)).toEqual({ T: 'running', U: 'completed', F: 'completed', UT: 'pending', X1: 'pending', X2: 'pending', NEXT: 'running' });
  });

  it('a registered undo stays pending under a finished composite (the instance may still fail)', () => {
    const root = n('T', 'THEN', {
      left: n('IF', 'IF', { condition: n('C', 'SQL'), left: n('U', 'UNDO', { left: n('F', 'SQL'), right: n('X', 'SQL') }), right: n('E', 'SQL') }),
      right: n('NEXT', 'SQL'),
    });
    const out = inferStatuses(root, phys({ T: ['running', 'i::1'], IF: ['completed', 'i::1'], C: ['completed', 'i::1'], U: ['completed', 'i::1'], F: ['completed', 'i::1'], NEXT: ['running', 'i::1'] }));
    expect(statuses(out)).toMatchObject({ U: 'completed', X: 'pending', E: 'skipped<-IF' });
  });

  it('while the forward runs (or before the UNDO runs) the undo is pending; an UNDO that never ran passes its skip down', () => {
    expect(statuses(inferStatuses(step(), phys({ T: ['running', 'i::1'], U: ['running', 'i::1'], F: ['running', 'i::1'] })))).toEqual({
      T: 'running', U: 'running', F: 'running', UT: 'pending', X1: 'pending', X2: 'pending', NEXT: 'pending',
    });
    const root = n('T', 'THEN', { left: n('A', 'SQL'), right: n('U', 'UNDO', { left: n('F', 'SQL'), right: n('X', 'SQL') }) });
    expect(statuses(inferStatuses(root, phys({ T: ['failed', 'i::1'], A: ['failed', 'i::1'] })))).toEqual({
      T: 'failed', A: 'failed', U: 'skipped<-T', F: 'skipped<-T', X: 'skipped<-T',
    });
  });

  it('compensation ran: undo runs keep their physical status; inside an undo the usual rules apply', () => {
    const out = inferStatuses(
      step(),
      phys({
        T: ['failed', 'i::1'], U: ['completed', 'i::1'], F: ['completed', 'i::1'], NEXT: ['failed', 'i::1'],
        UT: ['failed', 'i::1::U::1'], X1: ['failed', 'i::1::U::1'],
      }),
    );
    expect(statuses(out)).toEqual({ T: 'failed', U: 'completed', F: 'completed', UT: 'failed', X1: 'failed', X2: 'skipped<-UT', NEXT: 'failed' });
  });

  it('compensation under way (the root still running): undone reads completed, not yet undone reads pending', () => {
    const root = n('T', 'THEN', {
      left: n('T2', 'THEN', { left: n('U1', 'UNDO', { left: n('F1', 'SQL'), right: n('X1', 'SQL') }), right: n('U2', 'UNDO', { left: n('F2', 'SQL'), right: n('X2', 'SQL') }) }),
      right: n('Z', 'SQL'),
    });
    const out = inferStatuses(
      root,
      phys({
        T: ['running', 'i::1'], T2: ['completed', 'i::1'], U1: ['completed', 'i::1'], F1: ['completed', 'i::1'], U2: ['completed', 'i::1'], F2: ['completed', 'i::1'],
        Z: ['failed', 'i::1'], X2: ['running', 'i::1::U2::1'],
      }),
    );
    expect(statuses(out)).toMatchObject({ X2: 'running', X1: 'pending', Z: 'failed' });
  });

  it('the instance completed: a registered undo that never ran never will (skipped, decided by the root)', () => {
    const out = inferStatuses(step(), phys({ T: ['completed', 'i::1'], U: ['completed', 'i::1'], F: ['completed', 'i::1'], NEXT: ['completed', 'i::1'] }));
    expect(statuses(out)).toEqual({ T: 'completed', U: 'completed', F: 'completed', UT: 'skipped<-T', X1: 'skipped<-T', X2: 'skipped<-T', NEXT: 'completed' });
    // A lone UNDO as the root decides for itself.
    const lone = n('U', 'UNDO', { left: n('F', 'SQL'), right: n('X', 'SQL') });
    expect(statuses(inferStatuses(lone, phys({ U: ['completed', 'i::1'], F: ['completed', 'i::1'] })))).toEqual({ U: 'completed', F: 'completed', X: 'skipped<-U' });
  });

  it('a RETRY attempt undone before the next: the old attempt, its undo included, reads superseded', () => {
    // Attempt k runs in scope i::1::R (generation k); attempt 1's undo ran in i::1::R::1::U::1.
    const root = n('R', 'RETRY', { left: n('U', 'UNDO', { left: n('F', 'SQL'), right: n('X', 'SQL') }) });
    const out = inferStatuses(
      root,
      phys({ R: ['running', 'i::1::R::2'], U: ['completed', 'i::1::R::1'], F: ['completed', 'i::1::R::1'], X: ['completed', 'i::1::R::1::U::1'] }),
    );
    expect(statuses(out)).toEqual({ R: 'running', U: 'pending<-R', F: 'pending<-R', X: 'pending<-R' });
  });

  it('a RACE loser: its completed step was undone (physical); a step cut off mid-forward registered nothing', () => {
    const root = n('RC', 'RACE', {
      left: n('W', 'SQL'),
      right: n('L', 'THEN', {
        left: n('U1', 'UNDO', { left: n('F1', 'SQL'), right: n('X1', 'SQL') }),
        right: n('U2', 'UNDO', { left: n('F2', 'SLEEP'), right: n('X2', 'SQL') }),
      }),
    });
    const out = inferStatuses(
      root,
      phys({
        RC: ['completed', 'i::1'], W: ['completed', 'i::1::W::1'], L: ['running', 'i::1::L::1'],
        U1: ['completed', 'i::1::L::1'], F1: ['completed', 'i::1::L::1'], X1: ['completed', 'i::1::L::1::U1::1'],
        U2: ['running', 'i::1::L::1'], F2: ['running', 'i::1::L::1'],
      }),
    );
    expect(statuses(out)).toEqual({
      RC: 'completed', W: 'completed', L: 'skipped<-RC', U1: 'completed', F1: 'completed', X1: 'completed',
      U2: 'skipped<-RC', F2: 'skipped<-RC', X2: 'skipped<-RC',
    });
  });
});
