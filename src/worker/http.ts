/**
 * HTTP and HTTP_MULTIPART node executors (API §9.13, §9.14, §14) with the egress policy of our
 * deviation 9: runtime configuration of the worker, not a build feature.
 *
 * Security gates, in order: EXECUTE privilege of the submitting role (re-checked per node), URL
 * scheme (http/https), host extraction, no IP-literal host (unless --http-allow-ip-literals), the
 * optional domain allow-list, then DNS: every resolved
 * address is checked and blocked ones are discarded; the request connects only to the vetted
 * addresses (a custom `lookup` hands them to the socket), which defeats DNS rebinding. Redirects are
 * never followed. 5xx responses and transport errors are retried a bounded number of times with
 * exponential backoff (deviation 6/9), then fail the node with the contract's texts.
 *
 * Deliberately node:http/node:https rather than fetch: fetch (undici) resolves names itself, so the
 * connected address could differ from the vetted one.
 */
import * as dns from 'node:dns';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { TextDecoder } from 'node:util';
import ipaddr from 'ipaddr.js';
import { DfError } from '../core/errors';
import { metrics } from './metrics';

// ---------------------------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------------------------

export interface EgressPolicy {
  /** Allow 127.0.0.0/8 and ::1 (tests, local services). */
  allowLoopback: boolean;
  /** Allow RFC 1918, CGNAT 100.64.0.0/10 and IPv6 ULA fc00::/7. Link-local/metadata stay blocked. */
  allowPrivate: boolean;
  /**
   * Allow URLs whose host is an IP address literal (the original refuses them: `bare IP`). Off by
   * default; when on, the address still passes the range checks above.
   */
  allowIpLiterals: boolean;
  /** When non-null, the host must equal an entry or be a subdomain of one. */
  allowedHosts: string[] | null;
  /** Extra attempts after a 5xx or transport error. */
  maxRetries: number;
  /** Backoff base: retryBaseMs * 2^attempt, ±20% jitter. */
  retryBaseMs: number;
  /** Default User-Agent header (a caller's User-Agent header wins). */
  userAgent: string;
  /** Largest response body read, in bytes; a longer one fails the node (not retried). Unset: no cap. */
  maxResponseBytes?: number;
}

