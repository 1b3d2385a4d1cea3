/**
 * The Node half of the plv8 host: one process per database session, started by bridge.py. It
 * evaluates the extension's own plv8 code (the loader holding the bundle and the generated
 * prologues, read from dist/host-ext/functions.json) in a vm context whose `plv8` object follows
 * plv8 3.x semantics (docs/BUILTINS.md, plv8_func.cc):
 *  - execute() runs in an implicit subtransaction and returns rows for SELECT / RETURNING /
 *    utility-with-tuples, else the affected count; numeric, int8 -> number, json -> object,
 *    date/timestamp -> Date; a failure throws an Error carrying sqlerrcode, code, detail, hint;
 *  - elog(ERROR, ...) throws a catchable Error; other levels just report;
 *  - an uncaught exception fails the SQL call with its message (a leading "Error: " trimmed) and
 *    the SQLSTATE packed in `code`.
 * The protocol with bridge.py is newline-delimited JSON over stdin/stdout, fully synchronous, and
 * re-entrant: while waiting for an execute() reply, a nested df.* call (SQL calling df.seq inside
 * an execute) is served first.
 */
import { readFileSync, readSync, writeSync } from 'node:fs';
import vm from 'node:vm';

interface Arg { name: string; type: string }
/** `key` = `<name>(<arg types>)`, what the shims call: overloaded functions share `sql`. */
interface FnSpec { sql: string; key?: string; args: Arg[]; returns: string | { table: Arg[] }; body: string }
interface Spec { hash: string; loader: string; chunks?: Record<string, string>; functions: FnSpec[] }
type Msg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8')) as Spec;

// PostgreSQL 15 elevels, exposed as globals exactly like plv8 does.
const LEVELS: Record<string, number> = { DEBUG5: 10, DEBUG4: 11, DEBUG3: 12, DEBUG2: 13, DEBUG1: 14, LOG: 15, INFO: 17, NOTICE: 18, WARNING: 19, ERROR: 21 };
const LEVEL_NAMES: Record<number, string> = { 10: 'debug', 11: 'debug', 12: 'debug', 13: 'debug', 14: 'debug', 15: 'log', 17: 'info', 18: 'notice', 19: 'warning' };

// ---- wire ---------------------------------------------------------------------------------
let pending = Buffer.alloc(0);
const chunk = Buffer.alloc(1 << 16);
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function readLine(): string {
  for (;;) {
    const nl = pending.indexOf(10);
    if (nl >= 0) {
      const line = pending.subarray(0, nl).toString('utf8');
      pending = pending.subarray(nl + 1);
      return line;
    }
    let n: number;
    try {
      n = readSync(0, chunk, 0, chunk.length, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(sleeper, 0, 0, 1);
        continue;
      }
      throw err;
    }
    if (n === 0) process.exit(0); // the backend closed the pipe: the session ended
    pending = Buffer.concat([pending, chunk.subarray(0, n)]);
  }
}

function send(msg: Msg): void {
  const line = Buffer.from(JSON.stringify(msg) + '\n', 'utf8');
  let off = 0;
  while (off < line.length) off += writeSync(1, line, off);
}

// ---- the plv8 context -----------------------------------------------------------------------
const context = vm.createContext({});
// plv8's default build has no ICU, hence no Intl: the bundle must not depend on it.
vm.runInContext('delete globalThis.Intl;', context);
const inCtx = <T>(code: string): T => vm.runInContext(code, context) as T;
const ctxParse = inCtx<(s: string) => unknown>('JSON.parse');
const ctxDate = inCtx<(s: string) => Date>('(s) => new Date(s)');
const ctxError = inCtx<(m: string) => Error & Record<string, unknown>>('(m) => new Error(m)');
const ctxObject = inCtx<() => Record<string, unknown>>('() => ({})');
const ctxArray = inCtx<() => unknown[]>('() => []');

