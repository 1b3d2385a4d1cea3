/**
 * Engine state for monitoring tests without a worker: writes, as the superuser, exactly the rows
 * the worker's checkpoint (df._commit) writes, so tests can put an instance into any state:
 *
 *   const g = await loadInstance(db, id);
 *   await startNode(db, id, g.root, `${id}::1`);
 *   await completeNode(db, id, g.byQuery('SELECT 1'), `${id}::1`, '{"rows":[{"a":1}],"row_count":1}');
 *   await completeInstance(db, id, '{"rows":[{"a":1}],"row_count":1}');
 *
 * Rows written (API §9.2, §10.4, docs in src/sql/00_schema.sql):
 *  - df._node_runs: one row per (stamp, node) in the instance's current execution; started_at on
 *    the first write, status/result/finished_at on the finishing one (result = raw text);
 *  - df.nodes: status, result (JSON as jsonb, anything else as a JSON string, NULL while
 *    running), status_details {"execution_id": stamp} (+ extra keys), updated_at;
 *  - df.instances: running on the first node start; completed (with completed_at) / failed;
 *  - df._executions: the current execution closed as Completed / Failed / ContinuedAsNew with its
 *    output (execution 1's row written then: it has none while it runs), and the next one opened
 *    by continueAsNew. Always a row: the engine leaves some completed first executions to
 *    df._execution_log, which worker-hot-path.test.ts pins.
 * Every writer takes `at` (any timestamptz expression's text value, e.g. an ISO string) to
 * backdate what it writes; default clock_timestamp(). Later end-to-end tests can swap these for a
 * real worker run.
 */
import pg from 'pg';
import { buildTree, type NodeRow } from '../../src/core/flatten';
import type { TreeNode } from '../../src/core/node';
import { withPg } from './db';

/** A database name (a superuser connection is opened per call) or an open superuser client. */
export type Target = string | pg.Client;

async function on<T>(target: Target, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  return typeof target === 'string' ? withPg(target, fn) : fn(target);
}

export interface WriteOptions {
  /** Timestamp to record (text accepted by timestamptz input); default clock_timestamp(). */
  at?: string;
  /** Extra status_details / run detail keys (e.g. {"note": "..."}). */
  detail?: Record<string, unknown>;
}

export interface InstanceGraph {
  id: string;
  root: string;
  rows: NodeRow[];
  tree: TreeNode;
  /** The id of the node whose query is exactly `query` (throws if not exactly one). */
  byQuery(query: string): string;
  /** The ids of the nodes of a type, in tree pre-order. */
  byType(nodeType: string): string[];
  /** The root-scope stamp of an execution: `<id>::<g>`. */
  stamp(generation?: number): string;
}

export async function loadInstance(target: Target, id: string): Promise<InstanceGraph> {
  return on(target, async (c) => {
    const inst = await c.query('SELECT root_node FROM df.instances WHERE id = $1', [id]);
    if (inst.rows.length === 0) throw new Error(`fixture: no instance ${id}`);
    const rows = (await c.query('SELECT id, node_type, query, result_name, left_node, right_node FROM df.nodes WHERE instance_id = $1', [id]))
      .rows as NodeRow[];
    const root = inst.rows[0].root_node as string;
    const tree = buildTree(rows, root);
    const order: TreeNode[] = [];
    const walk = (n: TreeNode | undefined): void => {
      if (!n) return;
      order.push(n);
      [n.left, n.right, n.condition, ...(n.extras ?? [])].forEach(walk);
    };
    walk(tree);
    return {
      id,
      root,
      rows,
      tree,
      byQuery(query: string): string {
        const hits = rows.filter((r) => r.query === query);
        if (hits.length !== 1) throw new Error(`fixture: ${hits.length} nodes with query ${JSON.stringify(query)}`);
        return hits[0].id;
      },
      byType(nodeType: string): string[] {
        return order.filter((n) => n.node_type === nodeType).map((n) => n.id);
      },
      stamp(generation = 1): string {
        return `${id}::${generation}`;
      },
    };
  });
}

const AT = (i: number): string => `COALESCE($${i}::timestamptz, clock_timestamp())`;

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

async function writeNode(
  target: Target,
  instanceId: string,
  nodeId: string,
  stamp: string,
  status: 'running' | 'completed' | 'failed',
  result: string | null,
  json: boolean,
  opts: WriteOptions,
): Promise<void> {
  await on(target, async (c) => {
    const detail = opts.detail ? JSON.stringify(opts.detail) : null;
    await c.query('BEGIN');
    try {
      const exec = await c.query('SELECT max(execution_id) AS e FROM df._executions WHERE instance_id = $1', [instanceId]);
      await c.query(
        `INSERT INTO df._node_runs AS r (instance_id, stamp, node_id, execution_id, status, result, detail, started_at, finished_at, submitted_by)
         SELECT $1::text, $2::text, $3::text, $4::int4, $5::text, $6::text, $7::jsonb, ${AT(8)}, CASE WHEN $5::text <> 'running' THEN ${AT(8)} END, i.submitted_by
           FROM df.instances i WHERE i.id = $1::text
         ON CONFLICT (instance_id, stamp, node_id) DO UPDATE
            SET status = EXCLUDED.status, result = EXCLUDED.result,
                detail = COALESCE(r.detail, '{}'::jsonb) || COALESCE(EXCLUDED.detail, '{}'::jsonb),
                finished_at = EXCLUDED.finished_at`,
        [instanceId, stamp, nodeId, exec.rows[0].e ?? 1, status, result, detail, opts.at ?? null],
      );
      await c.query(
        `UPDATE df.nodes
            SET status = $3::text,
                result = CASE WHEN $3::text = 'running' THEN NULL WHEN $5::bool THEN $4::text::jsonb ELSE to_jsonb($4::text) END,
                status_details = jsonb_build_object('execution_id', $6::text) || COALESCE($7::jsonb, '{}'::jsonb),
                updated_at = ${AT(8)}
          WHERE instance_id = $1::text AND id = $2::text`,
        [instanceId, nodeId, status, result, json, stamp, detail, opts.at ?? null],
      );
      await c.query(
        `UPDATE df.instances SET status = 'running', updated_at = ${AT(2)} WHERE id = $1 AND status = 'pending'`,
        [instanceId, opts.at ?? null],
      );
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK');
      throw err;
    }
  });
}

