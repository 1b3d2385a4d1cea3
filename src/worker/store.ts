/**
 * Everything the worker reads and writes on its own (superuser) connections. Writes that change an
 * instance go through df._commit, fenced by the lease token; reads bypass RLS.
 */
import pg from 'pg';
import type { NodeRow } from '../core/flatten';
import { keptName } from './kept';
import { isTransient, missingSetup, sessionSurvives, withRetry } from './transient';

export interface Claim {
  instanceId: string;
  token: string;
  executionId: number;
  vars: Record<string, string>;
  /** What the run needs, read by the claim statement itself (absent: load it). */
  loaded?: Loaded;
}

/** Everything a run starts from: the instance, its graph, the runs of its execution, a compensation request. */
export interface Loaded {
  instance: InstanceRow | null;
  nodes: NodeRow[];
  history: RunRecord[];
  cancelRequest: string | null;
}

export interface InstanceRow {
  id: string;
  label: string | null;
  rootNode: string;
  status: string;
  database: string | null;
  role: string | null;
  roleOid: string;
  canLogin: boolean;
  superuser: boolean;
  /** USAGE on schema df and EXECUTE on df._commit: what a step connection needs to checkpoint. */
  canUse: boolean;
  /** Size of the stored graph; when over the limits the nodes are not loaded (`nodes` is empty). */
  nodeCount: number;
  graphBytes: number;
}

/** Graphs bigger than this are refused at load (df.start accepts at most 10 000 nodes, 8 MiB). */
export const MAX_LOADED_NODES = 10000;
export const MAX_LOADED_GRAPH_BYTES = 16 * 1024 * 1024;

export interface RunRecord {
  stamp: string;
  nodeId: string;
  status: 'running' | 'completed' | 'failed';
  result: string | null;
  detail: Record<string, unknown> | null;
}

/** One node transition for df._commit (the worker coalesces to one per stamp and node). */
export interface NodeEvent {
  node: string;
  stamp: string;
  status: 'running' | 'completed' | 'failed';
  result?: string | null;
  json?: boolean;
  detail?: Record<string, unknown> | null;
  /**
   * The node's row keeps this run, no df._node_runs row is written (df._runs): in a commit that ends
   * the instance, or for a node that runs once per execution (RunLog.outgoing).
   */
  final?: boolean;
  /**
   * In a commit that completes execution 1: this root event's result is the output, as jsonb prints
   * it compactly, so df._execution_log derives the execution (no df._executions row). An extension
   * older than the worker ignores the key and writes the output it is sent as before.
   */
  output?: boolean;
}

/** `continue:<g>` closes root-loop execution g and opens g+1 (a no-op if g+1 is already open). */
export type InstanceTransition = 'running' | 'completed' | 'failed' | 'cancelled' | `continue:${number}`;

/**
 * Fully qualified: on a step connection this runs right after the user's statement, in the same
 * transaction, so a `SET LOCAL search_path` there must not be able to redirect a type or a cast
 * (a user-defined cast to uuid would see the lease token).
 */
export const COMMIT_SQL =
  'SELECT df._commit($1::pg_catalog.text, $2::pg_catalog.uuid, $3::pg_catalog.jsonb, $4::pg_catalog.text, $5::pg_catalog.text) AS execution_id';

/**
 * Whether the worker's database is ready for it: `ready` (pg_durable installed; `extension` is its
 * pg_extension oid, which changes when the extension is dropped and created again, or null when
 * the schema was installed without CREATE EXTENSION), or what it waits for.
 */
export type Readiness =
  | { state: 'ready'; extension: string | null; version: string | null }
  | { state: 'no-server' | 'no-database' | 'no-extension' | 'error'; detail: string };

/** Explicit: pg_durable's own tables, and the extension row (identity + version) when there is one. */
const PROBE_SQL = `SELECT pg_catalog.to_regclass('df._worker_epoch') IS NOT NULL AND pg_catalog.to_regclass('df._work') IS NOT NULL AS tables,
       (SELECT oid::text FROM pg_catalog.pg_extension WHERE extname = 'pg_durable') AS extension,
       (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_durable') AS version`;

