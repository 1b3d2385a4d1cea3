/**
 * HTTP egress policy end to end (deviation 9, API §9.13, §14, docs/SECURITY.md): df.http nodes
 * started by tenants and run by a real worker against a local HTTP server. A worker with the
 * default policy refuses any literal IP host (the original's `bare IP` rule), blocks names that
 * resolve to loopback and non-http schemes; with --http-allow-ip-literals it blocks cloud metadata,
 * loopback, private, ULA and mapped addresses by range; a worker with the test opt-ins
 * (--http-allow-loopback --http-allow-ip-literals)
 * reaches the local server but still no metadata or private address, returns redirects without
 * following them, and caps response bodies. EXECUTE on df.http is re-checked on every request.
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, errorOf, freshDatabase, scalar, url } from '../support/db';
import { connectAs } from '../support/security';
import { eventually, startWorker, waitFor, type WorkerHandle } from '../support/worker';

let server: http.Server;
let port: number;
const hits: Record<string, number> = {};

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    hits[path] = (hits[path] ?? 0) + 1;
    if (path === '/ok') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"hello":"world"}');
    } else if (path === '/redirect-private') {
      res.writeHead(302, { location: 'http://10.0.0.1/secret' });
      res.end();
    } else if (path === '/redirect-local') {
      res.writeHead(302, { location: `http://127.0.0.1:${port}/secret` });
      res.end();
    } else if (path === '/big') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('x'.repeat(2 * 1024 * 1024));
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('secret');
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server?.close();
});

const lit = (s: string) => pg.escapeLiteral(s);
const restricted = (host: string) =>
  `Blocked: the resolved IP address for '${host}' is in a restricted range. df.http() cannot access private or internal network addresses.`;
const BARE_IP =
  'Blocked: requests to bare IP addresses are not permitted. Use a hostname instead (operators: --http-allow-ip-literals lets literal addresses through the range checks).';
const totalHits = () => Object.values(hits).reduce((a, b) => a + b, 0);

interface Env {
  db: string;
  worker: WorkerHandle;
  admin: pg.Client;
  web: pg.Client;
  webRole: string;
}

async function setup(prefix: string, extraArgs: string[]): Promise<Env> {
  const db = await freshDatabase(prefix);
  const webRole = await createTenant(db, `${prefix}_web`, { http: true });
  const worker = startWorker(url(db), { extraArgs: ['--http-max-retries', '0', ...extraArgs] });
  return { db, worker, admin: await connectAs(url(db)), web: await connectAs(url(db, webRole)), webRole };
}

async function teardown(env: Env | undefined): Promise<void> {
  if (!env) return;
  await env.web.end();
  await env.admin.end();
  await env.worker.stop();
}

/** Starts every expression, waits for all, returns [status, failure text or result JSON]. */
async function runAll(env: Env, exprs: string[], client = env.web): Promise<{ status: string; text: string }[]> {
  const ids: string[] = [];
  for (const e of exprs) ids.push(await scalar<string>(client, `SELECT df.start(${e})`));
  const out = [];
  for (const id of ids) {
    const status = await waitFor(env.admin, id);
    const text = await scalar<string>(env.admin, "SELECT n.result #>> '{}' FROM df.instances i JOIN df.nodes n ON n.instance_id = i.id AND n.id = i.root_node WHERE i.id = $1", [id]);
    out.push({ status, text });
  }
  return out;
}

