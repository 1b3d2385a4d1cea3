/**
 * Graph validation at `df.start` and `df.explain` (API §5.4), plus the structural rules the
 * original enforced only through `df.nodes` CHECK constraints (§12.2) and cheap per-type config
 * checks: we validate everything before writing anything.
 *
 * The walk is depth-first pre-order (children: left, right, condition, extras) with an explicit
 * stack. Per node the checks run in this order: node count, depth, child deserialisation, unknown
 * node_type, misplaced condition_node/extra_nodes, structure (left/right/query presence), legacy
 * embedded layouts, query merge (JSON config object), per-type config, result_name.
 */
import { validateCron } from './cron';
import { malformedOf, unknownNodeTypeMessage } from './ensure';
import { DfError } from './errors';
import { IDENTIFIER, MAX_BACKOFF_SECONDS, MAX_DEPTH, MAX_NODES, MAX_RETRY_ATTEMPTS, MAX_TIMEOUT_SECONDS, isNodeType, type Node, type NodeType } from './node';

export class GraphError extends DfError {
  readonly path: string;
  readonly detail: string;
  constructor(path: string, detail: string) {
    super(`Invalid durable function graph: ${path}: ${detail}`);
    this.name = 'GraphError';
    this.path = path;
    this.detail = detail;
  }
}

const LEAF_TYPES: readonly NodeType[] = ['SQL', 'SLEEP', 'WAIT_SCHEDULE', 'BREAK', 'HTTP', 'HTTP_MULTIPART', 'SIGNAL'];

type Json = unknown;

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function tryParse(text: string): { ok: true; value: Json } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return { ok: false, error: errorText(e) };
  }
}

/** Parses a config query that must be a JSON object; the messages name the node type. */
function configObject(t: NodeType, query: string): Record<string, unknown> | string {
  const parsed = tryParse(query);
  if (!parsed.ok) return `query in ${t} must be valid JSON config: ${parsed.error}`;
  if (!isObject(parsed.value)) return `query in ${t} must be a JSON config object`;
  return parsed.value;
}

