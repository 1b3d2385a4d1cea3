/**
 * Materialisation of a validated graph into `df.nodes` rows (API §5.5) and the inverse, reading
 * rows back into a TreeNode (node.ts).
 *
 * - Ids are assigned on discovery: the root first, then, when a node is visited, all of its
 *   children in the order left, right, condition, extras. Rows come out in pre-order (parent
 *   before children; children visited in the same order).
 * - Node ids are unique within the instance: a colliding id is redrawn, up to 10 attempts.
 * - The persisted query of IF/LOOP with a condition and JOIN with extras carries the child ids:
 *   `{"condition_node":"<id>"}`, `{"extra_nodes":["<id>",…]}`, merged after the node's own JSON
 *   config keys when it has one (§5.2).
 * Both directions are iterative (no recursion limits).
 */
import { DfError } from './errors';
import { isNodeType, type Node, type NodeType, type TreeNode } from './node';

export interface NodeRow {
  id: string;
  node_type: NodeType;
  query: string | null;
  result_name: string | null;
  left_node: string | null;
  right_node: string | null;
}

const ID_ATTEMPTS = 10;

/** 8 lowercase hex characters from Math.random (callers inject a crypto-grade generator). */
export function newNodeId(): string {
  const n = Math.floor(Math.random() * 0x100000000);
  return ('00000000' + n.toString(16)).slice(-8);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function persistedQuery(node: Node, conditionId: string | null, extraIds: string[]): string | null {
  const own = node.query === undefined ? null : node.query;
  if (conditionId === null && extraIds.length === 0) return own;
  let config: Record<string, unknown> = {};
  if (own !== null) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(own);
    } catch (e) {
      throw new DfError(`query in ${node.node_type} must be valid JSON config: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (!isObject(parsed)) throw new DfError(`query in ${node.node_type} must be a JSON config object`);
    config = parsed;
  }
  if (conditionId !== null) config.condition_node = conditionId;
  if (extraIds.length > 0) config.extra_nodes = extraIds;
  return JSON.stringify(config);
}

/** Flattens a validated graph into rows; `newId` draws candidate ids (8 lowercase hex). */
export function flattenGraph(root: Node, newId: () => string): { rootId: string; rows: NodeRow[] } {
  const used = new Set<string>();
  const allocate = (): string => {
    for (let attempt = 0; attempt < ID_ATTEMPTS; attempt++) {
      const id = newId();
      if (!used.has(id)) {
        used.add(id);
        return id;
      }
    }
    throw new DfError(`Failed to create instance: exhausted ${ID_ATTEMPTS} attempts to generate a collision-free node ID`);
  };

  const rootId = allocate();
  const rows: NodeRow[] = [];
  const stack: Array<{ node: Node; id: string }> = [{ node: root, id: rootId }];
  while (stack.length > 0) {
    const { node, id } = stack.pop() as { node: Node; id: string };
    const children: Array<{ node: Node; id: string }> = [];
    const discover = (child: Node): string => {
      const childId = allocate();
      children.push({ node: child, id: childId });
      return childId;
    };
    const leftId = node.left_node !== undefined ? discover(node.left_node) : null;
    const rightId = node.right_node !== undefined ? discover(node.right_node) : null;
    const conditionId = node.condition_node !== undefined ? discover(node.condition_node) : null;
    const extraIds = node.extra_nodes !== undefined ? node.extra_nodes.map(discover) : [];
    rows.push({
      id,
      node_type: node.node_type,
      query: persistedQuery(node, conditionId, extraIds),
      result_name: node.result_name === undefined ? null : node.result_name,
      left_node: leftId,
      right_node: rightId,
    });
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]);
  }
  return { rootId, rows };
}

/**
 * Lifts the persisted child references out of a row's query: returns the envelope-form query
 * (null when nothing else remains) and the referenced ids.
 */
function liftQuery(row: NodeRow): { query: string | null; conditionId: string | null; extraIds: string[] } {
  const none = { query: row.query, conditionId: null, extraIds: [] as string[] };
  const t = row.node_type;
  if (row.query === null || (t !== 'IF' && t !== 'LOOP' && t !== 'JOIN')) return none;
  let parsed: unknown;
  try {
    parsed = JSON.parse(row.query);
  } catch {
    return none;
  }
  if (!isObject(parsed)) return none;
  let conditionId: string | null = null;
  let extraIds: string[] = [];
  let lifted = false;
  if ((t === 'IF' || t === 'LOOP') && Object.prototype.hasOwnProperty.call(parsed, 'condition_node')) {
    const c = parsed.condition_node;
    if (typeof c !== 'string') throw new DfError(`Invalid node row '${row.id}': condition_node must be a node id`);
    conditionId = c;
    delete parsed.condition_node;
    lifted = true;
  }
  if (t === 'JOIN' && Object.prototype.hasOwnProperty.call(parsed, 'extra_nodes')) {
    const e = parsed.extra_nodes;
    if (!Array.isArray(e) || e.some((x) => typeof x !== 'string')) {
      throw new DfError(`Invalid node row '${row.id}': extra_nodes must be an array of node ids`);
    }
    extraIds = e as string[];
    delete parsed.extra_nodes;
    lifted = true;
  }
  if (!lifted) return none;
  return { query: Object.keys(parsed).length === 0 ? null : JSON.stringify(parsed), conditionId, extraIds };
}

/**
 * Rebuilds the tree of an instance from its node rows. Throws DfError when a referenced node is
 * missing, a node is referenced twice (cycle or shared child) or a row has an unknown node_type.
 */
export function buildTree(rows: NodeRow[], rootId: string): TreeNode {
  const byId = new Map<string, NodeRow>();
  for (const row of rows) byId.set(row.id, row);
  const seen = new Set<string>();

  const make = (id: string, referencedBy: string | null, field: string): TreeNode => {
    const row = byId.get(id);
    if (row === undefined) {
      throw new DfError(
        referencedBy === null
          ? `Invalid node graph: root node '${id}' not found`
          : `Invalid node graph: node '${id}' referenced by '${referencedBy}' (${field}) not found`,
      );
    }
    if (seen.has(id)) {
      throw new DfError(`Invalid node graph: node '${id}' is referenced more than once (cycle or shared child)`);
    }
    seen.add(id);
    if (!isNodeType(row.node_type)) {
      throw new DfError(`Invalid node graph: node '${id}' has unknown node_type '${String(row.node_type)}'`);
    }
    return { id, node_type: row.node_type, query: null, result_name: row.result_name };
  };

  const root = make(rootId, null, 'root');
  const stack: TreeNode[] = [root];
  while (stack.length > 0) {
    const tree = stack.pop() as TreeNode;
    const row = byId.get(tree.id) as NodeRow;
    const { query, conditionId, extraIds } = liftQuery(row);
    tree.query = query;
    const children: TreeNode[] = [];
    if (row.left_node !== null) {
      tree.left = make(row.left_node, row.id, 'left_node');
      children.push(tree.left);
    }
    if (row.right_node !== null) {
      tree.right = make(row.right_node, row.id, 'right_node');
      children.push(tree.right);
    }
    if (conditionId !== null) {
      tree.condition = make(conditionId, row.id, 'condition_node');
      children.push(tree.condition);
    }
    if (extraIds.length > 0) {
      const extras = extraIds.map((x) => make(x, row.id, 'extra_nodes'));
      tree.extras = extras;
      for (const extra of extras) children.push(extra);
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]);
  }
  return root;
}