export function defaultEgressPolicy(version: string): EgressPolicy {
  return {
    allowLoopback: false,
    allowPrivate: false,
    allowIpLiterals: false,
    allowedHosts: null,
    maxRetries: 2,
    retryBaseMs: 500,
    userAgent: `pg_durable/${version}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Address classification
// ---------------------------------------------------------------------------------------------

type Verdict = 'public' | 'loopback' | 'private' | 'never';

/** The IPv4 address held in two 16-bit groups of an IPv6 address. */
const embeddedV4 = (hi: number, lo: number): ipaddr.IPv4 => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);

/** IPv4 ranges by ipaddr.js's RFC tables; anything not listed (multicast, reserved, ...) is public. */
function classifyIpv4(a: ipaddr.IPv4): Verdict {
  switch (a.range()) {
    case 'unspecified': // 0.0.0.0/8 "this network" (0.0.0.0 reaches the local host)
    case 'linkLocal': // 169.254.0.0/16, incl. cloud metadata 169.254.169.254
      return 'never';
    case 'loopback':
      return 'loopback';
    case 'private': // RFC 1918
    case 'carrierGradeNat': // 100.64.0.0/10
      return 'private';
    default:
      return 'public';
  }
}

/** IPv6 ranges by ipaddr.js's RFC tables; an embedded IPv4 address decides for the transition forms. */
function classifyIpv6(a: ipaddr.IPv6): Verdict {
  const g = a.parts;
  switch (a.range() as string) { // the bundled typings lack some range names (deprecatedSiteLocal)
    case 'unspecified': // ::
    case 'linkLocal': // fe80::/10
      return 'never';
    case 'loopback': // ::1
      return 'loopback';
    case 'ipv4Mapped': // ::ffff:a.b.c.d
    case 'rfc6145': // ::ffff:0:a.b.c.d (SIIT)
      return classifyIpv4(embeddedV4(g[6], g[7]));
    case 'rfc6052': {
      // NAT64: 64:ff9b::/96 (the embedded address decides) and local-use 64:ff9b:1::/48 (never better than private)
      const inner = classifyIpv4(embeddedV4(g[6], g[7]));
      return g[2] === 1 && inner === 'public' ? 'private' : inner;
    }
    case '6to4': // 2002:AABB:CCDD::/48
      return classifyIpv4(embeddedV4(g[1], g[2]));
    case 'teredo': // 2001::/32, client address inverted in the last 32 bits
      return classifyIpv4(embeddedV4(g[6] ^ 0xffff, g[7] ^ 0xffff));
    case 'deprecatedSiteLocal': // fec0::/10
      return 'private';
    case 'uniqueLocal': // fc00::/7; fd00:ec2::254 is the AWS instance-metadata endpoint
      return a.toNormalizedString() === 'fd00:ec2:0:0:0:0:0:254' ? 'never' : 'private';
    default:
      // deprecated IPv4-compatible ::a.b.c.d has no range of its own in the tables
      if (g.slice(0, 6).every((x) => x === 0)) return classifyIpv4(embeddedV4(g[6], g[7]));
      return 'public';
  }
}

/**
 * Whether `ip` (an IPv4 or IPv6 literal, as a resolver returns it) must not be connected to under
 * `policy`. Parsing is ipaddr.js's, strict: IPv4 only as four decimal parts (the short and numeric
 * forms are URL syntax, normalised by the WHATWG parser before we get here). Anything that does not
 * parse as an IP address is blocked (fail closed).
 */
export function isBlockedAddress(ip: string, policy: Pick<EgressPolicy, 'allowLoopback' | 'allowPrivate'>): boolean {
  let verdict: Verdict;
  try {
    if (ipaddr.IPv4.isValidFourPartDecimal(ip)) verdict = classifyIpv4(ipaddr.IPv4.parse(ip));
    else if (ipaddr.IPv6.isValid(ip)) verdict = classifyIpv6(ipaddr.IPv6.parse(ip));
    else return true;
  } catch {
    return true;
  }
  switch (verdict) {
    case 'public':
      return false;
    case 'loopback':
      return !policy.allowLoopback;
    case 'private':
      return !policy.allowPrivate;
    case 'never':
      return true;
  }
}

/**
 * Whether a URL host is an IP address literal in any form a client would accept: dotted, short
 * (`127.1`), numeric (`2130706433`), hex or octal parts (`0x7f.1`), IPv6 with or without brackets
 * or a zone id, IPv4-mapped IPv6. ipaddr.js accepts all of these.
 */
export function isIpLiteral(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  return h !== '' && (net.isIP(h) !== 0 || ipaddr.isValid(h));
}

// ---------------------------------------------------------------------------------------------
// URL gates
// ---------------------------------------------------------------------------------------------

/** Lower-cased text before the first `://`, or the whole string if there is none (§3.12). */
export function urlScheme(url: string): string {
  const i = url.indexOf('://');
  return (i >= 0 ? url.slice(0, i) : url).toLowerCase();
}

/** §14 host extraction, or undefined. Brackets of an IPv6 literal are removed. */
export function extractHost(url: string): string | undefined {
  const i = url.indexOf('://');
  if (i < 0) return undefined;
  const rest = url.slice(i + 3);
  const end = rest.search(/[/?#]/);
  let authority = end >= 0 ? rest.slice(0, end) : rest;
  const at = authority.lastIndexOf('@');
  if (at >= 0) authority = authority.slice(at + 1);
  let host: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) return undefined;
    host = authority.slice(1, close);
  } else {
    const colon = authority.indexOf(':');
    host = colon >= 0 ? authority.slice(0, colon) : authority;
  }
  return host === '' ? undefined : host;
}

/** Exact match or subdomain of an allow-list entry (case-insensitive, trailing dots ignored). */
export function hostAllowed(host: string, allowedHosts: string[]): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return allowedHosts.some((entry) => {
    const e = entry.trim().toLowerCase().replace(/^\*?\./, '').replace(/\.$/, '');
    return e !== '' && (h === e || h.endsWith('.' + e));
  });
}

// ---------------------------------------------------------------------------------------------
// Public executor API
// ---------------------------------------------------------------------------------------------

/** The HTTP node config after substitution (§3.12). */
export interface HttpConfig {
  url: string;
  method: string;
  body?: string | null;
  headers?: Record<string, unknown> | null;
  timeout_seconds?: number | null;
}

/** The HTTP_MULTIPART node config after substitution (§3.13); parts are validated at run time. */
export interface HttpMultipartConfig {
  url: string;
  method: string;
  parts: unknown;
  headers?: Record<string, unknown> | null;
  timeout_seconds?: number | null;
}

export interface HttpAuditEntry {
  kind: 'http' | 'http_multipart';
  role: string;
  url: string;
  /** `blocked` (a security gate refused), `response` (status received) or `error` (transport). */
  outcome: 'blocked' | 'response' | 'error';
  block?: 'privilege' | 'scheme' | 'allowlist' | 'ip';
  status?: number;
  /** 0-based attempt number for `response`/`error`. */
  attempt?: number;
  /** Error text (never a resolved address). */
  error?: string;
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export interface HttpContext {
  policy: EgressPolicy;
  /** Aborts the request (and any backoff wait); the signal's reason is thrown. */
  signal?: AbortSignal;
  /** The submitting role (`submitted_by`). */
  role: string;
  /** has_function_privilege(role, df.http(...) / df.http_multipart(...), 'EXECUTE'). */
  canExecute: () => Promise<boolean>;
  /** Audit trail: one entry per gate rejection and per request attempt. */
  log?: (entry: HttpAuditEntry) => void;
  /** Name resolution override (tests); default dns.lookup with all: true. */
  resolve?: (host: string) => Promise<ResolvedAddress[]>;
}

export async function executeHttp(config: HttpConfig, ctx: HttpContext): Promise<string> {
  const audit = auditor('http', config.url, ctx);
  if (!(await ctx.canExecute())) {
    audit.block('privilege');
    throw new DfError(
      `Blocked: role '${ctx.role}' does not have EXECUTE privilege on df.http(). Grant EXECUTE ON FUNCTION df.http(text,text,text,jsonb,integer) TO ${ctx.role} to allow HTTP requests.`,
    );
  }
  const target = checkUrl(String(config.url), ctx.policy, audit);
  const headers = requestHeaders(config.headers, ctx.policy.userAgent, false);
  const body = config.body === null || config.body === undefined ? null : Buffer.from(String(config.body), 'utf8');
  return performWithRetries(
    { url: String(config.url), target, method: String(config.method).toUpperCase(), headers, body, timeoutSeconds: timeoutOf(config.timeout_seconds) },
    ctx,
    audit,
  );
}

export async function executeHttpMultipart(config: HttpMultipartConfig, ctx: HttpContext): Promise<string> {
  const audit = auditor('http_multipart', typeof config?.url === 'string' ? config.url : '', ctx);
  if (!(await ctx.canExecute())) {
    audit.block('privilege');
    throw new DfError(
      `Blocked: role '${ctx.role}' does not have EXECUTE privilege on df.http_multipart(). Grant EXECUTE ON FUNCTION df.http_multipart(text,text,jsonb,jsonb,integer) TO ${ctx.role} to allow multipart HTTP requests.`,
    );
  }
  const shapeError = multipartShapeError(config);
  if (shapeError) throw new DfError(`Invalid multipart HTTP config: ${shapeError}`);
  const method = config.method.toUpperCase();
  if (method !== 'POST' && method !== 'PUT' && method !== 'PATCH') {
    throw new DfError(`Unsupported HTTP method for multipart: ${config.method}`);
  }
  const target = checkUrl(config.url, ctx.policy, audit);
  const parts = decodeParts(config.parts as RawPart[]);
  const boundary = '----pg-durable-' + randomBytes(12).toString('hex');
  const body = multipartBody(parts, boundary);
  const headers = requestHeaders(config.headers, ctx.policy.userAgent, true);
  headers.push(['Content-Type', `multipart/form-data; boundary=${boundary}`]);
  return performWithRetries(
    { url: config.url, target, method, headers, body, timeoutSeconds: timeoutOf(config.timeout_seconds) },
    ctx,
    audit,
  );
}

// ---------------------------------------------------------------------------------------------
// Gates
// ---------------------------------------------------------------------------------------------

interface Auditor {
  block(kind: NonNullable<HttpAuditEntry['block']>): void;
  attempt(attempt: number, outcome: 'response' | 'error', detail: { status?: number; error?: string }): void;
}

function auditor(kind: HttpAuditEntry['kind'], url: string, ctx: HttpContext): Auditor {
  const emit = (entry: HttpAuditEntry): void => {
    try {
      ctx.log?.(entry);
    } catch {
      /* the audit sink must not break the request */
    }
  };
  return {
    block: (block) => (metrics.egressBlocked.inc({ gate: block }), emit({ kind, role: ctx.role, url, outcome: 'blocked', block })), // metrics
    attempt: (attempt, outcome, detail) => emit({ kind, role: ctx.role, url, outcome, attempt, ...detail }),
  };
}

interface Target {
  parsed: URL;
  /** Host to resolve/connect to (WHATWG-normalised, no brackets). */
  host: string;
}

/** Scheme, host extraction and allow-list gates; returns the parsed URL. */
function checkUrl(url: string, policy: EgressPolicy, audit: Auditor): Target {
  const scheme = urlScheme(url);
  if (scheme !== 'http' && scheme !== 'https') {
    audit.block('scheme');
    throw new DfError(`Blocked: unsupported URL scheme '${scheme}'. Only http and https are allowed.`);
  }
  const extracted = extractHost(url);
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  // The WHATWG host is what we would connect to; it can differ from the naive extraction
  // (`http://a.com\@b.com/`, `http://2130706433/`), so every later gate uses it.
  const host = parsed ? parsed.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase() : '';
  if (extracted === undefined || (parsed && host === '')) {
    audit.block('allowlist');
    throw new DfError('Blocked: unable to extract hostname from URL.');
  }
  if (!parsed) throw new DfError(`HTTP request failed: ${url} - invalid URL`);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    audit.block('scheme');
    throw new DfError(`Blocked: unsupported URL scheme '${scheme}'. Only http and https are allowed.`);
  }
  // The original's rule (API §14): no literal IP host, whatever its range. Both the §14 extraction
  // and the WHATWG host are checked, so `http://2130706433/`, `http://0x7f.1/`, `http://[::1]/`
  // and `http://a.com\@127.0.0.1/` are all refused before anything is resolved or contacted.
  if (!policy.allowIpLiterals && (isIpLiteral(host) || isIpLiteral(extracted))) {
    audit.block('ip');
    throw new DfError(BARE_IP);
  }
  if (policy.allowedHosts !== null && !hostAllowed(host, policy.allowedHosts)) {
    audit.block('allowlist');
    throw new DfError(`Blocked: '${host}' is not in the allowed endpoint list.`);
  }
  return { parsed, host };
}

/** API §14's first sentence, verbatim (users match `bare IP`); the second names our way out. */
export const BARE_IP =
  'Blocked: requests to bare IP addresses are not permitted. Use a hostname instead (operators: --http-allow-ip-literals lets literal addresses through the range checks).';

/** The DNS gate's rejection (never retried). */
class RestrictedAddressError extends DfError {}

const restricted = (host: string): DfError =>
  new RestrictedAddressError(
    `Blocked: the resolved IP address for '${host}' is in a restricted range. df.http() cannot access private or internal network addresses.`,
  );

async function defaultResolve(host: string): Promise<ResolvedAddress[]> {
  const all = await dns.promises.lookup(host, { all: true, verbatim: true });
  return all.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
}

// ---------------------------------------------------------------------------------------------
// Request headers, multipart
// ---------------------------------------------------------------------------------------------

function timeoutOf(t: unknown): number {
  const n = typeof t === 'number' ? t : typeof t === 'string' ? Number(t) : NaN;
  // setTimeout fires at once beyond 2^31-1 ms
  return Number.isFinite(n) && n > 0 ? Math.min(n, 2_000_000) : 30;
}

/** Caller headers (string values only) plus the default User-Agent. */
function requestHeaders(raw: unknown, userAgent: string, dropContentType: boolean): [string, string][] {
  const out: [string, string][] = [];
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
    for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
      if (typeof v !== 'string') continue;
      const lk = k.toLowerCase();
      // framing is ours: the body is sent with its exact length
      if (lk === 'content-length' || lk === 'transfer-encoding') continue;
      if (dropContentType && lk === 'content-type') continue;
      out.push([k, v]);
    }
  }
  if (!out.some(([k]) => k.toLowerCase() === 'user-agent')) out.unshift(['User-Agent', userAgent]);
  return out;
}

