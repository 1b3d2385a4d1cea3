/**
 * df.start and the control functions (API §6). All run as the caller (SECURITY INVOKER): row-level
 * security decides what the caller sees, column grants decide what it may write.
 */
import { DfError } from '../core/errors';
import { ensureStrict } from '../core/ensure';
import { validateGraph } from '../core/validate';
import { flattenGraph, newNodeId } from '../core/flatten';
import { MAX_DEFINITION_BYTES, MAX_LABEL_BYTES, MAX_NAME_BYTES, MAX_VALUE_BYTES, tooLarge } from '../core/limits';
import { exec, execKept, one, query, queryKept, warning } from './db';
import { adminSetting, forbidInWorkflow, markNonFutureHelper, nonFutureHelperFor, requireNonNull, settingIsOn } from './session';

const TERMINAL = ['completed', 'failed', 'cancelled'];
/** df.await_instance's longest pause between two polls. */
const AWAIT_MAX_PAUSE_MS = 100;
/** Rows per INSERT of df.nodes (the original's batch size; a 10 000-node graph is 10 statements). */
const NODE_BATCH = 1000;
const ID_ATTEMPTS = 10;

export function start(fut: string | null, label: string | null, database: string | null, transactionMode: string | null): string {
  requireNonNull('df.start', 'fut', fut);
  const mode = transactionMode ?? 'caller';
  if (mode.toLowerCase() === 'new') return startIndependently(fut as string, label, database);
  if (mode.toLowerCase() !== 'caller') {
    throw new DfError(`invalid transaction_mode "${mode}" for df.start(): expected 'caller' or 'new'`, '22023');
  }
  checkDefinition(fut as string, label);
  // Strict ensure keeps rule 1 of the composer ensure (API §5.3): df.start(df.setvar(...)) is an error.
  const helper = nonFutureHelperFor([fut]);
  if (helper !== null) throw new DfError(`${helper} cannot be used as a workflow step. Call ${helper} before df.start().`);
  const root = notTooDeep(() => ensureStrict(fut as string));
  if (database !== null && !one('SELECT 1 AS x FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) $1::text', [database])) {
    throw new DfError(`database "${database}" does not exist`, '3D000');
  }
  const me = loginRole();
  if (me.superuser && !settingIsOn('pg_durable.enable_superuser_instances')) {
    throw new DfError(
      `pg_durable: superuser instances are disabled. current_user "${me.role}" is a superuser, but pg_durable.enable_superuser_instances is off. Set pg_durable.enable_superuser_instances = on to allow this.`,
      '42501',
    );
  }
  notTooDeep(() => validateGraph(root));
  const { rootId, rows } = notTooDeep(() => flattenGraph(root, newNodeId));
  if (rows.some((r) => r.node_type === 'SQL' && (r.query ?? '').trim() === '')) {
    throw new DfError('Invalid durable function graph: a SQL step cannot be empty', '22023');
  }
  const id = reserveInstance(label, rootId, database);
  for (let i = 0; i < rows.length; i += NODE_BATCH) {
    const batch = rows.slice(i, i + NODE_BATCH);
    try {
      execKept(
        `INSERT INTO df.nodes (id, instance_id, node_type, query, result_name, left_node, right_node, submitted_by, database)
         SELECT r.id, $1::text, r.node_type, r.query, r.result_name, r.left_node, r.right_node,
                pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole, $2::text
           FROM pg_catalog.jsonb_to_recordset($3::text::pg_catalog.jsonb)
                AS r(id text, node_type text, query text, result_name text, left_node text, right_node text)`,
        ['text', 'text', 'text'],
        [id, database, JSON.stringify(batch)],
      );
    } catch (err) {
      throw new DfError(`Failed to insert node batch '${batch[0].id}..${batch[batch.length - 1].id}': ${(err as Error).message}`);
    }
  }
  return id;
}

