/**
 * Execution stamps and the derived ("inferred") node status of df.instance_nodes and df.explain
 * (API §10.4).
 *
 * A stamp is `<scope>::<generation>`. The root scope is the instance id; a JOIN/RACE branch or a
 * non-root loop runs in a child scope `<parent scope>::<parent generation>::<node id>`. A node
 * run is *superseded* when a newer generation of its scope, or of any enclosing scope along its
 * lineage, has been stamped: a later loop iteration will run it again.
 */
import type { InferredStatus, NodeStatus, TreeNode } from './node';

export interface Stamp {
  scope: string;
  generation: number;
}

const GENERATION = /^[+-]?[0-9]+$/;

/**
 * Parses `<scope>::<g>`. The scope must have an odd number of `::` tokens (an instance id, then
 * `<generation>::<node id>` pairs) with numeric generations and non-empty tokens; `g` must be
 * numeric. Anything else is null (treated as unstamped).
 */
export function parseStamp(stamp: string): Stamp | null {
  const cut = stamp.lastIndexOf('::');
  if (cut < 0) return null;
  const scope = stamp.slice(0, cut);
  const g = stamp.slice(cut + 2);
  if (!GENERATION.test(g) || !scopeIsValid(scope)) return null;
  return { scope, generation: Number(g) };
}

function scopeIsValid(scope: string): boolean {
  const tokens = scope.split('::');
  if (tokens[0] === '' || tokens.length % 2 === 0) return false;
  for (let i = 1; i < tokens.length; i += 2) {
    if (!GENERATION.test(tokens[i]) || tokens[i + 1] === '') return false;
  }
  return true;
}

/** The spawning (parent scope, parent generation) of a child scope; null for a root scope. */
function parentOf(scope: string): Stamp | null {
  if (!scopeIsValid(scope)) return null;
  const tokens = scope.split('::');
  if (tokens.length < 3) return null;
  return { scope: tokens.slice(0, -2).join('::'), generation: Number(tokens[tokens.length - 2]) };
}

/**
 * Accepts a bare execution id (`a1b2c3d4::1`) or a `status_details` JSON text
 * (`{"execution_id": "a1b2c3d4::1"}`).
 */
function stampOf(stamp: string | null | undefined): Stamp | null {
  if (stamp === null || stamp === undefined) return null;
  let text = stamp;
  if (stamp.trim().startsWith('{')) {
    try {
      const v = JSON.parse(stamp) as { execution_id?: unknown };
      if (typeof v.execution_id !== 'string') return null;
      text = v.execution_id;
    } catch {
      return null;
    }
  }
  return parseStamp(text);
}

export interface PhysicalNode {
  status: NodeStatus;
  /** The execution stamp (`status_details.execution_id`), or null when never stamped. */
  stamp: string | null;
}

export interface Inferred {
  status: InferredStatus;
  /** The ancestor whose state decided this status (skipped / superseded), else null. */
  fromAncestor: string | null;
}

/**
 * Children in inference order: THEN/RACE/UNDO left, right; JOIN + extras; IF condition, then, else;
 * LOOP body, condition.
 */
function childrenOf(n: TreeNode): TreeNode[] {
  const kids: (TreeNode | undefined)[] = [];
  switch (n.node_type) {
    case 'THEN':
    case 'RACE':
    case 'UNDO':
      kids.push(n.left, n.right);
      break;
    case 'JOIN':
      kids.push(n.left, n.right, ...(n.extras ?? []));
      break;
    case 'IF':
      kids.push(n.condition, n.left, n.right);
      break;
    case 'LOOP':
      kids.push(n.left, n.condition);
      break;
    case 'RETRY':
    case 'TIMEOUT':
      kids.push(n.left);
      break;
    default:
      break;
  }
  return kids.filter((k): k is TreeNode => k !== undefined);
}

const isTerminal = (s: NodeStatus): boolean => s === 'completed' || s === 'failed';

