/**
 * One round trip for several statements of a step connection, through the extended protocol:
 * the statements `before` the query, the query (its own parameters, result and types, exactly as
 * node-postgres would run it alone), then the statements `after` it, all before a single Sync.
 *
 * Why: on this project's machines a round trip costs PostgreSQL more CPU than the statements of a
 * step (a send and a wake-up of each side; docs/PERFORMANCE.md: kernel time was 59% of a step
 * backend's CPU). A step was five round trips (BEGIN and output settings; the statement; the
 * checkpoint; COMMIT; the session reset); it is now two: `BEGIN ... ; statement` and
 * `checkpoint; COMMIT; reset`. Unlike a multi-statement simple query, the user's statement stays
 * one extended-protocol statement (no second statement can hide in it) and the lease token stays a
 * bind parameter (never in pg_stat_activity's query text).
 *
 * The server skips everything after an error until the Sync, so an error names the statement it
 * came from: `completed` on the error counts the statements of the batch that had completed
 * before it (a failed COMMIT has completed = before.length + 1 for the checkpoint batch, say).
 */
import pg from 'pg';
import { keptName, keptOn } from './kept';

type Connection = {
  parse(msg: { text: string; name?: string; types?: number[] }): void;
  bind(msg: { portal?: string; statement?: string; values?: (string | null)[] }): void;
  describe(msg: { type: 'P' | 'S'; name?: string }): void;
  execute(msg: { portal?: string; rows?: number }): void;
  sync(): void;
};

/**
 * A statement of a flight: its text, or its text and bind parameters (as text); `keep`: one of
 * the worker's own, parsed once per connection under a name (src/worker/kept.ts).
 */
export type Statement = string | { text: string; values: (string | null)[]; keep?: boolean };
/** The query of a flight; `keep`: one of the worker's own, kept like a Statement (its values must be text already). */
type QueryConfig = pg.QueryConfig & { keep?: boolean };

export class PipelineError extends Error {
  constructor(readonly cause: Error & { code?: string }, readonly completed: number) {
    super(cause.message);
  }
}

/** pg.Query with `before` and `after` statements sent in the same flight (see the header). */
class PipelinedQuery extends (pg.Query as unknown as new (config: pg.QueryConfig) => PgQueryInternals) {
  completed = 0;
  /** Every Parse of the flight in order: the kept statement's name, or null for an unnamed one. */
  readonly parses: (string | null)[] = [];
  private readonly keepQuery: boolean;
  constructor(config: QueryConfig, private readonly before: Statement[], private readonly after: Statement[]) {
    super(config);
    this.keepQuery = config.keep === true;
  }

  /** Always the extended protocol: even an empty statement is its own Parse, never a simple Query. */
  requiresPreparation(): boolean {
    return true;
  }

  override prepare(connection: Connection): void {
    for (const s of this.before) this.send(connection, s);
    if (!this.keepQuery) {
      this.parses.push(null);
      super.prepare(connection);
      return;
    }
    this.send(connection, { text: this.text, values: this.values as (string | null)[], keep: true });
    this.finish(connection);
  }

  /** Called by prepare() to execute the query's portal and Sync: the `after` statements go in between. */
  _getRows(connection: Connection, rows?: number): void {
    connection.execute({ portal: this.portal ?? '', rows });
    this.finish(connection);
  }

  private finish(connection: Connection): void {
    for (const s of this.after) this.send(connection, s);
    connection.sync();
  }

  private send(connection: Connection, s: Statement): void {
    const { text, values, keep } = typeof s === 'string' ? { text: s, values: [], keep: false } : s;
    let name = '';
    if (keep) {
      name = keptName(text);
      if (!keptOn(connection).has(name) && !this.parses.includes(name)) {
        connection.parse({ text, name });
        this.parses.push(name);
      }
    } else {
      connection.parse({ text, name: '' });
      this.parses.push(null);
    }
    connection.bind({ portal: '', statement: name, values });
    connection.describe({ type: 'P', name: '' });
    connection.execute({ portal: '', rows: 0 });
  }

  override handleCommandComplete(msg: unknown, connection: Connection): void {
    this.completed++;
    super.handleCommandComplete(msg, connection);
  }

  override handleEmptyQuery(connection: Connection): void {
    this.completed++;
    super.handleEmptyQuery(connection);
  }
}

interface PgQueryInternals {
  text: string;
  values?: unknown[];
  portal?: string;
  prepare(connection: Connection): void;
  handleCommandComplete(msg: unknown, connection: Connection): void;
  handleEmptyQuery(connection: Connection): void;
  on(event: 'end', listener: (results: pg.QueryResult | pg.QueryResult[] | undefined) => void): void;
  on(event: 'error', listener: (err: Error & { code?: string }) => void): void;
}

/**
 * Runs `before`, the query, `after` in one round trip; resolves to the query's own result. Rejects
 * with a PipelineError (the server's error and how many statements completed before it), or with
 * the connection's error as is when the connection fails.
 */
export function pipelined<R extends pg.QueryResultRow = pg.QueryResultRow>(
  client: pg.ClientBase,
  config: QueryConfig,
  before: Statement[],
  after: Statement[] = [],
): Promise<pg.QueryResult<R>> {
  const q = new PipelinedQuery(config, before, after);
  // A kept statement exists on the server once its ParseComplete came back; an error skips every
  // later message of the flight, so the count of ParseCompletes says which Parses took effect.
  const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
  let parsed = 0;
  const onParsed = () => void parsed++;
  connection.on('parseComplete', onParsed);
  const settle = () => {
    connection.removeListener('parseComplete', onParsed);
    const kept = keptOn(connection);
    q.parses.slice(0, parsed).forEach((name) => name !== null && kept.add(name));
  };
  return new Promise((resolve, reject) => {
    q.on('error', (err) => {
      settle();
      reject(isServerError(err) ? new PipelineError(err, q.completed) : err);
    });
    q.on('end', (results) => {
      settle();
      // One result per statement that produced one; the query's own comes right after `before`'s.
      const all = Array.isArray(results) ? results : results ? [results] : [];
      resolve((all[before.length] ?? all[all.length - 1]) as pg.QueryResult<R>);
    });
    (client as unknown as { query(q: unknown): unknown }).query(q);
  });
}

/** An ErrorResponse from the server (it has a severity), not a broken connection. */
const isServerError = (err: unknown): err is Error & { code?: string } =>
  err instanceof Error && typeof (err as { severity?: unknown }).severity === 'string';
