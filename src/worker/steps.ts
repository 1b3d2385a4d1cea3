/**
 * SQL steps. Each runs on a connection authenticated as the submitting role (never SET ROLE on a
 * privileged connection: user SQL could RESET it), pooled per (role, database) and cleaned with
 * a full session reset after every step so no session state crosses steps.
 *
 * Exactly-once: BEGIN; the step's statement; the checkpoint (df._commit, lease-fenced); COMMIT.
 * Statements that cannot run in a transaction block (VACUUM, CREATE INDEX CONCURRENTLY, a CALL
 * that commits) fall back to autocommit and are at-least-once; the node's status_details say so.
 *
 * A step in another database (`df.start(..., database => 'other')`) cannot share a transaction
 * with its checkpoint, which always lands in the worker's own (home) database. Where the target
 * allows it (max_prepared_transactions > 0) the step is exactly-once through two-phase commit:
 * BEGIN; statement; PREPARE TRANSACTION '<gid>' (as the role, in the target); the checkpoint at
 * home records the gid; COMMIT PREPARED '<gid>'. A crash leaves a prepared transaction behind,
 * which recovery settles by the checkpoint: recorded → COMMIT PREPARED, not recorded and never
 * recordable any more (its lease token is gone) → ROLLBACK PREPARED, and the step runs again.
 * Recovery (src/worker/prepared.ts) runs when an instance is claimed and periodically, on the
 * worker's own (superuser) connection to the target. Without two-phase commit the step commits in the target
 * and is checkpointed at home afterwards: at-least-once, said in status_details.
 *
 * A result is capped at --max-result-bytes (16 MiB by default) of JSON: a bigger one fails the node
 * and, being inside the step transaction, rolls the statement back. The rows are still received
 * before they can be measured, so keep huge reads out of steps (LIMIT, aggregate, or write a table).
 */
import pg from 'pg';
import { keptStatementGone } from './kept';
import { PipelineError, pipelined, type Statement } from './pipeline';
import { DfError } from '../core/errors';
import { Aborted } from './clock';
import type { WorkerConfig } from './config';
import { databaseOf, stepConnection } from './config';
import type { Logger } from './log';
import { PreparedTransactions } from './prepared';
import { AcquireTimeout, Semaphore } from './semaphore';
import { StepPools } from './step-pools';
import type { Store } from './store';
import { metrics } from './metrics';
import { isTransient, sessionSurvives, withRetry } from './transient';
import { resultJson } from './typemap';

export type StepOutcome =
  | { kind: 'ok'; json: string; checkpointed: boolean; note?: string; parked?: boolean }
  | { kind: 'fail'; error: string };

export class LeaseLost extends Error {}

/**
 * The step connection was refused for the role itself (it no longer exists, may not log in, or
 * fails authentication): every step of the instance would fail the same way, so the run ends and
 * the instance fails with what happened to the role (instance.ts).
 */
export class StepIdentityError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.code = code;
  }
}

/**
 * The connection failed after the checkpoint was sent: the transaction may or may not have
 * committed. Before running the step again, look for its checkpoint (written in that same
 * transaction): if it is there, the step is done and must not run twice.
 */
class AmbiguousCommit extends Error {
  constructor(readonly cause: unknown) {
    super((cause as Error).message);
  }
}

/**
 * A step whose checkpoint was held back to travel with the next step (see Parked) did not commit,
 * and the interpreter has already moved on with its result: the run stops and the instance resumes
 * from what is durable, where that step runs again (as after a crash).
 */
export class CheckpointLost extends Error {
  /** Why (the connection's or the server's message); kept out of `message`, which must not read as a transient fault to retry. */
  constructor(readonly node: string, readonly reason: string) {
    super(`the checkpoint of node ${node} did not commit; the instance resumes from its last checkpoint`);
  }
}

/**
 * A held-back checkpoint was refused for good (the role lost its privileges, a deferred constraint
 * failed at COMMIT): the error of that step, which the interpreter had taken as done. It carries
 * the refusal's SQLSTATE so the run ends as it would have at that step (instance.ts).
 */
export class ParkedCheckpointFailed extends Error {
  readonly code: string | undefined;
  constructor(readonly cause: Error & { code?: string }, readonly node: string) {
    super(cause.message);
    this.code = cause.code;
  }
}

/** Why a flight that carried the previous step's checkpoint failed before this step's statement (internal). */
class PreviousStep extends Error {
  constructor(readonly error: unknown, readonly broken: boolean) {
    super((error as Error).message);
  }
}