/** Connecting and probing give up after this long (an unreachable host), then the next probe tries again. */
const PROBE_TIMEOUT_MS = 10_000;

export class Store {
  readonly pool: pg.Pool;

  constructor(private readonly url: string, max: number, private readonly stopping: () => boolean) {
    // Generic plans for the worker's own (named, keyed) statements: the claim was re-planned at
    // every call under the default plan_cache_mode (custom plans looked cheaper), 0.2-0.3 ms each.
    this.pool = new pg.Pool({ connectionString: url, max, application_name: 'pg_durable:worker:management', options: '-c plan_cache_mode=force_generic_plan' });
    // An idle client dying (server restart) must not crash the process; the next query reconnects.
    this.pool.on('error', () => undefined);
    this.pool.on('connect', (client) => client.on('error', () => undefined));
  }

  /**
   * Every worker query is a named statement: parsed and planned once per connection instead of per
   * call (the instance-load join with pg_roles spent 3x longer planning than running; see
   * docs/PERFORMANCE.md). Safe because the worker's own connections never DEALLOCATE.
   */
  private q<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<T>> {
    const name = keptName(sql);
    const config = { name, text: sql, values: params };
    return withRetry(() => this.onConnection((c) => c.query<T>(config)), { stop: this.stopping });
  }