/**
 * Inferred status of every node: each node of the tree rooted at `root`, plus every entry of
 * `physical` that the tree does not reach (those keep their physical status). A tree node with
 * no physical entry is treated as pending and unstamped.
 */
export function inferStatuses(root: TreeNode, physical: Map<string, PhysicalNode>): Map<string, Inferred> {
  // 1. scope_max
  const scopeMax = new Map<string, number>();
  physical.forEach((p) => {
    const st = stampOf(p.stamp);
    if (!st) return;
    const cur = scopeMax.get(st.scope);
    if (cur === undefined || st.generation > cur) scopeMax.set(st.scope, st.generation);
  });

  // 2. superseded, recursively along the scope lineage
  const isSuperseded = (scope: string, generation: number): boolean => {
    for (let s: Stamp | null = { scope, generation }; s !== null; s = parentOf(s.scope)) {
      const max = scopeMax.get(s.scope);
      if (max !== undefined && s.generation < max) return true;
    }
    return false;
  };

  // The root's run is over: a registered undo that has not run by now never will.
  const rootPhysical = physical.get(root.id);
  const rootStamp = rootPhysical ? stampOf(rootPhysical.stamp) : null;
  const rootDone =
    rootPhysical !== undefined && isTerminal(rootPhysical.status) && !(rootStamp !== null && isSuperseded(rootStamp.scope, rootStamp.generation));

  // 3./4. depth-first walk carrying nta and the highest-generation ancestor
  const out = new Map<string, Inferred>();
  interface Frame {
    node: TreeNode;
    nta: string | null;
    maxGen: { generation: number; id: string } | null;
  }
  const stack: Frame[] = [{ node: root, nta: null, maxGen: null }];
  while (stack.length > 0) {
    const { node, nta, maxGen } = stack.pop() as Frame;
    if (out.has(node.id)) continue;
    const p = physical.get(node.id) ?? { status: 'pending' as NodeStatus, stamp: null };
    const stamp = stampOf(p.stamp);
    const terminal = isTerminal(p.status);
    const superseded = stamp !== null && isSuperseded(stamp.scope, stamp.generation);

    let inferred: Inferred;
    if (terminal && !superseded) {
      inferred = { status: p.status, fromAncestor: null };
    } else if (terminal) {
      // ran in an older generation: skipped if a current ancestor decided against it, else it will re-run
      inferred = nta !== null ? { status: 'skipped', fromAncestor: nta } : { status: 'pending', fromAncestor: maxGen ? maxGen.id : null };
    } else if (nta !== null) {
      // untaken IF arm, right side of a failed THEN, abandoned RACE loser, leftovers of a finished loop
      inferred = { status: 'skipped', fromAncestor: nta };
    } else {
      inferred = { status: p.status === 'running' ? 'running' : 'pending', fromAncestor: null };
    }
    out.set(node.id, inferred);

    const childNta = terminal && !superseded ? node.id : nta;
    let childMaxGen = maxGen;
    if (stamp !== null && (maxGen === null || stamp.generation >= maxGen.generation)) {
      childMaxGen = { generation: stamp.generation, id: node.id };
    }
    for (const child of childrenOf(node)) {
      let kidNta = childNta;
      if (node.node_type === 'UNDO' && child === node.right && terminal && !superseded) {
        // The undo of a saga step (ARCHITECTURE.md, "Sagas") is not decided by its UNDO node
        // completing: that registers it, to run (in its own scope, so with runs of its own) if the
        // instance later fails, a RETRY attempt fails or a RACE branch loses. Without runs it reads
        // skipped when the forward failed (nothing registered) or the instance's root run is over
        // (it never ran), else pending. A running or never-run UNDO passes its own nta down, as any node.
        kidNta = p.status === 'failed' ? node.id : rootDone ? root.id : null;
      }
      stack.push({ node: child, nta: kidNta, maxGen: childMaxGen });
    }
  }

  // 5. nodes the walk did not reach keep their physical status
  physical.forEach((p, id) => {
    if (!out.has(id)) out.set(id, { status: p.status ?? 'pending', fromAncestor: null });
  });
  return out;
}
