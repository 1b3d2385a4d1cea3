/**
 * The four systems under test, behind one interface: pg_durable (ours), the hand-written floor,
 * DBOS Transact and graphile-worker. Each gets its own database on the same server; step SQL runs
 * as the same non-superuser tenant role everywhere.
 */
import { join } from 'node:path';
import pg from 'pg';
import type { Cluster } from '../../src/embedded/cluster';
import { sleep, spawnProc, until, type Proc } from './util';

export type SysKey = 'ours' | 'floor' | 'pgbench' | 'dbos' | 'graphile';

export interface Env {
  cluster: Cluster;
  root: string;
  tenant: string;
  /** Step connections / concurrent steps per worker process. */
  concurrency: number;
  /** Fallback poll interval of the workers (ms). */
  pollMs: number;
}

export interface WorkerOpts {
  concurrency?: number;
  /** Directory for `node --cpu-prof` output (ours only). */
  cpuProfDir?: string;
}

export type Shape = { kind: 'chain'; steps: number } | { kind: 'fanout'; branches: number };

export interface Sys {
  key: SysKey;
  label: string;
  /** Why this system cannot run here (null = it can). */
  unavailable: string | null;
  /**
   * Epoch ms at which a worker first picked up work of the batch (from the database), or null when
   * the system has no database-side batch (the floor: its workers are told to go).
   */
  firstPickup(db: string): Promise<number | null>;
  /** Closes the bench's own connections to `db` (before it is used as a template or dropped). */
  release(db: string): Promise<void>;
  dropDatabase(db: string): Promise<void>;
  /** A fresh database `db` ready for work. */
  prepare(db: string): Promise<void>;
  startWorkers(db: string, n: number, opts?: WorkerOpts): Promise<Proc[]>;
  /** Starts one instance and waits until a client observes it completed (polling every 1 ms); ms. */
  once(db: string, shape: Shape): Promise<number>;
  /** Starts `count` instances of `steps` sequential steps at once; resolves once they are committed. */
  startBatch(db: string, count: number, steps: number): Promise<void>;
  /** True when every instance of the batch has completed. */
  batchDone(db: string): Promise<boolean>;
  /**
   * Steps of the batch committed so far, counted in the system's own tables: where the throughput
   * rows' steady window begins (bench/run.ts, WARM_UP).
   */
  stepsDone(db: string): Promise<number>;
  /** Instances of the batch that completed, and that ended in failure. */
  batchCounts(db: string, count: number, steps: number): Promise<{ completed: number; failed: number }>;
  /** Bytes of this system's tables (with indexes and TOAST). */
  sizeBytes(db: string): Promise<number>;
  stopWorkers(): Promise<void>;
  close(): Promise<void>;
}

/** Connections cached per (database, user). */
class Conns {
  private readonly map = new Map<string, pg.Client>();
  constructor(private readonly cluster: Cluster) {}
  async get(db: string, user?: string): Promise<pg.Client> {
    const k = `${db}\u0000${user ?? ''}`;
    let c = this.map.get(k);
    if (!c) {
      c = new pg.Client({ connectionString: this.cluster.url(db, user), application_name: 'bench:client' });
      c.on('error', () => undefined);
      await c.connect();
      this.map.set(k, c);
    }
    return c;
  }
  async drop(db: string): Promise<void> {
    for (const [k, c] of [...this.map]) {
      if (k.startsWith(`${db}\u0000`)) {
        this.map.delete(k);
        await c.end().catch(() => undefined);
      }
    }
  }
  async closeAll(): Promise<void> {
    await Promise.all([...this.map.values()].map((c) => c.end().catch(() => undefined)));
    this.map.clear();
  }
}

const TABLE_BYTES = `SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint AS b
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`;

const RESULTS_TABLE = `CREATE TABLE bench_results (
  instance int NOT NULL, step int NOT NULL, v int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (instance, step))`;

/** Left-deep THEN chain like `'a' ~> 'b' ~> 'c'` builds, as a Durofut JSON graph. */
export function chainGraph(steps: number): string {
  const sql = (i: number) => ({ node_type: 'SQL', query: `SELECT ${i} + 1 AS v` });
  let g: Record<string, unknown> = sql(0);
  for (let i = 1; i < steps; i++) g = { node_type: 'THEN', left_node: g, right_node: sql(i) };
  return JSON.stringify(g);
}