/**
 * A SQL step that ran and whose checkpoint is written but not yet sent: its transaction stays open
 * on its connection (holding its step slot) until the instance's next step, if that is a SQL step
 * in the same database, takes it over and sends `checkpoint; COMMIT; reset; BEGIN; statement` as
 * one flight — one round trip per chained step instead of two. Whatever else the instance does
 * next first commits it (`commitParked`: checkpoint, COMMIT, reset), and so does the event loop's
 * next turn (setImmediate) when nothing took it: a chain's next step arrives in the same
 * turn, as promise continuations, so a parked transaction never waits on I/O or a timer.
 */
interface Parked {
  client: pg.PoolClient;
  /** The step slot it holds. */
  release: () => void;
  req: StepRequest;
  checkpoint: { text: string; values: (string | null)[]; keep: boolean };
  timer: NodeJS.Immediate;
  flushing: Promise<void> | null;
}

/** Every value as the text PostgreSQL sent: typemap.ts owns the conversion to JSON. */
const RAW_TEXT = { getTypeParser: () => (value: string) => value };
/** active_sql_transaction (VACUUM, CONCURRENTLY, ...) and invalid_transaction_termination (CALL that commits). */
const NEEDS_AUTOCOMMIT = new Set(['25001', '2D000']);
/**
 * typemap.ts reads PostgreSQL's text output, which depends on DateStyle and extra_float_digits: a
 * role default such as `DateStyle = 'SQL, DMY'` or `extra_float_digits = 0` would fail every
 * date/time column or round floats (the original reads binary values and is immune). So steps run
 * with ISO output (setting only the output style keeps the session's DMY/MDY order for ambiguous
 * input) and shortest-precise floats, and with df.in_workflow on. On a step connection of the home
 * database they are session settings that the reset after every step puts back (RESET_SESSION),
 * so a step's flight carries them only on a connection's first step (`ready`); elsewhere one
 * statement in the step's transaction (`is_local`), or before the autocommit path's statement.
 */
const stepSettings = (local: boolean) =>
  `SELECT pg_catalog.set_config('df.in_workflow', 'true', ${local}), pg_catalog.set_config('DateStyle', 'ISO', ${local}), ` +
  `pg_catalog.set_config('extra_float_digits', '3', ${local})`;
/**
 * What DISCARD ALL does, minus DISCARD PLANS: every piece of session state a step could leave
 * behind (settings, role, prepared statements, cursors, LISTENs, advisory locks, temp tables,
 * sequence caches) is reset, but cached plans survive, so df._commit is not re-planned on every
 * step (~0.3 ms of server time per step in docs/PERFORMANCE.md). One call of a function
 * (src/sql/55_session.sql) instead of seven statements, each of which PostgreSQL parsed, planned
 * and ran through a portal of its own at every step.
 */
const RESET_SESSION = `WITH reset AS MATERIALIZED (SELECT df._reset_session()) ${stepSettings(false)} FROM reset`;
/** The same, kept parsed on the connection (src/worker/kept.ts). */
const KEPT_RESET: Statement = { text: RESET_SESSION, values: [], keep: true };
/** The same as statements, for a step in another database (which need not have pg_durable). */
const RESET_ANYWHERE = ['CLOSE ALL', 'RESET ROLE', 'RESET ALL', 'DEALLOCATE ALL', 'UNLISTEN *', 'SELECT pg_catalog.pg_advisory_unlock_all()', 'DISCARD TEMP', 'DISCARD SEQUENCES'].join('; ');
/** Sent with a step's statement: its transaction, and its settings on a connection's first step (see stepSettings). */
const STEP_PRELUDE = ['BEGIN'];
const FIRST_STEP_PRELUDE = ['BEGIN', stepSettings(true)];
/** Sent with a step's checkpoint: COMMIT, then the session reset (the connection goes back clean). */
const epilogue = (keep: boolean): Statement[] => ['COMMIT', keep ? KEPT_RESET : RESET_SESSION];
/** Connection failures that patience will not fix: bad role/login, missing database. */
const PERMANENT_CONNECT = new Set(['28000', '28P01', '3D000', '42501']);
/** A checkpoint parameter as sent on the wire (df._commit's are text, uuid, jsonb text or NULL). */
const bindValue = (v: unknown): string | null => (v === null || v === undefined ? null : typeof v === 'string' ? v : JSON.stringify(v));
/** status_details notes of cross-database steps. */
export const TWO_PHASE_NOTE = (db: string) => `ran in database "${db}": exactly-once through two-phase commit`;
export const AT_LEAST_ONCE_NOTE = (db: string) =>
  `ran in database "${db}" without two-phase commit (its server has max_prepared_transactions = 0): at-least-once`;

