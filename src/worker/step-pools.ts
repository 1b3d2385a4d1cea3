/**
 * The step connections: one pool per (role, database), and how long their connections live.
 *
 * A step connection's first checkpoints are slow: a new backend fills its catalog caches and
 * compiles df._commit and the reset (~25 ms of CPU, docs/PERFORMANCE.md "Warm-up"). Connections
 * beyond a pool's first close after IDLE_MS unused; a pool of the worker's own database
 * keeps its last connection until it has been unused for KEEP_WARM_MS. Measured on one worker,
 * the first one-step instance after a 35 s pause (six pauses each, alternating builds): 35-81 ms,
 * median 44, when every connection closed after 30 s; 12-44 ms, median 23, with the kept one (a
 * plain transaction of the floor's took 3.5-20 ms after the same pause on this VM). A tenant whose
 * work arrives every minute paid a new backend for every instance.
 *
 * What it costs is bounded: at most `keep` pools (as many as the worker's step slots) keep a
 * connection, the most recently used ones; older idle ones end. Pools of other databases keep
 * nothing past IDLE_MS: a connection kept there would make DROP DATABASE fail ("being accessed by
 * other users") for minutes.
 */
import pg from 'pg';

/** Connections beyond a pool's kept one close after this long unused (node-postgres's idle timeout). */
const IDLE_MS = 30_000;
/** A home pool's last connection closes after this long unused. */
export const KEEP_WARM_MS = 10 * 60_000;
/** How often unused pools are looked for. */
const SWEEP_MS = 60_000;

type Entry = { pool: pg.Pool; lastUse: number; home: boolean };

export class StepPools {
  /** In order of last use, oldest first (a Map keeps insertion order; a use re-inserts). */
  private readonly entries = new Map<string, Entry>();
  /** Home pools in `entries`. */
  private homes = 0;
  private readonly sweeper: NodeJS.Timeout;
  private readonly idleMs: number;
  private readonly now: () => number;

  /** `opts` are for tests: the idle timeout, and the clock that KEEP_WARM_MS is measured on. */
  constructor(
    private readonly config: (role: string, database: string) => pg.PoolConfig,
    private readonly home: string,
    private readonly keep: number,
    opts: { idleMs?: number; now?: () => number } = {},
  ) {
    this.idleMs = opts.idleMs ?? IDLE_MS;
    this.now = opts.now ?? Date.now;
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  /** The pool of (role, database), created on first use; marks it used now. */
  get(role: string, database: string): pg.Pool {
    const key = `${role}\u0000${database}`;
    let entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
    } else {
      const home = database === this.home;
      const pool = new pg.Pool({ ...this.config(role, database), idleTimeoutMillis: this.idleMs, min: home ? 1 : 0 });
      pool.on('error', () => undefined); // idle client lost (server restart): dropped, not fatal
      // A checked-out client whose server goes away emits 'error' too; the running query sees it.
      pool.on('connect', (client) => client.on('error', () => undefined));
      entry = { pool, lastUse: 0, home };
      if (home) this.homes++;
    }
    entry.lastUse = this.now();
    this.entries.set(key, entry);
    // Only a new home pool can take the count over `keep` (the sweep retries one that was busy).
    if (this.homes > this.keep) this.endBeyondKeep();
    return entry.pool;
  }

  /** Ends home pools unused for KEEP_WARM_MS, and cross-database pools with no connection left. */
  sweep(): void {
    const now = this.now();
    for (const [key, e] of this.entries) {
      const stale = e.home ? now - e.lastUse >= KEEP_WARM_MS : e.pool.totalCount === 0;
      if (stale && idle(e.pool)) this.drop(key, e);
    }
    if (this.homes > this.keep) this.endBeyondKeep();
  }

  async end(): Promise<void> {
    clearInterval(this.sweeper);
    const pools = [...this.entries.values()].map((e) => e.pool);
    this.entries.clear();
    this.homes = 0;
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
  }

  /** At most `keep` home pools keep a connection: the least recently used idle ones beyond that end. */
  private endBeyondKeep(): void {
    for (const [key, e] of this.entries) {
      if (this.homes <= this.keep) return;
      if (e.home && idle(e.pool)) this.drop(key, e);
    }
  }

  private drop(key: string, e: Entry): void {
    this.entries.delete(key);
    if (e.home) this.homes--;
    e.pool.end().catch(() => undefined);
  }
}

/** No connection checked out and nobody waiting for one: ending the pool interrupts nothing. */
const idle = (pool: pg.Pool) => pool.idleCount === pool.totalCount && pool.waitingCount === 0;