  /**
   * Runs `fn` on a management connection and returns it to the pool, also after an error the
   * session survives. Not pool.query: it drops the connection after any error, and an error here
   * is often an answer (a 'running' stamp of an instance that just finished: lease lost). Each
   * drop cost a new backend and the re-parse of every kept statement: with 4 workers on 2 cores,
   * 552 new management connections for 1 000 one-step instances, most of PostgreSQL's CPU.
   */
  async onConnection<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      const r = await fn(client);
      client.release();
      return r;
    } catch (err) {
      client.release(sessionSurvives(err) ? undefined : (err as Error));
      throw err;
    }
  }

  /**
   * Is the database there, reachable, with pg_durable installed? One short-lived connection of its
   * own (closed before returning, also when `signal` aborts), never the pool: probing a database
   * that does not exist must leave nothing behind, and the pool's prepared statements stay valid.
   */
  async probe(signal?: AbortSignal): Promise<Readiness> {
    const client = new pg.Client({
      connectionString: this.url,
      application_name: 'pg_durable:worker:probe',
      connectionTimeoutMillis: PROBE_TIMEOUT_MS,
      query_timeout: PROBE_TIMEOUT_MS,
    });
    client.on('error', () => undefined);
    const abort = () => void client.end().catch(() => undefined);
    signal?.addEventListener('abort', abort, { once: true });
    try {
      if (signal?.aborted) return { state: 'error', detail: 'stopped' };
      await client.connect();
      const r = await client.query<{ tables: boolean; extension: string | null; version: string | null }>(PROBE_SQL);
      const row = r.rows[0];
      if (!row.tables) return { state: 'no-extension', detail: row.extension ? 'pg_durable tables missing' : 'pg_durable not installed' };
      return { state: 'ready', extension: row.extension, version: row.version };
    } catch (err) {
      const detail = (err as Error).message;
      const missing = missingSetup(err);
      if (missing === 'database') return { state: 'no-database', detail };
      if (missing === 'extension') return { state: 'no-extension', detail };
      if (isTransient(err) || signal?.aborted || /timeout/i.test(detail)) return { state: 'no-server', detail };
      return { state: 'error', detail };
    } finally {
      signal?.removeEventListener('abort', abort);
      await client.end().catch(() => undefined);
    }
  }

  async registerEpoch(epoch: string): Promise<void> {
    await this.q('INSERT INTO df._worker_epoch (epoch_id) VALUES ($1::uuid) ON CONFLICT (epoch_id) DO UPDATE SET last_seen_at = now()', [epoch]);
  }

  /**
   * Heartbeat and lease renewal in one round trip; re-registers if the row vanished. Only the
   * leases of instances this worker is actually running are renewed, so an instance whose run ended
   * abnormally is taken over when its lease expires. Also returns the pg_durable extension's oid:
   * a different one than at registration means the extension was dropped and created again.
   */
  async heartbeat(epoch: string, leaseSeconds: number, active: string[]): Promise<{ renewed: number; extension: string | null }> {
    const r = await this.q<{ renewed: number; extension: string | null }>(
      `WITH hb AS (
         INSERT INTO df._worker_epoch (epoch_id) VALUES ($1::uuid)
         ON CONFLICT (epoch_id) DO UPDATE SET last_seen_at = now() RETURNING 1)
       , renew AS (
         UPDATE df._work SET lease_until = clock_timestamp() + make_interval(secs => $2::int)
          WHERE lease_owner = $1::uuid AND instance_id = ANY($3::text[]) RETURNING 1)
       SELECT (SELECT count(*) FROM renew)::int AS renewed, (SELECT count(*) FROM hb)::int AS beat,
              (SELECT oid::text FROM pg_catalog.pg_extension WHERE extname = 'pg_durable') AS extension`,
      [epoch, leaseSeconds, active],
    );
    return { renewed: r.rows[0].renewed, extension: r.rows[0].extension };
  }

  async claim(epoch: string, limit: number, leaseSeconds: number): Promise<Claim[]> {
    // A claim touches only the queue: the instance becomes 'running' with the run's first durable
    // write (df._commit), so a one-step instance is written once, pending -> completed.
    //
    // It also reads what each run needs (loadColumns), saving a round trip per instance, but only
    // for an instance never claimed before: its lease row is as df.start inserted it (same xmin
    // as the instance row), so no earlier run can have a checkpoint committing after this
    // statement's snapshot. Any other (a takeover, a re-claim) is loaded after the claim commits.
    const r = await this.q<LoadRow & { instance_id: string; lease_token: string; execution_id: number; vars: Record<string, string> | null; fresh: boolean }>(
      CLAIM_SQL,
      [epoch, leaseSeconds, limit, MAX_LOADED_NODES, MAX_LOADED_GRAPH_BYTES],
    );
    return r.rows.map((row) => ({
      instanceId: row.instance_id, token: row.lease_token, executionId: row.execution_id, vars: row.vars ?? {},
      loaded: row.fresh && row.id !== null ? loaded(row) : undefined,
    }));
  }

  /** Hands leases back (graceful shutdown) so another worker can continue at once. */
  async release(epoch: string, instanceIds?: string[]): Promise<void> {
    await this.q(
      `UPDATE df._work SET lease_owner = NULL, lease_token = NULL, lease_until = NULL
        WHERE lease_owner = $1::uuid AND ($2::text[] IS NULL OR instance_id = ANY($2::text[]))`,
      [epoch, instanceIds ?? null],
    );
  }

  async dropEpoch(epoch: string): Promise<void> {
    await this.pool.query('DELETE FROM df._worker_epoch WHERE epoch_id = $1::uuid', [epoch]).catch(() => undefined);
  }

  /** Everything a run needs (loadColumns), in one round trip; for a run that starts over. */
  async loadInstance(id: string, executionId: number): Promise<Loaded> {
    const r = await this.q<LoadRow>(`SELECT ${loadColumns('$2::int', '$3::int', '$4::bigint', 'df._runs')} FROM df.instances i ${LOAD_JOINS} WHERE i.id = $1::text`,
      [id, executionId, MAX_LOADED_NODES, MAX_LOADED_GRAPH_BYTES],
    );
    return r.rowCount === 0 ? { instance: null, nodes: [], history: [], cancelRequest: null } : loaded(r.rows[0]);
  }

  async commit(instanceId: string, token: string, events: NodeEvent[], transition: InstanceTransition | null = null, output: string | null = null): Promise<number> {
    const r = await this.q<{ execution_id: number }>(COMMIT_SQL, [instanceId, token, JSON.stringify(events), transition, output]);
    return r.rows[0].execution_id;
  }

  /**
   * Consumes a buffered signal and completes the SIGNAL node in one transaction, returning the
   * node's result; null if no signal waits. Idempotent: a completed node returns its result.
   */
  async takeSignal(instanceId: string, token: string, name: string, nodeId: string, stamp: string): Promise<string | null> {
    const r = await this.q<{ result: string | null }>('SELECT df._take_signal($1::text, $2::uuid, $3::text, $4::text, $5::text) AS result', [
      instanceId, token, name, nodeId, stamp,
    ]);
    return r.rows[0].result;
  }

  /**
   * Which of `ids` a wake-up may concern (its payload names no instance): for `cancel` the
   * cancelled ones, for `compensate` those with a compensating cancel request, for `signal` those
   * with a signal not yet taken. One index lookup per id.
   */
  async concerned(kind: 'cancel' | 'compensate' | 'signal', ids: string[]): Promise<string[]> {
    const r = await this.q<{ id: string }>(CONCERNED_SQL[kind], [ids]);
    return r.rows.map((row) => row.id);
  }

  /** A node run's completed result, or null: how a step learns that its ambiguous commit happened. */
  async completedResult(instanceId: string, stamp: string, nodeId: string): Promise<string | null> {
    const r = await this.q<{ result: string | null }>(
      "SELECT result FROM df._runs WHERE instance_id = $1::text AND stamp = $2::text AND node_id = $3::text AND status = 'completed'",
      [instanceId, stamp, nodeId],
    );
    return r.rowCount === 0 ? null : (r.rows[0].result ?? 'null');
  }

  /**
   * What decides a prepared transaction of a cross-database step: whether a completed node run of
   * the instance recorded its gid (the checkpoint), and the instance's current lease token (null
   * once it finished or was cancelled).
   */
  async preparedFate(instanceId: string, gid: string): Promise<{ checkpointed: boolean; token: string | null }> {
    const r = await this.q<{ checkpointed: boolean; token: string | null }>(
      `SELECT EXISTS (SELECT 1 FROM df._runs WHERE instance_id = $1::text AND status = 'completed' AND detail ->> 'xact' = $2::text) AS checkpointed,
              (SELECT lease_token::text FROM df._work WHERE instance_id = $1::text) AS token`,
      [instanceId, gid],
    );
    return r.rows[0];
  }

  /** Gives up an instance this worker cannot run right now; it becomes due again after `delaySeconds`. */
  async releaseLater(epoch: string, instanceId: string, delaySeconds: number): Promise<void> {
    await this.q(
      `UPDATE df._work SET lease_owner = NULL, lease_token = NULL, lease_until = NULL,
              due_at = clock_timestamp() + make_interval(secs => $3::int)
        WHERE lease_owner = $1::uuid AND instance_id = $2::text`,
      [epoch, instanceId, delaySeconds],
    );
  }

  /**
   * Where the submitting role stands now: whether it still exists, may log in and may use
   * pg_durable. Read when a step fails in a way that would recur (permission denied on df, a role
   * that cannot connect) to tell the user what happened instead of the bare error.
   */
  async roleStanding(roleOid: string): Promise<{ exists: boolean; canLogin: boolean; canUse: boolean }> {
    const r = await this.q<{ exists: boolean; can_login: boolean | null; can_use: boolean | null }>(
      `SELECT r.oid IS NOT NULL AS exists, r.rolcanlogin AS can_login,
              CASE WHEN r.oid IS NOT NULL THEN has_schema_privilege(r.oid, 'df', 'USAGE')
                   AND has_function_privilege(r.oid, 'df._commit(text,uuid,jsonb,text,text)', 'EXECUTE') END AS can_use
         FROM (SELECT $1::oid AS o) x LEFT JOIN pg_catalog.pg_roles r ON r.oid = x.o`,
      [roleOid],
    );
    const row = r.rows[0];
    return { exists: row.exists, canLogin: row.can_login === true, canUse: row.can_use === true };
  }

  async superuserInstancesEnabled(): Promise<boolean> {
    const r = await this.q<{ v: string | null }>("SELECT current_setting('pg_durable.enable_superuser_instances', true) AS v");
    return /^(on|true|yes|1)$/i.test((r.rows[0].v ?? '').trim());
  }

  async canExecute(roleOid: string, signature: string): Promise<boolean> {
    const r = await this.q<{ ok: boolean }>("SELECT has_function_privilege($1::oid, $2::text, 'EXECUTE') AS ok", [roleOid, signature]);
    return r.rows[0].ok === true;
  }

  async cancelBackend(pid: number): Promise<void> {
    await this.pool.query('SELECT pg_cancel_backend($1::int)', [pid]).catch(() => undefined);
  }

  async end(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}

