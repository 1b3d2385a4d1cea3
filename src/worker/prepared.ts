/**
 * Prepared transactions of cross-database steps (src/worker/steps.ts): a step in another database
 * is BEGIN; statement; PREPARE TRANSACTION '<gid>' there, its checkpoint at home records the gid,
 * then COMMIT PREPARED. A crash in between leaves the transaction prepared; it is settled by its
 * checkpoint: recorded → COMMIT PREPARED; not recorded and never recordable any more (its lease
 * token is gone, and df._commit checks the token) → ROLLBACK PREPARED, and the step runs again.
 * Settling runs when an instance is claimed (recoverInstance), when a step is retried
 * (settleStep) and every PREPARED_SWEEP_MS for what no claim will come back for (sweep), on the
 * worker's own superuser connection to the target: COMMIT/ROLLBACK PREPARED may be run by the
 * role that prepared or by a superuser.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { parse as parseConnectionString } from 'pg-connection-string';
import type { Logger } from './log';
import type { Store } from './store';
import { isTransient } from './transient';

/** How often prepared transactions left behind by crashed steps are looked for (besides at claim). */
export const PREPARED_SWEEP_MS = 30_000;
/** A prepared transaction younger than this is left to the run that made it by the periodic sweep. */
const PREPARED_SWEEP_GRACE_S = 5;

const hex = (text: string, n: number) => createHash('sha256').update(text).digest('hex').slice(0, n);
/** The gid prefix of every prepared transaction of an instance, with the home database's oid. */
export const gidPrefix = (homeOid: string, instance: string) => `pgd:${homeOid}:${instance}:`;

/** What settling a step's attempts needs to know of the step. */
export interface StepRef {
  database: string;
  instance: string;
  stamp: string;
  node: string;
  /** The lease token of the run. */
  token: () => string;
  /** The step's checkpointed result, or null. */
  recorded: () => Promise<string | null>;
}

export class PreparedTransactions {
  /** Worker (superuser) connections to other databases. */
  private readonly adminPools = new Map<string, pg.Pool>();
  private homeOidValue: string | null = null;
  private readonly sweepTimer: NodeJS.Timeout;
  private sweeping = false;

  constructor(
    private readonly databaseUrl: string,
    /** The worker's own database: checkpoints live there. */
    private readonly home: string,
    private readonly store: Store,
    private readonly log: Logger,
  ) {
    const sweepMs = Number(process.env.PG_DURABLE_TEST_PREPARED_SWEEP_MS ?? PREPARED_SWEEP_MS); // test hook
    this.sweepTimer = setInterval(() => void this.sweep(), sweepMs > 0 ? sweepMs : PREPARED_SWEEP_MS);
    this.sweepTimer.unref();
  }

  /**
   * The gid of attempt `n` of a step in this run: `pgd:<home oid>:<instance>:<hash(stamp, node)>:
   * <hash(token)>:<n>`, so every PREPARE has its own, and the token part tells whether its run
   * still holds the lease.
   */
  async gid(req: StepRef, n: number): Promise<string> {
    return `${gidPrefix(await this.homeOid(), req.instance)}${hex(`${req.stamp}|${req.node}`, 12)}:${hex(req.token(), 8)}:${n}`;
  }

  /** The home database's oid: part of every gid, so a server's other pg_durable databases are told apart. */
  async homeOid(): Promise<string> {
    if (this.homeOidValue === null) {
      const r = await this.store.pool.query<{ oid: string }>('SELECT oid::text AS oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()');
      this.homeOidValue = r.rows[0].oid;
    }
    return this.homeOidValue;
  }

  private adminPool(database: string): pg.Pool {
    let pool = this.adminPools.get(database);
    if (!pool) {
      const base = parseConnectionString(this.databaseUrl);
      pool = new pg.Pool({
        host: base.host ?? undefined,
        port: base.port ? Number(base.port) : undefined,
        user: base.user ?? undefined,
        password: typeof base.password === 'string' ? base.password : undefined,
        ssl: base.ssl as pg.ClientConfig['ssl'],
        database,
        max: 2,
        idleTimeoutMillis: 10_000,
        connectionTimeoutMillis: 30_000,
        application_name: 'pg_durable:worker:recovery',
      });
      pool.on('error', () => undefined);
      pool.on('connect', (client) => client.on('error', () => undefined));
      this.adminPools.set(database, pool);
    }
    return pool;
  }