/** The identity a start captures (API §6.1 steps 3-4): current_user, which must have LOGIN. */
function loginRole(): { role: string; superuser: boolean } {
  const [me] = queryKept<{ role: string; login: boolean; superuser: boolean }>(
    'SELECT r.rolname::text AS role, r.rolcanlogin AS login, r.rolsuper AS superuser FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER',
    [],
  );
  if (!me) throw new DfError('current_user has no pg_roles entry');
  if (!me.login) {
    throw new DfError(
      `current_user "${me.role}" does not have LOGIN privilege. The background worker must connect as this role to execute SQL. Grant LOGIN to this role or call df.start() as a role with LOGIN.`,
      '42501',
    );
  }
  return me;
}

/** Advisory-lock class of the launch slots: 0x50474446, "PGDF" (API §6.1). */
const LAUNCH_LOCK_CLASS = 1346982470;

function intSetting(name: string, fallback: number, min: number, max: number): number {
  const text = adminSetting(name) ?? '';
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  return Number.isFinite(n) && n >= min && n <= max ? n : fallback;
}

/**
 * transaction_mode => 'new' (API §6.1): a caller-mode df.start in a loopback session as the
 * calling role (src/sql/57_new_start.sql), committed there, so it survives the caller's ROLLBACK.
 * At most pg_durable.max_new_transaction_starts launches run at once, cluster-wide (session
 * advisory locks), each waiting up to pg_durable.new_transaction_start_timeout seconds for a slot.
 */
function startIndependently(fut: string, label: string | null, database: string | null): string {
  forbidInWorkflow(
    "df.start() with transaction_mode => 'new' cannot be called inside a workflow - a df.sql() node already runs as a single autocommitted statement, so a plain df.start() there is already independent of any caller transaction",
  );
  loginRole();
  const slots = intSetting('pg_durable.max_new_transaction_starts', 2, 1, 1000);
  const timeout = intSetting('pg_durable.new_transaction_start_timeout', 5, 1, 3600);
  const slot = acquireLaunchSlot(slots, timeout);
  try {
    const nonce = one<{ n: string }>('SELECT pg_catalog.gen_random_uuid()::text AS n')!.n;
    exec('INSERT INTO df._launch_tickets (nonce) VALUES ($1::text::pg_catalog.uuid)', [nonce]);
    return one<{ id: string }>('SELECT df._start_new($1::text::pg_catalog.uuid, $2::text, $3::text, $4::text) AS id', [nonce, fut, label, database])!.id;
  } finally {
    query('SELECT pg_catalog.pg_advisory_unlock($1::int4, $2::int4) AS u', [LAUNCH_LOCK_CLASS, slot]);
  }
}

function acquireLaunchSlot(slots: number, timeoutSeconds: number): number {
  // Polled every 100 ms, as the original does.
  for (let poll = 0; poll <= timeoutSeconds * 10; poll++) {
    for (let slot = 0; slot < slots; slot++) {
      if (one<{ ok: boolean }>('SELECT pg_catalog.pg_try_advisory_lock($1::int4, $2::int4) AS ok', [LAUNCH_LOCK_CLASS, slot])!.ok) return slot;
    }
    if (poll < timeoutSeconds * 10) query('SELECT pg_catalog.pg_sleep(0.1) AS s');
  }
  throw new DfError(
    `pg_durable: transaction_mode => 'new' launch limit reached (max_new_transaction_starts=${slots}). Timed out after ${timeoutSeconds}s waiting for a launch slot before opening the loopback session.`,
    '53400',
  );
}

/** Size and emptiness checks of df.start's text arguments (docs/SECURITY.md). */
function checkDefinition(fut: string, label: string | null): void {
  if (fut.trim() === '') throw new DfError('df.start: fut cannot be empty', '22023');
  const big = tooLarge('Invalid durable function: the workflow definition', fut, MAX_DEFINITION_BYTES);
  if (big) throw new DfError(big, '54000');
  const longLabel = label === null ? null : tooLarge('df.start: label', label, MAX_LABEL_BYTES);
  if (longLabel) throw new DfError(longLabel, '54000');
}

/**
 * JSON nested deeper than the JS stack allows (e.g. 100 000 nested arrays inside a node's query)
 * surfaces as a RangeError from JSON handling: report it as what it is.
 */