/** Runs the checkpoint statement (df._commit) where the step decides: its own connection or a worker one. */
export type CheckpointRunner = (sql: string, params: unknown[]) => Promise<void>;

export interface StepRequest {
  role: string;
  database: string;
  sql: string;
  signal: AbortSignal;
  /** Instance, stamp and node: name the prepared transaction of a cross-database step. */
  instance: string;
  stamp: string;
  node: string;
  /** The current lease token (only a hash of it goes into a gid). */
  token(): string;
  /**
   * Writes the success checkpoint: on the step's own connection inside its transaction, or (a step
   * in another database) on a worker connection at home, with `detail` (the gid, a note).
   */
  checkpoint(run: CheckpointRunner, json: string, detail?: Record<string, unknown>): Promise<void>;
  /** The checkpointed result, if an earlier attempt's transaction did commit (else null). */
  recorded(): Promise<string | null>;
  /**
   * The interpreter commits what is parked for the instance (StepRunner.commitParked) before
   * anything but its next SQL step: the checkpoint may then travel with that step (see Parked).
   */
  chain?: boolean;
}

export class StepRunner {
  private readonly pools: StepPools;
  private readonly slots: Semaphore;
  /** Steps in run() before they hold or wait for a slot (see queued). */
  private entering = 0;
  /** At most one per instance (see Parked). */
  private readonly parked = new Map<string, Parked>();
  /** Home step connections whose session has the step settings (set by their last reset: stepSettings). */
  private readonly ready = new WeakSet<pg.ClientBase>();
  /** Pools whose steps deallocate: their checkpoints and resets are parsed at every use (src/worker/kept.ts). */
  private readonly unkept = new WeakSet<pg.Pool>();
  private typeNames: Map<number, string> | null = null;
  /** The worker's own database: checkpoints live there. */
  readonly home: string;
  /** Prepared transactions of cross-database steps: their gids, and their recovery. */
  private readonly prepared: PreparedTransactions;
  /** Whether a database's server takes PREPARE TRANSACTION (max_prepared_transactions > 0). */
  private readonly twoPhase = new Map<string, boolean>();
  /** Test hook (PG_DURABLE_TEST_2PC_PAUSE=prepared:<ms>,checkpointed:<ms>): widens the crash windows. */
  private readonly pause: { prepared: number; checkpointed: number };

  constructor(
    private readonly config: WorkerConfig,
    private readonly store: Store,
    private readonly log: Logger,
  ) {
    this.slots = new Semaphore(config.maxStepConnections);
    this.home = databaseOf(config.databaseUrl);
    this.pools = new StepPools(
      (role, database) => ({
        ...stepConnection(config, role, database),
        max: config.maxStepConnections,
        connectionTimeoutMillis: 30_000,
        application_name: 'pg_durable:worker:workflow-sql',
      }),
      this.home,
      config.maxStepConnections,
    );
    this.pause = { prepared: 0, checkpointed: 0 };
    for (const m of (process.env.PG_DURABLE_TEST_2PC_PAUSE ?? '').matchAll(/(prepared|checkpointed):(\d+)/g)) this.pause[m[1] as 'prepared' | 'checkpointed'] = Number(m[2]);
    this.prepared = new PreparedTransactions(config.databaseUrl, this.home, store, log);
  }

  private pool(role: string, database: string): pg.Pool {
    return this.pools.get(role, database);
  }

