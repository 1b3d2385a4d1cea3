/**
 * The DSL builders (API §3): pure functions from the SQL arguments to the JSON text the SQL
 * function returns. Step arguments go through the composer ensure (§5.3); literal/config arguments
 * never do. STRICT SQL functions never reach these with NULL; the non-strict ones (df.loop,
 * df.break, df.http, df.http_multipart, df.wait_for_signal) pass NULL as `null` and a NULL for a
 * required parameter is rejected with `<sql function>: <param> cannot be NULL`.
 *
 * Every builder that takes steps accepts a final `opts` with the non-future helper recorded for
 * the current statement (API §5.3 rule 1), if any.
 */
import { validateCron } from './cron';
import { ensureStep } from './ensure';
import { DfError } from './errors';
import { IDENTIFIER, MAX_BACKOFF_SECONDS, MAX_RETRY_ATTEMPTS, MAX_TIMEOUT_SECONDS, type Node } from './node';
import { serializeNode } from './serialize';

export interface StepOptions {
  /** Name of a non-future helper (e.g. `df.setvar`) called earlier in the same SQL statement. */
  nonFutureHelper?: string | null;
}

function step(text: string, opts?: StepOptions): Node {
  return ensureStep(text, opts ? opts.nonFutureHelper : null);
}

function required<T>(value: T | null | undefined, fn: string, param: string): T {
  if (value === null || value === undefined) throw new DfError(`${fn}: ${param} cannot be NULL`);
  return value;
}

/** `df.sql(query)` */
export function sql(query: string): string {
  return serializeNode({ node_type: 'SQL', query });
}

/** `df.seq(a, b)` / `a ~> b` */
export function seq(a: string, b: string, opts?: StepOptions): string {
  return serializeNode({ node_type: 'THEN', left_node: step(a, opts), right_node: step(b, opts) });
}

/** `df.as(fut, name)` / `fut |=> name`: sets (overwrites) the top-level result_name. */
export function as(fut: string, name: string, opts?: StepOptions): string {
  if (name === '') throw new DfError('df.as: result name cannot be empty');
  if (!IDENTIFIER.test(name)) {
    throw new DfError(`df.as: result name '${name}' is not a valid identifier — must match [a-zA-Z_][a-zA-Z0-9_]*`);
  }
  const node = step(fut, opts);
  node.result_name = name;
  return serializeNode(node);
}

/** `df.sleep(seconds bigint)` */
export function sleep(seconds: number | bigint): string {
  if (typeof seconds === 'number' && !Number.isInteger(seconds)) {
    throw new DfError('Sleep duration must be a whole number of seconds');
  }
  if (seconds < 0) throw new DfError('Sleep duration must be non-negative');
  return serializeNode({ node_type: 'SLEEP', query: String(seconds) });
}

/** `df.wait_for_schedule(cron_expr)`: the expression is validated now, evaluated when the node runs. */
export function waitForSchedule(cronExpr: string): string {
  validateCron(cronExpr);
  return serializeNode({ node_type: 'WAIT_SCHEDULE', query: JSON.stringify({ cron_expr: cronExpr }) });
}

/** `df.loop(body, condition DEFAULT NULL)` / `@> body` */
export function loop(body: string | null, condition: string | null = null, opts?: StepOptions): string {
  const node: Node = { node_type: 'LOOP', left_node: step(required(body, 'df.loop', 'body'), opts) };
  if (condition !== null && condition !== undefined) node.condition_node = step(condition, opts);
  return serializeNode(node);
}

/** `df.break(value DEFAULT NULL)`: the value is a literal, never wrapped or substituted. */
export function breakNode(value: string | null = null): string {
  const breakValue = value === undefined ? null : value;
  return serializeNode({ node_type: 'BREAK', query: JSON.stringify({ break_value: breakValue }) });
}

/** `df.if(condition, then_branch, else_branch)` */
export function ifNode(condition: string, thenBranch: string, elseBranch: string, opts?: StepOptions): string {
  const conditionNode = step(condition, opts);
  const left = step(thenBranch, opts);
  const right = step(elseBranch, opts);
  return serializeNode({ node_type: 'IF', left_node: left, right_node: right, condition_node: conditionNode });
}

/** `df.if_rows(result_name, then_branch, else_branch)`: result_name is a literal, not validated. */
export function ifRows(resultName: string, thenBranch: string, elseBranch: string, opts?: StepOptions): string {
  return serializeNode({
    node_type: 'IF',
    left_node: step(thenBranch, opts),
    right_node: step(elseBranch, opts),
    query: JSON.stringify({ condition_type: 'result_has_rows', result_name: resultName }),
  });
}

/** `df.join(a, b)` / `a & b` */
export function join(a: string, b: string, opts?: StepOptions): string {
  return serializeNode({ node_type: 'JOIN', left_node: step(a, opts), right_node: step(b, opts) });
}

/** `df.join3(a, b, c)` */
export function join3(a: string, b: string, c: string, opts?: StepOptions): string {
  return serializeNode({
    node_type: 'JOIN',
    left_node: step(a, opts),
    right_node: step(b, opts),
    extra_nodes: [step(c, opts)],
  });
}

/** `df.race(a, b)` / `a | b` */
export function race(a: string, b: string, opts?: StepOptions): string {
  return serializeNode({ node_type: 'RACE', left_node: step(a, opts), right_node: step(b, opts) });
}

/**
 * `df.retry(node, max_attempts DEFAULT 3, backoff_seconds DEFAULT 1)`: re-runs `node` (any node,
 * composites included) when it fails, up to max_attempts runs in all, waiting backoff_seconds
 * doubled after each failure (with ±20% jitter).
 */
