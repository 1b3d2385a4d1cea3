/**
 * The dashboard's JSON API. Every handler goes through UiData, i.e. the df.* functions as the
 * dashboard's role; errors PostgreSQL raises (not found, permission denied, already ended) come
 * back as JSON with their SQLSTATE and the page shows the message as text.
 *
 *   GET  /api/me                         role, database, read-only flag
 *   GET  /api/instances?status=&label=&after=&limit=   one page + counts by status
 *   GET  /api/instances/<id>             instance, graph (Mermaid), nodes, runs, executions, signals
 *   POST /api/instances/<id>/cancel      {"reason": "..."}             -> df.cancel
 *   POST /api/instances/<id>/signal      {"name": "...", "payload": <JSON>} -> df.signal
 */
import { NotFound, STATUSES, type UiData } from './data';

export interface ApiResult {
  status: number;
  body: unknown;
}

export interface ApiContext {
  data: UiData;
  readOnly: boolean;
  me: () => Promise<Record<string, unknown>>;
}

const ID = /^[0-9a-f]{8}$/;
const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 200;

const bad = (message: string, status = 400): ApiResult => ({ status, body: { error: message } });

/** A PostgreSQL error as an API answer: permission problems are 403, the rest 400 (bad input or state). */
function dbError(err: unknown): ApiResult {
  if (err instanceof NotFound) return { status: 404, body: { error: err.message } };
  const e = err as { code?: string; message?: string };
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) {
    const status = e.code === '42501' ? 403 : e.code === 'P0002' ? 404 : e.code.startsWith('08') || e.code.startsWith('57') ? 503 : 400;
    return { status, body: { error: e.message ?? 'database error', code: e.code } };
  }
  throw err;
}

export async function handleGet(path: string, query: URLSearchParams, ctx: ApiContext): Promise<ApiResult | null> {
  if (path === '/api/me') return { status: 200, body: { ...(await ctx.me()), read_only: ctx.readOnly } };
  if (path === '/api/instances') {
    const status = query.get('status') || null;
    if (status !== null && !(STATUSES as readonly string[]).includes(status)) return bad(`status must be one of ${STATUSES.join(', ')}`);
    const limitText = query.get('limit');
    const limit = limitText ? Number(limitText) : DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) return bad(`limit must be between 1 and ${MAX_LIMIT}`);
    try {
      return { status: 200, body: await ctx.data.list({ status, label: query.get('label') || null, after: query.get('after') || null, limit }) };
    } catch (err) {
      return dbError(err);
    }
  }
  const m = /^\/api\/instances\/([^/]+)$/.exec(path);
  if (m) {
    const id = decodeURIComponent(m[1]);
    if (!ID.test(id)) return bad('an instance id is 8 lowercase hex characters', 404);
    try {
      return { status: 200, body: await ctx.data.instance(id) };
    } catch (err) {
      return dbError(err);
    }
  }
  return null;
}

export async function handlePost(path: string, body: unknown, ctx: ApiContext): Promise<ApiResult | null> {
  const m = /^\/api\/instances\/([^/]+)\/(cancel|signal)$/.exec(path);
  if (!m) return null;
  if (ctx.readOnly) return bad('the dashboard runs with --read-only: actions are disabled', 403);
  const id = decodeURIComponent(m[1]);
  if (!ID.test(id)) return bad('an instance id is 8 lowercase hex characters', 404);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return bad('the request body must be a JSON object');
  const b = body as Record<string, unknown>;
  try {
    if (m[2] === 'cancel') {
      if (b.reason !== undefined && typeof b.reason !== 'string') return bad('reason must be a string');
      return { status: 200, body: { result: await ctx.data.cancel(id, (b.reason as string | undefined) || null) } };
    }
    if (typeof b.name !== 'string' || b.name.trim() === '') return bad('name (the signal name) is required');
    if (!('payload' in b)) return bad('payload (any JSON value) is required');
    return { status: 200, body: { result: await ctx.data.signal(id, b.name, JSON.stringify(b.payload)) } };
  } catch (err) {
    return dbError(err);
  }
}