  async run(req: StepRequest): Promise<StepOutcome> {
    const cross = req.database !== this.home;
    // Until it holds or waits for a slot, the step counts as queued (see queued).
    this.entering++;
    let held: Parked | null;
    try {
      // The instance's previous step, parked: taken over by this one, or settled first.
      held = await this.takeParked(req.instance);
      if (held && !(req.chain && !cross && held.req.role === req.role && held.req.database === req.database)) {
        await this.flush(held);
        held = null;
      }
    } finally {
      this.entering--;
    }
    const slot: { release: () => void; owned: boolean } = { release: () => undefined, owned: true };
    if (held) {
      // Its step slot is this step's now.
      slot.release = held.release;
      held.release = () => undefined;
    } else {
      try {
        slot.release = await this.slots.acquire(this.config.acquireTimeoutSeconds * 1000, req.signal);
      } catch (err) {
        if (err instanceof AcquireTimeout) {
          return {
            kind: 'fail',
            error: `pg_durable: connection limit reached (max_user_connections=${this.config.maxStepConnections}). Timed out after ${this.config.acquireTimeoutSeconds}s waiting for an available execution slot.`,
          };
        }
        throw new Aborted();
      }
    }
    let ambiguous = false;
    let n = 0;
    try {
      return await withRetry(async () => {
        if (ambiguous) {
          const done = await req.recorded();
          if (done !== null) return { kind: 'ok', json: done, checkpointed: true } as StepOutcome;
        }
        const previous = held;
        held = null;
        try {
          return await (cross ? this.crossAttempt(req, n++) : this.attempt(req, slot, previous));
        } catch (err) {
          if (!(err instanceof AmbiguousCommit)) throw err;
          ambiguous = true;
          throw err.cause;
        }
      }, {
        stop: () => req.signal.aborted,
        onRetry: (err, n) => {
          metrics.retries.inc({ type: 'SQL', reason: 'transient' }); // metrics
          this.log.warn({ err: (err as Error).message, attempt: n + 1 }, 'transient failure in SQL step, retrying');
        },
      });
    } finally {
      if (slot.owned) slot.release();
    }
  }

  /**
   * Writes the parked checkpoint of `instance`, if any (checkpoint, COMMIT, reset), and returns
   * when it is durable; throws LeaseLost, CheckpointLost or ParkedCheckpointFailed when it did not.
   */
  async commitParked(instance: string): Promise<void> {
    const h = this.parked.get(instance);
    if (h) await this.flush(h);
  }

  /** The parked step of `instance`, now owned by the caller (null if none); waits out a flush in progress. */
  private async takeParked(instance: string): Promise<Parked | null> {
    const h = this.parked.get(instance);
    if (!h) return null;
    if (h.flushing) {
      await h.flushing;
      return null;
    }
    clearImmediate(h.timer);
    this.parked.delete(instance);
    return h;
  }

  /** Leaves a step's transaction open with its checkpoint written, for the instance's next step (see Parked). */
  private park(client: pg.PoolClient, slot: { release: () => void; owned: boolean }, req: StepRequest, checkpoint: Parked['checkpoint']): void {
    const h: Parked = { client, release: slot.release, req, checkpoint, flushing: null, timer: setImmediate(() => void this.flush(h).catch(() => undefined)) };
    slot.owned = false;
    this.parked.set(req.instance, h);
  }

  /** Sends a parked checkpoint on its own (once, whoever asks first) and gives the connection and slot back. */
  private flush(h: Parked): Promise<void> {
    if (h.flushing) return h.flushing;
    clearImmediate(h.timer);
    h.flushing = (async () => {
      let broken = false;
      let clean = false;
      try {
        await metrics.checkpoint('step', () => pipelined(h.client, h.checkpoint, [], epilogue(h.checkpoint.keep))); // metrics
        clean = true;
        this.ready.add(h.client);
      } catch (failure) {
        if (failure instanceof PipelineError && failure.completed >= 2) {
          broken = true; // committed; only the reset failed
          return;
        }
        broken = !(failure instanceof PipelineError);
        if (!broken) await h.client.query('ROLLBACK').catch(() => { broken = true; });
        await this.checkpointFailed(h, failure);
      } finally {
        if (this.parked.get(h.req.instance) === h) this.parked.delete(h.req.instance);
        await this.recycle(h.client, broken, clean ? null : RESET_SESSION);
        h.release();
      }
    })();
    return h.flushing;
  }

  /**
   * A parked checkpoint failed (the transaction is rolled back or its connection is gone): returns
   * if it committed after all (an ambiguous failure whose checkpoint is there), else throws.
   */
  private async checkpointFailed(h: Parked, failure: unknown): Promise<void> {
    const err = failure instanceof PipelineError ? failure.cause : failure;
    if ((err as { code?: string }).code === 'PD001') throw new LeaseLost((err as Error).message);
    if (keptStatementGone(err)) {
      // The step deallocated our checkpoint statement (inside a function, or the tag would have
      // said so): it rolled back, and runs again with statements parsed at every use.
      this.stopKeeping(h.req);
      throw new CheckpointLost(h.req.node, (err as Error).message);
    }
    if (isTransient(err)) {
      if ((await h.req.recorded()) !== null) return;
      throw new CheckpointLost(h.req.node, (err as Error).message);
    }
    throw new ParkedCheckpointFailed(err as Error, h.req.node);
  }