interface RawPart {
  name: string;
  data_b64: string;
  filename?: string | null;
  content_type?: string | null;
}

interface Part {
  name: string;
  data: Buffer;
  filename: string | null;
  contentType: string | null;
}

function jsonTypeDesc(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'sequence';
  if (typeof v === 'object') return 'map';
  if (typeof v === 'string') return `string ${JSON.stringify(v)}`;
  if (typeof v === 'number') return Number.isInteger(v) ? `integer \`${v}\`` : `floating point \`${v}\``;
  if (typeof v === 'boolean') return `boolean \`${v}\``;
  return typeof v;
}

/** serde-like description of the first config shape problem, or undefined. */
function multipartShapeError(config: unknown): string | undefined {
  if (!config || typeof config !== 'object' || Array.isArray(config)) return `invalid type: ${jsonTypeDesc(config)}, expected a map`;
  const c = config as Record<string, unknown>;
  for (const key of ['url', 'method'] as const) {
    if (c[key] === undefined) return `missing field \`${key}\``;
    if (typeof c[key] !== 'string') return `invalid type: ${jsonTypeDesc(c[key])}, expected a string (field \`${key}\`)`;
  }
  if (c.parts === undefined) return 'missing field `parts`';
  if (!Array.isArray(c.parts)) return `invalid type: ${jsonTypeDesc(c.parts)}, expected a sequence (field \`parts\`)`;
  if (c.parts.length === 0) return 'parts must contain at least one part';
  for (let i = 0; i < c.parts.length; i++) {
    const p = c.parts[i] as unknown;
    if (!p || typeof p !== 'object' || Array.isArray(p)) return `invalid type: ${jsonTypeDesc(p)}, expected a part object (parts[${i}])`;
    const o = p as Record<string, unknown>;
    for (const key of ['name', 'data_b64'] as const) {
      if (o[key] === undefined || o[key] === null) return `missing field \`${key}\` (parts[${i}])`;
      if (typeof o[key] !== 'string') return `invalid type: ${jsonTypeDesc(o[key])}, expected a string (parts[${i}].${key})`;
    }
    for (const key of ['filename', 'content_type'] as const) {
      if (o[key] !== undefined && o[key] !== null && typeof o[key] !== 'string') {
        return `invalid type: ${jsonTypeDesc(o[key])}, expected a string (parts[${i}].${key})`;
      }
    }
  }
  if (c.timeout_seconds !== undefined && c.timeout_seconds !== null && typeof c.timeout_seconds !== 'number') {
    return `invalid type: ${jsonTypeDesc(c.timeout_seconds)}, expected an integer (field \`timeout_seconds\`)`;
  }
  return undefined;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Strict standard base64 (padding required) after removing whitespace; message like Rust's base64 crate. */
export function decodeBase64Strict(input: string): Buffer {
  const s = input.replace(/\s+/g, '');
  let pad = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '=') {
      if (i < s.length - 2 || (i === s.length - 2 && s[i + 1] !== '=')) throw new Error(`Invalid symbol ${c.charCodeAt(0)}, offset ${i}.`);
      pad++;
    } else if (B64.indexOf(c) < 0) {
      throw new Error(`Invalid symbol ${c.charCodeAt(0)}, offset ${i}.`);
    }
  }
  if (s.length % 4 === 1) throw new Error('Invalid input length.');
  if (s.length % 4 !== 0) throw new Error('Invalid padding');
  if (pad > 0 && s.length > 0) {
    // non-canonical trailing bits
    const last = s[s.length - pad - 1];
    const v = B64.indexOf(last);
    const mask = pad === 1 ? 0x03 : 0x0f;
    if ((v & mask) !== 0) throw new Error(`Invalid last symbol ${last.charCodeAt(0)}, offset ${s.length - pad - 1}.`);
  }
  return Buffer.from(s, 'base64');
}

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const MEDIA_TYPE_RE = new RegExp(`^${TOKEN}/${TOKEN}(\\s*;\\s*${TOKEN}=(${TOKEN}|"([^"\\\\\\r\\n]|\\\\.)*"))*\\s*;?\\s*$`);