function packSqlState(s: string): number {
  let code = 0;
  for (let i = 0; i < 5; i++) code += ((s.charCodeAt(i) - 48) & 0x3f) << (6 * i);
  return code;
}

function unpackSqlState(code: number): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += String.fromCharCode(((code >> (6 * i)) & 0x3f) + 48);
  return s;
}

/** A timestamp as PostgreSQL prints it (ISO DateStyle) to something Date parses. */
function pgDate(text: string): Date {
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) return ctxDate(`${text}T00:00:00Z`);
  let iso = text.replace(' ', 'T');
  const tz = /([+-]\d{2})(:?\d{2})?(:?\d{2})?$/.exec(iso);
  if (tz && iso.indexOf('T') >= 0 && tz.index > iso.indexOf('T')) {
    iso = iso.slice(0, tz.index) + tz[1] + ':' + (tz[2] ? tz[2].replace(':', '') : '00');
  } else {
    iso += 'Z'; // timestamp without time zone: plv8 reads it as UTC
  }
  return ctxDate(iso);
}

// Type OIDs: 20 int8, 21 int2, 23 int4, 26 oid, 700 float4, 701 float8, 1700 numeric,
// 114 json, 3802 jsonb, 1082 date, 1114 timestamp, 1184 timestamptz.
function fromSql(value: unknown, oid: number): unknown {
  if (value === null || value === undefined) return null;
  switch (oid) {
    case 20: case 21: case 23: case 26: case 700: case 701: case 1700:
      return typeof value === 'number' ? value : Number(value);
    case 114: case 3802:
      return typeof value === 'string' ? ctxParse(value) : value;
    case 1082: case 1114: case 1184:
      return pgDate(String(value));
    default:
      return typeof value === 'object' ? ctxParse(JSON.stringify(value)) : value;
  }
}

function argFromSql(value: unknown, type: string): unknown {
  if (value === null || value === undefined) return null;
  const t = type.toLowerCase();
  if (t === 'jsonb' || t === 'json') return ctxParse(String(value));
  if (t === 'timestamptz' || t === 'timestamp' || t === 'date') return pgDate(String(value));
  if (t === 'numeric' || t === 'bigint' || t === 'integer' || t === 'int8' || t === 'int4') return Number(value);
  return value;
}

function toSqlValue(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (value instanceof Object && Object.prototype.toString.call(value) === '[object Date]') return (value as Date).toISOString();
  if (typeof value === 'object') return JSON.stringify(value);
  return value;
}

function paramType(value: unknown): string {
  if (value === null || value === undefined) return 'text';
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'number') return Number.isSafeInteger(value) ? 'int8' : 'float8';
  if (typeof value === 'string') return 'text';
  if (Object.prototype.toString.call(value) === '[object Date]') return 'timestamptz';
  return 'jsonb';
}

/** Wait for the reply to a request, serving nested calls that arrive first. */
function reply(): Msg {
  for (;;) {
    const msg = JSON.parse(readLine()) as Msg;
    if (msg.op === 'call') serveCall(msg);
    else return msg;
  }
}

/** plv8 takes a list either as one array argument or as the trailing arguments. */
const listOf = (rest: unknown[]): unknown[] => (rest.length === 1 && Array.isArray(rest[0]) ? (rest[0] as unknown[]) : rest);

function execute(sql: string, ...rest: unknown[]): unknown {
  const params = listOf(rest);
  return run(String(sql), params, params.map(paramType));
}

/** plv8.prepare(sql, types): a plan with the given parameter types (bridge.py keeps one per sql and types). */
function prepare(sql: string, ...rest: unknown[]): { execute(...args: unknown[]): unknown } {
  const declared = listOf(rest).map(String);
  const text = String(sql);
  const plan = ctxObject();
  plan.execute = (...args: unknown[]): unknown => {
    const params = listOf(args);
    if (params.length !== declared.length) throw ctxError(`plan expected ${declared.length} argument(s), given is ${params.length}`);
    return run(text, params, declared);
  };
  return plan as unknown as { execute(...args: unknown[]): unknown };
}