  /**
   * The flight of a step that takes over the previous step's parked transaction (see Parked):
   * that step's checkpoint, COMMIT and reset, then this step's BEGIN and statement. A
   * failure of this statement is thrown as is; anything before it as PreviousStep.
   */
  private async chainedFlight(client: pg.PoolClient, query: pg.QueryConfig, previous: Parked): Promise<pg.QueryResult<unknown[]>> {
    const before = [previous.checkpoint, ...epilogue(previous.checkpoint.keep), ...STEP_PRELUDE];
    try {
      const result = await metrics.checkpoint('step', () => pipelined<unknown[]>(client, query, before)); // metrics
      this.ready.add(client);
      return result;
    } catch (failure) {
      const completed = failure instanceof PipelineError ? failure.completed : -1;
      if (completed === before.length) throw failure;
      if (completed < 2) {
        // Not even the checkpoint and its COMMIT went through, or nobody knows (connection lost).
        let usable = completed >= 0;
        if (usable) await client.query('ROLLBACK').catch(() => { usable = false; });
        try {
          await this.checkpointFailed(previous, failure); // throws unless it committed after all
        } catch (err) {
          throw new PreviousStep(err, !usable);
        }
      }
      // The previous step is durable; the reset or this step's BEGIN failed, or the connection
      // broke: this step runs again on a fresh connection (08000 is retried).
      const cause = failure instanceof PipelineError ? failure.cause : (failure as Error);
      throw new PreviousStep(Object.assign(new Error(`step connection unusable after the previous step's checkpoint: ${cause.message}`), { code: '08000' }), true);
    }
  }

  private async attempt(req: StepRequest, slot: { release: () => void; owned: boolean }, held: Parked | null): Promise<StepOutcome> {
    if (req.signal.aborted) {
      if (held) await this.flush(held);
      throw new Aborted();
    }
    let client: pg.PoolClient;
    if (held) client = held.client;
    else {
      const connected = await this.connect(req);
      if ('kind' in connected) return connected;
      client = connected.client;
    }
    let broken = false;
    /** The epilogue reset the session already. */
    let clean = false;
    /** The connection stays with the transaction, parked for the next step. */
    let parked = false;
    const onAbort = () => void this.store.cancelBackend((client as unknown as { processID: number }).processID);
    req.signal.addEventListener('abort', onAbort, { once: true });
    try {
      // An abort while connecting, or between statements, has no query to cancel: look before each.
      if (req.signal.aborted) throw new Aborted();
      let result: pg.QueryResult<unknown[]>;
      const query = { text: req.sql, rowMode: 'array', types: RAW_TEXT } as pg.QueryConfig;
      try {
        // One round trip: BEGIN (and the step settings on a connection's first step), the statement
        // (src/worker/pipeline.ts); after the previous step's checkpoint, COMMIT and reset when it
        // is parked on this connection.
        result = held
          ? await this.chainedFlight(client, query, held)
          : await pipelined<unknown[]>(client, query, this.ready.has(client) ? STEP_PRELUDE : FIRST_STEP_PRELUDE);
      } catch (failure) {
        if (failure instanceof PreviousStep) {
          broken = failure.broken;
          throw failure.error;
        }
        const err = failure instanceof PipelineError ? failure.cause : failure;
        if (!broken) await client.query('ROLLBACK').catch(() => { broken = true; });
        if (req.signal.aborted) throw new Aborted();
        const e = err as { code?: string; message: string };
        if (!broken && e.code && NEEDS_AUTOCOMMIT.has(e.code)) return await this.autocommit(client, req);
        // The server's own error for the statement stands even when the connection broke right
        // after it (the ROLLBACK failed: a restart, a terminated backend): nothing committed, and
        // the error is the step's outcome. Thrown, it ended the instance as an error that would
        // recur, without its undos (a chaos run: a failing saga step as PostgreSQL shut down).
        if (isTransient(err) || (broken && !sessionSurvives(err))) {
          broken = true;
          throw err;
        }
        return { kind: 'fail', error: `SQL execution failed: ${e.message}` };
      }
      this.noteCommand(req, result.command);
      // Unlike the original, the statement has not committed yet: a result we cannot store (an
      // unsupported type, too large, nested too deeply) rolls back with the failure.
      const converted = this.convert(result, 'the statement was rolled back');
      if ('error' in converted) {
        await client.query('ROLLBACK');
        return { kind: 'fail', error: converted.error };
      }
      const json = converted.json;
      if (req.chain && !this.parked.has(req.instance)) {
        // Written now, sent with the next step or when the instance settles (see Parked).
        let statement: Parked['checkpoint'] | null = null;
        await req.checkpoint(async (sql, params) => { statement = { text: sql, values: params.map(bindValue), keep: this.keeps(req) }; }, json);
        if (statement !== null) {
          this.park(client, slot, req, statement);
          parked = true;
          return { kind: 'ok', json, checkpointed: true, parked: true };
        }
      }
      try {
        // One round trip: the checkpoint, COMMIT, the session reset.
        const keep = this.keeps(req);
        await metrics.checkpoint('step', () => req.checkpoint((sql, params) => pipelined(client, { text: sql, values: params.map(bindValue), keep }, [], epilogue(keep)).then(() => { clean = true; this.ready.add(client); }), json)); // metrics
      } catch (failure) {
        if (failure instanceof PipelineError && failure.completed >= 2) {
          // The checkpoint and COMMIT went through; only resetting the session failed: the step
          // is done, the connection is not reused.
          broken = true;
          return { kind: 'ok', json, checkpointed: true };
        }
        const err = failure instanceof PipelineError ? failure.cause : failure;
        await client.query('ROLLBACK').catch(() => { broken = true; });
        if ((err as { code?: string }).code === 'PD001') throw new LeaseLost((err as Error).message);
        if (req.signal.aborted) throw new Aborted();
        if (keptStatementGone(err)) {
          // Deallocated by the step inside a function (see checkpointFailed): rolled back; again.
          this.stopKeeping(req);
          throw Object.assign(new Error(`the step deallocated the worker's checkpoint statement; it rolled back and runs again: ${(err as Error).message}`), { code: '08000' });
        }
        if (isTransient(err)) {
          broken = true;
          throw new AmbiguousCommit(err);
        }
        throw err;
      }
      return { kind: 'ok', json, checkpointed: true };
    } catch (err) {
      if (isTransient(err) || err instanceof AmbiguousCommit) broken = true;
      throw err;
    } finally {
      req.signal.removeEventListener('abort', onAbort);
      if (!parked) await this.recycle(client, broken, clean ? null : RESET_SESSION);
    }
  }

