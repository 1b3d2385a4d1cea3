/**
 * Everything the dashboard reads and does, as the role its --database-url authenticates as: the
 * df.* monitoring functions, df.instances / df._node_runs / df._signals under row-level security,
 * and df.cancel / df.signal for actions. Nothing here reads engine tables with privileges the role
 * does not have: a tenant sees exactly what psql would show it.
 */
import pg from 'pg';
import { nodeLabel, renderMermaid } from '../core/explain';
import { buildTree, type NodeRow } from '../core/flatten';
import type { InferredStatus, TreeNode } from '../core/node';

export const STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const;
/** Longest text (results, outputs, payloads) sent to the page per value; the rest is cut with a marker. */
const MAX_TEXT = 4000;
const MAX_LIST_TEXT = 200;
const MAX_RUNS = 1000;

export interface ListQuery {
  status: string | null;
  label: string | null;
  after: string | null;
  limit: number;
}

export class NotFound extends Error {}

const cut = (s: string | null, n = MAX_TEXT): string | null => (s === null || s.length <= n ? s : `${s.slice(0, n)}… (${s.length - n} more characters)`);

/** Stamp tokens: `<instance>::<g0>[::<node>::<g>]*`; names the loop iterations, retry attempts and root executions in it. */
function runLabel(stamp: string, types: Map<string, string>): string {
  const t = stamp.split('::');
  const parts: string[] = [];
  if (Number(t[1]) > 1) parts.push(`execution ${t[1]}`);
  for (let i = 2; i + 1 < t.length; i += 2) {
    if (t[i + 2] === t[i]) continue; // a JOIN/RACE branch scope named after a RETRY/LOOP branch: its own scope follows
    const type = types.get(t[i]);
    if (type === 'RETRY') parts.push(`attempt ${t[i + 1]}`);
    else if (type === 'LOOP') parts.push(`iteration ${t[i + 1]}`);
    else if (type === 'UNDO') parts.push('undo'); // a saga's compensation run (src/worker/saga.ts)
  }
  return parts.join(' · ');
}

export class UiData {
  readonly pool: pg.Pool;

  constructor(databaseUrl: string | undefined, max = 4) {
    this.pool = new pg.Pool({ ...(databaseUrl ? { connectionString: databaseUrl } : {}), max, application_name: 'pg-durable:ui' });
    this.pool.on('error', () => undefined); // an idle connection lost: the next query reconnects
  }

  async whoami(): Promise<{ role: string; database: string; superuser: boolean; version: string | null }> {
    const r = await this.pool.query(
      `SELECT current_user::text AS role, current_database()::text AS database,
              (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) AS superuser,
              (SELECT extversion FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_durable') AS version`,
    );
    return r.rows[0];
  }

  /** One page of df.list_instances (keyset cursor) and the counts by status, both as the role. */
  async list(q: ListQuery): Promise<{ rows: Record<string, unknown>[]; next: string | null; counts: Record<string, number> }> {
    const [page, counts] = await Promise.all([
      this.pool.query(
        `SELECT instance_id, label, status, execution_count, created_at, completed_at,
                pg_catalog.left(output, ${MAX_LIST_TEXT + 1}) AS output, next_cursor
           FROM df.list_instances($1::pg_catalog.text, $2::pg_catalog.int4, $3::pg_catalog.text, $4::pg_catalog.text)`,
        [q.status, q.limit, q.label, q.after],
      ),
      this.pool.query(
        `SELECT status, pg_catalog.count(*)::pg_catalog.int4 AS n FROM df.instances
          WHERE $1::pg_catalog.text IS NULL OR label OPERATOR(pg_catalog.=) $1::pg_catalog.text GROUP BY status`,
        [q.label],
      ),
    ]);
    const byStatus: Record<string, number> = {};
    for (const s of STATUSES) byStatus[s] = 0;
    for (const r of counts.rows) byStatus[r.status as string] = r.n as number;
    return {
      rows: page.rows.map((r) => ({ ...r, output: cut(r.output as string | null, MAX_LIST_TEXT), next_cursor: undefined })),
      next: (page.rows[0]?.next_cursor as string | null | undefined) ?? null,
      counts: byStatus,
    };
  }