function notTooDeep<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof RangeError) {
      throw new DfError(`Invalid durable function: the workflow is nested too deeply to process (${err.message})`, '54001');
    }
    throw err;
  }
}

function reserveInstance(label: string | null, rootId: string, database: string | null): string {
  for (let attempt = 0; attempt < ID_ATTEMPTS; attempt++) {
    const rows = queryKept<{ id: string }>(
      `INSERT INTO df.instances (id, label, root_node, submitted_by, database)
       VALUES ($1::text, $2::text, $3::text, pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)::pg_catalog.regrole, $4::text)
       ON CONFLICT (id) DO NOTHING RETURNING id`,
      ['text', 'text', 'text', 'text'],
      [newNodeId(), label, rootId, database],
    );
    if (rows.length === 1) return rows[0].id;
  }
  throw new DfError(`Failed to create instance: exhausted ${ID_ATTEMPTS} attempts to generate a collision-free ID`);
}

function visibleStatus(id: string): string | null {
  const row = one<{ status: string }>('SELECT status FROM df.instances WHERE id OPERATOR(pg_catalog.=) $1::text', [id]);
  return row ? row.status : null;
}

export function status(id: string): string | null {
  return visibleStatus(id);
}

export function result(id: string): string | null {
  const row = one<{ status: string; result: string | null }>(
    `SELECT n.status, n.result::text AS result
       FROM df.instances i JOIN df.nodes n ON n.instance_id OPERATOR(pg_catalog.=) i.id AND n.id OPERATOR(pg_catalog.=) i.root_node
      WHERE i.id OPERATOR(pg_catalog.=) $1::text`,
    [id],
  );
  if (!row) return null;
  if (row.status === 'completed') return row.result;
  // A failed saga's report (what failed, what was undone): src/worker/interpreter.ts.
  if ((row.status === 'failed' || row.status === 'cancelled') && row.result !== null && row.result.startsWith('{') && row.result.includes('"compensation"')) return row.result;
  return null;
}

/** The reserved signal that asks the worker for a compensating cancel (src/worker/instance.ts). */
export const COMPENSATE_SIGNAL = 'pg_durable:compensate';

export function cancel(id: string, reason: string, compensate = false): string {
  const st = visibleStatus(id);
  if (st === null) throw new DfError(`Instance not found or access denied: ${id}`, '42704');
  if (compensate) {
    // The worker undoes what completed, then ends the instance cancelled: a request, applied at COMMIT.
    if (TERMINAL.indexOf(st) >= 0) throw new DfError(`Instance ${id} is already ${st}`, '55000');
    exec('INSERT INTO df._signals (instance_id, signal_name, payload) VALUES ($1::text, $2::text, $3::text)', [id, COMPENSATE_SIGNAL, JSON.stringify({ reason })]);
    return `Instance ${id} cancelling: undoing its completed steps first (compensate => true): ${reason}`;
  }
  try {
    exec(
      `UPDATE df.instances SET status = 'cancelled', updated_at = pg_catalog.now()
        WHERE id OPERATOR(pg_catalog.=) $1::text AND status OPERATOR(pg_catalog.<>) ALL (ARRAY['completed','failed','cancelled'])`,
      [id],
    );
  } catch (err) {
    warning(`df.cancel: could not mark instance ${id} cancelled: ${(err as Error).message}`);
  }
  return `Instance ${id} cancelled: ${reason}`;
}

/**
 * A signal payload is stored as compact JSON: JSON text re-serialised, anything else (including
 * JSON nested too deeply to re-serialise) as a JSON string.
 */
export function normalizeSignalPayload(data: string): string {
  try {
    return JSON.stringify(JSON.parse(data));
  } catch {
    return JSON.stringify(data);
  }
}