  /**
   * A step connection, or the node's failure when the database refuses it for good: a database that
   * does not exist (dropped?) or that the role may not CONNECT to fails the node with a clear
   * message instead of being retried; a refusal of the role itself ends the run (StepIdentityError).
   */
  private async connect(req: StepRequest): Promise<{ client: pg.PoolClient } | StepOutcome> {
    try {
      return { client: await this.pool(req.role, req.database).connect() };
    } catch (err) {
      const e = err as { code?: string; message: string; detail?: string };
      const prefix = `Failed to connect to database '${req.database}' as '${req.role}'. Error:`;
      if (e.code === '3D000') return { kind: 'fail', error: `${prefix} database "${req.database}" does not exist (dropped?)` };
      if (e.code === '42501') {
        return {
          kind: 'fail',
          error: `${prefix} role "${req.role}" may not connect to database "${req.database}": ${e.message}${e.detail ? ` (${e.detail})` : ''}. Grant it with GRANT CONNECT ON DATABASE.`,
        };
      }
      if (e.code === '28000' || e.code === '28P01') throw new StepIdentityError(`${prefix} ${e.message}`, e.code);
      if (isTransient(err) && !PERMANENT_CONNECT.has(e.code ?? '')) throw err;
      return { kind: 'fail', error: `${prefix} ${e.message}` };
    }
  }