  /**
   * Settles one prepared transaction of `instance` in `database` by the home checkpoint: recorded
   * → COMMIT PREPARED; not recorded and its lease token no longer current (so it can never be
   * recorded: df._commit checks the token) → ROLLBACK PREPARED; else it belongs to a live run and
   * is left alone. Runs on the worker's superuser connection (COMMIT/ROLLBACK PREPARED may be run
   * by the role that prepared or a superuser). Returns what it did.
   */
  async settle(database: string, instance: string, gid: string, opts: { ownRun?: boolean } = {}): Promise<'committed' | 'rolled back' | 'left'> {
    const fate = await this.store.preparedFate(instance, gid);
    let action: 'COMMIT' | 'ROLLBACK' | null = null;
    if (fate.checkpointed) action = 'COMMIT';
    // `ownRun`: the caller is the run that prepared it and will not checkpoint it any more.
    else if (opts.ownRun || fate.token === null || hex(fate.token, 8) !== gid.split(':')[4]) action = 'ROLLBACK';
    if (action === null) return 'left';
    try {
      await this.adminPool(database).query(`${action} PREPARED ${pg.escapeLiteral(gid)}`);
    } catch (err) {
      if ((err as { code?: string }).code !== '42704') throw err; // already settled by someone else
    }
    this.log.info({ instance, database, gid, action: action === 'COMMIT' ? 'committed' : 'rolled back' }, 'prepared transaction settled');
    return action === 'COMMIT' ? 'committed' : 'rolled back';
  }

  /**
   * Settles every prepared transaction an instance left in `database` (at claim, before replay).
   * The claim's token is new, so none of them can still be checkpointed: each is committed or
   * rolled back.
   */
  async recoverInstance(instance: string, database: string): Promise<void> {
    if (database === this.home) return;
    const prefix = gidPrefix(await this.homeOid(), instance);
    let gids: string[];
    try {
      const r = await this.adminPool(database).query<{ gid: string }>(
        'SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE database = pg_catalog.current_database() AND pg_catalog.left(gid, $2::int) = $1::text',
        [prefix, prefix.length],
      );
      gids = r.rows.map((x) => x.gid);
    } catch (err) {
      if (isTransient(err)) throw err;
      return; // the database is gone or refuses us: nothing of ours can be prepared there
    }
    for (const gid of gids) await this.settle(database, instance, gid);
  }

  /** A retried cross-database step: settle this step's earlier PREPAREs; its result if one was checkpointed. */
  async settleStep(req: StepRef): Promise<string | null> {
    const prefix = `${gidPrefix(await this.homeOid(), req.instance)}${hex(`${req.stamp}|${req.node}`, 12)}:`;
    const r = await this.adminPool(req.database).query<{ gid: string }>(
      'SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE database = pg_catalog.current_database() AND pg_catalog.left(gid, $2::int) = $1::text',
      [prefix, prefix.length],
    ).catch((err) => {
      if (isTransient(err)) throw err;
      return { rows: [] as { gid: string }[] };
    });
    // Earlier attempts of this run (current token) that were not checkpointed are rolled back too.
    for (const { gid } of r.rows) await this.settle(req.database, req.instance, gid, { ownRun: true });
    return req.recorded();
  }

  /**
   * Periodic recovery: prepared transactions of this home database older than a few seconds, in any
   * database of the server, settled by their checkpoint (crashed runs of instances that will not
   * be claimed again, e.g. cancelled meanwhile). Those of live runs are left alone.
   */
  async sweep(): Promise<number> {
    if (this.sweeping) return 0;
    this.sweeping = true;
    let settled = 0;
    try {
      const prefix = `pgd:${await this.homeOid()}:`;
      const r = await this.store.pool.query<{ gid: string; database: string }>(
        `SELECT gid, database::text FROM pg_catalog.pg_prepared_xacts
          WHERE pg_catalog.left(gid, $2::int) = $1::text AND prepared < pg_catalog.now() - make_interval(secs => $3::int)`,
        [prefix, prefix.length, PREPARED_SWEEP_GRACE_S],
      );
      for (const { gid, database } of r.rows) {
        const instance = gid.split(':')[2];
        if ((await this.settle(database, instance, gid)) !== 'left') settled++;
      }
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'prepared-transaction sweep failed; next time');
    } finally {
      this.sweeping = false;
    }
    return settled;
  }

  async end(): Promise<void> {
    clearInterval(this.sweepTimer);
    await Promise.all([...this.adminPools.values()].map((p) => p.end().catch(() => undefined)));
  }
}
