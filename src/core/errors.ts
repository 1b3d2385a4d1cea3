/**
 * Errors raised by the core carry the exact user-facing text of the SQL contract: the plv8 entry
 * points rethrow them as PostgreSQL ERRORs unchanged, and users' scripts match on that text.
 */
export class DfError extends Error {
  /** SQLSTATE to raise with, when the contract names one (default: P0001 raise_exception). */
  readonly sqlstate: string;
  constructor(message: string, sqlstate = 'P0001') {
    super(message);
    this.name = 'DfError';
    this.sqlstate = sqlstate;
  }
}

/**
 * DfError by shape, not by class: the plv8 bundle's chunks (build/bundle.ts) each carry their own
 * copy of this class, so `instanceof` would miss an error raised in another chunk.
 */
export function isDfError(err: unknown): err is DfError {
  return err instanceof Error && typeof (err as { sqlstate?: unknown }).sqlstate === 'string';
}