/** JOIN of `branches` SQL steps (left, right, extra_nodes...). */
export function fanoutGraph(branches: number): string {
  const sql = (i: number) => ({ node_type: 'SQL', query: `SELECT ${i} + 1 AS v` });
  return JSON.stringify({ node_type: 'JOIN', left_node: sql(0), right_node: sql(1), extra_nodes: Array.from({ length: branches - 2 }, (_, i) => sql(i + 2)) });
}

abstract class Base implements Sys {
  abstract key: SysKey;
  abstract label: string;
  unavailable: string | null = null;
  async firstPickup(_db: string): Promise<number | null> {
    return null;
  }
  async release(db: string): Promise<void> {
    await this.conns.drop(db);
  }
  protected procs: Proc[] = [];
  protected readonly conns: Conns;
  protected seq = 0;
  constructor(protected readonly env: Env) {
    this.conns = new Conns(env.cluster);
  }
  protected admin(db: string) {
    return this.conns.get(db);
  }
  protected user(db: string) {
    return this.conns.get(db, this.env.tenant);
  }
  /** A database owned by the tenant (peers create their own schema in it). */
  protected async tenantDatabase(db: string): Promise<void> {
    const a = await this.conns.get('postgres');
    await a.query(`CREATE DATABASE ${pg.escapeIdentifier(db)} OWNER ${pg.escapeIdentifier(this.env.tenant)}`);
  }
  abstract prepare(db: string): Promise<void>;
  abstract startWorkers(db: string, n: number, opts?: WorkerOpts): Promise<Proc[]>;
  abstract once(db: string, shape: Shape): Promise<number>;
  abstract startBatch(db: string, count: number, steps: number): Promise<void>;
  abstract batchDone(db: string): Promise<boolean>;
  /** The floors and graphile-worker write one bench_results row per step; pg_durable and DBOS count their own. */
  async stepsDone(db: string): Promise<number> {
    return Number((await (await this.admin(db)).query('SELECT count(*)::int AS n FROM bench_results')).rows[0].n);
  }
  abstract batchCounts(db: string, count: number, steps: number): Promise<{ completed: number; failed: number }>;
  async sizeBytes(db: string): Promise<number> {
    const r = await (await this.admin(db)).query(TABLE_BYTES);
    return Number(r.rows[0].b);
  }
  async stopWorkers(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()));
    this.procs = [];
  }
  async close(): Promise<void> {
    await this.stopWorkers();
    await this.conns.closeAll();
  }
  async dropDatabase(db: string): Promise<void> {
    await this.release(db);
    const a = await this.conns.get('postgres');
    await a.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(db)} WITH (FORCE)`);
  }
}

// ---- pg_durable -------------------------------------------------------------------------------

export class Ours extends Base {
  key = 'ours' as const;
  label = 'pg_durable';

  async prepare(db: string): Promise<void> {
    await this.env.cluster.createDatabase(db);
    await (await this.admin(db)).query('SELECT df.grant_usage($1)', [this.env.tenant]);
  }

  async startWorkers(db: string, n: number, opts: WorkerOpts = {}): Promise<Proc[]> {
    const started: Proc[] = [];
    for (let i = 0; i < n; i++) {
      const node = opts.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`] : [];
      const args = [
        ...node, join(this.env.root, 'dist/cli.js'), 'worker', '--database-url', this.env.cluster.url(db), '--log-level', 'warn',
        '--concurrency', String(opts.concurrency ?? this.env.concurrency), '--poll-interval', String(this.env.pollMs), '--shutdown-grace', '5',
      ];
      started.push(spawnProc(`pg_durable worker ${i + 1}`, process.execPath, args, { cwd: this.env.root }));
    }
    this.procs.push(...started);
    const a = await this.admin(db);
    // Ready = each worker holds its LISTEN connection (it registers its epoch just before).
    await until(async () => {
      for (const p of started) if (p.child.exitCode !== null) throw new Error(`worker exited: ${p.stderr().slice(-2000)}`);
      const r = await a.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pg_durable:worker:poll'", [db]);
      return r.rows[0].n >= this.procs.length;
    }, 30_000, 'pg_durable workers to listen', 20);
    return started;
  }

  async once(db: string, shape: Shape): Promise<number> {
    const u = await this.user(db);
    const graph = shape.kind === 'chain' ? chainGraph(shape.steps) : fanoutGraph(shape.branches);
    const t0 = performance.now();
    const id = (await u.query('SELECT df.start($1::text) AS id', [graph])).rows[0].id as string;
    let status = '';
    await until(async () => {
      status = (await u.query('SELECT status FROM df.instances WHERE id = $1', [id])).rows[0].status;
      return status === 'completed' || status === 'failed' || status === 'cancelled';
    }, 60_000, `instance ${id}`);
    const ms = performance.now() - t0;
    if (status !== 'completed') throw new Error(`instance ${id} ended ${status}`);
    return ms;
  }

  async startBatch(db: string, count: number, steps: number): Promise<void> {
    const u = await this.user(db);
    await u.query('SELECT count(df.start($1::text)) FROM generate_series(1, $2::int)', [chainGraph(steps), count]);
  }

  /** The first step's start (a node run's started_at is the transaction start of its step). */
  override async firstPickup(db: string): Promise<number | null> {
    const r = await (await this.admin(db)).query('SELECT (extract(epoch FROM min(started_at)) * 1000)::float8 AS t FROM df._runs');
    return r.rows[0].t === null ? null : Number(r.rows[0].t);
  }

  async batchDone(db: string): Promise<boolean> {
    const r = await (await this.admin(db)).query('SELECT NOT EXISTS (SELECT 1 FROM df._work) AS d');
    return r.rows[0].d === true;
  }

  /** A step's node row says completed once its checkpoint has committed. */
  override async stepsDone(db: string): Promise<number> {
    const r = await (await this.admin(db)).query("SELECT count(*)::int AS n FROM df.nodes WHERE node_type = 'SQL' AND status = 'completed'");
    return r.rows[0].n;
  }

  async batchCounts(db: string): Promise<{ completed: number; failed: number }> {
    const r = await (await this.admin(db)).query(
      "SELECT count(*) FILTER (WHERE status = 'completed')::int AS c, count(*) FILTER (WHERE status IN ('failed', 'cancelled'))::int AS f FROM df.instances",
    );
    return { completed: r.rows[0].c, failed: r.rows[0].f };
  }

  /** Only the df tables (the "database size per 1 000 completed instances"). */
  override async sizeBytes(db: string): Promise<number> {
    const r = await (await this.admin(db)).query(
      `SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint AS b FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'df' AND c.relkind = 'r'`,
    );
    return Number(r.rows[0].b);
  }
}