describe('default policy (no opt-in): every internal destination is blocked', () => {
  let env: Env;
  let noHttp: pg.Client;
  let noHttpRole: string;
  beforeAll(async () => {
    env = await setup('sechttp', []);
    noHttpRole = await createTenant(env.db, 'sechttp_plain');
    noHttp = await connectAs(url(env.db, noHttpRole));
  });
  afterAll(async () => {
    await noHttp?.end();
    await teardown(env);
  });

  it('any literal IP host is refused with the original message (IPv4, IPv6, mapped, encoded, public); localhost by range', async () => {
    const literals = [
      'http://169.254.169.254/latest/meta-data/',
      `http://127.0.0.1:${port}/ok`,
      'http://10.0.0.1/',
      `http://0.0.0.0:${port}/ok`,
      `http://[::1]:${port}/ok`,
      'http://[fd00:ec2::254]/',
      `http://[::ffff:127.0.0.1]:${port}/ok`,
      `http://2130706433:${port}/ok`,
      `http://0x7f.1:${port}/ok`,
      `http://127.1:${port}/ok`,
      `http://user@127.0.0.1:${port}/ok`,
      'http://8.8.8.8/', // public: refused before anything is sent
    ];
    const results = await runAll(env, [...literals.map((u) => `df.http(${lit(u)}, 'GET')`), `df.http(${lit(`http://localhost:${port}/ok`)}, 'GET')`]);
    literals.forEach((u, i) => expect({ u, ...results[i] }).toEqual({ u, status: 'failed', text: BARE_IP }));
    expect(results[literals.length]).toEqual({ status: 'failed', text: restricted('localhost') });
    expect(results[0].text).toContain('bare IP'); // what users' scripts match
    expect(totalHits()).toBe(0);
  });

  it('file:// and other schemes (passed through a {variable}, which the builder cannot check) are blocked at run time', async () => {
    await env.web.query("SELECT df.setvar('t_file', 'file:///etc/passwd'), df.setvar('t_gopher', $1), df.setvar('t_bare', 'example.com')", [`gopher://127.0.0.1:${port}/`]);
    const results = await runAll(env, ["df.http('{t_file}', 'GET')", "df.http('{t_gopher}', 'GET')", "df.http('{t_bare}', 'GET')"]);
    expect(results).toEqual([
      { status: 'failed', text: "Blocked: unsupported URL scheme 'file'. Only http and https are allowed." },
      { status: 'failed', text: "Blocked: unsupported URL scheme 'gopher'. Only http and https are allowed." },
      { status: 'failed', text: "Blocked: unsupported URL scheme 'example.com'. Only http and https are allowed." },
    ]);
    expect((await errorOf(env.web, "SELECT df.http('file:///etc/passwd')")).message).toBe("Blocked: unsupported URL scheme 'file'. Only http and https are allowed.");
    expect(totalHits()).toBe(0);
  });

  it('a tenant without df.http EXECUTE cannot build an HTTP node, and a hand-written one is blocked by the worker', async () => {
    expect((await errorOf(noHttp, "SELECT df.http('http://example.com/', 'GET')")).message).toBe('permission denied for function http');
    expect((await errorOf(noHttp, "SELECT df.http_multipart('http://example.com/', 'POST', '[]')")).message).toBe('permission denied for function http_multipart');
    const rawHttp = JSON.stringify({ node_type: 'HTTP', query: JSON.stringify({ url: 'http://example.com/', method: 'GET', body: null, headers: null, timeout_seconds: 5 }) });
    const rawMultipart = JSON.stringify({
      node_type: 'HTTP_MULTIPART',
      query: JSON.stringify({ url: 'http://example.com/', method: 'POST', parts: [{ name: 'f', data_b64: 'eA==' }], headers: null, timeout_seconds: 5 }),
    });
    const results = await runAll(env, [lit(rawHttp), lit(rawMultipart)], noHttp);
    expect(results).toEqual([
      {
        status: 'failed',
        text: `Blocked: role '${noHttpRole}' does not have EXECUTE privilege on df.http(). Grant EXECUTE ON FUNCTION df.http(text,text,text,jsonb,integer) TO ${noHttpRole} to allow HTTP requests.`,
      },
      {
        status: 'failed',
        text: `Blocked: role '${noHttpRole}' does not have EXECUTE privilege on df.http_multipart(). Grant EXECUTE ON FUNCTION df.http_multipart(text,text,jsonb,jsonb,integer) TO ${noHttpRole} to allow multipart HTTP requests.`,
      },
    ]);
  });
});

describe('--http-allow-ip-literals: literal hosts reach the range checks, which still block every internal address', () => {
  let env: Env;
  beforeAll(async () => {
    env = await setup('sechttpip', ['--http-allow-ip-literals']);
  });
  afterAll(async () => {
    await teardown(env);
  });

  it('metadata, loopback, private, CGNAT, IPv6 loopback/ULA, IPv4-mapped and encoded addresses', async () => {
    const cases: [string, string][] = [
      ['http://169.254.169.254/latest/meta-data/', restricted('169.254.169.254')],
      [`http://127.0.0.1:${port}/ok`, restricted('127.0.0.1')],
      ['http://10.0.0.1/', restricted('10.0.0.1')],
      ['http://172.16.0.1/', restricted('172.16.0.1')],
      ['http://192.168.1.1/', restricted('192.168.1.1')],
      ['http://100.64.0.1/', restricted('100.64.0.1')],
      [`http://0.0.0.0:${port}/ok`, restricted('0.0.0.0')],
      [`http://[::1]:${port}/ok`, restricted('::1')],
      ['http://[fc00::1]/', restricted('fc00::1')],
      ['http://[fd00:ec2::254]/', restricted('fd00:ec2::254')],
      [`http://[::ffff:127.0.0.1]:${port}/ok`, restricted('::ffff:7f00:1')],
      [`http://2130706433:${port}/ok`, restricted('127.0.0.1')],
      [`http://0x7f.1:${port}/ok`, restricted('127.0.0.1')],
      [`http://user@127.0.0.1:${port}/ok`, restricted('127.0.0.1')],
    ];
    const results = await runAll(env, cases.map(([u]) => `df.http(${lit(u)}, 'GET')`));
    cases.forEach(([u, message], i) => expect({ u, ...results[i] }).toEqual({ u, status: 'failed', text: message }));
    expect(totalHits()).toBe(0);
  });
});

describe('test opt-ins (--http-allow-loopback --http-allow-ip-literals): the local test host works, nothing else opens', () => {
  let env: Env;
  beforeAll(async () => {
    env = await setup('sechttpl', ['--http-allow-loopback', '--http-allow-ip-literals', '--max-result-bytes', '1048576']);
  });
  afterAll(async () => {
    await teardown(env);
  });

  it('localhost and 127.0.0.1 are reached; metadata and private addresses stay blocked', async () => {
    const before = hits['/ok'] ?? 0;
    const results = await runAll(env, [
      `df.http(${lit(`http://localhost:${port}/ok`)}, 'GET')`,
      `df.http(${lit(`http://127.0.0.1:${port}/ok`)}, 'GET')`,
      "df.http('http://169.254.169.254/latest/meta-data/', 'GET')",
      "df.http('http://10.0.0.1/', 'GET')",
      "df.http('http://[fd12:3456::1]/', 'GET')",
    ]);
    for (const r of results.slice(0, 2)) {
      expect(r.status).toBe('completed');
      expect(JSON.parse(r.text)).toMatchObject({ status: 200, ok: true, body: '{"hello":"world"}', encoding: 'text' });
    }
    expect(results.slice(2)).toEqual([
      { status: 'failed', text: restricted('169.254.169.254') },
      { status: 'failed', text: restricted('10.0.0.1') },
      { status: 'failed', text: restricted('fd12:3456::1') },
    ]);
    expect(hits['/ok']).toBe(before + 2);
  });

  it('a 302 to a private or local address is returned as-is, never followed', async () => {
    const results = await runAll(env, [
      `df.http(${lit(`http://127.0.0.1:${port}/redirect-private`)}, 'GET')`,
      `df.http(${lit(`http://127.0.0.1:${port}/redirect-local`)}, 'GET')`,
    ]);
    expect(results.map((r) => r.status)).toEqual(['completed', 'completed']);
    expect(JSON.parse(results[0].text)).toMatchObject({ status: 302, ok: false, headers: { location: 'http://10.0.0.1/secret' } });
    expect(JSON.parse(results[1].text)).toMatchObject({ status: 302, ok: false, headers: { location: `http://127.0.0.1:${port}/secret` } });
    expect(hits['/secret']).toBeUndefined();
  });

  it('a response body over --max-result-bytes fails the node', async () => {
    const [r] = await runAll(env, [`df.http(${lit(`http://127.0.0.1:${port}/big`)}, 'GET')`]);
    expect(r).toEqual({ status: 'failed', text: `HTTP request failed: http://127.0.0.1:${port}/big - response body exceeds 1048576 bytes (--max-result-bytes)` });
  });

  it('EXECUTE on df.http is re-checked when the node runs: revoked after the start, the request is blocked', async () => {
    const target = `http://127.0.0.1:${port}/ok`;
    const id = await scalar<string>(env.web, `SELECT df.start(df.wait_for_signal('go') ~> df.http(${lit(target)}, 'GET'))`);
    await eventually(async () => (await scalar(env.web, 'SELECT df.status($1)', [id])) === 'running', 15_000, 'instance running');
    const before = hits['/ok'] ?? 0;
    await env.admin.query(`REVOKE EXECUTE ON FUNCTION df.http(text, text, text, jsonb, integer) FROM ${pg.escapeIdentifier(env.webRole)}`);
    expect(await scalar(env.web, "SELECT df.signal($1, 'go')", [id])).toBe('OK');
    expect(await waitFor(env.web, id)).toBe('failed');
    expect(await scalar(env.admin, "SELECT result #>> '{}' FROM df.nodes WHERE instance_id = $1 AND node_type = 'HTTP'", [id])).toBe(
      `Blocked: role '${env.webRole}' does not have EXECUTE privilege on df.http(). Grant EXECUTE ON FUNCTION df.http(text,text,text,jsonb,integer) TO ${env.webRole} to allow HTTP requests.`,
    );
    expect(hits['/ok'] ?? 0).toBe(before);
  });
});