function run(sql: string, params: unknown[], types: string[]): unknown {
  send({ op: 'execute', sql, params: params.map(toSqlValue), types });
  const r = reply();
  if (!r.ok) {
    const err = ctxError(r.message);
    const sqlstate = r.sqlstate ?? 'XX000';
    err.sqlerrcode = sqlstate;
    err.code = packSqlState(sqlstate);
    err.detail = r.detail ?? null;
    err.hint = r.hint ?? null;
    // plv8 attaches the server's error context; for an error of the statement itself that is the
    // line below (errors deeper down have more lines, which PL/Python does not pass on).
    err.context = `SQL statement "${sql}"`;
    throw err;
  }
  if (r.count !== undefined) return r.count;
  const rows = ctxArray();
  for (const raw of r.rows as unknown[][]) {
    const row = ctxObject();
    (r.cols as string[]).forEach((c, i) => { row[c] = fromSql(raw[i], r.types[i]); });
    rows.push(row);
  }
  return rows;
}

function elog(level: number, ...message: unknown[]): void {
  const text = message.map((m) => String(m)).join(' ');
  if (level === LEVELS.ERROR) throw ctxError(text);
  const name = LEVEL_NAMES[level];
  if (name === undefined) throw ctxError('invalid error level');
  send({ op: 'elog', level: name, message: text });
}

function subtransaction<T>(fn: () => T): T {
  send({ op: 'subtxn', action: 'begin' });
  reply();
  let out: T;
  try {
    out = fn();
  } catch (err) {
    send({ op: 'subtxn', action: 'rollback' });
    reply();
    throw err;
  }
  send({ op: 'subtxn', action: 'commit' });
  reply();
  return out;
}

const quote = (fn: string) => (value: unknown): string => {
  const rows = execute(`SELECT pg_catalog.${fn}($1::text) AS q`, [value === undefined ? null : value]) as { q: string }[];
  return rows[0].q;
};

const functions = new Map<string, { spec: FnSpec | null; fn: (...args: unknown[]) => unknown }>();
/** Every script compiled in the context, by name: its source lines (for plv8's CONTEXT line). */
const sources = new Map<string, string[]>();
function compile(name: string, args: string[], body: string): (...args: unknown[]) => unknown {
  const src = `(function (${args.join(', ')}) {\n${body}\n})`;
  sources.set(name, src.split('\n'));
  return new vm.Script(src, { filename: name }).runInContext(context);
}

functions.set('df._pgd_load', { spec: null, fn: compile('df._pgd_load', [], spec.loader) });
for (const [name, body] of Object.entries(spec.chunks ?? {})) {
  functions.set(name, { spec: null, fn: compile(name, [], body) });
}
for (const f of spec.functions) {
  functions.set(f.key ?? f.sql, { spec: f, fn: compile(f.sql, f.args.map((a) => a.name), f.body) });
}

function findFunction(name: string): (...args: unknown[]) => unknown {
  let entry = functions.get(String(name));
  if (!entry) for (const e of functions.values()) if (e.spec?.sql === String(name)) { entry = e; break; }
  if (!entry) throw ctxError(`javascript function is not found for "${name}"`);
  return entry.fn;
}

Object.assign(context, LEVELS, {
  plv8: {
    execute,
    prepare,
    elog,
    subtransaction,
    find_function: findFunction,
    quote_ident: quote('quote_ident'),
    quote_literal: quote('quote_literal'),
    quote_nullable: quote('quote_nullable'),
    version: 'host',
  },
});