// ---- the floor --------------------------------------------------------------------------------

export class Floor extends Base {
  key: 'floor' | 'pgbench' = 'floor';
  label = 'floor (hand-written pg)';
  private batch = 0;

  async prepare(db: string): Promise<void> {
    await this.tenantDatabase(db);
    await (await this.user(db)).query(RESULTS_TABLE);
  }

  async startWorkers(db: string, n: number, opts: WorkerOpts = {}): Promise<Proc[]> {
    const started: Proc[] = [];
    for (let i = 0; i < n; i++) {
      const cfg = { url: this.env.cluster.url(db, this.env.tenant), concurrency: opts.concurrency ?? this.env.concurrency, index: i, of: n };
      started.push(spawnProc(`floor worker ${i + 1}`, process.execPath, [join(this.env.root, 'bench/procs/floor-worker.mjs'), JSON.stringify(cfg)], { cwd: this.env.root }));
    }
    await Promise.all(started.map((p) => p.line((l) => l === 'ready', 30_000, 'ready')));
    this.procs.push(...started);
    return started;
  }

  /** The floor's client runs the steps itself: one transaction per step. */
  private async step(c: pg.Client, instance: number, i: number): Promise<void> {
    await c.query('BEGIN');
    try {
      const r = await c.query('SELECT $1::int + 1 AS v', [i]);
      await c.query('INSERT INTO bench_results (instance, step, v) VALUES ($1, $2, $3)', [instance, i, r.rows[0].v]);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  private pool: pg.Client[] = [];

  async once(db: string, shape: Shape): Promise<number> {
    const instance = 1_000_000 + ++this.seq;
    if (shape.kind === 'chain') {
      const c = await this.user(db);
      const t0 = performance.now();
      for (let i = 0; i < shape.steps; i++) await this.step(c, instance, i);
      return performance.now() - t0;
    }
    // Fan-out: the branches run in parallel on `concurrency` connections, like a worker's step slots.
    while (this.pool.length < this.env.concurrency) {
      const c = new pg.Client({ connectionString: this.env.cluster.url(db, this.env.tenant) });
      await c.connect();
      this.pool.push(c);
    }
    const t0 = performance.now();
    let next = 0;
    await Promise.all(this.pool.map(async (c) => {
      while (next < shape.branches) await this.step(c, instance, next++);
    }));
    return performance.now() - t0;
  }

  async startBatch(_db: string, count: number, steps: number): Promise<void> {
    this.batch++;
    const n = this.procs.length;
    this.procs.forEach((p, k) => p.send(`go ${JSON.stringify({ batch: this.batch, from: k + 1, to: count + 1, stride: n, steps })}\n`));
  }

  async batchDone(): Promise<boolean> {
    const tag = `done ${this.batch}`;
    for (const p of this.procs) if (p.child.exitCode !== null) throw new Error(`${p.name} exited: ${p.stderr().slice(-2000)}`);
    return this.procs.every((p) => p.has((l) => l === tag));
  }

  async batchCounts(db: string, count: number, steps: number): Promise<{ completed: number; failed: number }> {
    const r = await (await this.admin(db)).query('SELECT count(*)::int AS n FROM bench_results WHERE step = $1 AND instance <= $2', [steps - 1, count]);
    return { completed: r.rows[0].n, failed: 0 };
  }

  override async close(): Promise<void> {
    await Promise.all(this.pool.map((c) => c.end().catch(() => undefined)));
    this.pool = [];
    await super.close();
  }

  override async dropDatabase(db: string): Promise<void> {
    await Promise.all(this.pool.map((c) => c.end().catch(() => undefined)));
    this.pool = [];
    await super.dropDatabase(db);
  }
}

// ---- DBOS Transact ----------------------------------------------------------------------------

interface DbosClientLike {
  enqueue(options: { queueName: string; workflowName: string }, ...args: unknown[]): Promise<{ workflowID: string }>;
  enqueueInTransaction(client: pg.ClientBase, options: { queueName: string; workflowName: string }, ...args: unknown[]): Promise<{ workflowID: string }>;
  destroy(): Promise<void>;
}

export class Dbos extends Base {
  key = 'dbos' as const;
  label = 'DBOS Transact';
  private clients = new Map<string, DbosClientLike>();
  /** DBOS queues poll (no LISTEN wake-up for queues); its default minimum is 1000 ms. */
  queuePollMs = 10;

  /** DBOS parses the URL with WHATWG URL, which refuses an empty host: name one, the host parameter wins. */
  private sysUrl(db: string): string {
    const c = this.env.cluster;
    return `postgresql://${encodeURIComponent(this.env.tenant)}@localhost:${c.port}/${encodeURIComponent(db)}?host=${encodeURIComponent(c.socketDir)}`;
  }

  private appOptions(db: string) {
    return { path: join(this.env.cluster.socketDir, `.s.PGSQL.${this.env.cluster.port}`), user: this.env.tenant, database: db };
  }

  async prepare(db: string): Promise<void> {
    await this.tenantDatabase(db);
    const { PostgresDataSource } = await import('@dbos-inc/postgres-datasource');
    await PostgresDataSource.initializeDBOSSchema({ ...this.appOptions(db), onnotice: () => undefined });
    // One launch runs DBOS's system-database migrations and registers the queue, so that workers
    // can later start in parallel and work can be enqueued before any worker runs.
    await this.startWorkers(db, 1);
    await this.stopWorkers();
  }

  override async firstPickup(db: string): Promise<number | null> {
    const r = await (await this.admin(db)).query('SELECT min(started_at_epoch_ms)::float8 AS t FROM dbos.workflow_status');
    return r.rows[0].t === null ? null : Number(r.rows[0].t);
  }

  async startWorkers(db: string, n: number, opts: WorkerOpts = {}): Promise<Proc[]> {
    const started: Proc[] = [];
    for (let i = 0; i < n; i++) {
      const cfg = {
        sysUrl: this.sysUrl(db), app: this.appOptions(db), concurrency: opts.concurrency ?? this.env.concurrency,
        pollMs: this.queuePollMs, executorId: `bench-${i + 1}`,
      };
      const p = spawnProc(`dbos worker ${i + 1}`, process.execPath, [join(this.env.root, 'bench/procs/dbos-worker.mjs'), JSON.stringify(cfg)], { cwd: this.env.root });
      this.procs.push(p);
      started.push(p);
    }
    await Promise.all(started.map((p) => p.line((l) => l === 'ready', 60_000, 'ready')));
    return started;
  }

  private async client(db: string): Promise<DbosClientLike> {
    let c = this.clients.get(db);
    if (!c) {
      const { DBOSClient } = await import('@dbos-inc/dbos-sdk');
      c = (await DBOSClient.create({ systemDatabaseUrl: this.sysUrl(db) })) as unknown as DbosClientLike;
      this.clients.set(db, c);
    }
    return c;
  }

  async once(db: string, shape: Shape): Promise<number> {
    const client = await this.client(db);
    const u = await this.user(db);
    const t0 = performance.now();
    const h = shape.kind === 'chain'
      ? await client.enqueue({ queueName: 'bench', workflowName: 'chain' }, shape.steps)
      : await client.enqueue({ queueName: 'bench', workflowName: 'fan' }, shape.branches);
    let status = '';
    await until(async () => {
      status = (await u.query('SELECT status FROM dbos.workflow_status WHERE workflow_uuid = $1', [h.workflowID])).rows[0]?.status ?? '';
      return status === 'SUCCESS' || status === 'ERROR' || status === 'CANCELLED' || status === 'MAX_RECOVERY_ATTEMPTS_EXCEEDED';
    }, 60_000, `DBOS workflow ${h.workflowID}`);
    const ms = performance.now() - t0;
    if (status !== 'SUCCESS') throw new Error(`DBOS workflow ended ${status}`);
    return ms;
  }

  async startBatch(db: string, count: number, steps: number): Promise<void> {
    // DBOS 4.x has no enqueue inside a caller's transaction: 16 enqueues at a time (the bench
    // enqueues before any worker runs and times the run from the first dequeue).
    const client = await this.client(db);
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < count) {
        next++;
        await client.enqueue({ queueName: 'bench', workflowName: 'chain' }, steps);
      }
    }));
  }

  async batchDone(db: string): Promise<boolean> {
    const r = await (await this.admin(db)).query("SELECT NOT EXISTS (SELECT 1 FROM dbos.workflow_status WHERE status IN ('ENQUEUED', 'PENDING')) AS d");
    return r.rows[0].d === true;
  }

  /** postgres-datasource records every transaction step's output in the step's own transaction. */
  override async stepsDone(db: string): Promise<number> {
    const r = await (await this.admin(db)).query('SELECT count(*)::int AS n FROM dbos.transaction_completion');
    return r.rows[0].n;
  }

  async batchCounts(db: string): Promise<{ completed: number; failed: number }> {
    const r = await (await this.admin(db)).query(
      "SELECT count(*) FILTER (WHERE status = 'SUCCESS')::int AS c, count(*) FILTER (WHERE status NOT IN ('SUCCESS', 'ENQUEUED', 'PENDING'))::int AS f FROM dbos.workflow_status",
    );
    return { completed: r.rows[0].c, failed: r.rows[0].f };
  }

  private async dropClient(db: string): Promise<void> {
    const c = this.clients.get(db);
    this.clients.delete(db);
    await c?.destroy().catch(() => undefined);
  }

  override async release(db: string): Promise<void> {
    await this.dropClient(db);
    await super.release(db);
  }

  override async close(): Promise<void> {
    for (const db of [...this.clients.keys()]) await this.dropClient(db);
    await super.close();
  }
}