  /**
   * A step in another database (see the header): two-phase commit where the target allows it, else
   * commit there and checkpoint at home (at-least-once). `n` numbers the attempts of this run, so
   * every PREPARE has its own gid (PreparedTransactions.gid, src/worker/prepared.ts).
   */
  private async crossAttempt(req: StepRequest, n: number): Promise<StepOutcome> {
    if (req.signal.aborted) throw new Aborted();
    // A retry first settles what an earlier attempt of this run may have left prepared (its
    // checkpoint decides), so the statement never waits on its own earlier, orphaned locks.
    if (n > 0) {
      const done = await this.prepared.settleStep(req);
      if (done !== null) return { kind: 'ok', json: done, checkpointed: true };
    }
    const connected = await this.connect(req);
    if ('kind' in connected) return connected;
    const client = connected.client;
    let broken = false;
    const onAbort = () => void this.store.cancelBackend((client as unknown as { processID: number }).processID);
    req.signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (req.signal.aborted) throw new Aborted(); // aborted while connecting: no query to cancel
      let twoPhase = this.twoPhase.get(req.database);
      if (twoPhase === undefined) {
        const r = await client.query<{ n: string }>("SELECT pg_catalog.current_setting('max_prepared_transactions') AS n");
        twoPhase = Number(r.rows[0].n) > 0;
        this.twoPhase.set(req.database, twoPhase);
      }
      await client.query(`BEGIN; ${stepSettings(true)}`);
      let result: pg.QueryResult<unknown[]>;
      try {
        result = await client.query<unknown[]>({ text: req.sql, queryMode: 'extended', rowMode: 'array', types: RAW_TEXT } as pg.QueryConfig);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => { broken = true; });
        if (req.signal.aborted) throw new Aborted();
        const e = err as { code?: string; message: string };
        if (e.code && NEEDS_AUTOCOMMIT.has(e.code)) {
          const out = await this.autocommit(client, req);
          return out.kind === 'ok' ? { ...out, note: `${out.note} (database "${req.database}")` } : out;
        }
        if (isTransient(err)) {
          broken = true;
          throw err;
        }
        return { kind: 'fail', error: `SQL execution failed: ${e.message}` };
      }
      const converted = this.convert(result, 'the statement was rolled back');
      if ('error' in converted) {
        await client.query('ROLLBACK');
        return { kind: 'fail', error: converted.error };
      }
      const json = converted.json;
      if (!twoPhase) {
        // At-least-once: a crash between this COMMIT and the checkpoint runs the step again.
        await client.query('COMMIT');
        await this.homeCheckpoint(req, json, { note: AT_LEAST_ONCE_NOTE(req.database) }).catch((err) => {
          if ((err as { code?: string }).code === 'PD001') throw new LeaseLost((err as Error).message);
          throw err;
        });
        return { kind: 'ok', json, checkpointed: true };
      }
      const gid = await this.prepared.gid(req, n);
      try {
        await client.query(`PREPARE TRANSACTION ${pg.escapeLiteral(gid)}`);
      } catch (err) {
        if ((err as { code?: string }).code === '55000') {
          // prepared transactions are disabled after all (the setting changed): the transaction
          // rolled back; run it again without two-phase commit.
          this.twoPhase.set(req.database, false);
          throw Object.assign(new Error((err as Error).message), { code: '40001' });
        }
        broken = isTransient(err) || broken;
        throw err; // transient: the retry settles a PREPARE that did happen
      }
      if (this.pause.prepared > 0) await sleepMs(this.pause.prepared);
      try {
        await this.homeCheckpoint(req, json, { xact: gid, note: TWO_PHASE_NOTE(req.database) });
      } catch (err) {
        if ((err as { code?: string }).code === 'PD001' || !isTransient(err)) {
          // Never checkpointed, and (lease lost) never will be: undo the prepared statement.
          await client.query(`ROLLBACK PREPARED ${pg.escapeLiteral(gid)}`).catch(() => { broken = true; });
          if ((err as { code?: string }).code === 'PD001') throw new LeaseLost((err as Error).message);
          throw err;
        }
        throw err; // ambiguous: the retry looks for the checkpoint (settleStep) and commits or rolls back
      }
      if (this.pause.checkpointed > 0) await sleepMs(this.pause.checkpointed);
      try {
        await client.query(`COMMIT PREPARED ${pg.escapeLiteral(gid)}`);
      } catch (err) {
        // The checkpoint is durable, so the outcome is decided: finish it on a worker connection;
        // if the target stays away, the sweep and the next claim do.
        broken = true;
        await this.prepared.settle(req.database, req.instance, gid).catch((e) =>
          this.log.warn({ instance: req.instance, database: req.database, gid, err: (e as Error).message }, 'COMMIT PREPARED deferred to recovery'),
        );
      }
      return { kind: 'ok', json, checkpointed: true };
    } catch (err) {
      if (isTransient(err)) broken = true;
      throw err;
    } finally {
      req.signal.removeEventListener('abort', onAbort);
      await this.recycle(client, broken, RESET_ANYWHERE);
    }
  }

  /** The checkpoint of a cross-database step, on a worker connection to the home database. */
  private async homeCheckpoint(req: StepRequest, json: string, detail: Record<string, unknown>): Promise<void> {
    await this.store.onConnection((home) => req.checkpoint(async (sql, params) => { await home.query(sql, params); }, json, detail));
  }

  /** Settles what crashed cross-database steps of `instance` left prepared in `database` (src/worker/prepared.ts). */
  recoverInstance(instance: string, database: string): Promise<void> {
    return this.prepared.recoverInstance(instance, database);
  }

  /** At-least-once path for statements PostgreSQL refuses inside a transaction block. */
  private async autocommit(client: pg.PoolClient, req: StepRequest): Promise<StepOutcome> {
    await client.query(stepSettings(false));
    try {
      const r = await client.query<unknown[]>({ text: req.sql, queryMode: 'extended', rowMode: 'array', types: RAW_TEXT } as pg.QueryConfig);
      this.noteCommand(req, r.command);
      const converted = this.convert(r, 'the statement has already committed (it ran in autocommit)');
      if ('error' in converted) return { kind: 'fail', error: converted.error };
      return { kind: 'ok', json: converted.json, checkpointed: false, note: 'ran in autocommit (cannot run inside a transaction block): at-least-once' };
    } catch (err) {
      if (req.signal.aborted) throw new Aborted();
      if (isTransient(err)) throw err;
      const e = err as { message: string };
      return { kind: 'fail', error: err instanceof DfError ? e.message : `SQL execution failed: ${e.message}` };
    }
  }

  /**
   * The step result as JSON, or why it cannot be stored: an unsupported column type (API §9.3), a
   * result over --max-result-bytes, or JSON nested deeper than the converter's stack.
   */
  private convert(result: pg.QueryResult<unknown[]>, consequence: string): { json: string } | { error: string } {
    const max = this.config.maxResultBytes;
    const tooLarge = (size: string) =>
      `Step result too large: ${size}, the limit is ${max} bytes (--max-result-bytes / PG_DURABLE_MAX_RESULT_BYTES); ${consequence}. Return fewer rows or aggregate in SQL.`;
    // Raw values more than twice the limit cannot shrink under it (jsonb spacing is all we drop).
    let raw = 0;
    for (const row of result.rows as (string | null)[][]) for (const v of row) raw += v === null ? 0 : v.length;
    if (raw > 2 * max) return { error: tooLarge(`more than ${2 * max} bytes`) };
    let json: string;
    try {
      json = resultJson(result.fields, result.rows as (string | null)[][], (oid) => this.typeName(oid));
    } catch (err) {
      if (err instanceof DfError) return { error: err.message };
      if (err instanceof RangeError) {
        if (/string length/i.test(err.message)) return { error: tooLarge(`more than ${max} bytes`) };
        return { error: `Step result cannot be stored: ${err.message} (JSON nested too deeply); ${consequence}.` };
      }
      throw err;
    }
    const size = Buffer.byteLength(json, 'utf8');
    if (size > max) return { error: tooLarge(`${size} bytes`) };
    return { json };
  }

  /** Whether a step of `req`'s pool sends the checkpoint and reset as kept statements (src/worker/kept.ts). */
  private keeps(req: StepRequest): boolean {
    return !this.unkept.has(this.pool(req.role, req.database));
  }

  private stopKeeping(req: StepRequest): void {
    this.unkept.add(this.pool(req.role, req.database));
  }

  /** A step that deallocates (or DISCARDs ALL, in autocommit) may have dropped our kept statements. */
  private noteCommand(req: StepRequest, command: string | undefined): void {
    if (command === 'DEALLOCATE' || command === 'DISCARD') this.stopKeeping(req);
  }

  /** Back to the pool after `reset` (null: the step's epilogue already reset it), or discarded. */
  private async recycle(client: pg.PoolClient, broken: boolean, reset: string | null): Promise<void> {
    if (!broken && reset !== null) {
      try {
        await client.query(reset);
        if (reset === RESET_SESSION) this.ready.add(client);
      } catch {
        broken = true;
      }
    }
    client.release(broken ? true : undefined);
  }

  private typeName(oid: number): string {
    return this.typeNames?.get(oid) ?? `OID ${oid}`;
  }

  /** Type names for "Unsupported column type" messages, loaded once. */
  async loadTypeNames(): Promise<void> {
    const r = await this.store.pool.query<{ oid: number; typname: string }>('SELECT oid::int AS oid, typname::text FROM pg_catalog.pg_type');
    this.typeNames = new Map(r.rows.map((t) => [t.oid, t.typname]));
  }

  /**
   * Steps waiting for a free slot, including those settling their instance's parked checkpoint
   * before they ask for one: counted as neither, such a step made the claim loop see a free slot
   * that was about to be taken and claim one more instance than could start.
   */
  get queued(): number {
    return this.slots.waiting + this.entering;
  }

  get busy(): number {
    return this.slots.inUse;
  }

  async end(): Promise<void> {
    await Promise.all([this.prepared.end(), this.pools.end()]);
  }
}

const sleepMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
