/**
 * Sagas (df.with_undo, `forward <~ undo`): the undos an execution has registered and not yet run.
 *
 * An UNDO node registers its undo when its forward completes. The registration is durable in the
 * UNDO node's own completed run (`detail.undo_seq`, and `detail.undo_results`: the named results
 * the undo references, as they were then), so compensation never depends on replaying the forward
 * path: after a crash, or for the loser of a decided RACE that replay does not run again, the
 * registrations come back from the history. An undo runs in the child scope
 * `<UNDO run stamp>::<UNDO id>` (generation 1): one stamp per registration, so it runs once, with
 * the same exactly-once guarantees as any step, and a registration whose undo has a finished run
 * is spent.
 */
import type { TreeNode } from '../core/node';
import type { RunRecord } from './store';

export interface Registration {
  /** The UNDO node (left: forward, right: undo). */
  node: TreeNode;
  /** Stamp of the UNDO node's run. */
  stamp: string;
  /** Registration order; compensation runs the highest first. */
  seq: number;
  /** Named results the undo may reference (`$name`), as they were when the forward completed. */
  results: Record<string, string>;
}

/** The stamp the undo of `r` runs at. */
export function undoStamp(r: Pick<Registration, 'node' | 'stamp'>): string {
  return `${r.stamp}::${r.node.id}::1`;
}

/** Whether `stamp` is the scope `prefix` or a scope nested in it. */
export function within(stamp: string, prefix: string): boolean {
  return stamp === prefix || stamp.startsWith(`${prefix}::`);
}

const REFERENCE = /\$([A-Za-z_][A-Za-z0-9_]*)/g;

/** The named results an undo subtree refers to (`$name` anywhere in its nodes' texts). */
export function referencedNames(undo: TreeNode): Set<string> {
  const names = new Set<string>();
  const stack = [undo];
  while (stack.length > 0) {
    const n = stack.pop() as TreeNode;
    for (const m of (n.query ?? '').matchAll(REFERENCE)) names.add(m[1]);
    for (const c of [n.left, n.right, n.condition, ...(n.extras ?? [])]) if (c) stack.push(c);
  }
  return names;
}

/** Whether a subtree holds an UNDO node (it may register undos). */
export function hasUndo(node: TreeNode): boolean {
  const stack = [node];
  while (stack.length > 0) {
    const n = stack.pop() as TreeNode;
    if (n.node_type === 'UNDO') return true;
    for (const c of [n.left, n.right, n.condition, ...(n.extras ?? [])]) if (c) stack.push(c);
  }
  return false;
}

/** The subset of `results` an undo needs. */
export function snapshotFor(undo: TreeNode, results: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of referencedNames(undo)) if (Object.prototype.hasOwnProperty.call(results, name)) out[name] = results[name];
  return out;
}

export class UndoStack {
  private readonly regs = new Map<string, Registration>();
  private seq = 0;

  /** Registrations of this execution's history whose undo has not finished. */
  constructor(history: Iterable<RunRecord>, nodes: Map<string, TreeNode>) {
    const runs = [...history];
    const finished = new Set(runs.filter((r) => r.status === 'completed' || r.status === 'failed').map((r) => `${r.stamp}|${r.nodeId}`));
    for (const r of runs) {
      const seq = r.detail?.undo_seq;
      if (r.status !== 'completed' || typeof seq !== 'number') continue;
      this.seq = Math.max(this.seq, seq);
      const node = nodes.get(r.nodeId);
      if (!node || node.node_type !== 'UNDO' || !node.right) continue;
      if (finished.has(`${undoStamp({ node, stamp: r.stamp })}|${node.right.id}`)) continue;
      const results = r.detail?.undo_results;
      this.regs.set(`${r.stamp}|${node.id}`, { node, stamp: r.stamp, seq, results: results && typeof results === 'object' ? (results as Record<string, string>) : {} });
    }
  }

  /** The sequence number of a new registration. */
  next(): number {
    return ++this.seq;
  }

  /** Adds a registration (a replayed one is already known from the history). */
  add(r: Registration): void {
    const k = `${r.stamp}|${r.node.id}`;
    if (!this.regs.has(k)) this.regs.set(k, r);
    this.seq = Math.max(this.seq, r.seq);
  }

  /** Removes and returns the registrations in scope `prefix` (every one when null), most recent first. */
  take(prefix: string | null): Registration[] {
    const out: Registration[] = [];
    for (const [k, r] of this.regs) {
      if (prefix === null || within(r.stamp, prefix)) {
        out.push(r);
        this.regs.delete(k);
      }
    }
    return out.sort((a, b) => b.seq - a.seq);
  }

  get size(): number {
    return this.regs.size;
  }
}