// ---- graphile-worker --------------------------------------------------------------------------

export class Graphile extends Base {
  key = 'graphile' as const;
  label = 'graphile-worker';

  async prepare(db: string): Promise<void> {
    await this.tenantDatabase(db);
    await (await this.user(db)).query(RESULTS_TABLE);
    const { runMigrations } = await import('graphile-worker');
    await runMigrations({ connectionString: this.env.cluster.url(db, this.env.tenant), logger: await silentLogger() });
  }

  async startWorkers(db: string, n: number, opts: WorkerOpts = {}): Promise<Proc[]> {
    const started: Proc[] = [];
    for (let i = 0; i < n; i++) {
      const cfg = { url: this.env.cluster.url(db, this.env.tenant), concurrency: opts.concurrency ?? this.env.concurrency, pollMs: this.env.pollMs };
      started.push(spawnProc(`graphile worker ${i + 1}`, process.execPath, [join(this.env.root, 'bench/procs/graphile-worker.mjs'), JSON.stringify(cfg)], { cwd: this.env.root }));
    }
    this.procs.push(...started);
    await Promise.all(started.map((p) => p.line((l) => l === 'ready', 30_000, 'ready')));
    return started;
  }

  async once(db: string, shape: Shape): Promise<number> {
    const u = await this.user(db);
    const inst = 1_000_000 + ++this.seq;
    const t0 = performance.now();
    let check: () => Promise<boolean>;
    if (shape.kind === 'chain') {
      await u.query("SELECT graphile_worker.add_job('step', json_build_object('inst', $1::int, 'i', 0, 'n', $2::int))", [inst, shape.steps]);
      check = async () => (await u.query('SELECT 1 FROM bench_results WHERE instance = $1 AND step = $2', [inst, shape.steps - 1])).rowCount === 1;
    } else {
      await u.query("SELECT count(graphile_worker.add_job('step', json_build_object('inst', $1::int, 'i', g, 'n', 0))) FROM generate_series(0, $2::int - 1) g", [inst, shape.branches]);
      check = async () => (await u.query('SELECT count(*)::int AS n FROM bench_results WHERE instance = $1', [inst])).rows[0].n === shape.branches;
    }
    await until(check, 60_000, `graphile instance ${inst}`);
    return performance.now() - t0;
  }

