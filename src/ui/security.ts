/**
 * The dashboard's request guards and response hygiene:
 *  - Host check (DNS rebinding): only the loopback names at our port, the bound address, and the
 *    names given with --allowed-host answer;
 *  - CSRF: every POST carries the per-server random token (embedded in the page, readable only by
 *    same-origin script) in `X-CSRF-Token`, a JSON content type, and an Origin (when sent) that
 *    matches the Host; `Sec-Fetch-Site: cross-site` is refused outright;
 *  - headers: a strict Content-Security-Policy (scripts only from this server), no framing, no
 *    sniffing, no referrer;
 *  - JSON that is safe to embed anywhere (`<`, `>`, `&`, U+2028/9 escaped);
 *  - a printable description of the database target without its password.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import { parse as parseConnectionString } from 'pg-connection-string';

export const CSRF_HEADER = 'x-csrf-token';

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function tokenMatches(expected: string, given: string | string[] | undefined): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Lower-cased `host[:port]` names that may appear in the Host header. */
export function allowedHostNames(boundHost: string, port: number, extra: string[]): Set<string> {
  const names = new Set<string>();
  const add = (h: string) => {
    const host = h.includes(':') && !h.startsWith('[') ? `[${h}]` : h; // bare IPv6
    names.add(`${host}:${port}`.toLowerCase());
    if (port === 80) names.add(host.toLowerCase());
  };
  for (const h of ['127.0.0.1', 'localhost', '::1']) add(h);
  if (boundHost !== '0.0.0.0' && boundHost !== '::') add(boundHost);
  for (const e of extra) names.add(e.trim().toLowerCase());
  return names;
}

/** Whether the Host header names us: an exact `host:port`, or an --allowed-host given without a port. */
export function hostAllowed(header: string | undefined, allowed: Set<string>): boolean {
  if (!header) return false;
  const h = header.trim().toLowerCase();
  if (allowed.has(h)) return true;
  const bare = h.replace(/:[0-9]+$/, '');
  return bare !== h && allowed.has(bare);
}

/** Checks a state-changing request; returns why it is refused, or null. */
export function csrfProblem(req: http.IncomingMessage, token: string): string | null {
  if (req.headers['sec-fetch-site'] === 'cross-site') return 'cross-site request refused';
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let originHost: string;
    try {
      originHost = new URL(origin).host.toLowerCase();
    } catch {
      return 'bad Origin header';
    }
    if (originHost !== (req.headers.host ?? '').toLowerCase()) return 'Origin does not match Host';
  }
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return 'Content-Type must be application/json';
  if (!tokenMatches(token, req.headers[CSRF_HEADER])) return 'missing or wrong CSRF token';
  return null;
}

export const SECURITY_HEADERS: Record<string, string> = {
  // Mermaid writes <style> into its SVG and vis-timeline positions items with style attributes:
  // styles may be inline, scripts may not.
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** JSON with the characters that could end a script or HTML context escaped. */
export function safeJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** HTML-escapes text for the page shell (the shell holds no user content; this is for the token and flags). */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** `user@host/database` for logs: never the password (or the rest of the URL). */
export function describeTarget(url: string | undefined): string {
  if (!url) return `${process.env.PGUSER ?? process.env.USER ?? '?'}@${process.env.PGHOST ?? 'localhost'}/${process.env.PGDATABASE ?? '?'}`;
  try {
    const c = parseConnectionString(url);
    return `${c.user ?? process.env.PGUSER ?? '?'}@${c.host ?? 'localhost'}${c.port ? `:${c.port}` : ''}/${c.database ?? '?'}`;
  } catch {
    return '(unparsable database URL)';
  }
}
