/**
 * SQL steps. Each runs on a connection authenticated as the submitting role (never SET ROLE on a
 * privileged connection: user SQL could RESET it), pooled per (role, database) and cleaned with
 * a full session reset after every step so no session state crosses steps.
 *
 * Exactly-once: BEGIN; the step's statement; the checkpoint (df._commit, lease-fenced); COMMIT.
 * Statements that cannot run in a transaction block (VACUUM, CREATE INDEX CONCURRENTLY, a CALL
 * that commits) fall back to autocommit and are at-least-once; the node's status_details say so.
 *
 * A result is capped at --max-result-bytes (16 MiB by default) of JSON: a bigger one fails the node
 * and, being inside the step transaction, rolls the statement back. The rows are still received
 * before they can be measured, so keep huge reads out of steps (LIMIT, aggregate, or write a table).
 */
import pg from 'pg';
import { DfError } from '../core/errors';
import { Aborted } from './clock';
import type { WorkerConfig } from './config';
import { stepConnection } from './config';
import type { Logger } from './log';
import { AcquireTimeout, Semaphore } from './semaphore';
import type { Store } from './store';
import { isTransient, withRetry } from './transient';
import { resultJson } from './typemap';

export type StepOutcome =
  | { kind: 'ok'; json: string; checkpointed: boolean; note?: string }
  | { kind: 'fail'; error: string };

export class LeaseLost extends Error {}

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

/** Every value as the text PostgreSQL sent: typemap.ts owns the conversion to JSON. */
const RAW_TEXT = { getTypeParser: () => (value: string) => value };
/** active_sql_transaction (VACUUM, CONCURRENTLY, ...) and invalid_transaction_termination (CALL that commits). */
const NEEDS_AUTOCOMMIT = new Set(['25001', '2D000']);
/**
 * typemap.ts reads PostgreSQL's text output, which depends on DateStyle and extra_float_digits: a
 * role default such as `DateStyle = 'SQL, DMY'` or `extra_float_digits = 0` would fail every
 * date/time column or round floats (the original reads binary values and is immune). So steps run
 * with ISO output (keeping the session's DMY/MDY order for ambiguous input) and shortest-precise
 * floats. `is_local` is `true` inside the step's transaction, `false` on the autocommit path.
 */
const outputSettings = (local: boolean) =>
  `SELECT pg_catalog.set_config('DateStyle', 'ISO, ' || pg_catalog.split_part(pg_catalog.current_setting('DateStyle'), ', ', 2), ${local}), ` +
  `pg_catalog.set_config('extra_float_digits', '3', ${local})`;
/**
 * What DISCARD ALL does, minus DISCARD PLANS: every piece of session state a step could leave
 * behind (settings, role, prepared statements, cursors, LISTENs, advisory locks, temp tables,
 * sequence caches) is reset, but cached plans survive, so df._commit is not re-planned on every
 * step (~0.3 ms of server time per step in docs/PERFORMANCE.md).
 */
const RESET_SESSION = 'CLOSE ALL; RESET ALL; DEALLOCATE ALL; UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES';
/** Connection failures that patience will not fix: bad role/login, missing database. */
const PERMANENT_CONNECT = new Set(['28000', '28P01', '3D000', '42501']);

export interface StepRequest {
  role: string;
  database: string;
  sql: string;
  signal: AbortSignal;
  /** Writes the success checkpoint on the step's own connection, inside its transaction. */
  checkpoint(client: pg.ClientBase, json: string): Promise<void>;
  /** The checkpointed result, if an earlier attempt's transaction did commit (else null). */
  recorded(): Promise<string | null>;
}

export class StepRunner {
  private readonly pools = new Map<string, pg.Pool>();
  private readonly slots: Semaphore;
  private typeNames: Map<number, string> | null = null;

  constructor(
    private readonly config: WorkerConfig,
    private readonly store: Store,
    private readonly log: Logger,
  ) {
    this.slots = new Semaphore(config.maxStepConnections);
  }