function validateContentType(ct: string): string | undefined {
  const t = ct.trim();
  if (t === '') return 'empty media type';
  if (!t.includes('/')) return 'a slash (/) was missing between the type and subtype';
  if (!MEDIA_TYPE_RE.test(t)) return 'invalid token';
  return undefined;
}

function decodeParts(raw: RawPart[]): Part[] {
  return raw.map((p) => {
    let data: Buffer;
    try {
      data = decodeBase64Strict(p.data_b64);
    } catch (e) {
      throw new DfError(`Invalid base64 in part '${p.name}': ${(e as Error).message}`);
    }
    let contentType: string | null = null;
    if (typeof p.content_type === 'string') {
      const err = validateContentType(p.content_type);
      if (err) throw new DfError(`Invalid content_type for part '${p.name}': ${err}`);
      contentType = p.content_type.trim();
    }
    return { name: p.name, data, filename: typeof p.filename === 'string' ? p.filename : null, contentType };
  });
}

/** Quoted-string value for Content-Disposition parameters (HTML form-data escaping). */
function dispositionValue(s: string): string {
  return '"' + s.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A') + '"';
}

/**
 * Hand-written on purpose: Node's FormData (`new Response(formData)`) gives every binary part
 * `filename="blob"` and a Content-Type, and normalises line breaks in text parts; the `form-data`
 * package adds `application/octet-stream` and strips directories from filenames. Either changes
 * the wire format the original (reqwest) sends: a part has a filename / Content-Type only when the
 * config gives one, and its bytes go out untouched.
 */