  /** Everything the instance page shows. */
  async instance(id: string): Promise<Record<string, unknown>> {
    const client = await this.pool.connect();
    try {
      // One snapshot for the whole page: the graph, the runs and the statuses agree.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const head = await client.query(
        `SELECT i.id, i.label, i.status, i.root_node, i.created_at, i.updated_at, i.completed_at,
                x.current_execution_id, x.output
           FROM df.instances i LEFT JOIN df.instance_info($1::pg_catalog.text) x ON true
          WHERE i.id OPERATOR(pg_catalog.=) $1::pg_catalog.text`,
        [id],
      );
      if (head.rows.length === 0) throw new NotFound(`Instance '${id}' not found`);
      const inst = head.rows[0];
      const [nodes, runs, executions, signals, explain] = [
        await client.query(`SELECT * FROM df.instance_nodes($1::pg_catalog.text)`, [id]),
        await client.query(
          `SELECT node_id, stamp, execution_id, status, started_at, finished_at, detail
             FROM df._runs WHERE instance_id OPERATOR(pg_catalog.=) $1::pg_catalog.text
            ORDER BY started_at DESC, stamp DESC LIMIT ${MAX_RUNS}`,
          [id],
        ),
        await client.query(`SELECT * FROM df.instance_executions($1::pg_catalog.text, 20)`, [id]),
        await client.query(
          `SELECT id, signal_name, pg_catalog.left(payload, ${MAX_TEXT + 1}) AS payload, sent_at, consumed_by
             FROM df._signals WHERE instance_id OPERATOR(pg_catalog.=) $1::pg_catalog.text ORDER BY id DESC LIMIT 50`,
          [id],
        ),
        await client.query(`SELECT df.explain($1::pg_catalog.text) AS text`, [id]).catch((err: Error) => ({ rows: [{ text: `(explain failed: ${err.message})` }] })),
      ];
      await client.query('COMMIT');

      const rows = nodes.rows.map((r) => ({ ...r, id: r.node_id })) as (NodeRow & Record<string, unknown>)[];
      const types = new Map(rows.map((r) => [r.id, r.node_type as string]));
      const statuses = new Map(rows.map((r) => [r.id, r.inferred_status as InferredStatus]));
      let tree: TreeNode | null = null;
      try {
        tree = buildTree(rows, inst.root_node as string);
      } catch {
        tree = null; // a graph that cannot be rebuilt: the table still shows every node
      }
      const labels = new Map<string, string>();
      if (tree) {
        const stack: TreeNode[] = [tree];
        while (stack.length > 0) {
          const n = stack.pop() as TreeNode;
          labels.set(n.id, nodeLabel(n));
          for (const c of [n.left, n.right, n.condition, ...(n.extras ?? [])]) if (c) stack.push(c);
        }
      }
      const waiting = rows
        .filter((r) => r.node_type === 'SIGNAL' && r.inferred_status === 'running')
        .map((r) => {
          let name: string | null = null;
          let timeout: number | null = null;
          try {
            const cfg = JSON.parse((r.query as string) ?? '{}') as { signal_name?: unknown; timeout_seconds?: unknown };
            name = typeof cfg.signal_name === 'string' ? cfg.signal_name : null;
            timeout = typeof cfg.timeout_seconds === 'number' ? cfg.timeout_seconds : null;
          } catch {
            // hand-written config: shown without a name
          }
          return { node_id: r.id, signal_name: name, timeout_seconds: timeout, since: r.updated_at };
        });
      return {
        instance: {
          id: inst.id, label: inst.label, status: inst.status, created_at: inst.created_at, updated_at: inst.updated_at,
          completed_at: inst.completed_at, execution: inst.current_execution_id === null ? null : Number(inst.current_execution_id), output: cut(inst.output as string | null),
        },
        // Left to right reads better on a wide page than the CLI's top-down.
        mermaid: tree ? renderMermaid(tree, (nodeId) => statuses.get(nodeId)).replace(/^flowchart TD/, 'flowchart LR') : null,
        explain: explain.rows[0]?.text ?? null,
        nodes: rows.map((r) => ({
          node_id: r.id, node_type: r.node_type, label: labels.get(r.id) ?? String(r.node_type), result_name: r.result_name,
          status: r.status, inferred_status: r.inferred_status, result: cut(r.result as string | null), updated_at: r.updated_at,
        })),
        runs: runs.rows.reverse().map((r) => ({
          node_id: r.node_id, stamp: r.stamp, execution_id: r.execution_id, status: r.status,
          started_at: r.started_at, finished_at: r.finished_at, label: runLabel(r.stamp as string, types),
        })),
        executions: executions.rows.map((r) => ({ ...r, execution_id: Number(r.execution_id), event_count: Number(r.event_count), duration_ms: Number(r.duration_ms), output: cut(r.output as string | null) })),
        signals: { waiting, inbox: signals.rows.map((r) => ({ ...r, payload: cut(r.payload as string | null) })) },
      };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async cancel(id: string, reason: string | null): Promise<string> {
    const r = await this.pool.query(`SELECT df.cancel($1::pg_catalog.text, $2::pg_catalog.text) AS r`, [id, reason ?? 'Cancelled from the dashboard']);
    return r.rows[0].r as string;
  }

  async signal(id: string, name: string, payload: string): Promise<string> {
    const r = await this.pool.query(`SELECT df.signal($1::pg_catalog.text, $2::pg_catalog.text, $3::pg_catalog.text) AS r`, [id, name, payload]);
    return r.rows[0].r as string;
  }

  end(): Promise<void> {
    return this.pool.end();
  }
}
