/**
 * HTTP / HTTP_MULTIPART executors against local node:http servers on 127.0.0.1 (no database).
 * The servers are addressed by literal IP, so the default context opts in to IP literals
 * (--http-allow-ip-literals) and loopback; the bare-IP rule itself has its own tests.
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DfError } from '../../src/core/errors';
import {
  BARE_IP,
  defaultEgressPolicy,
  executeHttp,
  executeHttpMultipart,
  type EgressPolicy,
  type HttpAuditEntry,
  type HttpConfig,
  type HttpContext,
} from '../../src/worker/http';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

interface TestServer {
  url: string;
  port: number;
  hits: Seen[];
}

const servers: http.Server[] = [];

async function serve(handler: (req: http.IncomingMessage, res: http.ServerResponse, hit: number, body: Buffer) => void): Promise<TestServer> {
  const hits: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      hits.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (hits.length > 20) {
        res.statusCode = 429;
        res.end('too many requests in a test');
        return;
      }
      handler(req, res, hits.length, body);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, port, hits };
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

const policy = (over: Partial<EgressPolicy> = {}): EgressPolicy => ({
  ...defaultEgressPolicy('9.9.9'),
  retryBaseMs: 5,
  ...over,
});

function context(over: Partial<HttpContext> = {}, log: HttpAuditEntry[] = []): HttpContext {
  return {
    policy: policy({ allowLoopback: true, allowIpLiterals: true }),
    role: 'alice',
    canExecute: async () => true,
    log: (e) => log.push(e),
    ...over,
  };
}

const get = (url: string, over: Partial<HttpConfig> = {}): HttpConfig => ({
  url,
  method: 'GET',
  body: null,
  headers: null,
  timeout_seconds: 10,
  ...over,
});

const RESTRICTED = (host: string): string =>
  `Blocked: the resolved IP address for '${host}' is in a restricted range. df.http() cannot access private or internal network addresses.`;

async function failure(p: Promise<unknown>): Promise<DfError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(DfError);
    return e as DfError;
  }
  throw new Error('expected a failure');
}

describe('df.http gates', () => {
  it('blocks loopback by default, with the exact message, without connecting', async () => {
    const s = await serve((_q, res) => res.end('no'));
    const log: HttpAuditEntry[] = [];
    const e = await failure(executeHttp(get(s.url + '/x'), context({ policy: policy({ allowIpLiterals: true }) }, log)));
    expect(e.message).toBe(RESTRICTED('127.0.0.1'));
    expect(s.hits.length).toBe(0);
    expect(log).toEqual([{ kind: 'http', role: 'alice', url: s.url + '/x', outcome: 'blocked', block: 'ip' }]);
  });

  it('blocks a hostname that resolves to loopback (localhost)', async () => {
    const s = await serve((_q, res) => res.end('no'));
    const e = await failure(executeHttp(get(`http://localhost:${s.port}/`), context({ policy: policy() })));
    expect(e.message).toBe(RESTRICTED('localhost'));
    expect(s.hits.length).toBe(0);
  });

  it('blocks IPv4-mapped and numeric forms of loopback', async () => {
    const s = await serve((_q, res) => res.end('no'));
    const literals = context({ policy: policy({ allowIpLiterals: true }) });
    const e1 = await failure(executeHttp(get(`http://[::ffff:127.0.0.1]:${s.port}/`), literals));
    expect(e1.message).toBe(RESTRICTED('::ffff:7f00:1'));
    const e2 = await failure(executeHttp(get(`http://2130706433:${s.port}/`), literals));
    expect(e2.message).toBe(RESTRICTED('127.0.0.1'));
    expect(s.hits.length).toBe(0);
  });

  it('refuses a literal IP host in every form by default (API §14 `bare IP`), before resolving or connecting', async () => {
    const s = await serve((_q, res) => res.end('no'));
    const log: HttpAuditEntry[] = [];
    let resolved = 0;
    const ctx = context({ policy: policy({ allowLoopback: true, allowPrivate: true }), resolve: async () => (resolved++, []) }, log);
    const urls = [
      s.url + '/x',
      `http://127.1:${s.port}/`,
      `http://2130706433:${s.port}/`,
      `http://0x7f.1:${s.port}/`,
      `http://0177.0.0.1:${s.port}/`,
      `http://[::1]:${s.port}/`,
      `http://[::ffff:127.0.0.1]:${s.port}/`,
      `http://[0:0:0:0:0:0:0:1]:${s.port}/`,
      `http://user:pw@127.0.0.1:${s.port}/`,
      `http://127.0.0.1.:${s.port}/`,
      `http://evil.test\\@127.0.0.1:${s.port}/`, // §14 extraction says 127.0.0.1, WHATWG says evil.test
      'http://8.8.8.8/', // public: refused too, nothing is sent
      'https://[2606:4700::1111]/',
      'http://169.254.169.254/latest/meta-data/',
    ];
    for (const u of urls) {
      const e = await failure(executeHttp(get(u), ctx));
      expect({ u, m: e.message }).toEqual({ u, m: BARE_IP });
    }
    expect(BARE_IP).toMatch(/^Blocked: requests to bare IP addresses are not permitted\. /);
    expect(log.every((l) => l.outcome === 'blocked' && l.block === 'ip')).toBe(true);
    expect(log.length).toBe(urls.length);
    expect(resolved).toBe(0);
    expect(s.hits.length).toBe(0);
    // hostnames that merely look numeric-ish are not literals
    const named = context({ policy: policy({ allowLoopback: true }), resolve: async () => [{ address: '127.0.0.1', family: 4 }] });
    expect(JSON.parse(await executeHttp(get(`http://1.2.3.4.example:${s.port}/`), named)).status).toBe(200);
  });

  it('--http-allow-ip-literals lets literals through to the range checks, which still apply', async () => {
    const s = await serve((_q, res) => res.end('yes'));
    const literals = policy({ allowIpLiterals: true });
    expect((await failure(executeHttp(get(s.url), context({ policy: literals })))).message).toBe(RESTRICTED('127.0.0.1'));
    expect((await failure(executeHttp(get('http://169.254.169.254/'), context({ policy: { ...literals, allowLoopback: true, allowPrivate: true } })))).message).toBe(
      RESTRICTED('169.254.169.254'),
    );
    expect(JSON.parse(await executeHttp(get(s.url), context({ policy: { ...literals, allowLoopback: true } }))).body).toBe('yes');
  });

  it('connects only to the vetted addresses of a name (rebinding defence)', async () => {
    const s = await serve((_q, res) => res.end('vetted'));
    const resolve = async () => [
      { address: '169.254.169.254', family: 4 as const },
      { address: '127.0.0.1', family: 4 as const },
    ];
    const env = JSON.parse(await executeHttp(get(`http://svc.test:${s.port}/`), context({ resolve })));
    expect(env.body).toBe('vetted');
    expect(s.hits[0].headers.host).toBe(`svc.test:${s.port}`);
    const e = await failure(
      executeHttp(get(`http://svc.test:${s.port}/`), context({ resolve: async () => [{ address: '10.1.2.3', family: 4 }] })),
    );
    expect(e.message).toBe(RESTRICTED('svc.test'));
    expect(s.hits.length).toBe(1);
  });

  it('rejects non-http schemes', async () => {
    const log: HttpAuditEntry[] = [];
    const e1 = await failure(executeHttp(get('file:///etc/passwd'), context({}, log)));
    expect(e1.message).toBe("Blocked: unsupported URL scheme 'file'. Only http and https are allowed.");
    const e2 = await failure(executeHttp(get('FTP://example.com/x'), context()));
    expect(e2.message).toBe("Blocked: unsupported URL scheme 'ftp'. Only http and https are allowed.");
    const e3 = await failure(executeHttp(get('example.com'), context()));
    expect(e3.message).toBe("Blocked: unsupported URL scheme 'example.com'. Only http and https are allowed.");
    expect(log[0]).toMatchObject({ outcome: 'blocked', block: 'scheme' });
  });

  it('rejects URLs without a host', async () => {
    const e = await failure(executeHttp(get('http:///nohost'), context()));
    expect(e.message).toBe('Blocked: unable to extract hostname from URL.');
  });

  it('enforces the allow-list', async () => {
    const s = await serve((_q, res) => res.end('allowed'));
    const log: HttpAuditEntry[] = [];
    const ctx = context({ policy: policy({ allowLoopback: true, allowIpLiterals: true, allowedHosts: ['example.com'] }) }, log);
    const e = await failure(executeHttp(get(s.url), ctx));
    expect(e.message).toBe("Blocked: '127.0.0.1' is not in the allowed endpoint list.");
    expect(log[0]).toMatchObject({ outcome: 'blocked', block: 'allowlist' });
    const e2 = await failure(executeHttp(get('https://evil.example.com.attacker.net/'), ctx));
    expect(e2.message).toBe("Blocked: 'evil.example.com.attacker.net' is not in the allowed endpoint list.");
    // a subdomain of an entry passes (resolved through the test resolver to the local server)
    const ok = context({
      policy: policy({ allowLoopback: true, allowedHosts: ['example.com'] }),
      resolve: async () => [{ address: '127.0.0.1', family: 4 }],
    });
    expect(JSON.parse(await executeHttp(get(`http://api.example.com:${s.port}/`), ok)).body).toBe('allowed');
    // the host actually connected to is what is checked (WHATWG parsing of a backslash)
    const e3 = await failure(executeHttp(get('http://evil.net\\@api.example.com/'), ctx));
    expect(e3.message).toBe("Blocked: 'evil.net' is not in the allowed endpoint list.");
    expect(s.hits.length).toBe(1);
  });

  it('checks the privilege first', async () => {
    const log: HttpAuditEntry[] = [];
    const e = await failure(executeHttp(get('file:///x'), context({ canExecute: async () => false }, log)));
    expect(e.message).toBe(
      "Blocked: role 'alice' does not have EXECUTE privilege on df.http(). Grant EXECUTE ON FUNCTION df.http(text,text,text,jsonb,integer) TO alice to allow HTTP requests.",
    );
    expect(log).toEqual([{ kind: 'http', role: 'alice', url: 'file:///x', outcome: 'blocked', block: 'privilege' }]);
  });
});

describe('df.http requests', () => {
  it('GET returns the envelope', async () => {
    const s = await serve((_q, res) => {
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.setHeader('X-Custom', 'Value');
      res.setHeader('X-Rep', ['first', 'second']);
      res.end('hello ✓');
    });
    const log: HttpAuditEntry[] = [];
    const text = await executeHttp(
      get(s.url + '/path?q=1', { headers: { 'X-Req': 'abc', 'X-Num': 5 as unknown as string, 'X-Null': null as unknown as string } }),
      context({}, log),
    );
    expect(text).toMatch(/^\{"status":200,"body":"hello ✓","encoding":"text","headers":\{.*\},"ok":true,"duration_ms":\d+\}$/);
    const env = JSON.parse(text);
    expect(env.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(env.headers['x-custom']).toBe('Value');
    expect(env.headers['x-rep']).toBe('second');
    expect(Object.keys(env.headers).every((k) => k === k.toLowerCase())).toBe(true);
    const seen = s.hits[0];
    expect(seen.method).toBe('GET');
    expect(seen.url).toBe('/path?q=1');
    expect(seen.headers['user-agent']).toBe('pg_durable/9.9.9');
    expect(seen.headers['x-req']).toBe('abc');
    expect(seen.headers['x-num']).toBeUndefined();
    expect(seen.headers['x-null']).toBeUndefined();
    expect(log).toEqual([{ kind: 'http', role: 'alice', url: s.url + '/path?q=1', outcome: 'response', attempt: 0, status: 200 }]);
    expect(JSON.stringify(log)).not.toMatch(/127\.0\.0\.1(?!:\d+\/path)/);
  });

  it('sends the body and a caller User-Agent (case-insensitive override)', async () => {
    const s = await serve((_q, res) => {
      res.statusCode = 201;
      res.setHeader('Content-Type', 'application/json');
      res.end('{"id":1}');
    });
    const env = JSON.parse(
      await executeHttp(get(s.url, { method: 'post', body: '{"x":"é"}', headers: { 'user-agent': 'mine/1', 'Content-Type': 'application/json' } }), context()),
    );
    expect(env).toMatchObject({ status: 201, body: '{"id":1}', encoding: 'text', ok: true });
    expect(s.hits[0].method).toBe('POST');
    expect(s.hits[0].body.toString('utf8')).toBe('{"x":"é"}');
    expect(s.hits[0].headers['content-length']).toBe(String(Buffer.byteLength('{"x":"é"}')));
    expect(s.hits[0].headers['user-agent']).toBe('mine/1');
    expect(s.hits[0].headers['content-type']).toBe('application/json');
  });

  it('binary bodies come back as base64', async () => {
    const bytes = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff, 0x10]);
    const s = await serve((_q, res) => {
      res.setHeader('Content-Type', 'image/png');
      res.end(bytes);
    });
    const env = JSON.parse(await executeHttp(get(s.url), context()));
    expect(env.encoding).toBe('base64');
    expect(Buffer.from(env.body, 'base64').equals(bytes)).toBe(true);
  });

  it('redirects are returned, not followed; 4xx are successes', async () => {
    const target = await serve((_q, res) => res.end('target'));
    const s = await serve((req, res) => {
      if (req.url === '/missing') {
        res.statusCode = 404;
        res.end('nope');
        return;
      }
      res.statusCode = 302;
      res.setHeader('Location', target.url + '/elsewhere');
      res.end();
    });
    const env = JSON.parse(await executeHttp(get(s.url + '/start'), context()));
    expect(env.status).toBe(302);
    expect(env.ok).toBe(false);
    expect(env.headers.location).toBe(target.url + '/elsewhere');
    expect(target.hits.length).toBe(0);
    const nf = JSON.parse(await executeHttp(get(s.url + '/missing'), context()));
    expect(nf).toMatchObject({ status: 404, ok: false, body: 'nope' });
    expect(s.hits.length).toBe(2);
  });

  it('retries 5xx: 503 twice then 200 succeeds', async () => {
    const s = await serve((_q, res, hit) => {
      res.statusCode = hit <= 2 ? 503 : 200;
      res.end(hit <= 2 ? 'busy' : 'finally');
    });
    const log: HttpAuditEntry[] = [];
    const env = JSON.parse(await executeHttp(get(s.url), context({}, log)));
    expect(env).toMatchObject({ status: 200, body: 'finally', ok: true });
    expect(s.hits.length).toBe(3);
    expect(log.map((l) => l.status)).toEqual([503, 503, 200]);
  });

  it('persistent 5xx fails with a preview after maxRetries + 1 attempts', async () => {
    const s = await serve((_q, res) => {
      res.statusCode = 500;
      res.end('E'.repeat(600));
    });
    const e = await failure(executeHttp(get(s.url + '/boom', { method: 'DELETE' }), context()));
    expect(e.message).toBe(`HTTP DELETE ${s.url}/boom returned 500: ${'E'.repeat(512)}... [truncated, 600 bytes total]`);
    expect(s.hits.length).toBe(3);

    const s2 = await serve((_q, res) => {
      res.statusCode = 502;
      res.end('bad gateway');
    });
    const e2 = await failure(executeHttp(get(s2.url), context({ policy: policy({ allowLoopback: true, allowIpLiterals: true, maxRetries: 0 }) })));
    expect(e2.message).toBe(`HTTP GET ${s2.url} returned 502: bad gateway`);
    expect(s2.hits.length).toBe(1);
  });

  it('times out', async () => {
    const s = await serve(() => {
      /* never answers */
    });
    const started = Date.now();
    const e = await failure(
      executeHttp(get(s.url + '/slow', { timeout_seconds: 1 }), context({ policy: policy({ allowLoopback: true, allowIpLiterals: true, maxRetries: 1 }) })),
    );
    expect(e.message).toBe(`HTTP timeout after 1s: ${s.url}/slow`);
    expect(s.hits.length).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
  });

  it('connection failures are retried then reported without the address', async () => {
    const s = await serve((_q, res) => res.end());
    const port = s.port;
    for (const srv of servers.splice(0)) await new Promise<void>((r) => srv.close(() => r()));
    const log: HttpAuditEntry[] = [];
    const ctx = context({ resolve: async () => [{ address: '127.0.0.1', family: 4 }], policy: policy({ allowLoopback: true, maxRetries: 1 }) }, log);
    const e = await failure(executeHttp(get(`http://closed.test:${port}/`), ctx));
    expect(e.message).toMatch(new RegExp(`^HTTP connection failed: http://closed\\.test:${port}/ - .*ECONNREFUSED`));
    expect(e.message).not.toContain('127.0.0.1');
    expect(log.filter((l) => l.outcome === 'error').length).toBe(2);
  });

  it('aborts through the signal', async () => {
    const s = await serve(() => {
      /* never answers */
    });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('race lost')), 100);
    await expect(executeHttp(get(s.url, { timeout_seconds: 30 }), context({ signal: ac.signal }))).rejects.toThrow('race lost');
    expect(s.hits.length).toBe(1);
  });
});