function multipartBody(parts: Part[], boundary: string): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name=${dispositionValue(p.name)}`;
    if (p.filename !== null) head += `; filename=${dispositionValue(p.filename)}`;
    head += '\r\n';
    if (p.contentType !== null) head += `Content-Type: ${p.contentType}\r\n`;
    head += '\r\n';
    chunks.push(Buffer.from(head, 'utf8'), p.data, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

// ---------------------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------------------

interface Prepared {
  url: string;
  target: Target;
  method: string;
  headers: [string, string][];
  body: Buffer | null;
  timeoutSeconds: number;
}

interface RawResponse {
  status: number;
  rawHeaders: string[];
  body: Buffer;
  durationMs: number;
}

type TransportKind = 'timeout' | 'connect' | 'request';

class TransportError extends Error {
  constructor(
    readonly kind: TransportKind,
    message: string,
    /** Deterministic failures (invalid header, bad URL) are not retried. */
    readonly retryable = true,
  ) {
    super(message);
  }
}

class AbortedError extends Error {}

function abortReason(signal: AbortSignal | undefined, url: string): unknown {
  const r = signal?.reason;
  return r instanceof Error ? r : new DfError(`HTTP request cancelled: ${url}`);
}

/** Error text without the connected address (resolved IPs are never disclosed). */
function describeError(e: unknown, host: string): string {
  const err = e as NodeJS.ErrnoException & { address?: string; port?: number };
  let msg = err && typeof err.message === 'string' ? err.message : String(e);
  if (err && typeof err.address === 'string' && err.address !== '') {
    const addr = err.address;
    msg = msg.split(err.port !== undefined ? `${addr}:${err.port}` : addr).join(err.port !== undefined ? `${host}:${err.port}` : host);
    msg = msg.split(addr).join(host);
  }
  return msg;
}

async function performWithRetries(req: Prepared, ctx: HttpContext, audit: Auditor): Promise<string> {
  const maxRetries = Math.max(0, Math.floor(ctx.policy.maxRetries));
  for (let attempt = 0; ; attempt++) {
    if (ctx.signal?.aborted) throw abortReason(ctx.signal, req.url);
    let failure: DfError;
    let retryable: boolean;
    try {
      const res = await attemptOnce(req, ctx);
      audit.attempt(attempt, 'response', { status: res.status });
      const env = envelope(res);
      if (res.status < 500) return env.json;
      failure = new DfError(`HTTP ${req.method} ${req.url} returned ${res.status}: ${bodyPreview(env.body, env.encoding)}`);
      retryable = true;
    } catch (e) {
      if (e instanceof AbortedError) throw abortReason(ctx.signal, req.url);
      if (e instanceof RestrictedAddressError) {
        // the DNS gate: never retried
        audit.block('ip');
        throw e;
      }
      const te = e instanceof TransportError ? e : new TransportError('request', describeError(e, req.target.host), false);
      audit.attempt(attempt, 'error', { error: te.message });
      if (te.kind === 'timeout') failure = new DfError(`HTTP timeout after ${req.timeoutSeconds}s: ${req.url}`);
      else if (te.kind === 'connect') failure = new DfError(`HTTP connection failed: ${req.url} - ${te.message}`);
      else failure = new DfError(`HTTP request failed: ${req.url} - ${te.message}`);
      retryable = te.retryable;
    }
    if (!retryable || attempt >= maxRetries) throw failure;
    metrics.retries.inc({ type: 'HTTP', reason: 'http' }); // metrics
    const base = Math.max(0, ctx.policy.retryBaseMs) * 2 ** attempt;
    await sleep(base * (0.8 + 0.4 * Math.random()), ctx.signal, req.url);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal, url));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal, url));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Resolves the host, vets every address, and performs one request against the vetted ones. */
async function attemptOnce(req: Prepared, ctx: HttpContext): Promise<RawResponse> {
  const started = Date.now();
  const { host, parsed } = req.target;
  const timeoutMs = req.timeoutSeconds * 1000;

  return new Promise<RawResponse>((resolve, reject) => {
    let settled = false;
    let request: http.ClientRequest | undefined;
    let connected = false;
    const finish = (err: unknown, res?: RawResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ctx.signal?.removeEventListener('abort', onAbort);
      if (err !== undefined) {
        request?.destroy();
        reject(err);
      } else resolve(res as RawResponse);
    };
    const timer = setTimeout(() => finish(new TransportError('timeout', 'timed out')), timeoutMs);
    const onAbort = (): void => finish(new AbortedError());
    if (ctx.signal?.aborted) return finish(new AbortedError());
    ctx.signal?.addEventListener('abort', onAbort, { once: true });

    const resolveAll = async (): Promise<ResolvedAddress[]> => {
      const literal = net.isIP(host);
      if (literal) return [{ address: host, family: literal === 6 ? 6 : 4 }];
      try {
        return await (ctx.resolve ?? defaultResolve)(host);
      } catch (e) {
        throw new TransportError('connect', describeError(e, host));
      }
    };

    resolveAll().then(
      (addrs) => {
        if (settled) return;
        const vetted = addrs.filter((a) => !isBlockedAddress(a.address, ctx.policy));
        if (vetted.length === 0) return finish(restricted(host));
        const lookup = (
          _hostname: string,
          options: dns.LookupOptions,
          callback: (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void,
        ): void => {
          const family = typeof options === 'object' && options ? options.family : undefined;
          const wanted = family === 4 || family === 6 ? vetted.filter((a) => a.family === family) : vetted;
          const list = wanted.length ? wanted : vetted;
          if (options && typeof options === 'object' && options.all) callback(null, list.map((a) => ({ address: a.address, family: a.family })));
          else callback(null, list[0].address, list[0].family);
        };
        const isHttps = parsed.protocol === 'https:';
        const options: https.RequestOptions = {
          method: req.method,
          host,
          port: parsed.port ? Number(parsed.port) : isHttps ? 443 : 80,
          path: (parsed.pathname || '/') + parsed.search,
          agent: false,
          lookup: lookup as unknown as net.LookupFunction,
          headers: {},
        };
        if (isHttps && !net.isIP(host)) options.servername = host;
        // validate before any socket exists: an invalid header is a deterministic failure
        const headers: http.OutgoingHttpHeaders = {};
        try {
          for (const [k, v] of req.headers) {
            http.validateHeaderName(k);
            http.validateHeaderValue(k, v);
            headers[k] = v;
          }
        } catch (e) {
          return finish(new TransportError('request', describeError(e, host), false));
        }
        if (req.body !== null) headers['Content-Length'] = String(req.body.length);
        options.headers = headers;
        let r: http.ClientRequest;
        try {
          r = (isHttps ? https : http).request(options);
        } catch (e) {
          return finish(new TransportError('request', describeError(e, host), false));
        }
        request = r;
        r.on('socket', (sock) => {
          const ev = isHttps ? 'secureConnect' : 'connect';
          sock.once(ev, () => {
            connected = true;
          });
        });
        r.on('error', (e: NodeJS.ErrnoException) => {
          // before the (TLS) connection is up it is a connection failure, afterwards a request failure
          const kind: TransportKind = connected ? 'request' : 'connect';
          finish(new TransportError(kind, describeError(e, host)));
        });
        r.on('response', (res) => {
          const chunks: Buffer[] = [];
          const cap = ctx.policy.maxResponseBytes;
          let received = 0;
          res.on('data', (c: Buffer) => {
            received += c.length;
            if (cap !== undefined && received > cap) {
              finish(new TransportError('request', `response body exceeds ${cap} bytes (--max-result-bytes)`, false));
              return;
            }
            chunks.push(c);
          });
          res.on('error', (e) => finish(new TransportError('request', describeError(e, host))));
          res.on('aborted', () => finish(new TransportError('request', 'response body aborted')));
          res.on('end', () =>
            finish(undefined, {
              status: res.statusCode ?? 0,
              rawHeaders: res.rawHeaders,
              body: Buffer.concat(chunks),
              durationMs: Date.now() - started,
            }),
          );
        });
        r.end(req.body ?? undefined);
      },
      (e) => finish(e),
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Response envelope
// ---------------------------------------------------------------------------------------------

const TEXTUAL_APPLICATION = new Set([
  'application/json', 'application/xml', 'application/javascript', 'application/ecmascript',
  'application/x-www-form-urlencoded', 'application/graphql', 'application/yaml', 'application/x-yaml',
]);

/** The media type (lower-case) and charset of a Content-Type value; parameters and a folded second value ignored. */
export function parseContentType(value: string): { mediaType: string; charset: string | null } {
  const first = value.split(',')[0];
  const [mt, ...params] = first.split(';');
  let charset: string | null = null;
  for (const p of params) {
    const m = /^\s*charset\s*=\s*"?([^";\s]*)"?\s*$/i.exec(p);
    if (m) charset = m[1].toLowerCase();
  }
  return { mediaType: mt.trim().toLowerCase(), charset };
}

export function isTextualMediaType(mt: string): boolean {
  if (mt.startsWith('text/')) return true;
  if (/\+(json|xml|yaml)$/.test(mt)) return true;
  return TEXTUAL_APPLICATION.has(mt);
}

function decodeWithCharset(bytes: Buffer, charset: string | null): string {
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(charset ?? 'utf-8');
  } catch {
    decoder = new TextDecoder('utf-8'); // unknown label: UTF-8, as reqwest does
  }
  return decoder.decode(bytes);
}

/** Classifies and decodes a response body (§9.13 step 4). */
export function classifyBody(bytes: Buffer, contentType: string | undefined): { body: string; encoding: 'text' | 'base64' } {
  if (contentType !== undefined) {
    const { mediaType, charset } = parseContentType(contentType);
    if (isTextualMediaType(mediaType)) return { body: decodeWithCharset(bytes, charset), encoding: 'text' };
  }
  if (!bytes.includes(0)) {
    try {
      return { body: new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes), encoding: 'text' };
    } catch {
      /* not UTF-8 */
    }
  }
  return { body: bytes.toString('base64'), encoding: 'base64' };
}

/** Response headers: lower-case names, last value wins, values that are not UTF-8 dropped. */
function responseHeaders(raw: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    let value: string;
    try {
      // node decodes header bytes as latin1; recover the bytes and require UTF-8
      value = utf8.decode(Buffer.from(raw[i + 1], 'latin1'));
    } catch {
      out.delete(name);
      continue;
    }
    out.set(name, value);
  }
  return out;
}

function envelope(res: RawResponse): { json: string; body: string; encoding: 'text' | 'base64' } {
  const headers = responseHeaders(res.rawHeaders);
  const { body, encoding } = classifyBody(res.body, headers.get('content-type'));
  const hdr = [...headers].map(([k, v]) => JSON.stringify(k) + ':' + JSON.stringify(v)).join(',');
  const ok = res.status >= 200 && res.status < 300;
  const json =
    `{"status":${res.status},"body":${JSON.stringify(body)},"encoding":"${encoding}",` +
    `"headers":{${hdr}},"ok":${ok},"duration_ms":${Math.max(0, Math.round(res.durationMs))}}`;
  return { json, body, encoding };
}

/** Error preview of a body: ≤ 512 bytes (text) or characters (base64), else truncated with a note. */
export function bodyPreview(body: string, encoding: 'text' | 'base64'): string {
  const LIMIT = 512;
  if (encoding === 'base64') {
    if (body.length <= LIMIT) return body;
    return `${body.slice(0, LIMIT)}... [truncated, ${body.length} base64 characters total]`;
  }
  const bytes = Buffer.from(body, 'utf8');
  if (bytes.length <= LIMIT) return body;
  // cut at a character boundary at or below 512 bytes
  let end = LIMIT;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return `${bytes.subarray(0, end).toString('utf8')}... [truncated, ${bytes.length} bytes total]`;
}
