/**
 * The graph model shared by the plv8 bundle, the worker, the CLI and the tests.
 *
 * Glossary (terms used across the code base):
 * - node:      one vertex of a workflow graph, a JSON object with a `node_type` (the "Durofut"
 *              envelope of the original). Leaves run something (SQL, SLEEP, HTTP, ...); composites
 *              (THEN, IF, JOIN, RACE, LOOP) arrange their children.
 * - graph:     a tree of nodes as built by the DSL; flattened into `df.nodes` rows by `df.start`.
 * - instance:  one started workflow (`df.instances` row) with an 8-hex id.
 * - execution: one run of an instance's root. A root LOOP starts a new execution per iteration
 *              (`execution_id` 1, 2, ...); otherwise an instance has exactly one execution.
 * - scope / generation / stamp: where a node run belongs. The root scope is the instance id; a
 *              JOIN/RACE branch or a non-root loop opens a child scope
 *              `<parent scope>::<parent generation>::<node id>`. A stamp is `<scope>::<generation>`
 *              and is what `status_details.execution_id` shows.
 * - named result: the raw result text of a node that carries `result_name`, referenced as `$name`.
 */

export const NODE_TYPES = [
  'SQL', 'THEN', 'IF', 'JOIN', 'LOOP', 'BREAK', 'RACE', 'SLEEP', 'WAIT_SCHEDULE', 'HTTP', 'HTTP_MULTIPART', 'SIGNAL',
  // Ours, beyond the original: RETRY re-runs its child (left_node) on failure; TIMEOUT fails it
  // when it runs too long. Both keep their policy as JSON config in `query`.
  'RETRY', 'TIMEOUT',
  // Ours: a saga step. UNDO runs its forward node (left_node); once that completes, its undo
  // (right_node) is registered and runs, most recent first, if the instance fails.
  'UNDO',
] as const;

/** Limits of df.retry / df.timeout (numbers chosen so a policy cannot hold an instance for ever by accident). */
export const MAX_RETRY_ATTEMPTS = 100;
export const MAX_BACKOFF_SECONDS = 86400;
export const MAX_TIMEOUT_SECONDS = 31536000;

export type NodeType = (typeof NODE_TYPES)[number];

export function isNodeType(value: unknown): value is NodeType {
  return typeof value === 'string' && (NODE_TYPES as readonly string[]).includes(value);
}

/** A node as the DSL builds it (nested children). Field order here is the serialisation order. */
export interface Node {
  node_type: NodeType;
  left_node?: Node;
  right_node?: Node;
  condition_node?: Node;
  extra_nodes?: Node[];
  query?: string;
  result_name?: string;
}

/** Limits enforced by validation (API §5.4); the original's numbers, kept for compatibility. */
export const MAX_DEPTH = 256;
export const MAX_NODES = 10000;

/** `^[A-Za-z_][A-Za-z0-9_]*$`: result names, variable names, `$name` references. */
export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A node with its id, as stored in `df.nodes` and read back by the worker, explain and monitoring.
 * `query` is the node's own payload in envelope form: SQL text or a JSON config string, with the
 * persisted child references (`condition_node`, `extra_nodes`) already lifted into the fields below
 * (null when nothing else remains, e.g. a plain `df.if` or a two-branch JOIN).
 */
export interface TreeNode {
  id: string;
  node_type: NodeType;
  query: string | null;
  result_name: string | null;
  left?: TreeNode;
  right?: TreeNode;
  condition?: TreeNode;
  extras?: TreeNode[];
}

/** Physical node status as stored; `skipped` exists only as an inferred status (API §10.4). */
export type NodeStatus = 'pending' | 'running' | 'completed' | 'failed';
export type InferredStatus = NodeStatus | 'skipped';