/** Rough multipart/form-data parser for the server side. */
function parseMultipart(body: Buffer, contentType: string): { headers: string; data: Buffer }[] {
  const m = /boundary=(.+)$/.exec(contentType);
  if (!m) throw new Error('no boundary');
  const delim = Buffer.from('--' + m[1]);
  const parts: { headers: string; data: Buffer }[] = [];
  let pos = body.indexOf(delim);
  for (;;) {
    const after = pos + delim.length;
    if (body.subarray(after, after + 2).toString() === '--') break;
    const headStart = after + 2; // CRLF
    const headEnd = body.indexOf('\r\n\r\n', headStart);
    const next = body.indexOf(delim, headEnd);
    parts.push({ headers: body.subarray(headStart, headEnd).toString('utf8'), data: body.subarray(headEnd + 4, next - 2) });
    pos = next;
  }
  return parts;
}

describe('df.http_multipart', () => {
  const mp = (url: string, parts: unknown, over: Record<string, unknown> = {}) => ({
    url,
    method: 'POST',
    parts,
    headers: null,
    timeout_seconds: 10,
    ...over,
  });

  it('posts the parts and drops the caller Content-Type', async () => {
    const s = await serve((_q, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end('{"uploaded":true}');
    });
    const bin = Buffer.from([0x00, 0x01, 0xfe, 0xff, 0x0d, 0x0a]);
    const b64 = bin.toString('base64');
    const text = await executeHttpMultipart(
      mp(
        s.url + '/upload',
        [
          { name: 'meta', data_b64: Buffer.from('{"a":1}').toString('base64'), content_type: 'application/json' },
          { name: 'file', filename: 'a "b".bin', data_b64: ` ${b64.slice(0, 4)}\n${b64.slice(4)} `, content_type: 'application/octet-stream' },
          { name: 'plain', data_b64: Buffer.from('hi').toString('base64') },
        ],
        { headers: { 'content-type': 'text/plain', 'X-Extra': 'y' } },
      ),
      context(),
    );
    expect(JSON.parse(text)).toMatchObject({ status: 200, ok: true, body: '{"uploaded":true}' });
    const seen = s.hits[0];
    expect(seen.method).toBe('POST');
    expect(seen.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(seen.headers['x-extra']).toBe('y');
    const parts = parseMultipart(seen.body, seen.headers['content-type'] as string);
    expect(parts.length).toBe(3);
    expect(parts[0].headers).toContain('Content-Disposition: form-data; name="meta"');
    expect(parts[0].headers).toContain('Content-Type: application/json');
    expect(parts[0].data.toString()).toBe('{"a":1}');
    expect(parts[1].headers).toContain('name="file"; filename="a %22b%22.bin"');
    expect(parts[1].data.equals(bin)).toBe(true);
    expect(parts[2].headers).toBe('Content-Disposition: form-data; name="plain"');
    expect(parts[2].data.toString()).toBe('hi');
  });

  it('privilege, method and part errors', async () => {
    const s = await serve((_q, res) => res.end());
    const part = { name: 'p', data_b64: 'aGk=' };
    const e0 = await failure(executeHttpMultipart(mp(s.url, [part]), context({ canExecute: async () => false })));
    expect(e0.message).toBe(
      "Blocked: role 'alice' does not have EXECUTE privilege on df.http_multipart(). Grant EXECUTE ON FUNCTION df.http_multipart(text,text,jsonb,jsonb,integer) TO alice to allow multipart HTTP requests.",
    );
    const e1 = await failure(executeHttpMultipart(mp(s.url, [part], { method: 'GET' }), context()));
    expect(e1.message).toBe('Unsupported HTTP method for multipart: GET');
    const e2 = await failure(executeHttpMultipart(mp(s.url, [{ name: 'bad', data_b64: 'a$b=' }]), context()));
    expect(e2.message).toBe("Invalid base64 in part 'bad': Invalid symbol 36, offset 1.");
    const e3 = await failure(executeHttpMultipart(mp(s.url, [{ ...part, content_type: 'nonsense' }]), context()));
    expect(e3.message).toBe("Invalid content_type for part 'p': a slash (/) was missing between the type and subtype");
    const e4 = await failure(executeHttpMultipart(mp(s.url, [{ data_b64: 'aGk=' }]), context()));
    expect(e4.message).toMatch(/^Invalid multipart HTTP config: missing field `name`/);
    const e5 = await failure(executeHttpMultipart(mp(s.url, 'x'), context()));
    expect(e5.message).toMatch(/^Invalid multipart HTTP config: invalid type/);
    const e6 = await failure(executeHttpMultipart(mp('ftp://x/', [part]), context()));
    expect(e6.message).toBe("Blocked: unsupported URL scheme 'ftp'. Only http and https are allowed.");
    const e7 = await failure(executeHttpMultipart(mp(s.url, [part]), context({ policy: policy({ allowIpLiterals: true }) })));
    expect(e7.message).toBe(RESTRICTED('127.0.0.1'));
    const e8 = await failure(executeHttpMultipart(mp(s.url, [part]), context({ policy: policy({ allowLoopback: true }) })));
    expect(e8.message).toBe(BARE_IP);
    expect(s.hits.length).toBe(0);
  });

  it('retries 5xx like df.http', async () => {
    const s = await serve((_q, res, hit) => {
      res.statusCode = hit === 1 ? 500 : 200;
      res.end('r' + hit);
    });
    const env = JSON.parse(await executeHttpMultipart(mp(s.url, [{ name: 'p', data_b64: 'aGk=' }], { method: 'put' }), context()));
    expect(env).toMatchObject({ status: 200, body: 'r2' });
    expect(s.hits.map((h) => h.method)).toEqual(['PUT', 'PUT']);
  });
});
