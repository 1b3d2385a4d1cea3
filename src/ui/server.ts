/**
 * `pg-durable ui`: the web dashboard's HTTP server (node:http, no framework). It serves the page
 * shell, the static files (src/ui/assets.ts) and the JSON API (src/ui/routes.ts), reading and
 * acting as the PostgreSQL role its database URL authenticates as, so row-level security and the
 * df.* privileges decide what each user sees and may do.
 *
 * Guards (src/ui/security.ts): Host check on every request, CSRF token + Origin + JSON content type
 * on every POST, strict security headers, bodies capped at 1 MiB. The page shell holds no user
 * content; the page renders API data with textContent only. The database URL is never logged.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Assets } from './assets';
import { UiData } from './data';
import { handleGet, handlePost, type ApiContext, type ApiResult } from './routes';
import { allowedHostNames, csrfProblem, escapeHtml, hostAllowed, newToken, safeJson, SECURITY_HEADERS } from './security';

export interface UiOptions {
  /** The role's connection; undefined = libpq environment (PGHOST, PGUSER, ...). */
  databaseUrl?: string;
  host?: string;
  /** 0 = any free port. */
  port?: number;
  readOnly?: boolean;
  /** Extra Host header names (`name` or `name:port`) to answer, e.g. the proxy's public name. */
  allowedHosts?: string[];
  /** Where request errors go (never with the database URL); default stderr. */
  onError?: (message: string) => void;
}

export interface UiServer {
  url: string;
  port: number;
  /** The CSRF token embedded in the page (tests use it to act like the page). */
  token: string;
  role: string;
  database: string;
  superuser: boolean;
  close(): Promise<void>;
}

const MAX_BODY = 1024 * 1024;

function send(res: http.ServerResponse, status: number, body: string | Buffer, type: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': String(Buffer.byteLength(body)), ...extra });
  res.end(body);
}

function sendJson(res: http.ServerResponse, r: ApiResult): void {
  send(res, r.status, safeJson(r.body), 'application/json; charset=utf-8', { 'Cache-Control': 'no-store' });
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('request body too large'), { status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startUiServer(opts: UiOptions): Promise<UiServer> {
  const host = opts.host ?? '127.0.0.1';
  const readOnly = opts.readOnly ?? false;
  const assets = new Assets();
  const data = new UiData(opts.databaseUrl);
  let me: Awaited<ReturnType<UiData['whoami']>>;
  try {
    me = await data.whoami(); // fail fast on a bad URL, before listening
  } catch (err) {
    await data.end().catch(() => undefined);
    throw err;
  }
  const token = newToken();
  const shell = assets.indexHtml.replace('{{CSRF_TOKEN}}', escapeHtml(token)).replace('{{READ_ONLY}}', readOnly ? 'true' : 'false');
  const ctx: ApiContext = { data, readOnly, me: async () => ({ ...(await data.whoami()) }) };
  const onError = opts.onError ?? ((m: string) => console.error(`pg-durable ui: ${m}`));
  let allowed = new Set<string>();

  const server = http.createServer((req, res) => {
    void (async () => {
      if (!hostAllowed(req.headers.host, allowed)) {
        send(res, 421, 'Host not allowed: start the dashboard with --allowed-host NAME to serve it under another name\n', 'text/plain; charset=utf-8');
        return;
      }
      const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
      const path = url.pathname;
      if (req.method === 'GET' || req.method === 'HEAD') {
        if (path === '/' || /^\/i\/[0-9a-f]{8}$/.test(path)) {
          send(res, 200, shell, 'text/html; charset=utf-8', { 'Cache-Control': 'no-store' });
          return;
        }
        if (path === '/favicon.ico') {
          res.writeHead(204, { ...SECURITY_HEADERS, 'Cache-Control': 'public, max-age=86400' }).end();
          return;
        }
        const asset = assets.get(path);
        if (asset) {
          const cache = asset.immutable ? 'public, max-age=86400' : 'no-cache';
          if (req.headers['if-none-match'] === asset.etag) {
            res.writeHead(304, { ...SECURITY_HEADERS, ETag: asset.etag, 'Cache-Control': cache }).end();
            return;
          }
          const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? '')) && asset.body.length > 1024;
          send(res, 200, gzip ? assets.gzipped(asset) : asset.body, asset.type, {
            ETag: asset.etag, 'Cache-Control': cache, Vary: 'Accept-Encoding', ...(gzip ? { 'Content-Encoding': 'gzip' } : {}),
          });
          return;
        }
        const r = path.startsWith('/api/') ? await handleGet(path, url.searchParams, ctx) : null;
        if (r) sendJson(res, r);
        else send(res, 404, 'not found\n', 'text/plain; charset=utf-8');
        return;
      }
      if (req.method === 'POST') {
        const problem = csrfProblem(req, token);
        if (problem) {
          sendJson(res, { status: 403, body: { error: problem } });
          return;
        }
        let body: unknown;
        try {
          body = JSON.parse(await readBody(req));
        } catch (err) {
          sendJson(res, { status: (err as { status?: number }).status ?? 400, body: { error: (err as Error).message } });
          return;
        }
        const r = await handlePost(path, body, ctx);
        sendJson(res, r ?? { status: 404, body: { error: 'not found' } });
        return;
      }
      send(res, 405, 'method not allowed\n', 'text/plain; charset=utf-8', { Allow: 'GET, HEAD, POST' });
    })().catch((err: Error) => {
      onError(`${req.method} ${(req.url ?? '').split('?')[0]}: ${err.message}`);
      if (!res.headersSent) sendJson(res, { status: 500, body: { error: 'internal error (see the dashboard log)' } });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8787, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  allowed = allowedHostNames(host, port, opts.allowedHosts ?? []);
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown === '0.0.0.0' || shown === '[::]' ? '127.0.0.1' : shown}:${port}/`,
    port,
    token,
    role: me.role,
    database: me.database,
    superuser: me.superuser,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await data.end().catch(() => undefined);
    },
  };
}
