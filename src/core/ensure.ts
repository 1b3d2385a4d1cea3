/**
 * Normalisation ("ensure") of step arguments and of `df.start`'s input (API §5.3).
 *
 * Representation decisions (the original kept children as opaque JSON values and only
 * deserialised them while validating; we parse eagerly but must not lose information, so that
 * validate.ts can still report problems with the child's path):
 * - Only the *top-level* object is deserialised strictly here (its own fields must have the right
 *   JSON types and its children must be objects), giving the §5.3 errors.
 * - A nested child with an unknown `node_type` is kept as a Node whose `node_type` holds the raw
 *   string (type-cast); validate.ts reports `Unknown node_type '<x>'…` at its path.
 * - A nested child that does not deserialise (missing/non-string `node_type`, a non-string
 *   `query`, a non-object grandchild, …) is kept as a placeholder Node carrying the raw JSON value
 *   and the parser message under a private symbol (see `malformedOf`/`rawOfMalformed`); the
 *   serialiser writes the raw value back verbatim and validate.ts reports
 *   `failed to deserialize Durofut child: <message>` at its path.
 * - Unknown extra keys are dropped; `null` for an optional field means "absent" (serde `Option`);
 *   an empty `extra_nodes` array is dropped.
 * - Parsing is iterative (explicit stack): depth is limited by validation, never by recursion.
 */
import { DfError } from './errors';
import { NODE_TYPES, isNodeType, type Node, type NodeType } from './node';

const MALFORMED: unique symbol = Symbol('df.malformedChild');

interface MalformedInfo {
  raw: unknown;
  error: string;
}

type MaybeMalformed = Node & { [MALFORMED]?: MalformedInfo };

/** The deserialisation error of a child kept verbatim by ensure, or undefined for a real node. */
export function malformedOf(node: Node): string | undefined {
  const info = (node as MaybeMalformed)[MALFORMED];
  return info === undefined ? undefined : info.error;
}

/** The raw JSON value of a child kept verbatim by ensure, or undefined for a real node. */
export function rawOfMalformed(node: Node): unknown {
  const info = (node as MaybeMalformed)[MALFORMED];
  return info === undefined ? undefined : info.raw;
}

function malformedNode(raw: unknown, error: string): Node {
  const rawType =
    raw !== null && typeof raw === 'object' && typeof (raw as Record<string, unknown>).node_type === 'string'
      ? ((raw as Record<string, unknown>).node_type as string)
      : '';
  // The marker is an (enumerable) symbol key: JSON.stringify ignores it, object spread keeps it.
  const node: MaybeMalformed = { node_type: rawType as NodeType, [MALFORMED]: { raw, error } };
  return node;
}