  private pool(role: string, database: string): pg.Pool {
    const key = `${role}\u0000${database}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new pg.Pool({
        ...stepConnection(this.config, role, database),
        max: this.config.maxStepConnections,
        idleTimeoutMillis: 30_000,
        connectionTimeoutMillis: 30_000,
        application_name: 'pg_durable:worker:workflow-sql',
      });
      pool.on('error', () => undefined); // idle client lost (server restart): dropped, not fatal
      // A checked-out client whose server goes away emits 'error' too; the running query sees it.
      pool.on('connect', (client) => client.on('error', () => undefined));
      this.pools.set(key, pool);
    }
    return pool;
  }

  async run(req: StepRequest): Promise<StepOutcome> {
    let release: () => void;
    try {
      release = await this.slots.acquire(this.config.acquireTimeoutSeconds * 1000, req.signal);
    } catch (err) {
      if (err instanceof AcquireTimeout) {
        return {
          kind: 'fail',
          error: `pg_durable: connection limit reached (max_user_connections=${this.config.maxStepConnections}). Timed out after ${this.config.acquireTimeoutSeconds}s waiting for an available execution slot.`,
        };
      }
      throw new Aborted();
    }
    let ambiguous = false;
    try {
      return await withRetry(async () => {
        if (ambiguous) {
          const done = await req.recorded();
          if (done !== null) return { kind: 'ok', json: done, checkpointed: true } as StepOutcome;
        }
        try {
          return await this.attempt(req);
        } catch (err) {
          if (!(err instanceof AmbiguousCommit)) throw err;
          ambiguous = true;
          throw err.cause;
        }
      }, {
        stop: () => req.signal.aborted,
        onRetry: (err, n) => this.log.warn({ err: (err as Error).message, attempt: n + 1 }, 'transient failure in SQL step, retrying'),
      });
    } finally {
      release();
    }
  }

  private async attempt(req: StepRequest): Promise<StepOutcome> {
    if (req.signal.aborted) throw new Aborted();
    let client: pg.PoolClient;
    try {
      client = await this.pool(req.role, req.database).connect();
    } catch (err) {
      const e = err as { code?: string; message: string };
      if (isTransient(err) && !PERMANENT_CONNECT.has(e.code ?? '')) throw err;
      return { kind: 'fail', error: `Failed to connect to database '${req.database}' as '${req.role}'. Error: ${e.message}` };
    }
    let broken = false;
    const onAbort = () => void this.store.cancelBackend((client as unknown as { processID: number }).processID);
    req.signal.addEventListener('abort', onAbort, { once: true });
    try {
      await client.query(`BEGIN; SET LOCAL df.in_workflow = 'true'; ${outputSettings(true)}`);
      let result: pg.QueryResult<unknown[]>;
      try {
        result = await client.query<unknown[]>({ text: req.sql, queryMode: 'extended', rowMode: 'array', types: RAW_TEXT } as pg.QueryConfig);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => { broken = true; });
        if (req.signal.aborted) throw new Aborted();
        const e = err as { code?: string; message: string };
        if (e.code && NEEDS_AUTOCOMMIT.has(e.code)) return await this.autocommit(client, req);
        if (isTransient(err)) {
          broken = true;
          throw err;
        }
        return { kind: 'fail', error: `SQL execution failed: ${e.message}` };
      }
      // Unlike the original, the statement has not committed yet: a result we cannot store (an
      // unsupported type, too large, nested too deeply) rolls back with the failure.
      const converted = this.convert(result, 'the statement was rolled back');
      if ('error' in converted) {
        await client.query('ROLLBACK');
        return { kind: 'fail', error: converted.error };
      }
      const json = converted.json;
      try {
        await req.checkpoint(client, json);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => { broken = true; });
        if ((err as { code?: string }).code === 'PD001') throw new LeaseLost((err as Error).message);
        if (req.signal.aborted) throw new Aborted();
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
      await this.recycle(client, broken);
    }
  }

  /** At-least-once path for statements PostgreSQL refuses inside a transaction block. */
  private async autocommit(client: pg.PoolClient, req: StepRequest): Promise<StepOutcome> {
    await client.query(`SET df.in_workflow = 'true'; ${outputSettings(false)}`);
    try {
      const r = await client.query<unknown[]>({ text: req.sql, queryMode: 'extended', rowMode: 'array', types: RAW_TEXT } as pg.QueryConfig);
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

  private async recycle(client: pg.PoolClient, broken: boolean): Promise<void> {
    if (!broken) {
      try {
        await client.query(RESET_SESSION);
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

  get busy(): number {
    return this.slots.inUse;
  }

  async end(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.end().catch(() => undefined)));
  }
}