/** The reason a compensating cancel request carries (its payload is `{"reason": ...}`). */
function compensationReason(payload: string): string {
  try {
    const reason = (JSON.parse(payload) as { reason?: unknown }).reason;
    return typeof reason === 'string' ? reason : 'Cancelled by user';
  } catch {
    return 'Cancelled by user';
  }
}

type LoadRow = {
  id: string; label: string | null; root_node: string; status: string; database: string | null; rolname: string | null; role_oid: string;
  rolcanlogin: boolean | null; rolsuper: boolean | null; can_use: boolean | null; node_count: number; graph_bytes: string;
  nodes: [string, string, string | null, string | null, string | null, string | null][] | null;
  runs: [string, string, RunRecord['status'], string | null, Record<string, unknown> | null][] | null;
  cancel: string | null;
};

/**
 * What a run needs of instance `i` (of its execution `execution`, within the load limits): the instance and
 * its role's standing, the graph as JSON rows unless it is over the limits, the node runs of the
 * execution, and the reason of a compensating cancel if one was requested (df.cancel(...,
 * compensate => true) files it as the reserved signal 'pg_durable:compensate'). It was four round
 * trips per instance (docs/PERFORMANCE.md).
 *
 * `runs`: where the run history comes from. A run that starts over (loadInstance) reads df._runs,
 * which adds the runs node rows keep; the claim reads df._node_runs, as only an instance never
 * claimed before is loaded by it, and such an instance has no runs, kept or not (a run is kept only
 * by a commit under a lease: src/worker/runlog.ts).
 */