/** `Unknown node_type '<x>'. Valid types: SQL, THEN, …` */
export function unknownNodeTypeMessage(nodeType: string): string {
  return `Unknown node_type '${nodeType}'. Valid types: ${NODE_TYPES.join(', ')}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function present(obj: Record<string, unknown>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key) && obj[key] !== null && obj[key] !== undefined;
}

/**
 * Shallow deserialisation of one node object: checks the JSON types of its own fields and that its
 * children are objects. Returns the parser message, or null when the object is well-formed.
 */
function shallowError(obj: Record<string, unknown>): string | null {
  if (!present(obj, 'node_type')) return 'missing field node_type';
  if (typeof obj.node_type !== 'string') return 'node_type must be a string';
  for (const key of ['left_node', 'right_node']) {
    if (present(obj, key) && !isObject(obj[key])) return 'Durofut children must be JSON objects';
  }
  if (present(obj, 'condition_node') && !isObject(obj.condition_node)) {
    return 'condition_node must be a Durofut JSON object';
  }
  if (present(obj, 'extra_nodes')) {
    const extras = obj.extra_nodes;
    if (!Array.isArray(extras)) return 'extra_nodes must be a JSON array of Durofut JSON objects';
    for (const e of extras) if (!isObject(e)) return 'extra_nodes entries must be Durofut JSON objects';
  }
  if (present(obj, 'query') && typeof obj.query !== 'string') return 'query must be a JSON string';
  if (present(obj, 'result_name') && typeof obj.result_name !== 'string') return 'result_name must be a JSON string';
  return null;
}

/**
 * Builds a Node from a parsed JSON object. The top-level object must be well-formed (caller checks
 * `shallowError` first); nested children never throw (see the representation notes above).
 */
function buildNode(rootObj: Record<string, unknown>): Node {
  const work: Array<{ obj: Record<string, unknown>; assign: (n: Node) => void }> = [];
  let root: Node | undefined;
  work.push({ obj: rootObj, assign: (n) => { root = n; } });
  while (work.length > 0) {
    const { obj, assign } = work.pop() as { obj: Record<string, unknown>; assign: (n: Node) => void };
    const err = shallowError(obj);
    if (err !== null) {
      assign(malformedNode(obj, err));
      continue;
    }
    // Unknown node types are kept as raw strings (type-cast) for validate.ts to report.
    const node: Node = { node_type: obj.node_type as NodeType };
    const pending: Array<{ obj: Record<string, unknown>; assign: (n: Node) => void }> = [];
    if (present(obj, 'left_node')) {
      pending.push({ obj: obj.left_node as Record<string, unknown>, assign: (n) => { node.left_node = n; } });
    }
    if (present(obj, 'right_node')) {
      pending.push({ obj: obj.right_node as Record<string, unknown>, assign: (n) => { node.right_node = n; } });
    }
    if (present(obj, 'condition_node')) {
      pending.push({ obj: obj.condition_node as Record<string, unknown>, assign: (n) => { node.condition_node = n; } });
    }
    if (present(obj, 'extra_nodes') && (obj.extra_nodes as unknown[]).length > 0) {
      const raws = obj.extra_nodes as Array<Record<string, unknown>>;
      const extras: Node[] = new Array<Node>(raws.length);
      node.extra_nodes = extras;
      raws.forEach((raw, i) => pending.push({ obj: raw, assign: (n) => { extras[i] = n; } }));
    }
    if (present(obj, 'query')) node.query = obj.query as string;
    if (present(obj, 'result_name')) node.result_name = obj.result_name as string;
    assign(node);
    for (let i = pending.length - 1; i >= 0; i--) work.push(pending[i]);
  }
  return root as Node;
}

type Classified =
  | { kind: 'sql' }
  | { kind: 'unknown'; nodeType: string }
  | { kind: 'malformed'; nodeType: NodeType; error: string }
  | { kind: 'node'; node: Node };

function classify(text: string): Classified {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: 'sql' };
  }
  if (!isObject(value) || typeof value.node_type !== 'string') return { kind: 'sql' };
  const nodeType = value.node_type;
  if (!isNodeType(nodeType)) return { kind: 'unknown', nodeType };
  const err = shallowError(value);
  if (err !== null) return { kind: 'malformed', nodeType, error: err };
  return { kind: 'node', node: buildNode(value) };
}

function sqlNode(text: string): Node {
  return { node_type: 'SQL', query: text };
}

/**
 * Composer ensure (every builder's step arguments, API §5.3).
 * `nonFutureHelper` is the name of a non-future helper (`df.setvar`, …) called earlier in the same
 * statement, if any; then a non-JSON-object operand is rejected.
 */
export function ensureStep(text: string, nonFutureHelper?: string | null): Node {
  if (typeof nonFutureHelper === 'string' && nonFutureHelper !== '' && !text.trimStart().startsWith('{')) {
    const h = nonFutureHelper;
    throw new DfError(`${h} cannot be used as a workflow step. Call ${h} before df.start().`);
  }
  const c = classify(text);
  switch (c.kind) {
    case 'node':
      return c.node;
    case 'malformed':
      throw new DfError(`Invalid Durofut JSON: failed to deserialize workflow step: ${c.error}`);
    default:
      return sqlNode(text);
  }
}

/**
 * Strict ensure (`df.start`, API §5.3). Errors are thrown already prefixed with
 * `Invalid durable function: `, exactly as df.start reports them.
 */
export function ensureStrict(text: string): Node {
  const c = classify(text);
  switch (c.kind) {
    case 'node':
      return c.node;
    case 'unknown':
      throw new DfError(`Invalid durable function: ${unknownNodeTypeMessage(c.nodeType)}`);
    case 'malformed':
      throw new DfError(`Invalid durable function: Malformed Durofut JSON with node_type '${c.nodeType}': ${c.error}`);
    default:
      return sqlNode(text);
  }
}

/**
 * Lenient parse of an already-decoded JSON value as a graph root, for callers that want every
 * problem reported by validate.ts with a path (e.g. df.explain's graph mode): never throws; an
 * unknown or malformed root is kept exactly like a nested child would be.
 */
export function parseNodeLenient(value: unknown): Node {
  if (!isObject(value)) return malformedNode(value, 'a Durofut node must be a JSON object');
  return buildNode(value);
}