function toResult(value: unknown, returns: FnSpec['returns']): unknown {
  if (typeof returns !== 'string') {
    const rows = Array.isArray(value) ? value : [];
    return rows.map((row: Record<string, unknown>) => {
      const out: Record<string, unknown> = {};
      for (const col of returns.table) out[col.name] = toSqlValue(row[col.name]);
      return out;
    });
  }
  if (value === null || value === undefined || returns === 'void') return null;
  if (returns === 'jsonb' || returns === 'json') return JSON.stringify(value);
  if (typeof value === 'object') return toSqlValue(value);
  return String(value);
}

// ---- plv8's error CONTEXT ----------------------------------------------------------------------
// plv8 (js_error::init in plv8.cc) reports an uncaught exception with CONTEXT = the error object's
// own `context` (if any) + "\n" + "<name>() LINE <n>: <source line>", where name/line/source are
// those of the *throw site* (V8's Message: the script of the function whose code threw, its bare
// function name, the line minus the wrapper's first line, the whole line). Node hands us that same
// Message as the arrow it prepends to the stack of an error escaping vm.Script#runInContext with
// displayErrors, so every call goes through this one-line script.
const invoker = new vm.Script('__pgd_host_invoke()', { filename: 'plv8-host' });
const ARROW = /^(.*):(\d+)\n(.*)\n/;

const FRAME = /\(?([^()\s]+):(\d+):\d+\)?$/;

function siteLine(script: string, line: number, text: string): string {
  const proname = script.slice(script.lastIndexOf('.') + 1); // plv8 names the script by proname: no schema
  return `${proname}() LINE ${line - 1}: ${text}`;
}

function throwSite(err: unknown): string | null {
  const stack = err !== null && typeof err === 'object' ? (err as { stack?: unknown }).stack : undefined;
  if (typeof stack !== 'string') return null;
  const m = ARROW.exec(stack);
  if (m && sources.has(m[1])) return siteLine(m[1], Number(m[2]), m[3]);
  // Thrown by the host's own plv8.* functions, which are native code in plv8: V8 then reports the
  // JavaScript frame that called them, the first frame of a compiled script in the stack.
  for (const frame of stack.split('\n')) {
    const f = /^\s+at /.test(frame) ? FRAME.exec(frame) : null;
    const lines = f ? sources.get(f[1]) : undefined;
    if (f && lines) return siteLine(f[1], Number(f[2]), lines[Number(f[2]) - 1] ?? '');
  }
  return null;
}

function plv8Context(err: unknown): string | null {
  const own = err !== null && typeof err === 'object' ? (err as { context?: unknown }).context : undefined;
  const site = throwSite(err);
  const parts = [own !== undefined && own !== null ? String(own) : null, site].filter((p) => p !== null);
  return parts.length > 0 ? parts.join('\n') : null;
}

function invoke(fn: (...args: unknown[]) => unknown, args: unknown[]): unknown {
  (context as Record<string, unknown>).__pgd_host_invoke = () => fn(...args);
  return invoker.runInContext(context, { displayErrors: true });
}

function serveCall(msg: Msg): void {
  const entry = functions.get(msg.fn);
  if (!entry || !entry.spec) {
    send({ op: 'error', message: `pg_durable plv8 host: no function ${msg.fn}`, sqlstate: 'XX000' });
    return;
  }
  const f = entry.spec;
  try {
    const args = (msg.args as unknown[]).map((a, i) => argFromSql(a, f.args[i].type));
    send({ op: 'return', value: toResult(invoke(entry.fn, args), f.returns) });
  } catch (err) {
    const e = err as Record<string, unknown>;
    let message = String(err);
    if (message.startsWith('Error: ')) message = message.slice(7);
    const code = typeof e?.code === 'number' ? unpackSqlState(e.code) : 'XX000';
    send({ op: 'error', message, sqlstate: code, detail: e?.detail ?? null, hint: e?.hint ?? null, context: plv8Context(err) });
  }
}

for (;;) {
  const msg = JSON.parse(readLine()) as Msg;
  if (msg.op === 'call') serveCall(msg);
}