const loadColumns = (execution: string, maxNodes: string, maxBytes: string, runs: 'df._runs' | 'df._node_runs') => `i.id, i.label, i.root_node, i.status, i.database, r.rolname::text, i.submitted_by::oid::text AS role_oid, r.rolcanlogin, r.rolsuper,
       CASE WHEN r.oid IS NOT NULL THEN has_schema_privilege(r.oid, 'df', 'USAGE')
            AND has_function_privilege(r.oid, 'df._commit(text,uuid,jsonb,text,text)', 'EXECUTE') END AS can_use,
       g.node_count, g.graph_bytes::text,
       CASE WHEN g.node_count <= ${maxNodes} AND g.graph_bytes <= ${maxBytes} THEN
         (SELECT json_agg(json_build_array(n.id, n.node_type, n.query, n.result_name, n.left_node, n.right_node))
            FROM df.nodes n WHERE n.instance_id = i.id) END AS nodes,
       (SELECT json_agg(json_build_array(h.stamp, h.node_id, h.status, h.result, h.detail))
          FROM ${runs} h WHERE h.instance_id = i.id AND h.execution_id = ${execution}) AS runs,
       (SELECT s.payload FROM df._signals s
         WHERE s.instance_id = i.id AND s.signal_name = 'pg_durable:compensate' ORDER BY s.id LIMIT 1) AS cancel`;

const LOAD_JOINS = `LEFT JOIN LATERAL (SELECT a.oid, a.rolname, a.rolcanlogin, a.rolsuper FROM pg_catalog.pg_authid a WHERE a.oid = i.submitted_by::oid OFFSET 0) r ON true
       LEFT JOIN LATERAL (
         SELECT count(*)::int AS node_count,
                coalesce(sum(coalesce(octet_length(n.query), 0) + coalesce(octet_length(n.result_name), 0)), 0) AS graph_bytes
           FROM df.nodes n WHERE n.instance_id = i.id) g ON true`;