/** The worker stamps a node running (result cleared) before executing it. */
export function startNode(target: Target, instanceId: string, nodeId: string, stamp: string, opts: WriteOptions = {}): Promise<void> {
  return writeNode(target, instanceId, nodeId, stamp, 'running', null, false, opts);
}

/** A node finished with a result (raw compact text; stored in df.nodes as jsonb when it is JSON). */
export function completeNode(target: Target, instanceId: string, nodeId: string, stamp: string, result: string, opts: WriteOptions = {}): Promise<void> {
  return writeNode(target, instanceId, nodeId, stamp, 'completed', result, isJson(result), opts);
}

/** A node failed with an error message (stored in df.nodes as a JSON string). */
export function failNode(target: Target, instanceId: string, nodeId: string, stamp: string, message: string, opts: WriteOptions = {}): Promise<void> {
  return writeNode(target, instanceId, nodeId, stamp, 'failed', message, false, opts);
}

async function closeExecution(target: Target, instanceId: string, status: 'Completed' | 'Failed' | 'ContinuedAsNew', output: string | null, opts: WriteOptions): Promise<number> {
  return on(target, async (c) => {
    // Execution 1 has no row until it ends (df._close_execution): its start is the instance's.
    const r = await c.query(
      `WITH closed AS (
         UPDATE df._executions SET status = $2, completed_at = ${AT(4)}, output = $3
          WHERE instance_id = $1::text AND execution_id = (SELECT max(execution_id) FROM df._executions WHERE instance_id = $1::text)
         RETURNING execution_id),
       first AS (
         INSERT INTO df._executions (instance_id, execution_id, status, started_at, completed_at, output, submitted_by)
         SELECT i.id, 1, $2, i.created_at, ${AT(4)}, $3, i.submitted_by FROM df.instances i
          WHERE i.id = $1::text AND NOT EXISTS (SELECT 1 FROM df._executions WHERE instance_id = $1::text)
         RETURNING execution_id)
       SELECT execution_id FROM closed UNION ALL SELECT execution_id FROM first`,
      [instanceId, status, output, opts.at ?? null],
    );
    return r.rows[0].execution_id as number;
  });
}

/** The root finished: instance completed (completed_at set), current execution Completed. */
export async function completeInstance(target: Target, instanceId: string, output: string, opts: WriteOptions = {}): Promise<void> {
  await on(target, (c) =>
    c.query(`UPDATE df.instances SET status = 'completed', updated_at = ${AT(2)}, completed_at = ${AT(2)} WHERE id = $1`, [instanceId, opts.at ?? null]),
  );
  await closeExecution(target, instanceId, 'Completed', output, opts);
}

/** The root failed: instance failed (completed_at stays NULL), current execution Failed. */
export async function failInstance(target: Target, instanceId: string, output: string, opts: WriteOptions = {}): Promise<void> {
  await on(target, (c) => c.query(`UPDATE df.instances SET status = 'failed', updated_at = ${AT(2)} WHERE id = $1`, [instanceId, opts.at ?? null]));
  await closeExecution(target, instanceId, 'Failed', output, opts);
}

/**
 * A root loop iteration ended: the current execution becomes ContinuedAsNew with the iteration's
 * result as output, and the next execution opens (Running). Returns the new execution id.
 */
export async function continueAsNew(target: Target, instanceId: string, output: string, opts: WriteOptions = {}): Promise<number> {
  const closed = await closeExecution(target, instanceId, 'ContinuedAsNew', output, opts);
  await on(target, (c) =>
    c.query(
      `INSERT INTO df._executions (instance_id, execution_id, started_at, submitted_by)
       SELECT id, $2::int4, ${AT(3)}, submitted_by FROM df.instances WHERE id = $1::text`,
      [instanceId, closed + 1, opts.at ?? null],
    ),
  );
  return closed + 1;
}

/** Runs `nodes` (ids, in order) to completion in one stamp with the given results: start then complete each. */
export async function completeNodes(target: Target, instanceId: string, stamp: string, results: [nodeId: string, result: string][], opts: WriteOptions = {}): Promise<void> {
  for (const [nodeId, result] of results) {
    await startNode(target, instanceId, nodeId, stamp, opts);
    await completeNode(target, instanceId, nodeId, stamp, result, opts);
  }
}