export function retry(node: string, maxAttempts: number, backoffSeconds: number, opts?: StepOptions): string {
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > MAX_RETRY_ATTEMPTS) {
    throw new DfError(`df.retry: max_attempts must be a whole number between 1 and ${MAX_RETRY_ATTEMPTS}, got ${maxAttempts}`);
  }
  if (!Number.isFinite(backoffSeconds) || backoffSeconds < 0 || backoffSeconds > MAX_BACKOFF_SECONDS) {
    throw new DfError(`df.retry: backoff_seconds must be between 0 and ${MAX_BACKOFF_SECONDS}, got ${backoffSeconds}`);
  }
  return serializeNode({
    node_type: 'RETRY',
    left_node: step(node, opts),
    query: JSON.stringify({ max_attempts: maxAttempts, backoff_seconds: backoffSeconds }),
  });
}

/** `df.timeout(node, seconds)`: fails `node` (cancelling its in-flight SQL) if it has not finished in time. */
export function timeout(node: string, seconds: number, opts?: StepOptions): string {
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_TIMEOUT_SECONDS) {
    throw new DfError(`df.timeout: seconds must be positive and at most ${MAX_TIMEOUT_SECONDS}, got ${seconds}`);
  }
  return serializeNode({ node_type: 'TIMEOUT', left_node: step(node, opts), query: JSON.stringify({ seconds }) });
}

/**
 * `df.with_undo(forward, undo)` / `forward <~ undo`: a saga step. `forward` runs; once it
 * completes, `undo` is registered and runs, most recent first, if the instance fails
 * (docs/ARCHITECTURE.md, "Sagas"). `undo` sees the named results visible when `forward` completed.
 */
export function withUndo(forward: string, undo: string, opts?: StepOptions): string {
  return serializeNode({ node_type: 'UNDO', left_node: step(forward, opts), right_node: step(undo, opts) });
}

const HTTP_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'];
const MULTIPART_METHODS = ['POST', 'PUT', 'PATCH'];

/** Scheme = lower-cased text before the first `://` (or the whole string); skipped for `{var}` URLs. */
function checkScheme(url: string): void {
  if (url.indexOf('{') >= 0) return;
  const at = url.indexOf('://');
  const scheme = (at >= 0 ? url.slice(0, at) : url).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') {
    throw new DfError(`Blocked: unsupported URL scheme '${scheme}'. Only http and https are allowed.`);
  }
}

function checkTimeout(timeoutSeconds: number): void {
  if (timeoutSeconds <= 0) throw new DfError('Timeout must be positive');
}

/**
 * `df.http(url, method DEFAULT 'POST', body DEFAULT NULL, headers jsonb DEFAULT NULL,
 * timeout_seconds DEFAULT 30)`. HTTP is never disabled at build time (our deviation 9); egress
 * policy is enforced by the worker. `headers` is serialised as given (jsonb key order).
 */
export function http(
  url: string | null,
  method: string | null = 'POST',
  body: string | null = null,
  headers: object | null = null,
  timeoutSeconds: number | null = 30,
): string {
  const u = required(url, 'df.http', 'url');
  const m = required(method, 'df.http', 'method');
  const t = required(timeoutSeconds, 'df.http', 'timeout_seconds');
  checkScheme(u);
  const upper = m.toUpperCase();
  if (HTTP_METHODS.indexOf(upper) < 0) {
    throw new DfError(`Invalid HTTP method: ${m}. Must be GET, POST, PUT, DELETE, or PATCH`);
  }
  checkTimeout(t);
  const config = {
    url: u,
    method: upper,
    body: body === undefined ? null : body,
    headers: headers === undefined ? null : headers,
    timeout_seconds: t,
  };
  return serializeNode({ node_type: 'HTTP', query: JSON.stringify(config) });
}

/**
 * `df.http_multipart(url, method DEFAULT 'POST', parts jsonb DEFAULT NULL, headers jsonb DEFAULT
 * NULL, timeout_seconds DEFAULT 30)`. Per-part shape is validated only at execution.
 */
export function httpMultipart(
  url: string | null,
  method: string | null = 'POST',
  parts: unknown = null,
  headers: object | null = null,
  timeoutSeconds: number | null = 30,
): string {
  const u = required(url, 'df.http_multipart', 'url');
  const m = required(method, 'df.http_multipart', 'method');
  const t = required(timeoutSeconds, 'df.http_multipart', 'timeout_seconds');
  checkScheme(u);
  const upper = m.toUpperCase();
  if (MULTIPART_METHODS.indexOf(upper) < 0) {
    throw new DfError(`Invalid HTTP method for multipart: ${m}. Must be POST, PUT, or PATCH`);
  }
  checkTimeout(t);
  if (parts === null || parts === undefined) throw new DfError('parts is required and cannot be NULL');
  if (!Array.isArray(parts)) throw new DfError('parts must be a JSON array of part objects');
  if (parts.length === 0) throw new DfError('parts must contain at least one part');
  const config = {
    url: u,
    method: upper,
    parts,
    headers: headers === undefined ? null : headers,
    timeout_seconds: t,
  };
  return serializeNode({ node_type: 'HTTP_MULTIPART', query: JSON.stringify(config) });
}

/** `df.wait_for_signal(name, timeout_seconds DEFAULT NULL)`: NULL timeout = wait forever. */
export function waitForSignal(name: string | null, timeoutSeconds: number | null = null): string {
  const n = required(name, 'df.wait_for_signal', 'name');
  if (n === '') throw new DfError('Signal name cannot be empty');
  const t = timeoutSeconds === undefined ? null : timeoutSeconds;
  if (t !== null && t <= 0) throw new DfError('Timeout must be positive');
  return serializeNode({ node_type: 'SIGNAL', query: JSON.stringify({ signal_name: n, timeout_seconds: t }) });
}