export function signal(id: string, name: string, data: string): string {
  if (id === '') throw new DfError('Instance ID cannot be empty', '22023');
  if (name === '') throw new DfError('Signal name cannot be empty', '22023');
  const longName = tooLarge('Failed to send signal: signal_name', name, MAX_NAME_BYTES);
  if (longName) throw new DfError(longName, '54000');
  const payload = normalizeSignalPayload(data);
  const big = tooLarge('Failed to send signal: signal_data', payload, MAX_VALUE_BYTES);
  if (big) throw new DfError(big, '54000');
  const st = visibleStatus(id);
  if (st === null) throw new DfError(`Instance not found or access denied: ${id}`, '42704');
  if (TERMINAL.indexOf(st) >= 0) throw new DfError(`Instance ${id} is already ${st}`, '55000');
  exec('INSERT INTO df._signals (instance_id, signal_name, payload) VALUES ($1::text, $2::text, $3::text)', [id, name, payload]);
  return 'OK';
}

/**
 * Starts, signals and cancels take effect at COMMIT (API deviation 14): the worker cannot see an
 * instance this transaction started, nor a signal or cancel it sent, so waiting on it here would
 * only run out the timeout. Fail at once and say why.
 */
function refuseUncommitted(id: string): void {
  const row = one<{ started: boolean; signalled: boolean }>(
    `SELECT df._written_by_current_transaction(i.xmin) AS started,
            EXISTS (SELECT 1 FROM df._signals s WHERE s.instance_id OPERATOR(pg_catalog.=) i.id AND df._written_by_current_transaction(s.xmin)) AS signalled
       FROM df.instances i
      WHERE i.id OPERATOR(pg_catalog.=) $1::text AND i.status OPERATOR(pg_catalog.<>) ALL (ARRAY['completed','failed','cancelled'])`,
    [id],
  );
  // Only unfinished instances: one this transaction cancelled already reads as its end.
  if (!row || !(row.started || row.signalled)) return;
  const what = row.started ? 'was started' : 'was signalled';
  throw new DfError(
    `df.await_instance: instance ${id} ${what} in this transaction, which has not committed yet: the worker sees starts, signals and cancels only after COMMIT, so waiting here can only time out. COMMIT first, then call df.await_instance('${id}').`,
    '25001',
  );
}

export function awaitInstance(id: string, timeoutSeconds: number): string {
  forbidInWorkflow(
    'df.await_instance() cannot be called inside a workflow - it would block a worker thread (and self-deadlock if waiting on the current instance). Use df.signal() and df.wait_for_signal() for cross-workflow coordination.',
  );
  if (timeoutSeconds <= 0) throw new DfError('Timeout must be positive', '22023');
  markNonFutureHelper('df.await_instance');
  refuseUncommitted(id);
  // Polls, each a fresh READ COMMITTED snapshot (plv8 takes one per statement in a volatile
  // function), 1 ms apart at first and 1.5 times further apart each time, up to 100 ms: the wait
  // sees the end at most half as late as the instance ended (a one-step instance that ends ~4 ms
  // after df.start is seen by ~6 ms, not at the first 100 ms poll). A poll is one index lookup;
  // the first 100 ms take 11, then 10 a second.
  const deadline = Date.now() + timeoutSeconds * 1000;
  let pauseMs = 1;
  let last: string | null = null;
  for (;;) {
    last = visibleStatus(id);
    if (last === null) throw new DfError(`Instance not found: ${id}`, '42704');
    if (TERMINAL.indexOf(last) >= 0) return last;
    const left = deadline - Date.now();
    if (left <= 0) break;
    query('SELECT pg_catalog.pg_sleep($1::float8 / 1000) AS s', [Math.min(pauseMs, left)]);
    pauseMs = Math.min(AWAIT_MAX_PAUSE_MS, Math.ceil(pauseMs * 1.5));
  }
  throw new DfError(
    `Timeout after ${timeoutSeconds}s waiting for instance ${id} (status: ${last}). Check if background worker is running.`,
  );
}

export function waitForCompletion(id: string, timeoutSeconds: number): string {
  warning('df.wait_for_completion() is deprecated; use df.await_instance() instead');
  return awaitInstance(id, timeoutSeconds);
}

export function run(id: string | null): string {
  return id === null ? 'Triggered run for all pending instances' : `Triggered run for instance: ${id}`;
}
