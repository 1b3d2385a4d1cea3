/**
 * Monitoring functions (API §10.1-10.6): df.list_instances (both overloads), df.instance_info,
 * df.instance_nodes (both overloads) and df.instance_executions.
 *
 * Everything reads as the caller (SECURITY INVOKER): RLS on df.instances, df.nodes,
 * df._executions and df._node_runs (under the views df._execution_log and df._runs, which add
 * what instance and node rows keep) decides what is visible. Plain SELECTs only, so nothing here
 * can block the worker. The engine-vocabulary columns (function_name, execution_count, output,
 * event_count, ...) come from our own tables (deviation 3) and are never omitted.
 */
import { decodeCursor, encodeCursor } from '../core/cursor';
import { DfError } from '../core/errors';
import { buildTree, type NodeRow } from '../core/flatten';
import { inferStatuses, type Inferred, type PhysicalNode } from '../core/infer';
import type { NodeStatus, TreeNode } from '../core/node';
import { one, query } from './db';
import { adminSetting, requireNonNull } from './session';
import { FUNCTION_NAME, FUNCTION_VERSION, currentExecutionJoin, eq, isoUtc } from './sqltext';

const DEFAULT_MAX_LIMIT = 1000;
const MAX_EXECUTIONS_LIMIT = 10000;

// ---------------------------------------------------------------------------------------------
// df.list_instances
// ---------------------------------------------------------------------------------------------

/** `pg_durable.list_instances_max_limit` as an administrator set it (deviations 13 and 15). */
function maxLimit(): number {
  const text = adminSetting('pg_durable.list_instances_max_limit') ?? '';
  if (!/^[0-9]+$/.test(text)) return DEFAULT_MAX_LIMIT;
  const n = Number(text);
  return n >= 1 ? n : DEFAULT_MAX_LIMIT;
}

function checkLimit(limit: number | null): number {
  const n = requireNonNull('df.list_instances', 'limit_count', limit);
  if (n < 1) throw new DfError('limit_count must be at least 1', '22023');
  const max = maxLimit();
  if (n > max) {
    throw new DfError(
      `df.list_instances: limit_count (${n}) exceeds pg_durable.list_instances_max_limit (${max}); request fewer rows, or use the paginated df.list_instances overload (after_cursor/next_cursor) for large result sets`,
      '22023',
    );
  }
  return n;
}

type ListRow = {
  instance_id: string;
  label: string | null;
  status: string;
  execution_count: number | null;
  output: string | null;
  created_at: string | null;
  completed_at: string | null;
  cursor_ts: string | null;
};

const LIST_COLUMNS = `i.id AS instance_id, i.label, i.status, cur.cur_execution_id AS execution_count, cur.cur_output AS output,
       ${isoUtc('i.created_at')} AS created_at, ${isoUtc('i.completed_at')} AS completed_at,
       pg_catalog.to_char(i.created_at, 'YYYY-MM-DD"T"HH24:MI:SS.USOF'::pg_catalog.text) AS cursor_ts`;

/** df.list_instances(status_filter, limit_count): the basic 6-column overload (§10.1). */
export function listInstances(statusFilter: string | null, limitCount: number | null): Record<string, unknown>[] {
  const limit = checkLimit(limitCount);
  const params: unknown[] = [limit];
  let where = '';
  if (statusFilter !== null) {
    params.push(statusFilter);
    where = `WHERE ${eq('status', '$2::pg_catalog.text')}`;
  }
  const rows = query<ListRow>(
    `SELECT ${LIST_COLUMNS}
       FROM (SELECT id, label, status, created_at, completed_at FROM df.instances ${where}
              ORDER BY created_at DESC, id LIMIT $1::pg_catalog.int4) i
       ${currentExecutionJoin('i.id')}
      ORDER BY i.created_at DESC, i.id`,
    params,
  );
  return rows.map((r) => ({
    instance_id: r.instance_id,
    label: r.label,
    function_name: FUNCTION_NAME,
    status: r.status,
    execution_count: r.execution_count,
    output: r.output,
  }));
}

