/**
 * Helpers for end-to-end worker tests: one fresh database, one tenant and one real worker per test
 * file; instances are started through SQL as the tenant and inspected through df.* and df.nodes.
 */
import pg from 'pg';
import { createTenant, freshDatabase, scalar, url } from './db';
import { startWorker, waitFor, type WorkerHandle, type WorkerOptions } from './worker';

export interface NodeRow {
  id: string;
  node_type: string;
  query: string | null;
  result_name: string | null;
  status: string;
  result: unknown;
  status_details: Record<string, unknown> | null;
}

export interface Flow {
  db: string;
  tenant: string;
  worker: WorkerHandle;
  /** Connected as the tenant. */
  user: pg.Client;
  /** Connected as the superuser (engine tables, pg_stat_activity). */
  admin: pg.Client;
  /** df.start(expr [, label]) as the tenant; expr is SQL text. Returns the instance id. */
  start(expr: string, label?: string): Promise<string>;
  /** Starts and waits until terminal; returns the id and the final status. */
  run(expr: string, label?: string): Promise<{ id: string; status: string }>;
  wait(id: string, timeoutMs?: number): Promise<string>;
  /** df.result(id) as text (jsonb rendering), or null. */
  result(id: string): Promise<string | null>;
  /** The raw compact output of the last execution (df._execution_log: its row, or its root's result). */
  output(id: string): Promise<string | null>;
  nodes(id: string): Promise<NodeRow[]>;
  /** The root node's row (its result holds the error text of a failed instance). */
  root(id: string): Promise<NodeRow>;
  /** The single node whose query is exactly `query`. */
  nodeByQuery(id: string, query: string): Promise<NodeRow>;
  stop(): Promise<void>;
}

export async function setupFlow(prefix: string, opts: WorkerOptions = {}): Promise<Flow> {
  const db = await freshDatabase(prefix);
  const tenant = await createTenant(db, `${prefix}_user`);
  const worker = startWorker(url(db), opts);
  const user = new pg.Client({ connectionString: url(db, tenant) });
  await user.connect();
  const admin = new pg.Client({ connectionString: url(db) });
  await admin.connect();

  const nodes = async (id: string) =>
    (await user.query<NodeRow>('SELECT id, node_type, query, result_name, status, result, status_details FROM df.nodes WHERE instance_id = $1 ORDER BY created_at, id', [id])).rows;

  const flow: Flow = {
    db,
    tenant,
    worker,
    user,
    admin,
    start: (expr, label) => scalar<string>(user, `SELECT df.start(${expr}${label === undefined ? '' : `, ${pg.escapeLiteral(label)}`})`),
    async run(expr, label) {
      const id = await flow.start(expr, label);
      return { id, status: await waitFor(user, id) };
    },
    wait: (id, timeoutMs) => waitFor(user, id, timeoutMs),
    result: (id) => scalar<string | null>(user, 'SELECT df.result($1)', [id]),
    output: (id) => scalar<string | null>(admin, 'SELECT output FROM df._execution_log WHERE instance_id = $1 ORDER BY execution_id DESC LIMIT 1', [id]),
    nodes,
    async root(id) {
      const rootId = await scalar<string>(user, 'SELECT root_node FROM df.instances WHERE id = $1', [id]);
      return (await nodes(id)).find((n) => n.id === rootId)!;
    },
    async nodeByQuery(id, query) {
      const matches = (await nodes(id)).filter((n) => n.query === query);
      if (matches.length !== 1) throw new Error(`expected one node with query ${query}, found ${matches.length}`);
      return matches[0];
    },
    async stop() {
      await user.end().catch(() => undefined);
      await admin.end().catch(() => undefined);
      await worker.stop();
    },
  };
  return flow;
}

/** A SQL string literal for embedding step text in a df.start expression. */
export const lit = (s: string): string => pg.escapeLiteral(s);

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