  async startBatch(db: string, count: number, steps: number): Promise<void> {
    const u = await this.user(db);
    // add_jobs: graphile-worker's bulk insert, one statement.
    await u.query(
      `SELECT count(*) FROM graphile_worker.add_jobs(ARRAY(
         SELECT ROW('step', json_build_object('inst', g, 'i', 0, 'n', $1::int), NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec
           FROM generate_series(1, $2::int) g))`,
      [steps, count],
    );
  }

  /** The first step's result row (written ~1 ms after its job was picked up). */
  override async firstPickup(db: string): Promise<number | null> {
    const r = await (await this.admin(db)).query('SELECT (extract(epoch FROM min(at)) * 1000)::float8 AS t FROM bench_results');
    return r.rows[0].t === null ? null : Number(r.rows[0].t);
  }

  async batchDone(db: string): Promise<boolean> {
    const r = await (await this.admin(db)).query('SELECT NOT EXISTS (SELECT 1 FROM graphile_worker._private_jobs) AS d');
    return r.rows[0].d === true;
  }

  async batchCounts(db: string, count: number, steps: number): Promise<{ completed: number; failed: number }> {
    const a = await this.admin(db);
    const r = await a.query('SELECT count(*)::int AS n FROM bench_results WHERE step = $1 AND instance <= $2', [steps - 1, count]);
    const f = await a.query('SELECT count(*)::int AS n FROM graphile_worker._private_jobs WHERE last_error IS NOT NULL');
    return { completed: r.rows[0].n, failed: f.rows[0].n };
  }
}

async function silentLogger() {
  const { Logger } = await import('graphile-worker');
  return new Logger(() => () => undefined);
}

export async function settle(ms = 300): Promise<void> {
  await sleep(ms);
}