function has(obj: Record<string, unknown>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

function isPositiveInteger(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

/** Structural presence rules (§12.2 nodes_structure_chk, now in df._node_shape_ok), reported with the missing field. */
function structureError(node: Node, t: NodeType): string | null {
  const hasLeft = node.left_node !== undefined;
  const hasRight = node.right_node !== undefined;
  const hasQuery = node.query !== undefined;
  if (LEAF_TYPES.indexOf(t) >= 0) {
    if (hasLeft || hasRight) return `${t} node must not have left_node or right_node`;
    if (!hasQuery) return `${t} node requires a query`;
    return null;
  }
  switch (t) {
    case 'THEN':
      if (!hasLeft || !hasRight) return 'THEN node requires left_node and right_node';
      if (hasQuery) return 'THEN node must not have a query';
      return null;
    case 'IF':
      if (!hasLeft || !hasRight) return 'IF node requires left_node (then branch) and right_node (else branch)';
      if (node.condition_node === undefined && !hasQuery) {
        return 'IF node requires a condition_node or a query (df.if_rows config)';
      }
      return null;
    case 'LOOP':
      if (!hasLeft) return 'LOOP node requires left_node (the loop body)';
      if (hasRight) return 'LOOP node must not have right_node';
      return null;
    case 'JOIN':
      if (!hasLeft || !hasRight) return 'JOIN node requires left_node and right_node';
      return null;
    case 'RACE':
      if (!hasLeft || !hasRight) return 'RACE node requires left_node and right_node';
      if (hasQuery) return 'RACE node must not have a query';
      return null;
    case 'UNDO':
      if (!hasLeft || !hasRight) return 'UNDO node requires left_node (the forward step) and right_node (its undo)';
      if (hasQuery) return 'UNDO node must not have a query';
      return null;
    case 'RETRY':
    case 'TIMEOUT':
      if (!hasLeft) return `${t} node requires left_node (the node it applies to)`;
      if (hasRight) return `${t} node must not have right_node`;
      if (!hasQuery) return `${t} node requires a query (its JSON config)`;
      return null;
    default:
      return null;
  }
}

/** Legacy layouts and the query merge of IF/LOOP (condition_node) and JOIN (extra_nodes). */
function embeddedAndMergeError(node: Node, t: NodeType): string | null {
  if (node.query === undefined) return null;
  let key: 'condition_node' | 'extra_nodes' | null = null;
  let merging = false;
  if (t === 'IF' || t === 'LOOP') {
    key = 'condition_node';
    merging = node.condition_node !== undefined;
  } else if (t === 'JOIN') {
    key = 'extra_nodes';
    merging = node.extra_nodes !== undefined && node.extra_nodes.length > 0;
  }
  if (key === null) return null;
  const parsed = tryParse(node.query);
  if (parsed.ok && isObject(parsed.value) && has(parsed.value, key)) {
    return `${key} in ${t} must be a first-class Durofut field, not embedded in query`;
  }
  if (merging) {
    const config = configObject(t, node.query);
    if (typeof config === 'string') return config;
  }
  return null;
}

/** Cheap per-type checks of config payloads (what the runtime would otherwise reject). */
function configError(node: Node, t: NodeType): string | null {
  const query = node.query;
  if (query === undefined) return null;
  switch (t) {
    case 'SLEEP':
      if (!/^[0-9]+$/.test(query)) {
        return `SLEEP query must be a non-negative integer number of seconds, got '${query}'`;
      }
      return null;
    case 'WAIT_SCHEDULE': {
      const config = configObject(t, query);
      if (typeof config === 'string') return config;
      if (typeof config.cron_expr !== 'string') return 'WAIT_SCHEDULE config requires a string cron_expr';
      try {
        validateCron(config.cron_expr);
      } catch (e) {
        return errorText(e);
      }
      return null;
    }
    case 'SIGNAL': {
      const config = configObject(t, query);
      if (typeof config === 'string') return config;
      if (typeof config.signal_name !== 'string' || config.signal_name === '') {
        return 'SIGNAL config requires a non-empty string signal_name';
      }
      const timeout = config.timeout_seconds;
      if (timeout !== undefined && timeout !== null && !isPositiveInteger(timeout)) {
        return 'SIGNAL timeout_seconds must be null or a positive integer';
      }
      return null;
    }
    case 'BREAK': {
      const config = configObject(t, query);
      if (typeof config === 'string') return config;
      const v = config.break_value;
      if (v !== undefined && v !== null && typeof v !== 'string') return 'BREAK break_value must be a string or null';
      return null;
    }
    case 'RETRY': {
      const config = configObject(t, query);
      if (typeof config === 'string') return config;
      const n = config.max_attempts;
      if (!(typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= MAX_RETRY_ATTEMPTS)) {
        return `RETRY max_attempts must be a whole number between 1 and ${MAX_RETRY_ATTEMPTS}`;
      }
      const b = config.backoff_seconds;
      if (!(typeof b === 'number' && b >= 0 && b <= MAX_BACKOFF_SECONDS)) return `RETRY backoff_seconds must be between 0 and ${MAX_BACKOFF_SECONDS}`;
      return null;
    }
    case 'TIMEOUT': {
      const config = configObject(t, query);
      if (typeof config === 'string') return config;
      const s = config.seconds;
      if (!(typeof s === 'number' && s > 0 && s <= MAX_TIMEOUT_SECONDS)) return `TIMEOUT seconds must be positive and at most ${MAX_TIMEOUT_SECONDS}`;
      return null;
    }
    case 'HTTP':
    case 'HTTP_MULTIPART': {
      const config = configObject(t, query);
      if (typeof config === 'string') return config;
      if (typeof config.url !== 'string') return `${t} config requires a string url`;
      if (typeof config.method !== 'string') return `${t} config requires a string method`;
      if (t === 'HTTP_MULTIPART' && !Array.isArray(config.parts)) return 'HTTP_MULTIPART config requires a parts array';
      return null;
    }
    case 'IF': {
      if (node.condition_node !== undefined) return null;
      const config = configObject(t, query);
      if (typeof config === 'string') return config;
      if (config.condition_type !== 'result_has_rows' || typeof config.result_name !== 'string') {
        return 'IF without condition_node requires a query {"condition_type":"result_has_rows","result_name":"<name>"}';
      }
      return null;
    }
    default:
      return null;
  }
}

function nodeError(node: Node): string | null {
  const malformed = malformedOf(node);
  if (malformed !== undefined) return `failed to deserialize Durofut child: ${malformed}`;
  const raw = node.node_type as string;
  if (!isNodeType(raw)) return unknownNodeTypeMessage(raw);
  const t: NodeType = raw;
  if (node.condition_node !== undefined && t !== 'IF' && t !== 'LOOP') {
    return `condition_node is not valid for ${t} nodes`;
  }
  if (node.extra_nodes !== undefined && node.extra_nodes.length > 0 && t !== 'JOIN') {
    return `extra_nodes is not valid for ${t} nodes`;
  }
  return (
    structureError(node, t) ??
    embeddedAndMergeError(node, t) ??
    configError(node, t) ??
    (node.result_name !== undefined && !IDENTIFIER.test(node.result_name)
      ? `result_name '${node.result_name}' is not a valid identifier — must match [a-zA-Z_][a-zA-Z0-9_]*`
      : null)
  );
}

/**
 * Validates a whole graph; throws GraphError (`Invalid durable function graph: <path>: <detail>`)
 * on the first problem in pre-order. Returns the number of nodes.
 */
export function validateGraph(root: Node): number {
  const stack: Array<{ node: Node; path: string; depth: number }> = [{ node: root, path: 'root', depth: 0 }];
  let count = 0;
  while (stack.length > 0) {
    const { node, path, depth } = stack.pop() as { node: Node; path: string; depth: number };
    count++;
    if (count > MAX_NODES) {
      throw new GraphError(
        path,
        `Workflow exceeds maximum node count of ${MAX_NODES}. Simplify the workflow or break it into multiple instances.`,
      );
    }
    if (depth > MAX_DEPTH) {
      throw new GraphError(
        path,
        `Graph exceeds maximum nesting depth of ${MAX_DEPTH}. Simplify the workflow or break it into multiple instances.`,
      );
    }
    const error = nodeError(node);
    if (error !== null) throw new GraphError(path, error);
    const children: Array<{ node: Node; path: string; depth: number }> = [];
    if (node.left_node !== undefined) children.push({ node: node.left_node, path: `${path}.left`, depth: depth + 1 });
    if (node.right_node !== undefined) children.push({ node: node.right_node, path: `${path}.right`, depth: depth + 1 });
    if (node.condition_node !== undefined) {
      children.push({ node: node.condition_node, path: `${path}.condition_node`, depth: depth + 1 });
    }
    if (node.extra_nodes !== undefined) {
      node.extra_nodes.forEach((extra, i) => {
        children.push({ node: extra, path: `${path}.extra_nodes[${i}]`, depth: depth + 1 });
      });
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]);
  }
  return count;
}