/** df.list_instances(status_filter, limit_count, label_filter, after_cursor): keyset pages (§10.2). */
export function listInstancesPaged(
  statusFilter: string | null,
  limitCount: number | null,
  labelFilter: string | null,
  afterCursor: string | null,
): Record<string, unknown>[] {
  const limit = checkLimit(limitCount);
  const conditions = ['created_at IS NOT NULL'];
  const params: unknown[] = [limit + 1];
  const param = (value: unknown, type: string): string => {
    params.push(value);
    return `$${params.length}::pg_catalog.${type}`;
  };
  if (statusFilter !== null) conditions.push(eq('status', param(statusFilter, 'text')));
  if (labelFilter !== null) conditions.push(eq('label', param(labelFilter, 'text')));
  if (afterCursor !== null) {
    const cursor = decodeCursor(afterCursor);
    if (cursor === null || !isTimestamp(cursor.createdAt)) throw new DfError('df.list_instances: invalid after_cursor', '22023');
    const ts = param(cursor.createdAt, 'text');
    const id = param(cursor.id, 'text');
    conditions.push(
      `created_at OPERATOR(pg_catalog.<=) ${ts}::pg_catalog.timestamptz AND (created_at OPERATOR(pg_catalog.<) ${ts}::pg_catalog.timestamptz ` +
        `OR (created_at OPERATOR(pg_catalog.=) ${ts}::pg_catalog.timestamptz AND id OPERATOR(pg_catalog.>) ${id}))`,
    );
  }
  const rows = query<ListRow>(
    `SELECT ${LIST_COLUMNS}
       FROM (SELECT id, label, status, created_at, completed_at FROM df.instances
              WHERE ${conditions.join(' AND ')}
              ORDER BY created_at DESC, id ASC LIMIT $1::pg_catalog.int4) i
       ${currentExecutionJoin('i.id')}
      ORDER BY i.created_at DESC, i.id ASC`,
    params,
  );
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  const nextCursor = rows.length > limit && last && last.cursor_ts !== null ? encodeCursor({ createdAt: last.cursor_ts, id: last.instance_id }) : null;
  return page.map((r) => ({
    instance_id: r.instance_id,
    label: r.label,
    function_name: FUNCTION_NAME,
    status: r.status,
    execution_count: r.execution_count,
    output: r.output,
    created_at: r.created_at,
    completed_at: r.completed_at,
    next_cursor: nextCursor,
  }));
}

/** Whether PostgreSQL accepts the cursor's timestamp (the format check passes e.g. month 13). */
function isTimestamp(text: string): boolean {
  try {
    query('SELECT $1::pg_catalog.text::pg_catalog.timestamptz AS ts', [text]);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// df.instance_info
// ---------------------------------------------------------------------------------------------

export function instanceInfo(instanceId: string): Record<string, unknown>[] {
  const rows = query<{ id: string; label: string | null; status: string; cur_execution_id: number | null; cur_output: string | null }>(
    `SELECT i.id, i.label, i.status, cur.cur_execution_id, cur.cur_output
       FROM df.instances i ${currentExecutionJoin('i.id')}
      WHERE ${eq('i.id', '$1::pg_catalog.text')}`,
    [instanceId],
  );
  return rows.map((r) => ({
    instance_id: r.id,
    label: r.label,
    function_name: FUNCTION_NAME,
    function_version: FUNCTION_VERSION,
    current_execution_id: r.cur_execution_id,
    status: r.status,
    output: r.cur_output,
  }));
}

// ---------------------------------------------------------------------------------------------
// df.instance_nodes(id): one row per node with the inferred status
// ---------------------------------------------------------------------------------------------

export interface InstanceNodeRow extends NodeRow {
  status: NodeStatus;
  result: string | null;
  status_details: string | null;
  updated_at: string | null;
}

/** The caller-visible instance header, or undefined. */
export function visibleInstance(instanceId: string): { id: string; label: string | null; status: string; root_node: string } | undefined {
  return one(
    `SELECT i.id, i.label, i.status, i.root_node FROM df.instances i WHERE ${eq('i.id', '$1::pg_catalog.text')}`,
    [instanceId],
  ) as { id: string; label: string | null; status: string; root_node: string } | undefined;
}

/** The instance's df.nodes rows as the caller sees them. */
export function nodeRows(instanceId: string): InstanceNodeRow[] {
  return query<InstanceNodeRow & Record<string, unknown>>(
    `SELECT n.id, n.node_type, n.query, n.result_name, n.left_node, n.right_node, n.status,
            n.result::pg_catalog.text AS result, n.status_details::pg_catalog.text AS status_details,
            ${isoUtc('n.updated_at')} AS updated_at
       FROM df.nodes n
      WHERE ${eq('n.instance_id', '$1::pg_catalog.text')}
      ORDER BY n.id`,
    [instanceId],
  );
}

/**
 * The tree (null when the stored graph cannot be rebuilt) and the inferred status of every row
 * (API §10.4; the same inference df.explain's markers use).
 */
export function inferInstance(rows: InstanceNodeRow[], rootId: string): { tree: TreeNode | null; inferred: Map<string, Inferred> } {
  const physical = new Map<string, PhysicalNode>();
  for (const r of rows) physical.set(r.id, { status: r.status, stamp: r.status_details });
  let tree: TreeNode | null = null;
  try {
    tree = buildTree(rows, rootId);
  } catch (err) {
    if (!(err instanceof DfError)) throw err;
  }
  if (tree === null) {
    const inferred = new Map<string, Inferred>();
    physical.forEach((p, id) => inferred.set(id, { status: p.status, fromAncestor: null }));
    return { tree, inferred };
  }
  return { tree, inferred: inferStatuses(tree, physical) };
}

/** Pre-order ids of a tree (children: left, right, condition, extras). */
function preorder(root: TreeNode): string[] {
  const out: string[] = [];
  const stack: TreeNode[] = [root];
  while (stack.length > 0) {
    const n = stack.pop() as TreeNode;
    out.push(n.id);
    const kids = [n.left, n.right, n.condition, ...(n.extras ?? [])].filter((k): k is TreeNode => k !== undefined);
    for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]);
  }
  return out;
}