function loaded(row: LoadRow): Loaded {
  const instance: InstanceRow = {
    id: row.id, label: row.label, rootNode: row.root_node, status: row.status, database: row.database,
    role: row.rolname, roleOid: row.role_oid, canLogin: row.rolcanlogin === true, superuser: row.rolsuper === true,
    canUse: row.can_use === true, nodeCount: row.node_count, graphBytes: Number(row.graph_bytes),
  };
  return {
    instance,
    nodes: (row.nodes ?? []).map(([id, node_type, query, result_name, left_node, right_node]) => ({ id, node_type, query, result_name, left_node, right_node }) as NodeRow),
    history: (row.runs ?? []).map(([stamp, nodeId, status, result, detail]) => ({ stamp, nodeId, status, result, detail })),
    cancelRequest: row.cancel === null ? null : compensationReason(row.cancel),
  };
}

/** Store.concerned: which of the worker's instances a wake-up may concern, per kind. */
const CONCERNED_SQL = {
  cancel: `SELECT i.id FROM df.instances i WHERE i.id = ANY ($1::text[]) AND i.status = 'cancelled'`,
  compensate: `SELECT DISTINCT s.instance_id AS id FROM df._signals s
                WHERE s.instance_id = ANY ($1::text[]) AND s.signal_name = 'pg_durable:compensate'`,
  signal: `SELECT DISTINCT s.instance_id AS id FROM df._signals s WHERE s.instance_id = ANY ($1::text[]) AND s.consumed_by IS NULL`,
};

/**
 * The claim: leases up to $3 due instances to worker $1 for $2 seconds (Store.claim).
 *
 * Every join is written so that its plan cannot depend on table sizes: the worker's statements
 * are generic plans, and a generic plan estimates `LIMIT $3` at a tenth of the queue, so the
 * old join shapes planned a hash join over a sequential scan of df._work and of df.instances
 * (all of its history) at every claim: 0.6-0.7 ms per claim with 10 000 instances, growing with
 * every instance kept (docs/PERFORMANCE.md). Now the leased rows are found by key
 * (`= ANY(ARRAY(...))`) and each claimed instance is read by key (LATERAL ... OFFSET 0).
 *
 * The claim commits without waiting for its WAL flush (`synchronous_commit = off` for its own
 * transaction, set inside the statement): a lease is a fencing token, not a result. A lease the
 * server loses in a crash leaves the instance claimable again, and the run holding it can write
 * nothing (every checkpoint re-checks the token); a checkpoint that commits flushes the WAL up to
 * itself, the claim included. Waiting for the flush cost the 1-step latency 0.8-1 ms on this
 * machine's disk (docs/PERFORMANCE.md).
 */
export const CLAIM_SQL = `WITH async AS MATERIALIZED (SELECT pg_catalog.set_config('synchronous_commit', 'off', true) AS v),
 due AS MATERIALIZED (
   SELECT q.instance_id, q.xmin OPERATOR(pg_catalog.=) (SELECT i.xmin FROM df.instances i WHERE i.id = q.instance_id) AS fresh
     FROM df._work q
    WHERE q.due_at <= clock_timestamp() AND (q.lease_until IS NULL OR q.lease_until < clock_timestamp())
    ORDER BY q.due_at LIMIT $3::int FOR UPDATE OF q SKIP LOCKED),
 claimed AS (
   UPDATE df._work w
      SET lease_owner = $1::uuid, lease_token = gen_random_uuid(),
          lease_until = clock_timestamp() + make_interval(secs => $2::int)
    WHERE w.instance_id = ANY (ARRAY(SELECT d.instance_id FROM due d))
    RETURNING w.instance_id, w.lease_token::text AS lease_token, w.execution_id, w.vars)
 SELECT c.instance_id, c.lease_token, c.execution_id, c.vars, d.fresh, ${loadColumns('c.execution_id', '$4::int', '$5::bigint', 'df._node_runs')}
   FROM claimed c JOIN due d ON d.instance_id = c.instance_id CROSS JOIN async
   LEFT JOIN LATERAL (SELECT * FROM df.instances i WHERE i.id = c.instance_id AND d.fresh OFFSET 0) i ON true ${LOAD_JOINS}`;