export function instanceNodes(instanceId: string): Record<string, unknown>[] {
  const inst = visibleInstance(instanceId);
  if (!inst) return [];
  const rows = nodeRows(instanceId);
  const { tree, inferred } = inferInstance(rows, inst.root_node);
  // Row order is unspecified by the contract; the tree's pre-order reads best, unreachable rows last.
  const rank = new Map<string, number>();
  if (tree) preorder(tree).forEach((id, i) => rank.set(id, i));
  const ordered = rows.slice().sort((a, b) => (rank.get(a.id) ?? Infinity) - (rank.get(b.id) ?? Infinity));
  return ordered.map((r) => {
    const inf = inferred.get(r.id);
    return {
      node_id: r.id,
      node_type: r.node_type,
      query: r.query,
      result_name: r.result_name,
      left_node: r.left_node,
      right_node: r.right_node,
      status: r.status,
      result: r.result,
      status_details: r.status_details,
      inferred_status: inf ? inf.status : r.status,
      inferred_status_from_ancestor_id: inf ? inf.fromAncestor : null,
      updated_at: r.updated_at,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// df.instance_nodes(id, n): the legacy 10-column shape over the last n executions (deviation 12)
// ---------------------------------------------------------------------------------------------

export function instanceNodesHistory(instanceId: string, lastN: number): Record<string, unknown>[] {
  if (lastN < 1) throw new DfError('_last_n_executions must be at least 1', '22023');
  const n = Math.min(lastN, MAX_EXECUTIONS_LIMIT);
  return query(
    `WITH ex AS (
        SELECT e.execution_id FROM df._execution_log e
         WHERE ${eq('e.instance_id', '$1::pg_catalog.text')}
         ORDER BY e.execution_id DESC LIMIT $2::pg_catalog.int4)
     SELECT ex.execution_id::pg_catalog.int8 AS execution_id, n.id AS node_id, n.node_type, n.query, n.result_name,
            n.left_node, n.right_node, COALESCE(r.status, 'pending') AS status,
            df._jsonb_text(r.result) AS result,
            ${isoUtc('COALESCE(r.finished_at, r.started_at)')} AS updated_at
       FROM ex
      CROSS JOIN df.nodes n
       LEFT JOIN LATERAL (
            SELECT x.status, x.result, x.started_at, x.finished_at FROM df._runs x
             WHERE ${eq('x.instance_id', '$1::pg_catalog.text')} AND ${eq('x.execution_id', 'ex.execution_id')} AND ${eq('x.node_id', 'n.id')}
             ORDER BY x.started_at DESC, x.finished_at DESC NULLS FIRST, x.stamp DESC
             LIMIT 1) r ON true
      WHERE ${eq('n.instance_id', '$1::pg_catalog.text')}
      ORDER BY ex.execution_id DESC, n.id`,
    [instanceId, n],
  );
}

// ---------------------------------------------------------------------------------------------
// df.instance_executions
// ---------------------------------------------------------------------------------------------

export function instanceExecutions(instanceId: string, limitCount: number): Record<string, unknown>[] {
  if (limitCount < 1) throw new DfError('limit_count must be at least 1', '22023');
  const limit = Math.min(limitCount, MAX_EXECUTIONS_LIMIT);
  return query(
    `SELECT e.execution_id::pg_catalog.int8 AS execution_id, e.status,
            (SELECT pg_catalog.count(*) OPERATOR(pg_catalog.+) pg_catalog.count(r.finished_at)
               FROM df._runs r
              WHERE ${eq('r.instance_id', 'e.instance_id')} AND ${eq('r.execution_id', 'e.execution_id')}) AS event_count,
            CASE WHEN e.completed_at IS NULL THEN 0::pg_catalog.int8
                 ELSE pg_catalog.floor(EXTRACT(epoch FROM e.completed_at OPERATOR(pg_catalog.-) e.started_at) OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8
            END AS duration_ms,
            e.output
       FROM df._execution_log e
      WHERE ${eq('e.instance_id', '$1::pg_catalog.text')}
      ORDER BY e.execution_id DESC
      LIMIT $2::pg_catalog.int4`,
    [instanceId, limit],
  );
}
